"""The handler of `workflow:` nodes: start the child run, wait for it to end.

The child's id is derived from the parent's task (`child_run_id`), and a start of an id
that exists starts nothing, so whatever dies — this replica (its task is redelivered and
the handler runs again), the parent's or the child's run actor — one child runs per
attempt. The child is a run like any other, driven by its own run actor; this step only
watches its record, woken by its lifecycle events.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.errors import Error as NatsError

from actorflow.actors.functions import engine_link
from actorflow.actors.functions.context import StepContext
from actorflow.actors.store.streams import read_record
from actorflow.actors.store.tracing import inject
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ErrorCode, NotFoundError, StepError

HANDLER = f"{__name__}:run"  # what `builtin_function("workflow", …)` names
_START_TRIES = 5
_POLL = 1.0  # seconds between record reads when no lifecycle event arrives


async def run(  # noqa: PLR0917 - the node's task inputs, by name
    workflow: str,
    version: str,
    inputs: dict[str, Any],
    depth: int,
    on_parent_stop: ev.OnParentStop,
    ctx: StepContext,
    priority: int | None = None,
) -> Any:
    """The child run's outputs; a child that does not succeed fails the node with its own
    error code (else CHILD_FAILED) and the child's id in the details."""
    link = engine_link.current()
    task = ev.TaskRef(node=ctx.node, index=ctx.index, attempt=ctx.attempt)
    child = ev.child_run_id(ctx.run_id, task, workflow)
    parent = ev.ParentRef(run_id=ctx.run_id, task=task, on_parent_stop=on_parent_stop)
    changed = asyncio.Event()
    ended: list[ev.RunLifecycle] = []

    async def on_event(msg: Any) -> None:
        # The event of the child's end says all the record would (it is published once
        # the end is durable): no read of the record then. Events are best effort, so
        # the record is still read when one is missed.
        with contextlib.suppress(ev.DecodeError):
            event = ev.decode(ev.RunLifecycle, msg.data)
            if event.run_id == child and event.status.finished:
                ended.append(event)
        changed.set()

    sub = await link.nc.subscribe(ev.run_events_filter(workflow, child), cb=on_event)
    try:
        request = ev.StartRunRequest(
            run_id=child,
            workflow=workflow,
            version=version,
            inputs=inputs,
            parent=parent,
            depth=depth,
            priority=priority,  # the node's (a task queued before priorities: the workflow's)
        )
        await _start(link, request)
        ctx.logger.info("child run %s (%s@%s)", child, workflow, version)
        record = await _ended(link, child, changed, ended)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    if record.status is ev.RunStatus.SUCCEEDED:
        return record.outputs
    failure = ev.child_failure(child, record.status, record.error)
    raise StepError(failure.code, failure.message, retryable=False, details=dict(failure.details))


async def _start(link: engine_link.EngineLink, request: ev.StartRunRequest) -> None:
    """Ask the controller to start the child (it answers for an existing id too)."""
    data = ev.encode(request)
    for attempt in range(_START_TRIES):
        try:
            msg = await link.nc.request(ev.START_SUBJECT, data, timeout=10, headers=inject())
            reply = ev.decode(ev.StartRunReply, msg.data)
        except (NatsError, TimeoutError, ev.DecodeError):
            await asyncio.sleep(0.5 * (attempt + 1))  # the controller may be restarting
            continue
        if reply.ok:
            return
        raise StepError(
            reply.code or ErrorCode.CHILD_NOT_STARTED,
            f"child run of {request.workflow}@{request.version} not started: {reply.error}",
            retryable=False,
        )
    raise StepError(
        ErrorCode.CHILD_NOT_STARTED,
        f"no controller answered the start of {request.workflow}@{request.version}",
    )


async def _ended(
    link: engine_link.EngineLink,
    child: str,
    changed: asyncio.Event,
    ended: list[ev.RunLifecycle],
) -> ev.RunRecord | ev.RunLifecycle:
    js = link.nc.jetstream()
    while True:
        changed.clear()
        if ended:
            return ended[0]
        with contextlib.suppress(NotFoundError, NatsError, TimeoutError):
            record = await read_record(js, child)
            if record.status.finished:
                return record
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), _POLL)
