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
import uuid
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actorflow.actors.blobs import BlobStore
from actorflow.actors.config import EngineConfig
from actorflow.actors.history import DecisionLog, replay, with_retries
from actorflow.actors.jetstream import connect
from actorflow.actors.records import RecordWriter
from actorflow.actors.run_state import Finish, RunState, Schedule
from actorflow.definitions import events as ev
from actorflow.definitions.errors import FencedError

log = logging.getLogger(__name__)

_SILENCE_BEFORE_CATCH_UP = 5.0


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
        return f"RunActor({self._name})"

    async def start(self) -> str:
        self._nc = await connect(self._config.nats_url, name=self._name)
        self._js = self._nc.jetstream()
        self._blobs = BlobStore(self._js, self._config.inline_limit)
        return self._name

    async def active(self) -> list[str]:
        return sorted(self._drivers)

    async def drive(self, run_id: str, started: dict[str, Any] | None = None, seq: int = 0) -> str:
        """Drive a run until it stops; `started` given means a new run, else recover by replay.

        Returns the run's status when the driver ends (or FENCED if another incarnation
        owns the run).
        """
        assert self._nc is not None and self._js is not None and self._blobs is not None
        if run_id in self._drivers:
            return "ALREADY_DRIVEN"
        driver = _Driver(self._nc, self._js, self._blobs, self._config, run_id)
        self._drivers[run_id] = driver
        try:
            if started is not None:
                return await driver.run_new(ev.RunStarted.model_validate(started), seq)
            return await driver.recover()
        except FencedError as exc:
            log.warning("%s", exc)
            return "FENCED"
        finally:
            await driver.close()
            del self._drivers[run_id]

    async def stop(self) -> None:
        if self._nc:
            await self._nc.drain()


class _Driver:
    """One incarnation of one run: fold events, carry out decisions, until the run stops."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        blobs: BlobStore,
        config: EngineConfig,
        run_id: str,
    ) -> None:
        self._nc, self._js, self._blobs, self._config = nc, js, blobs, config
        self.run_id = run_id
        self.incarnation = uuid.uuid4().hex[:12]
        self._inbox: asyncio.Queue[Msg] = asyncio.Queue()
        self._sub: Any = None
        self._state: RunState | None = None
        self._decisions: DecisionLog | None = None
        self._records: RecordWriter | None = None

    async def _listen(self) -> None:
        # Subscribe before anything is published (new run) or replayed (recovery), so no
        # result can fall between the replay and the live feed; `apply` is idempotent, so
        # results seen in both are harmless.
        async def on_msg(msg: Msg) -> None:
            self._inbox.put_nowait(msg)

        self._sub = await self._nc.subscribe(ev.run_subject(self.run_id, ev.RESULTS), cb=on_msg)

    async def run_new(self, started: ev.RunStarted, seq: int) -> str:
        await self._listen()
        self._state = RunState(started)
        self._decisions = DecisionLog(self._js, self.run_id, seq, self.incarnation)
        self._records = RecordWriter(self._js, self._nc, self._state, self._config)
        self._records.status_changed()
        return await self._loop()

    async def recover(self) -> str:
        await self._listen()
        history = await replay(self._js, self.run_id)
        if not history or not isinstance(history[0].event, ev.RunStarted):
            log.error("run %s has no RunStarted in its history; nothing to recover", self.run_id)
            return "UNKNOWN"
        state = self._state = RunState(history[0].event)
        last_decision = 0
        for rec in history:
            await self._apply(rec.event)
            if rec.subject.endswith(f".{ev.DECISIONS}"):
                last_decision = rec.seq
        self._decisions = DecisionLog(self._js, self.run_id, last_decision, self.incarnation)
        self._records = RecordWriter(self._js, self._nc, state, self._config)
        if state.finished is not None:
            await self._records.finished()
            return state.status.value
        await self._decisions.append(
            ev.RunClaimed(run_id=self.run_id, incarnation=self.incarnation)
        )
        self._records.status_changed()
        # Tasks scheduled before the crash may never have reached the queue; publishing
        # them again is harmless (same Nats-Msg-Id, deduplicated by the server).
        await self._publish_tasks([(t.ref, state.render_task(t.ref)) for t in state.in_flight()])
        return await self._loop()

    async def _loop(self) -> str:
        state = self._state
        assert state is not None and self._records is not None
        while True:
            decisions = state.decide()
            if not decisions:
                await self._wait_for_events()
                self._records.progressed()
            for decision in decisions:
                if isinstance(decision, Schedule):
                    await self._schedule(decision)
                elif isinstance(decision, Finish):
                    await self._finish(decision)
                    return state.status.value

    async def _schedule(self, decision: Schedule) -> None:
        assert self._state is not None and self._decisions is not None
        event = ev.TasksScheduled(run_id=self.run_id, tasks=[ref for ref, _, _ in decision.tasks])
        await self._decisions.append(event)
        self._state.apply(event)
        await self._publish_tasks([(ref, inputs) for ref, _, inputs in decision.tasks])

    async def _publish_tasks(self, tasks: list[tuple[ev.TaskRef, Any]]) -> None:
        state = self._state
        assert state is not None
        started = state.started

        async def publish(ref: ev.TaskRef, inputs: Any) -> None:
            planned = state.plan.nodes[ref.node]
            message = ev.TaskScheduled(
                run_id=self.run_id,
                workflow=started.workflow,
                task=ref,
                function=planned.function,
                version=planned.version,
                inputs=await self._blobs.to_payload(inputs),
            )
            subject = ev.task_subject(planned.function, planned.version)
            data = ev.encode(message)
            headers = {ev.MSG_ID: message.idempotency_key}
            await with_retries(
                lambda: self._js.publish(subject, data, headers=headers), f"publish {subject}"
            )

        await asyncio.gather(*(publish(ref, inputs) for ref, inputs in tasks))

    async def _finish(self, decision: Finish) -> None:
        assert self._state is not None and self._decisions is not None
        assert self._records is not None
        event = ev.RunFinished(
            run_id=self.run_id,
            status=decision.status,
            outputs=decision.outputs,
            node=decision.node,
            error=decision.error,
        )
        await self._decisions.append(event)
        self._state.apply(event)
        await self._records.finished()

    async def _wait_for_events(self) -> None:
        """Block for at least one result, then fold every result already waiting."""
        try:
            msg = await asyncio.wait_for(self._inbox.get(), _SILENCE_BEFORE_CATCH_UP)
        except TimeoutError:
            await self._catch_up()
            return
        await self._apply_msg(msg)
        while not self._inbox.empty():
            await self._apply_msg(self._inbox.get_nowait())

    async def _catch_up(self) -> None:
        """Live delivery is best effort (a NatsClient restart drops it); the stream is not."""
        for rec in await replay(self._js, self.run_id):
            if not rec.subject.endswith(f".{ev.DECISIONS}"):
                await self._apply(rec.event)

    async def _apply_msg(self, msg: Msg) -> None:
        try:
            event = ev.decode_history(msg.data)
        except ev.DecodeError as exc:
            log.error("run %s: ignoring undecodable result: %s", self.run_id, exc)
            return
        await self._apply(event)

    async def _apply(self, event: ev.HistoryEvent) -> None:
        assert self._state is not None
        if event.run_id != self.run_id:
            return
        if isinstance(event, ev.TaskCompleted):
            self._state.apply(event, await self._blobs.value(event.output))
        else:
            self._state.apply(event)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._records is not None:
            await self._records.close()
