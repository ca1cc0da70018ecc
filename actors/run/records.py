"""Keep a run's listing record (KV) and lifecycle events in step with its state.

The record is a view for `runs list` / `runs show`; the history is the truth. Progress is
written at most every `record_interval` seconds so a 200-node fan-out costs a handful of
KV writes, not 200; status changes are written at once, and the final record is written
before the lifecycle event announces it (a waiter that sees the event can read the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from actorflow.actors.config import EngineConfig
from actorflow.actors.run.state import RunState
from actorflow.actors.store.errors import NOT_FOUND, is_wrong_last_sequence
from actorflow.actors.store.jetstream import key_value
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.tracing import inject
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)


class RecordWriter:
    def __init__(
        self,
        js: JetStreamContext,
        nc: NatsClient,
        state: RunState,
        config: EngineConfig,
        fence: Callable[[], int],
    ) -> None:
        self._fence = fence
        self._js, self._nc, self._state, self._config = js, nc, state, config
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = asyncio.Event()
        self._created_at = state.started.at
        self._revision: int | None = None  # of the record as we last wrote it
        self._ahead: int | None = None  # waiting for its turn: unfinished runs ahead of it

    def record(self) -> ev.RunRecord:
        state = self._state
        stopped = state.stopped
        finished = stopped if stopped and stopped.status.finished else None
        return ev.RunRecord(
            run_id=state.started.run_id,
            workflow=state.started.workflow,
            version=state.started.version,
            status=state.status,
            created_at=self._created_at,
            updated_at=ev.now(),
            started_at=state.started_at,
            finished_at=finished.at if finished else None,
            progress=state.progress(),
            outputs=finished.outputs if finished else {},
            reason=stopped.reason if stopped else None,
            node=stopped.node if stopped else None,
            error=stopped.error if stopped else None,
            guidance=stopped.guidance if stopped else "",
            wake_at=stopped.wake_at if stopped else None,
            hook_failures=list(state.hook_failures),
            parent_run_id=state.started.parent.run_id if state.started.parent else None,
            concurrency=state.started.concurrency,
            queue_ahead=self._ahead if state.queued else None,
            priority=state.priority,
        )

    async def _stale(self) -> bool:
        """Has another incarnation appended decisions we do not know of? Then we are a
        zombie (e.g. frozen by the OS while the run moved on) and must not write. Asked of
        the stream's leader: a follower answering a direct get may not have the rival's
        append yet (it is asked only after a conflicting record write, so rarely)."""
        subject = ev.run_subject(self._state.started.run_id, ev.DECISIONS)
        try:
            last = await self._js.get_last_msg(ev.STREAM_HISTORY, subject)
        except NOT_FOUND:
            return False
        return (last.seq or 0) > self._fence()

    async def _write(self) -> None:
        """Write the record, fenced on the revision we last wrote: while nobody else wrote
        it, nobody else owns the run, and one update is all it costs. Anyone else's write
        (the starter's first listing, a control request reopening the run, a newer
        incarnation) sends us to the decisions fence before we write again."""
        async with self._lock:
            record = self.record()
            data = ev.encode(record)
            kv = await key_value(self._js, ev.KV_RUNS)
            last = self._revision
            if last is not None:
                try:
                    self._revision = await with_retries(
                        lambda: kv.update(record.run_id, data, last=last),
                        f"record {record.run_id}",
                    )
                    return
                except Exception as exc:
                    if not is_wrong_last_sequence(exc):
                        raise
            if await self._stale():
                log.warning(
                    "not writing the record of %s: a newer incarnation owns it",
                    self._state.started.run_id,
                )
                return
            self._revision = await with_retries(
                lambda: kv.put(record.run_id, data), f"record {record.run_id}"
            )

    async def _announce(self) -> None:
        state = self._state
        finished = state.stopped
        event = ev.RunLifecycle(
            run_id=state.started.run_id,
            workflow=state.started.workflow,
            version=state.started.version,
            status=state.status,
            outputs=finished.outputs if finished else {},
            reason=finished.reason if finished else None,
            node=finished.node if finished else None,
            error=finished.error if finished else None,
        )
        subject = ev.run_event_subject(state.started.workflow, state.started.run_id, state.status)
        try:
            await self._nc.publish(subject, ev.encode(event), headers=inject())
        except Exception as exc:  # lifecycle events are best effort; the record is not
            log.warning("could not publish %s: %s", subject, exc)

    def status_changed(self) -> None:
        """Written in the background: the first task need not wait for the listing view.

        `_write` reads the state under the lock, so a late write can never set back a
        newer status.
        """
        self._closing = False
        self._closed.clear()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())
        self._background(self._write_and_announce())

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_and_announce(self) -> None:
        try:
            await self._write()
            await self._announce()
        except Exception as exc:
            log.warning("record of %s not written: %s", self._state.started.run_id, exc)

    def waiting(self, ahead: int | None) -> None:
        """The run waits for its turn with `ahead` runs ahead of it (None: it no longer
        waits, or cannot tell); written when that changes."""
        if ahead != self._ahead:
            self._ahead = ahead
            self._background(self._write_quietly())

    def admitted(self) -> None:
        """The run had its turn: it runs now."""
        self._ahead = None
        self.status_changed()

    async def _write_quietly(self) -> None:
        """A change of the view only (the status is the same): no lifecycle event."""
        try:
            await self._write()
        except Exception as exc:
            log.warning("record of %s not written: %s", self._state.started.run_id, exc)

    def progressed(self) -> None:
        self._dirty.set()

    async def stopped(self) -> None:
        """The final record, written after (never before) any write still in flight."""
        await self.close()
        await self._write()
        await self._announce()

    async def _flush_loop(self) -> None:
        while not self._closing:
            await self._dirty.wait()
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):  # closing cuts the pause short
                await asyncio.wait_for(self._closed.wait(), self._config.record_interval)
            if self._closing:
                return  # the final write follows
            self._dirty.clear()
            try:
                await self._write()
            except Exception as exc:
                log.warning(
                    "progress record of %s not written: %s", self._state.started.run_id, exc
                )

    async def close(self) -> None:
        """Let background writes finish rather than cancel them: a write cancelled inside
        the NATS client can leave the client waiting on a reply that never comes."""
        self._closing = True
        self._closed.set()
        self._dirty.set()
        pending = [*self._tasks, *([self._flusher] if self._flusher else [])]
        self._flusher = None
        if pending:
            _, late = await asyncio.wait(pending, timeout=30)
            for task in late:
                log.warning("record write of %s still pending at close", self._state.started.run_id)
                task.cancel()
