"""Run actors: each drives runs by folding their history and publishing their decisions.

A run actor is a warm Ray actor that hosts the driver of every run assigned to it; each
driver is an actor task named ``run:<run_id>`` (visible in the Ray dashboard) that lives
exactly as long as the run is active. Hosting many drivers per process is what lets a run
start in milliseconds and 10,000 runs fit on a laptop: a Ray worker process costs ~0.5 s
and ~90 MB, a driver a few kilobytes. A driver holds nothing that is not in the history;
killing the actor loses nothing (the controller re-drives its runs elsewhere by replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry import context as otel_context

from actorflow.actors.config import EngineConfig
from actorflow.actors.run import children, queue, signals
from actorflow.actors.run.dispatch import publish_tasks
from actorflow.actors.run.history import DecisionLog, replay
from actorflow.actors.run.hooks import HookRunner
from actorflow.actors.run.node_events import already_announced, due_events, lifecycle
from actorflow.actors.run.records import RecordWriter
from actorflow.actors.run.state import (
    AwaitTurn,
    EndWait,
    Expire,
    PlannedTask,
    RunState,
    Schedule,
    StartWaits,
    Stop,
)
from actorflow.actors.run.turns import Line
from actorflow.actors.store.blobs import BlobStore
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.jetstream import connect
from actorflow.actors.store.tracing import RunSpans, inject, start_process
from actorflow.actors.store.tracing import flush as flush_traces
from actorflow.definitions import events as ev
from actorflow.definitions.errors import FencedError
from actorflow.definitions.models import HookPoint

log = logging.getLogger(__name__)


class RunActor:
    """Hosts run drivers; wrapped by `ray.remote` in the controller's factory."""

    def __init__(self, config: EngineConfig, name: str) -> None:
        self._config = config
        self._name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._blobs: BlobStore | None = None
        self._drivers: dict[str, _Driver] = {}

    def __repr__(self) -> str:
        runs = len(self._drivers)
        return f"RunActor({self._name}, {runs} run{'' if runs == 1 else 's'})"

    async def start(self) -> str:
        start_process(self._config.tracing, "run-actor")
        self._nc = await connect(self._config.nats_url, name=self._name)
        self._js = self._nc.jetstream()
        self._blobs = BlobStore(self._js, self._config.inline_limit)
        return self._name

    async def active(self) -> list[str]:
        return sorted(self._drivers)

    async def drive(
        self,
        run_id: str,
        started: bytes | None = None,
        seq: int = 0,
        first: tuple[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Drive a run until it stops; `started` (the encoded `RunStarted`, at `seq`) means
        a new run, else recover by replay. `first` is the new run's first decision when the
        controller made it: the incarnation that appended it and the encoded
        `TasksScheduled` (then at `seq`).

        Returns the run's status when the driver ends (FENCED if another incarnation owns
        the run) and the id of the last control request it folded in.
        """
        assert self._nc is not None
        assert self._js is not None
        assert self._blobs is not None
        if run_id in self._drivers:
            return {"status": "ALREADY_DRIVEN", "last_control": None}
        incarnation = first[0] if first else None
        driver = _Driver(
            self._nc, self._js, self._blobs, self._config, run_id, incarnation=incarnation
        )
        self._drivers[run_id] = driver
        try:
            if started is not None:
                scheduled = ev.decode(ev.TasksScheduled, first[1]) if first else None
                status = await driver.run_new(ev.decode(ev.RunStarted, started), seq, scheduled)
            else:
                status = await driver.recover()
            return {
                "status": status,
                "last_control": driver.last_control,
                "wake_at": driver.wake_at,
            }
        except FencedError as exc:
            log.warning("%s", exc)
            return {"status": "FENCED", "last_control": None}
        finally:
            await driver.close()
            del self._drivers[run_id]

    async def stop(self) -> None:
        if self._nc:
            await self._nc.drain()
        await asyncio.to_thread(flush_traces)  # the last runs' spans


class _Driver:
    """One incarnation of one run: fold events, carry out decisions, until the run stops."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        blobs: BlobStore,
        config: EngineConfig,
        run_id: str,
        *,
        incarnation: str | None = None,
    ) -> None:
        self._nc, self._js, self._blobs, self._config = nc, js, blobs, config
        self.run_id = run_id
        self.incarnation = incarnation or uuid.uuid4().hex[:12]
        self._inbox: asyncio.Queue[Msg] = asyncio.Queue()
        self._subs: list[Any] = []
        self._state: RunState | None = None
        self._decisions: DecisionLog | None = None
        self._records: RecordWriter | None = None
        self._hooks: HookRunner | None = None
        self._settled: set[tuple[str, str]] = set()  # node hooks already fired here
        self._announced: dict[str, ev.NodeEventStatus] = {}  # node -> last status published
        self._touched: set[str] = set()  # nodes whose status may have changed since
        self._queue: queue.TurnQueue | None = None  # waiting for its turn: the queue's view
        self._holders: tuple[str, ...] = ()  # the places it last found itself waiting for
        self._holders_since = 0.0  # … since when (monotonic)
        self._spans: RunSpans | None = None  # traced: the run's derived spans
        self._trace_token: object | None = None

    @property
    def last_control(self) -> str | None:
        """Id of the last control request folded in (the controller compares it on exit)."""
        inbox = self._state.inbox if self._state else []
        return inbox[-1] if inbox else None

    def _decision_seq(self) -> int:
        return self._decisions.last_seq if self._decisions else 0

    @property
    def wake_at(self) -> str | None:
        stopped = self._state.stopped if self._state else None
        return stopped.wake_at.isoformat() if stopped and stopped.wake_at else None

    async def _listen(self) -> None:
        # Subscribe before anything is published (new run) or replayed (recovery), so no
        # result or control request can fall between the replay and the live feed; `apply`
        # is idempotent, so events seen in both are harmless.
        subjects = [ev.results_filter(self.run_id)] + [
            ev.run_subject(self.run_id, part) for part in (ev.CONTROL, ev.PROGRESS)
        ]
        for subject in subjects:
            self._subs.append(await self._nc.subscribe(subject, cb=self._on_msg))

    async def _on_msg(self, msg: Msg) -> None:
        self._inbox.put_nowait(msg)

    def _trace(self, started: ev.RunStarted) -> None:
        """Traced, what this driver publishes from now on carries the run's span (the
        context is this driver's task's own: other runs' drivers are not touched)."""
        self._spans = RunSpans.of(started)
        if self._spans is not None:
            self._trace_token = otel_context.attach(self._spans.run_context())

    async def run_new(
        self, started: ev.RunStarted, seq: int, scheduled: ev.TasksScheduled | None
    ) -> str:
        self._trace(started)
        await self._listen()
        self._state = RunState(started)
        if scheduled is not None:
            self._state.apply(scheduled)  # made and queued by the controller
        self._hooks = HookRunner(self._state, self._config.hook_timeout)
        self._decisions = DecisionLog(self._js, self.run_id, seq, self.incarnation)
        self._records = RecordWriter(
            self._js, self._nc, self._state, self._config, self._decision_seq
        )
        self._records.status_changed()
        firsts = scheduled.tasks if scheduled is not None else []
        await asyncio.gather(self._early_control(), *(self._early_result(t) for t in firsts))
        if not self._state.queued:
            await self._fire("before_run")  # else once it has its turn
        return await self._loop()

    async def _early_result(self, ref: ev.TaskRef) -> None:
        """A first step queued by the controller may have finished before we subscribed:
        one direct get per first task finds its result."""
        try:
            msg = await self._js.get_last_msg(
                ev.STREAM_HISTORY, ev.result_subject(self.run_id, ref), direct=True
            )
        except NOT_FOUND:
            return
        await self._apply(ev.decode_history(msg.data or b""))

    async def _early_control(self) -> None:
        """A control request may land between the run's first event and our subscription
        (e.g. `terminate` right after `run`): look once at what is already recorded."""
        try:
            await self._js.get_last_msg(
                ev.STREAM_HISTORY, ev.run_subject(self.run_id, ev.CONTROL), direct=True
            )
        except NOT_FOUND:
            return  # the common case: nothing yet, one direct get
        for rec in await replay(self._js, self.run_id):
            if isinstance(rec.event, ev.RunControlled | ev.RunSignalled):
                await self._apply(rec.event)

    async def _fire(self, point: HookPoint, node: str | None = None) -> None:
        """Run the workflow's hooks for `point` (if any) and record each call."""
        if self._hooks is None or not self._hooks.wants(point):
            return
        for event in await self._hooks.fire(point, node):
            await self._append(event)

    async def _node_hooks(self) -> None:
        """after_node for every node that settled since the last look."""
        state = self._state
        if state is None or self._hooks is None or not self._hooks.wants("after_node"):
            return
        for node in state.nodes.values():
            settled = node.status.done or node.status is ev.NodeStatus.FAILED
            if settled and ("after_node", node.id) not in self._settled:
                self._settled.add(("after_node", node.id))
                await self._fire("after_node", node.id)

    async def recover(self) -> str:
        await self._listen()
        history = await replay(self._js, self.run_id)
        if not history or not isinstance(history[0].event, ev.RunStarted):
            log.error("run %s has no RunStarted in its history; nothing to recover", self.run_id)
            return "UNKNOWN"
        events = [rec.event for rec in history]
        self._trace(history[0].event)
        state = self._state = RunState.from_history(events, await self._blob_values(events))
        await self._forget_signalled_waits()
        self._hooks = HookRunner(state, self._config.hook_timeout)
        last_decision = max(
            (rec.seq for rec in history if rec.subject.endswith(f".{ev.DECISIONS}")), default=0
        )
        self._decisions = DecisionLog(self._js, self.run_id, last_decision, self.incarnation)
        self._records = RecordWriter(self._js, self._nc, state, self._config, self._decision_seq)
        self._announced = already_announced(state)
        stopped = state.stopped
        if stopped is not None and stopped.status is not ev.RunStatus.WAITING:
            if stopped.status.finished:
                await self._release()  # perhaps not done before a crash; harmless again
            await self._records.stopped()  # nothing to do; make sure the record says so
            return state.status.value
        claim = ev.RunClaimed(run_id=self.run_id, incarnation=self.incarnation)
        await self._decisions.append(claim)
        state.apply(claim)
        self._records.status_changed()
        # Tasks scheduled before the crash may never have reached the queue; publishing
        # them again is harmless (same Nats-Msg-Id, deduplicated by the server).
        await self._publish_tasks(state.republish())
        await self._control_children(children.on_resume(state))
        return await self._loop()

    async def _loop(self) -> str:
        state = self._state
        assert state is not None
        assert self._records is not None
        while True:
            decisions = state.decide(ev.now())
            turn = decisions[0] if decisions else None
            if isinstance(turn, AwaitTurn) and not await self._take_turn(turn):
                decisions = []  # not yet: wait for the queue (or a control request)
            while not decisions:
                decisive = await self._wait_for_events(state.next_due())
                self._records.progressed()
                await self._announce_nodes()
                await self._node_hooks()
                if decisive:
                    break
            for decision in decisions:
                if isinstance(decision, Schedule):
                    await self._schedule(decision)
                elif isinstance(decision, StartWaits):
                    await self._start_waits(decision)
                elif isinstance(decision, Expire):
                    await self._append(ev.TimedOut(run_id=self.run_id, node=decision.node))
                    if decision.node is not None:
                        self._touched.add(decision.node)
                elif isinstance(decision, EndWait):
                    await self._append(
                        ev.WaitEnded(
                            run_id=self.run_id, node=decision.node, outcome=decision.outcome
                        )
                    )
                elif isinstance(decision, AwaitTurn):
                    pass  # admitted (`_take_turn`): decide again
                elif isinstance(decision, Stop):
                    await self._stop(decision)
                    if await self._late_controls():
                        break  # a control request arrived as we stopped: go on
                    return state.status.value

    async def _late_controls(self) -> bool:
        """Fold what is already waiting; True if it reopened the run."""
        assert self._state is not None
        while not self._inbox.empty():
            await self._apply_msg(self._inbox.get_nowait())
        if self._state.stopped is None:
            assert self._decisions is not None
            claim = ev.RunClaimed(run_id=self.run_id, incarnation=self.incarnation)
            await self._decisions.append(claim)
            self._state.apply(claim)
            assert self._records is not None
            self._records.status_changed()
            await self._control_children(children.on_resume(self._state))
            return True
        return False

    # --- concurrency ---------------------------------------------------------------------------
    async def _take_turn(self, decision: AwaitTurn) -> bool:
        """Hold the run's place and see whether it is its turn; True once it is admitted
        (recorded: `RunAdmitted`), False while it waits — with its listing saying how many
        runs are ahead, and the queue's feed waking the driver when one goes."""
        state = self._state
        assert state is not None
        assert self._records is not None
        ref = state.started.concurrency
        assert ref is not None
        if self._queue is None:
            self._queue = queue.TurnQueue(self._js, self._nc, ref, self._on_msg)
            await self._queue.open()
        turn = await self._queue.take(decision.entry, self.run_id)
        if turn is None or not turn.admitted:
            self._records.waiting(turn.ahead if turn else None)
            if turn is not None:
                await self._repair_queue(turn.holders)
            return False
        await self._queue.close()
        self._queue = None
        await self._append(
            ev.RunAdmitted(run_id=self.run_id, episode=decision.episode, seq=turn.seq)
        )
        self._records.admitted()
        await self._fire("before_run")  # fires once in the run's life (recorded)
        return True

    async def _repair_queue(self, holders: tuple[Line, ...]) -> None:
        """The same runs held it up for a whole catch-up period: make sure they have not
        finished without giving their places back (a release lost in a crash)."""
        assert self._queue is not None
        entries = tuple(h.entry for h in holders)
        now = time.monotonic()
        if entries != self._holders:
            self._holders, self._holders_since = entries, now
        elif now - self._holders_since >= self._config.catch_up_after:
            self._holders_since = now
            await self._queue.repair(holders)

    async def _release(self) -> None:
        """A finished run gives its place back: the first run waiting behind it goes."""
        state = self._state
        assert state is not None
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
        ref = state.started.concurrency
        if ref is not None:
            await queue.release(self._js, ref, state.queue_entry, self.run_id)

    def _is_queue_msg(self, msg: Msg) -> bool:
        ref = self._state.started.concurrency if self._state else None
        return ref is not None and msg.subject == ev.queue_subject(ref.queue)

    async def _schedule(self, decision: Schedule) -> None:
        assert self._state is not None
        assert self._decisions is not None
        if self._hooks is not None and self._hooks.wants("before_node"):
            for node_id in dict.fromkeys(
                t.ref.node for t in decision.tasks if not (t.ref.remedy or t.ref.compensation)
            ):
                if ("before_node", node_id) not in self._settled:
                    self._settled.add(("before_node", node_id))
                    await self._fire("before_node", node_id)
        event = ev.TasksScheduled(run_id=self.run_id, tasks=[t.ref for t in decision.tasks])
        await self._decisions.append(event)
        status = self._state.status
        self._state.apply(event)
        await self._publish_tasks(decision.tasks)
        if self._state.status is not status:  # its first compensation: COMPENSATING
            assert self._records is not None
            self._records.status_changed()

    async def _append(self, event: ev.HistoryEvent) -> None:
        assert self._state is not None
        assert self._decisions is not None
        await self._decisions.append(event)
        self._state.apply(event)

    async def _start_waits(self, decision: StartWaits) -> None:
        assert self._state is not None
        await self._append(ev.WaitsStarted(run_id=self.run_id, waits=decision.waits))
        for wait in decision.waits:
            if wait.kind == "wait":
                spec = self._state.plan.nodes[wait.node].spec.wait
                schema = spec.json_schema if spec else None
                early = await signals.register(self._js, wait, self.run_id, schema)
                if early is not None:
                    await self._apply(early)

    async def _publish_tasks(self, tasks: list[PlannedTask]) -> None:
        assert self._state is not None
        await publish_tasks(self._js, self._blobs, self._state.started, tasks)

    async def _control_children(self, requests: list[tuple[str, ev.ControlAction]]) -> None:
        """Forward a stop (or a resume) to child runs, before the stop is recorded: a
        crash in between replays to the same stop, which forwards again. A child that no
        longer applies (it ended, it was not paused) refuses, and that is fine."""

        async def send(child: str, action: ev.ControlAction) -> None:
            request = ev.ControlRequest(action=action, reason=f"parent {self.run_id} {action}")
            with contextlib.suppress(Exception):
                await self._nc.request(
                    ev.control_subject(child), ev.encode(request), timeout=10, headers=inject()
                )

        await asyncio.gather(*(send(child, action) for child, action in requests))

    async def _stop(self, decision: Stop) -> None:
        assert self._state is not None
        assert self._decisions is not None
        assert self._records is not None
        await self._control_children(children.on_stop(self._state, decision))
        event = ev.RunStopped(
            run_id=self.run_id,
            status=decision.status,
            reason=decision.reason,
            outputs=decision.outputs,
            node=decision.node,
            error=decision.error,
            guidance=decision.guidance,
            wake_at=decision.wake_at,
            breakpoints=decision.breakpoints,
        )
        await self._decisions.append(event)
        self._state.apply(event)
        if decision.status.finished and self._state.started.parent is not None:
            await self._report_to_parent(event)
        if decision.status.finished and self._spans is not None:
            state = self._state  # the fence took the stop: its span is written once
            self._spans.emit_run(state.started, event, state.episode, state.deadline_from)
        if decision.status.finished:
            await self._release()
        await self._announce_nodes(stopping=decision.status)
        await self._node_hooks()
        if decision.status.finished:
            await self._fire("after_run")
        await self._records.stopped()

    async def _report_to_parent(self, stopped: ev.RunStopped) -> None:
        """A child run's end is its parent node's result: stored here, the moment the end
        is durable, it spares the parent the round trips of the node's handler noticing
        it (which stores the same result again — deduplicated on the same message id —
        and is what covers a crash of this driver in between)."""
        started = self._state.started if self._state else None
        if started is None or started.parent is None:
            return
        parent = started.parent
        execution = ev.Execution(
            replica=f"run {self.run_id}",
            workflow=started.workflow,
            started_at=started.at,
            finished_at=stopped.at,
        )
        result: ev.TaskCompleted | ev.TaskFailed
        if stopped.status is ev.RunStatus.SUCCEEDED:
            output = await self._blobs.to_payload(dict(stopped.outputs))
            result = ev.TaskCompleted(
                run_id=parent.run_id, task=parent.task, output=output, execution=execution
            )
        else:
            error = ev.child_failure(self.run_id, stopped.status, stopped.error)
            result = ev.TaskFailed(
                run_id=parent.run_id, task=parent.task, error=error, execution=execution
            )
        key = parent.task.idempotency_key(parent.run_id)
        headers = inject({ev.MSG_ID: ev.result_msg_id(key)}) or {}
        subject = ev.result_subject(parent.run_id, parent.task)
        try:
            await self._js.publish(subject, ev.encode(result), headers=headers)
        except Exception as exc:  # the node's handler reports it anyway
            log.info("end of %s not reported to its parent here: %s", self.run_id, exc)

    async def _wait_for_events(self, due: datetime | None) -> bool:
        """Block for at least one event (or the next timer), then fold all that wait.

        False when all that arrived were views (a step started, its progress), after which
        deciding again would find what it found before.
        """
        silence = self._config.catch_up_after
        timeout = silence
        if due is not None:
            timeout = min(timeout, max((due - ev.now()).total_seconds(), 0.0))
        try:
            async with asyncio.timeout(timeout):
                msg = await self._inbox.get()
        except TimeoutError:
            if due is None or timeout >= silence:
                await self._catch_up()
            return True
        decisive = await self._apply_msg(msg)
        while not self._inbox.empty():
            decisive = await self._apply_msg(self._inbox.get_nowait()) or decisive
        return decisive

    async def _catch_up(self) -> None:
        """Live delivery is best effort (a NATS restart drops it); the stream is not."""
        for rec in await replay(self._js, self.run_id):
            if not rec.subject.endswith(f".{ev.DECISIONS}"):
                await self._apply(rec.event)

    async def _apply_msg(self, msg: Msg) -> bool:
        """Fold one live message; True unless it was only a view (see `_wait_for_events`)."""
        if self._is_queue_msg(msg):
            return self._state is not None and self._state.queued  # its turn may have come
        try:
            event = ev.decode_history(msg.data)
        except ev.DecodeError as exc:
            log.error("run %s: ignoring undecodable event: %s", self.run_id, exc)
            return False
        await self._apply(event)
        return not isinstance(event, ev.TaskStarted | ev.StepProgress)

    async def _apply(self, event: ev.HistoryEvent) -> None:
        assert self._state is not None
        if event.run_id != self.run_id:
            return
        if isinstance(event, ev.TaskCompleted):
            self._state.apply(event, await self._blobs.value(event.output))
        else:
            self._state.apply(event)
        if isinstance(event, ev.TaskStarted | ev.TaskCompleted | ev.TaskFailed):
            self._touched.add(event.task.node)
        elif isinstance(event, ev.WaitEnded | ev.RunSignalled | ev.RunControlled) and event.node:
            self._touched.add(event.node)
        await self._forget_signalled_waits()

    async def _blob_values(self, events: list[ev.HistoryEvent]) -> dict[str, Any]:
        """The outputs of a replayed history that live in the object store, by name."""
        refs = {
            e.output.blob.name: e.output
            for e in events
            if isinstance(e, ev.TaskCompleted) and e.output.blob is not None
        }
        values = await asyncio.gather(*(self._blobs.value(p) for p in refs.values()))
        return dict(zip(refs, values, strict=True))

    async def _forget_signalled_waits(self) -> None:
        assert self._state is not None
        while self._state.signalled_waits:
            wait = self._state.signalled_waits.pop()
            with contextlib.suppress(Exception):  # the registration is only an index
                await signals.unregister(self._js, wait, self.run_id)

    # --- node lifecycle events ---------------------------------------------------------------
    async def _announce_nodes(self, stopping: ev.RunStatus | None = None) -> None:
        """Publish ``af.events.node.…`` for nodes whose status changed. Called after the
        deciding event is durable; a core publish only fills the client's write buffer, so
        the hot path waits for no server round trip."""
        state = self._state
        if state is None:
            return
        touched, self._touched = self._touched, set()
        touched.update(state.newly_settled)
        state.newly_settled.clear()
        for node_id, status in due_events(state, self._announced, touched, stopping):
            self._announced[node_id] = status
            event = lifecycle(
                state, state.nodes[node_id], status, self._config.node_event_output_limit
            )
            subject = ev.node_event_subject(event.workflow, self.run_id, node_id, status)
            try:
                await self._nc.publish(subject, ev.encode(event), headers=inject())
            except Exception as exc:  # best effort, like run lifecycle events
                log.debug("could not publish %s: %s", subject, exc)

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.close()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self._records is not None:
            await self._records.close()
        if self._trace_token is not None:
            otel_context.detach(self._trace_token)  # type: ignore[arg-type]
            self._trace_token = None
