"""Publishing a run's scheduled tasks, and the first decision of a new run.

Both the driver and the controller publish tasks: the controller makes a new run's first
decision itself, so the first step is queued before any Ray call — a run starts in a few
JetStream round trips instead of waiting for the hand-off to a run actor. The decision is
appended under the same fence (and with the same incarnation) as the driver's next ones.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from nats.js import JetStreamContext

from actorflow.actors.run.history import DecisionLog
from actorflow.actors.run.hooks import HookRunner
from actorflow.actors.run.state import PlannedTask, RunState, Schedule
from actorflow.actors.store.blobs import BlobStore
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.tracing import RunSpans
from actorflow.definitions import events as ev


async def publish_tasks(
    js: JetStreamContext, blobs: BlobStore, started: ev.RunStarted, tasks: list[PlannedTask]
) -> None:
    """Queue a run's `tasks` on their functions' subjects (one per priority); publishing one
    again is harmless (the server deduplicates on its idempotency key). Traced, each task
    names its attempt's span, the parent of its execution."""
    run_id, workflow = started.run_id, started.workflow
    spans = RunSpans.of(started)

    async def publish(task: PlannedTask) -> None:
        message = ev.TaskScheduled(
            run_id=run_id,
            workflow=workflow,
            task=task.ref,
            function=task.function,
            version=task.version,
            inputs=await blobs.to_payload(task.inputs),
            priority=task.priority,
        )
        subject = ev.task_subject(task.function, task.version, task.priority)
        data = ev.encode(message)
        headers = {ev.MSG_ID: message.idempotency_key}
        if spans is not None:
            headers = spans.attempt_headers(task.ref, headers)
        await with_retries(lambda: js.publish(subject, data, headers=headers), f"publish {subject}")

    await asyncio.gather(*(publish(task) for task in tasks))


@dataclass(frozen=True)
class FirstDecision:
    """A new run's first `TasksScheduled`, appended at `seq` by `incarnation`; the driver
    takes the run over from there."""

    incarnation: str
    seq: int
    event: ev.TasksScheduled


def first_tasks(started: ev.RunStarted, hook_timeout: float) -> list[PlannedTask] | None:
    """A new run's first tasks, when scheduling them is all its first decision is; None
    when it starts otherwise — a hook before the run or its nodes, a wait, nothing to run
    — and the driver decides as usual. Pure: the same answer the driver's `decide` gives."""
    state = RunState(started)
    hooks = HookRunner(state, hook_timeout)
    if hooks.wants("before_run") or hooks.wants("before_node"):
        return None
    decisions = state.decide(ev.now())
    if len(decisions) != 1 or not isinstance(decisions[0], Schedule):
        return None
    return decisions[0].tasks


async def first_decision(
    js: JetStreamContext,
    blobs: BlobStore,
    started: ev.RunStarted,
    seq: int,
    hook_timeout: float,
) -> FirstDecision | None:
    """Append and queue a new run's `first_tasks` (None: there are none, nothing done).

    An error after the append leaves the run to be recovered by replay (the history says
    what was decided).
    """
    tasks = first_tasks(started, hook_timeout)
    if tasks is None:
        return None
    incarnation = uuid.uuid4().hex[:12]
    event = ev.TasksScheduled(run_id=started.run_id, tasks=[t.ref for t in tasks])
    at = await DecisionLog(js, started.run_id, seq, incarnation).append(event)
    await publish_tasks(js, blobs, started, tasks)
    return FirstDecision(incarnation, at, event)
