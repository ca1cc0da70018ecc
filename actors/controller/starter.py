"""Starting runs: snapshot the definitions, record the first event and the first decision,
hand the run to a driver; over Ray or, faster, a NATS request on `START_SUBJECT`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from actorflow.actors.config import EngineConfig
from actorflow.actors.run import queue
from actorflow.actors.run.control import breakpoint_problem
from actorflow.actors.run.dispatch import first_decision
from actorflow.actors.run.state import plan_of
from actorflow.actors.run.supervisor import RunSupervisor
from actorflow.actors.store.blobs import BlobStore
from actorflow.actors.store.errors import API_ERROR, is_wrong_last_sequence
from actorflow.actors.store.jetstream import key_value
from actorflow.actors.store.registry import Registry
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.tracing import handling, inject, run_trace
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ErrorCode, InputError, NotFoundError, StepError
from actorflow.definitions.models import Connection, Function, StepTemplate, Workflow, split_ref
from actorflow.definitions.plan import connection_refs, function_refs, workflow_refs
from actorflow.definitions.priorities import DEFAULT_PRIORITY, check_priority
from actorflow.definitions.snapshot import run_started
from actorflow.definitions.templates import expand, gather, template_refs

log = logging.getLogger(__name__)


class RunStarter:
    def __init__(
        self,
        js: JetStreamContext,
        registry: Registry,
        runs: RunSupervisor,
        config: EngineConfig,
    ) -> None:
        self._js = js
        self._registry = registry
        self._runs = runs
        self._config = config
        self._blobs = BlobStore(js, config.inline_limit)
        self._replies: set[asyncio.Task[None]] = set()

    async def start(
        self,
        workflow: str,
        inputs: dict[str, Any],
        version: str | None = None,
        run_id: str | None = None,
        *,
        parent: ev.ParentRef | None = None,
        depth: int = 0,
        priority: int | None = None,
        breakpoints: list[ev.Breakpoint] | None = None,
        reuse: ev.Reuse | None = None,
        carrier: Mapping[str, str] | None = None,
        via: str | None = None,
    ) -> str:
        """Record the run's first event, make its first decision, hand it to a run actor;
        returns its id once the first steps are queued.

        With a `run_id` this is idempotent: starting the same id twice starts one run. A
        child run (of a `workflow:` node) names its `parent` and how deep it nests; a
        `priority` (0-9) overrides the workflow's for this run. Traced, the start is a span
        continuing the caller's trace (`carrier`: its W3C headers; `via`: the subject the
        request came on), and the run's trace descends from it.
        """
        with handling(
            f"start {workflow}",
            carrier,
            via,
            actorflow__workflow=workflow,
            actorflow__run_id=run_id,
            actorflow__parent_run_id=parent.run_id if parent else None,
        ) as span:
            run_id = await self._start(
                workflow, inputs, version, run_id, parent, depth, priority, breakpoints, reuse
            )
            if span is not None:
                span.set_attribute("actorflow.run_id", run_id)
            return run_id

    async def _start(  # noqa: PLR0917 - `start`'s arguments, passed on
        self,
        workflow: str,
        inputs: dict[str, Any],
        version: str | None,
        run_id: str | None,
        parent: ev.ParentRef | None,
        depth: int,
        priority: int | None,
        breakpoints: list[ev.Breakpoint] | None,
        reuse: ev.Reuse | None,
    ) -> str:
        priority = check_priority(priority)
        if run_id is not None and (problem := ev.run_id_problem(run_id)):
            raise InputError(problem)
        if depth > self._config.max_run_depth:
            raise StepError(
                ErrorCode.SUBWORKFLOW_DEPTH,
                f"sub-workflows nest deeper than ACTORFLOW_MAX_RUN_DEPTH "
                f"({self._config.max_run_depth}): {workflow} not started",
                retryable=False,
            )
        wf, templates = await self._expanded(await self._registry.workflow(workflow, version))
        specs: dict[str, Function] = {}
        for ref in function_refs(wf):
            name, wanted = split_ref(ref)
            specs[ref] = await self._registry.function(name, wanted)
        children: dict[str, str] = {}
        for ref in workflow_refs(wf):
            name, wanted = split_ref(ref)
            children[ref] = (await self._registry.workflow(name, wanted)).metadata.version
        connections: dict[str, Connection] = {}
        for ref in connection_refs(wf):
            connections[ref] = await self._registry.connection(*split_ref(ref))
        run_id = run_id or ev.new_run_id(wf.metadata.name)
        started = run_started(
            run_id,
            wf,
            specs,
            inputs,
            templates=templates,
            workflows=children,
            connections=connections,
            parent=parent,
            depth=depth,
            priority=priority,
        )
        started = _debugged(started, breakpoints or [], reuse)
        if (trace := run_trace()) is not None:
            started = started.model_copy(update={"trace": trace})
        data = ev.encode(started)
        headers = inject(
            {ev.EXPECTED_LAST_SUBJECT_SEQ: "0", ev.MSG_ID: ev.decision_msg_id(run_id, 0)}
        )
        try:
            ack = await with_retries(
                lambda: self._js.publish(
                    ev.run_subject(run_id, ev.DECISIONS), data, headers=headers
                ),
                f"start {run_id}",
            )
        except API_ERROR as exc:
            if is_wrong_last_sequence(exc):
                self._resume(run_id)
                return run_id  # already started: same id, same run
            raise
        if ack.duplicate:
            self._resume(run_id)
            return run_id
        if started.concurrency is not None:
            await self._enqueue(started)
            self._runs.drive(run_id, data, ack.seq)
            await self._record_pending(started)
            return run_id
        try:
            first = await first_decision(
                self._js, self._blobs, started, ack.seq, self._config.hook_timeout
            )
        except Exception as exc:
            # Perhaps appended, perhaps not: the history says, and the driver reads it.
            log.warning("first decision of %s not made here (%s); recovering it", run_id, exc)
            self._runs.drive(run_id)
        else:
            if first is None:
                self._runs.drive(run_id, data, ack.seq)
            else:
                self._runs.drive(
                    run_id, data, first.seq, (first.incarnation, ev.encode(first.event))
                )
        await self._record_pending(started)
        return run_id

    async def _enqueue(self, started: ev.RunStarted) -> None:
        """Take the new run's place in its queue before the start returns, so places follow
        start order; its driver enqueues it if this did not (same id: it lands once)."""
        ref = started.concurrency
        assert ref is not None
        entry = ev.queue_entry_id(started.run_id, 0)
        try:
            await queue.append(self._js, ref, "enqueue", entry, started.run_id)
        except Exception as exc:
            log.warning("place of %s not queued here (%s); its driver queues it", entry, exc)

    async def _expanded(self, wf: Workflow) -> tuple[Workflow, dict[str, str]]:
        """`wf` with its template nodes expanded from the templates registered now."""
        if not template_refs(wf.spec.nodes):
            return wf, {}

        async def fetch(ref: str) -> StepTemplate | None:
            try:
                return await self._registry.template(*split_ref(ref))
            except NotFoundError:
                return None

        return expand(wf, (await gather(wf.spec.nodes, fetch)).get)

    def _resume(self, run_id: str) -> None:
        """A repeated start of a run nobody drives (its starter died between the first
        event and the hand-off, say): drive it by replay. A rival driver is fenced."""
        if not self._runs.is_driving(run_id):
            self._runs.drive(run_id)

    async def on_request(self, msg: Msg) -> None:
        """A `StartRunRequest` on `START_SUBJECT`. Each is answered in a task of its own:
        a subscription's callbacks run one at a time, and starts must not queue."""
        task = asyncio.create_task(self._answer(msg))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            req = ev.decode(ev.StartRunRequest, msg.data)
        except ev.DecodeError as exc:
            reply = ev.StartRunReply(ok=False, run_id="", error_type="DecodeError", error=str(exc))
        else:
            try:
                run_id = await self.start(
                    req.workflow,
                    dict(req.inputs),
                    req.version,
                    req.run_id,
                    parent=req.parent,
                    depth=req.depth,
                    priority=req.priority,
                    breakpoints=req.breakpoints,
                    carrier=msg.headers,
                    via=msg.subject,
                )
                reply = ev.StartRunReply(ok=True, run_id=run_id)
            except Exception as exc:  # the caller repeats it over Ray to get the error itself
                reply = ev.StartRunReply(
                    ok=False,
                    run_id=req.run_id,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    code=exc.code if isinstance(exc, StepError) else None,
                )
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(ev.encode(reply))

    async def _record_pending(self, started: ev.RunStarted) -> None:
        """List the run at once; `create` never overwrites the run actor's newer record."""
        record = ev.RunRecord(
            run_id=started.run_id,
            workflow=started.workflow,
            version=started.version,
            status=ev.RunStatus.PENDING,
            created_at=started.at,
            updated_at=started.at,
            parent_run_id=started.parent.run_id if started.parent else None,
            concurrency=started.concurrency,
            priority=started.priority if started.priority is not None else DEFAULT_PRIORITY,
        )
        # The run actor wrote first (its record is newer), or NATS is away: either way the
        # run actor's own record follows.
        with contextlib.suppress(Exception):
            kv = await key_value(self._js, ev.KV_RUNS)
            await kv.create(started.run_id, ev.encode(record))


