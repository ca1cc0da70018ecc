"""The one replay: `RunState.from_history` — a pure fold, deterministic under redelivery.

Histories here are made by driving the state machine itself on random workflows (random
DAGs, random outcomes, retries), so every history is one the engine could have written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorflow.actors.run.state import Expire, RunState, Schedule, Stop
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.models import Need, NeedKind, Workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_RESULTS = (ev.TaskStarted, ev.TaskCompleted, ev.TaskFailed)


def _started(wf: Workflow) -> ev.RunStarted:
    return ev.RunStarted(
        run_id="r1",
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        plan=wf.model_dump(mode="json", by_alias=True),
        functions={"f@1": "1"},
        inputs={},
        at=T0,
    )


@st.composite
def _workflows(draw: st.DrawFn) -> Workflow:
    """A random DAG of 1-6 nodes; each may need any earlier ones (on any outcome), may
    retry, may have a condition over a need's status, may continue on failure and may
    time out."""
    b = WorkflowBuilder("w")
    ids: list[str] = []
    kinds: list[NeedKind] = ["succeeded", "failed", "skipped", "finished"]
    for i in range(draw(st.integers(1, 6))):
        names = draw(st.lists(st.sampled_from(ids), unique=True, max_size=3)) if ids else []
        needs = [Need(node=n, on=draw(st.sampled_from(kinds))) for n in names]
        retry = {"max_attempts": draw(st.integers(1, 3)), "initial_delay": 0.5}
        when = None
        if names and draw(st.booleans()):
            status = draw(st.sampled_from(["SUCCEEDED", "SKIPPED", "FAILED"]))
            when = f"${{{{ nodes.{names[0]}.status != '{status}' }}}}"
        elif draw(st.integers(0, 4)) == 0:
            when = "${{ false }}"
        b.node(
            f"n{i}",
            "f@1",
            inputs={"i": i},
            needs=needs,
            retry=retry,
            when=when,
            continue_on="failed" if draw(st.integers(0, 3)) == 0 else None,
            timeout=draw(st.sampled_from([None, None, 0.03, 1.0])),
        )
        ids.append(f"n{i}")
    b.output("last", f"${{{{ nodes.{ids[-1]}.output }}}}")
    return b.build()


def _simulate(wf: Workflow, data: st.DataObject) -> list[ev.HistoryEvent]:
    """Drive the state machine as the run actor and the replicas would, appending every
    event it would have recorded; random results, random completion order."""
    history: list[ev.HistoryEvent] = [_started(wf)]
    state = RunState.from_history(history)
    now = T0
    queued: list[ev.TaskRef] = []

    def record(event: ev.HistoryEvent, output: Any = None) -> None:
        history.append(event)
        state.apply(event, output)

    for _ in range(200):
        decisions = state.decide(now)
        for decision in decisions:
            if isinstance(decision, Schedule):
                refs = [t.ref for t in decision.tasks]
                record(ev.TasksScheduled(run_id="r1", tasks=refs, at=now))
                queued.extend(refs)
            elif isinstance(decision, Expire):
                record(ev.TimedOut(run_id="r1", node=decision.node, at=now))
            elif isinstance(decision, Stop):
                record(ev.RunStopped(run_id="r1", status=decision.status, at=now))
                return history
        if decisions:
            continue
        if queued:
            ref = queued.pop(data.draw(st.integers(0, len(queued) - 1)))
            now += timedelta(milliseconds=data.draw(st.integers(1, 50)))
            record(ev.TaskStarted(run_id="r1", task=ref, at=now))
            run = ev.Execution(started_at=now, finished_at=now)
            if data.draw(st.booleans()):
                value = {"node": ref.node, "attempt": ref.attempt}
                payload = ev.Payload(inline=value)
                record(
                    ev.TaskCompleted(run_id="r1", task=ref, output=payload, execution=run, at=now),
                    value,
                )
            else:
                error = ev.ErrorInfo(code="HANDLER_ERROR", message="boom")
                record(ev.TaskFailed(run_id="r1", task=ref, error=error, execution=run, at=now))
            continue
        due = state.next_due()
        if due is None:
            return history
        now = max(now, due)
    return history


def _view(state: RunState, now: datetime) -> tuple[Any, ...]:
    """Everything a reader of the run sees, plus what the run would do next."""
    nodes = {
        n.id: (n.status, n.attempts, n.output, n.error.code if n.error else None)
        for n in state.nodes.values()
    }
    return (state.status, nodes, state.stopped, state.decide(now))


def _with_redeliveries(
    history: list[ev.HistoryEvent], data: st.DataObject
) -> list[ev.HistoryEvent]:
    """Results delivered again later (a replica republishing, the live feed and a replay
    both delivering): each result may reappear at any later position."""
    out = list(history)
    for i, event in enumerate(history):
        if isinstance(event, _RESULTS) and data.draw(st.booleans()):
            out.insert(data.draw(st.integers(i + 1, len(out))), event)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wf=_workflows(), data=st.data())
def test_replay_is_the_live_state(wf: Workflow, data: st.DataObject) -> None:
    history = _simulate(wf, data)
    live = RunState.from_history(history[:1])
    for event in history[1:]:
        output = event.output.inline if isinstance(event, ev.TaskCompleted) else None
        live.apply(event, output)
    end = history[-1].at + timedelta(seconds=1)
    assert _view(RunState.from_history(history), end) == _view(live, end)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wf=_workflows(), data=st.data())
def test_redelivered_results_change_neither_state_nor_decisions(
    wf: Workflow, data: st.DataObject
) -> None:
    history = _simulate(wf, data)
    cut = data.draw(st.integers(1, len(history)), label="prefix")
    prefix = history[:cut]
    now = prefix[-1].at
    once = RunState.from_history(prefix)
    again = RunState.from_history(_with_redeliveries(prefix, data))
    assert _view(again, now) == _view(once, now)


def test_a_history_without_run_started_is_refused() -> None:
    with pytest.raises(ValueError, match="RunStarted"):
        RunState.from_history([ev.RunClaimed(run_id="r1", incarnation="x")])


def test_blob_outputs_come_from_the_values_given() -> None:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1")
    b.output("a", a.output)
    wf = b.build()
    ref = ev.TaskRef(node="a")
    big = ev.Payload(blob=ev.BlobRef(name="sha-1", size=10))
    run = ev.Execution(started_at=T0, finished_at=T0)
    history: list[ev.HistoryEvent] = [
        _started(wf),
        ev.TasksScheduled(run_id="r1", tasks=[ref], at=T0),
        ev.TaskCompleted(run_id="r1", task=ref, output=big, execution=run, at=T0),
    ]
    state = RunState.from_history(history, {"sha-1": [1, 2, 3]})
    assert state.nodes["a"].output == [1, 2, 3]
    [stop] = state.decide(T0)
    assert isinstance(stop, Stop)
    assert stop.outputs == {"a": [1, 2, 3]}
