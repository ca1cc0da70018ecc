"""The trigger host: one detached Ray actor in which every trigger is an asyncio task.

A Ray actor costs ~0.5 s and ~90 MB here, a trigger task a few kilobytes, so all triggers
share one host. Per trigger the host reads the trigger's durable JetStream consumer, judges
each event (`CompiledTrigger`), and starts the run through the controller's idempotent
`start_run` with a run id derived from the event id.

Backpressure: an event that started a run is *held* — not acknowledged, its ack deadline
extended by heartbeats — until the run finishes (or only waits); only then is it
acknowledged. So the number of active runs a trigger has started is the number of its
unacknowledged events: bounded by the trigger's `maxConcurrency` (also set as the
consumer's ``max_ack_pending``, so the server enforces it across restarts) and by the
engine-wide `trigger_concurrency`. Events beyond the limits stay in their stream, unfetched.

Nothing here is durable: if the host dies, its held events are redelivered to the next
host once their ack deadline passes; their run ids are the same, so `start_run` starts
nothing new and the new host simply holds them until their runs finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ray
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actorflow.actors.config import EngineConfig
from actorflow.actors.controller import CONTROLLER_NAME, request_start
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.jetstream import connect
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.streams import read_record
from actorflow.actors.store.tracing import carrier, handling, start_process
from actorflow.definitions import events as ev
from actorflow.definitions.errors import (
    ActorflowError,
    EventRejectedError,
    ExpressionError,
    NotFoundError,
)
from actorflow.definitions.models import EventType
from actorflow.triggers import schedule, store
from actorflow.triggers.evaluate import CompiledTrigger, Event, lifecycle_event_id, run_id_for
from actorflow.triggers.store import TriggerRecord

log = logging.getLogger(__name__)

HOST_NAME = "actorflow-triggers"
_RELOAD_EVERY = 30.0  # a safety net: the service notifies the host of every change
_FLUSH_EVERY = 1.0
_FETCH_WAIT = 1.0
_BATCH = 32
_RELEASING = frozenset({"succeeded", "interrupted", "terminated", "waiting"})


@dataclass
class _Counts:
    seen: int = 0
    matched: int = 0
    started: int = 0
    errors: int = 0
    rejected: int = 0
    last_event_at: datetime | None = None
    last_error: str = ""
    dirty: bool = False

    def error(self, message: str, *, rejected: bool = False) -> None:
        if rejected:
            self.rejected += 1
        else:
            self.errors += 1
        self.last_error = message[:500]
        self.dirty = True


@dataclass
class _Capacity:
    """Engine-wide slots for runs started by triggers; `changed` wakes waiting triggers."""

    limit: int
    used: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1
        self.changed.set()

    async def wait(self, timeout: float) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)


class TriggerHost:
    """Hosts every trigger; wrapped by `ray.remote` in the trigger service."""

    def __init__(self, config: EngineConfig) -> None:
        self._config = config
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._controller: Any = None
        self._runners: dict[str, _Runner] = {}
        self._counts: dict[str, _Counts] = {}
        self._watchers: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._capacity = _Capacity(config.trigger_concurrency)
        self._stopped = asyncio.Event()
        self._started = False
        self._start_lock = asyncio.Lock()
        self._reload_lock = asyncio.Lock()

    # --- actor methods ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"TriggerHost({len(self._runners)} triggers)"

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            start_process(self._config.tracing, "trigger-host")
            self._nc = await connect(self._config.nats_url, name=HOST_NAME)
            self._js = self._nc.jetstream()
            self._controller = ray.get_actor(CONTROLLER_NAME, namespace=self._config.namespace)
            for name, saved in (await store.stats(self._js)).items():
                self._counts[name] = _Counts(
                    saved.seen,
                    saved.matched,
                    saved.started,
                    saved.errors,
                    saved.rejected,
                    saved.last_event_at,
                    saved.last_error,
                )
            await self._nc.subscribe(ev.RUN_EVENT_SUBJECTS, cb=self._on_run_event)
            self._spawn(self._flush_loop())
            self._spawn(self._reload_loop())
            await self.reload()
            self._started = True

    async def serve(self) -> None:
        """Returns only when the host is stopped: the service awaits it to notice a death."""
        await self._stopped.wait()

    async def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "triggers": sorted(self._runners),
            "active": self._capacity.used,
            "limit": self._capacity.limit,
        }

    async def reload(self) -> None:
        """Make the running triggers match the stored definitions."""
        assert self._js is not None
        async with self._reload_lock:
            records = await store.triggers(self._js)
            types = await store.event_types(self._js)
            for name, runner in list(self._runners.items()):
                record = records.get(name)
                wanted = record is not None and record.enabled
                if (
                    not wanted
                    or record != runner.record
                    or runner.event_type != _type_of(record, types)
                ):
                    await runner.stop()
                    del self._runners[name]
            for name, record in records.items():
                if record.enabled and name not in self._runners:
                    counts = self._counts.setdefault(name, _Counts())
                    runner = _Runner(self, record, _type_of(record, types), counts)
                    self._runners[name] = runner
                    runner.start()
            for name in set(self._counts) - set(records):
                del self._counts[name]

    async def stop(self) -> None:
        for runner in self._runners.values():
            await runner.stop()
        await self._flush()
        self._stopped.set()
        if self._nc is not None:
            await self._nc.drain()

    # --- shared by the runners -----------------------------------------------------------
    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None
        return self._js

    @property
    def nc(self) -> NatsClient | None:
        return self._nc

    @property
    def controller(self) -> Any:
        return self._controller

    @property
    def capacity(self) -> _Capacity:
        return self._capacity

    def watch(self, run_id: str) -> asyncio.Future[None]:
        future = self._watchers.get(run_id)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._watchers[run_id] = future
        return future

    def unwatch(self, run_id: str) -> None:
        self._watchers.pop(run_id, None)

    async def _on_run_event(self, msg: Msg) -> None:
        """``af.events.run.<workflow>.<run_id>.<status>``: release the held event of a run
        that finished (or only waits)."""
        parsed = ev.parse_run_event_subject(msg.subject)
        if parsed is None or parsed[2] not in _RELEASING:
            return
        future = self._watchers.get(parsed[1])
        if future is not None and not future.done():
            future.set_result(None)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(_RELOAD_EVERY)
            try:
                await self.reload()
            except Exception as exc:
                log.warning("trigger reload failed: %s", exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            with contextlib.suppress(Exception):
                await self._flush()

    async def _flush(self) -> None:
        """Counts survive a restart: written to ``stats.<name>`` when they changed."""
        kv = await store.bucket(self.js)
        for name, counts in list(self._counts.items()):
            runner = self._runners.get(name)
            if not counts.dirty:
                continue
            counts.dirty = False
            stats = ev.TriggerStats(
                name=name,
                seen=counts.seen,
                matched=counts.matched,
                started=counts.started,
                errors=counts.errors,
                rejected=counts.rejected,
                active=runner.active if runner else 0,
                last_event_at=counts.last_event_at,
                last_error=counts.last_error,
            )
            await kv.put(ev.stats_key(name), ev.encode(stats))


def _type_of(record: TriggerRecord | None, types: dict[str, EventType]) -> EventType | None:
    if record is None or record.trigger.spec.event_type is None:
        return None
    return types.get(record.trigger.spec.event_type)


class _Runner:
    """One trigger: its consumer loop, its schedule (if any) and its held events."""

    def __init__(
        self,
        host: TriggerHost,
        record: TriggerRecord,
        event_type: EventType | None,
        counts: _Counts,
    ) -> None:
        self.host = host
        self.record = record
        self.event_type = event_type
        self.counts = counts
        self.compiled = CompiledTrigger(record.trigger, event_type)
        self.name = record.name
        self.limit = record.trigger.spec.max_concurrency
        self.active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._holds: set[asyncio.Task[None]] = set()
        self._held: set[str] = set()  # run ids of the events being held
        self._stream_created = ""

    def start(self) -> None:
        self._spawn(self._consume(), self._tasks)
        if self.record.trigger.spec.source.schedule is not None:
            self._spawn(self._tick(), self._tasks)

    async def stop(self) -> None:
        """Held events are left unacknowledged: the next owner gets them back."""
        tasks = [*self._tasks, *self._holds]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _spawn(coro: Any, into: set[asyncio.Task[None]]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        into.add(task)
        task.add_done_callback(into.discard)

    # --- consuming ---------------------------------------------------------------------
    async def _consume(self) -> None:
        js = self.host.js
        durable = ev.trigger_consumer(self.name)
        sub = None
        while True:
            try:
                if sub is None:
                    sub = await js.pull_subscribe_bind(durable, self.record.stream)
                    info = await js.stream_info(self.record.stream)
                    self._stream_created = info.created.isoformat() if info.created else ""
                free = min(
                    self.limit - self.active, self.host.capacity.limit - self.host.capacity.used
                )
                if free <= 0:
                    await self.host.capacity.wait(_FETCH_WAIT)
                    continue
                msgs = await sub.fetch(min(free, _BATCH), timeout=_FETCH_WAIT)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("trigger %s: fetch failed: %s", self.name, exc)
                with contextlib.suppress(Exception):
                    if sub is not None:
                        await sub.unsubscribe()
                sub = None
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                try:
                    await self._judge(msg)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # never let one event stop the trigger
                    log.exception("trigger %s: event not handled", self.name)
                    self.counts.error(f"internal: {exc}")
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=1.0)

    def _event(self, msg: Msg) -> Event:
        headers = dict(msg.headers or {})
        event_id = headers.get(ev.MSG_ID)
        if not event_id:
            meta = msg.metadata
            event_id = f"{meta.stream}@{self._stream_created}:{meta.sequence.stream}"
        return Event(event_id, msg.subject, msg.data or b"", headers)

    async def _judge(self, msg: Msg) -> None:
        counts = self.counts
        counts.seen += 1
        counts.last_event_at = ev.now()
        counts.dirty = True
        if msg.subject.endswith(".rejected") and self.record.stream == ev.STREAM_TRIGGERS:
            headers = msg.headers or {}
            reason = headers.get(ev.REJECT_REASON, "rejected")
            counts.error(f"{reason}: {headers.get(ev.REJECT_MESSAGE, '')}", rejected=True)
            await msg.ack()
            return
        event = self._event(msg)
        try:
            payload = self.compiled.payload(event)
        except EventRejectedError as exc:
            counts.error(str(exc), rejected=True)
            await msg.ack()
            return
        if self.record.trigger.spec.source.lifecycle is not None and isinstance(payload, dict):
            event = Event(lifecycle_event_id(payload), event.subject, event.data, event.headers)
            if not self.compiled.accepts_lifecycle(payload):
                await msg.ack()
                return
        context = self.compiled.context(event, payload)
        try:
            if not self.compiled.matches(context):
                await msg.ack()
                return
            inputs = self.compiled.inputs(context)
        except ExpressionError as exc:
            counts.error(str(exc))
            await msg.ack()
            return
        run_id = run_id_for(self.name, event.event_id)
        if run_id in self._held:  # a duplicate of an event already being held: its run
            await msg.ack()  # is started (or starting) and the first delivery tracks it
            return
        if self.active >= self.limit or not self.host.capacity.take():
            counts.seen -= 1  # it comes back (after the delay) and is counted then
            await msg.nak(delay=0.2)
            return
        counts.matched += 1
        self.active += 1
        self._held.add(run_id)
        self._spawn(self._hold(msg, run_id, inputs), self._holds)

    async def _hold(self, msg: Msg, run_id: str, inputs: dict[str, Any]) -> None:
        """Start the event's run (idempotent) and keep the event unacknowledged until the
        run no longer counts as active."""
        host = self.host
        finished = host.watch(run_id)
        acked = False
        try:
            existed = await self._exists(run_id)
            try:
                compiled = self.compiled
                with handling(
                    f"trigger {self.name}",
                    msg.headers,
                    msg.subject,
                    actorflow__trigger=self.name,
                    actorflow__run_id=run_id,
                ):  # the run's trace goes on from the event's (its traceparent header)
                    if host.nc is None or not await request_start(
                        host.nc,
                        compiled.workflow,
                        inputs,
                        compiled.version,
                        run_id,
                        timeout=host._config.trigger_ack_wait,
                    ):
                        await host.controller.start_run.remote(
                            compiled.workflow,
                            inputs,
                            compiled.version,
                            run_id,
                            carrier=carrier() or None,
                        )
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, ActorflowError):  # bad inputs, unknown workflow: final
                    self.counts.error(f"run not started: {cause}")
                    await msg.ack()
                    acked = True
                    return
                raise
            except ray.exceptions.RayActorError:
                await msg.nak(delay=1.0)  # the controller is restarting: try again later
                acked = True
                return
            if not existed:
                self.counts.started += 1
                self.counts.dirty = True
            heartbeat = max(self.host._config.trigger_ack_wait / 3, 0.5)
            while not await self._released(run_id):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(finished), heartbeat)
                    break
                await msg.in_progress()
            await msg.ack()
            acked = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("trigger %s: run %s: %s", self.name, run_id, exc)
            self.counts.error(f"run {run_id}: {exc}")
            if not acked:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=1.0)
        finally:
            host.unwatch(run_id)
            self._held.discard(run_id)
            self.active -= 1
            host.capacity.give()

    async def _exists(self, run_id: str) -> bool:
        try:
            await self.host.js.get_last_msg(
                ev.STREAM_HISTORY, ev.run_subject(run_id, ev.DECISIONS), direct=True
            )
        except NOT_FOUND:
            return False
        return True

    async def _released(self, run_id: str) -> bool:
        try:
            record = await read_record(self.host.js, run_id)
        except NotFoundError:
            return False
        return record.status.finished or record.status is ev.RunStatus.WAITING

    # --- schedules ---------------------------------------------------------------------
    async def _tick(self) -> None:
        """Append each due instant once; the stream's last tick is the cursor."""
        source = self.record.trigger.spec.source.schedule
        assert source is not None
        subject = ev.trigger_event_subject(self.name, "tick")
        cursor = await self._last_tick() or self.record.applied_at
        while True:
            now = ev.now()
            for instant in schedule.due(source, cursor, now):
                tick = ev.ScheduleTick(trigger=self.name, instant=instant)
                headers = {ev.MSG_ID: ev.tick_msg_id(self.name, instant)}
                data = ev.encode(tick)
                await with_retries(self._publisher(subject, data, headers), f"tick {self.name}")
            cursor = max(cursor, now)
            wait = (schedule.next_after(source, now) - ev.now()).total_seconds()
            await asyncio.sleep(min(max(wait, 0.0) + 0.001, 30.0))

    def _publisher(
        self, subject: str, data: bytes, headers: dict[str, str]
    ) -> Callable[[], Awaitable[Any]]:
        js = self.host.js
        return lambda: js.publish(subject, data, headers=headers)

    async def _last_tick(self) -> datetime | None:
        subject = ev.trigger_event_subject(self.name, "tick")
        try:
            last = await self.host.js.get_last_msg(ev.STREAM_TRIGGERS, subject, direct=True)
        except NOT_FOUND:
            return None
        try:
            return ev.decode(ev.ScheduleTick, last.data or b"").instant
        except ev.DecodeError:
            return None