def _debugged(
    started: ev.RunStarted, breakpoints: list[ev.Breakpoint], reuse: ev.Reuse | None
) -> ev.RunStarted:
    """`started` with its breakpoints and a rerun's reuse, each checked against the plan
    (InputError, before anything is recorded)."""
    if not breakpoints and reuse is None:
        return started
    plan = plan_of(started)
    for point in breakpoints:
        if problem := breakpoint_problem(plan, point.node):
            raise InputError(problem)
    return started.model_copy(update={"breakpoints": breakpoints, "reuse": reuse})


async def request_start(
    nc: NatsClient,
    workflow: str,
    inputs: dict[str, Any],
    version: str | None,
    run_id: str,
    *,
    timeout: float,
    priority: int | None = None,
    breakpoints: list[ev.Breakpoint] | None = None,
) -> str | None:
    """Start a run with one NATS request to the controller (the fast way in, for the SDK
    and the trigger host), in the current trace. None when it did not start the run —
    refused, not JSON, no answer — and the caller repeats the start over Ray, which raises
    the controller's own error (a start that did happen is not repeated: same run id)."""
    try:
        request = ev.encode(
            ev.StartRunRequest(
                run_id=run_id,
                workflow=workflow,
                version=version,
                inputs=inputs,
                priority=priority,
                breakpoints=breakpoints or [],
            )
        )
    except (ValueError, TypeError):
        return None
    try:
        msg = await nc.request(ev.START_SUBJECT, request, timeout=timeout, headers=inject())
        reply = ev.decode(ev.StartRunReply, msg.data)
    except (NatsError, TimeoutError, ev.DecodeError):
        return None
    return reply.run_id if reply.ok else None
