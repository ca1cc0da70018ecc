"""Helpers that drive the run state machine with hand-made events (shared by its tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from actorflow.actors.run.state import PlannedTask, RunState, Schedule, Stop
from actorflow.definitions import events as ev
from actorflow.definitions.models import Workflow
from actorflow.definitions.plan import function_refs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def started(wf: Workflow, retries: dict[str, Any] | None = None, **inputs: Any) -> ev.RunStarted:
    refs = function_refs(wf)
    return ev.RunStarted(
        run_id="r1",
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        plan=wf.model_dump(mode="json", by_alias=True),
        functions={ref: ref.partition("@")[2] for ref in refs},
        retries=retries or {},
        inputs=inputs,
        at=T0,
    )


def schedule(state: RunState, now: datetime = T0) -> list[PlannedTask]:
    decisions = state.decide(now)
    assert len(decisions) == 1
    decision = decisions[0]
    assert isinstance(decision, Schedule)
    state.apply(ev.TasksScheduled(run_id="r1", tasks=[t.ref for t in decision.tasks], at=now))
    return decision.tasks


def execution(at: datetime) -> ev.Execution:
    return ev.Execution(started_at=at, finished_at=at)


def complete(state: RunState, task: PlannedTask, value: Any, at: datetime = T0) -> None:
    state.apply(
        ev.TaskCompleted(
            run_id="r1", task=task.ref, output=ev.Payload(inline=value), execution=execution(at)
        ),
        value,
    )


def fail(
    state: RunState,
    task: PlannedTask,
    code: str = "HANDLER_ERROR",
    at: datetime = T0,
    retryable: bool = True,
) -> None:
    error = ev.ErrorInfo(code=code, message="boom", type="builtins.ValueError", retryable=retryable)
    state.apply(ev.TaskFailed(run_id="r1", task=task.ref, error=error, execution=execution(at)))


def only_stop(state: RunState, now: datetime = T0) -> Stop:
    decisions = state.decide(now)
    assert len(decisions) == 1
    assert isinstance(decisions[0], Stop)
    return decisions[0]
