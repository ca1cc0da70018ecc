"""Concurrency queues on JetStream: take a place, wait for the turn, give the place back.

Each queue is one subject of stream `AF_QUEUES` (``af.queue.<queue>``, the hash of the
workflow's group and the rendered key). The starter enqueues a new run's place right after
its first event, so places follow start order; the run's driver enqueues it again if it is
missing (a starter that died in between: same ``Nats-Msg-Id``), reads the queue, and asks
the pure fold (`turns.py`) whether it is its turn. A driver that waits listens on the
queue's subject: a release is the wake-up of the runs behind it, and the driver's
catch-up timer re-reads the queue when a live message was lost. A run that finishes
releases its place and compacts the queue's front.

Two repairs keep a queue moving whatever crashed: a waiting driver whose holders have not
changed for a while checks that each holder's run is still unfinished and releases the
place of one that is not (its release was lost, or a late duplicate enqueue brought an
old place back), and a reader whose view predates a purge forgets what was purged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actorflow.actors.run.turns import Line, QueueLog, Turn
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.streams import read_stream
from actorflow.actors.store.tracing import inject
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)


async def append(
    js: JetStreamContext,
    ref: ev.ConcurrencyRef,
    op: ev.QueueOp,
    entry: str,
    run_id: str,
) -> int:
    """Append one line to the queue of `ref`; a retried append lands once (its msg id)."""
    line = ev.QueueEntry(op=op, entry=entry, run_id=run_id, limit=ref.limit, key=ref.key)
    subject = ev.queue_subject(ref.queue)
    data = ev.encode(line)
    headers = inject({ev.MSG_ID: ev.queue_msg_id(entry, op)}) or {}
    ack = await with_retries(
        lambda: js.publish(subject, data, headers=headers), f"{op} {entry} on {subject}"
    )
    return int(ack.seq)


def _line(seq: int, data: bytes | None) -> Line | None:
    try:
        entry = ev.decode(ev.QueueEntry, data or b"")
    except ev.DecodeError as exc:
        log.error("skipping undecodable queue line at seq %s: %s", seq, exc)
        return None
    return Line(seq, entry.op, entry.entry, entry.run_id, entry.limit)


async def read(js: JetStreamContext, subject: str) -> QueueLog:
    """The whole queue on `subject`, folded."""
    folded = QueueLog()
    async for msg in read_stream(js, ev.STREAM_QUEUES, subject):
        _fold(folded, msg.metadata.sequence.stream, msg.data)
    return folded


def _fold(folded: QueueLog, seq: int, data: bytes | None) -> None:
    line = _line(seq, data)
    if line is None:
        folded.advance(seq)
    else:
        folded.apply(line)


async def release(js: JetStreamContext, ref: ev.ConcurrencyRef, entry: str, run_id: str) -> None:
    """Give the place back (idempotent), then compact the queue's front (best effort)."""
    await append(js, ref, "release", entry, run_id)
    try:
        await compact(js, ev.queue_subject(ref.queue))
    except Exception as exc:  # a later release compacts what this one did not
        log.debug("queue %s not compacted: %s", ref.queue, exc)


async def compact(js: JetStreamContext, subject: str) -> None:
    """Purge the lines before the first unreleased place. Safe against a concurrent
    enqueue (it lands behind the cut) and a concurrent purge (a stale view cuts less)."""
    folded = await read(js, subject)
    cut = folded.cut()
    if cut > 1:
        await js.purge_stream(ev.STREAM_QUEUES, seq=cut, subject=subject)


async def finished(js: JetStreamContext, run_id: str) -> bool:
    """Has the run finished (its last decision a finished `RunStopped`), or does it not
    exist? Then no place of its may hold anyone up."""
    subject = ev.run_subject(run_id, ev.DECISIONS)
    try:
        msg = await with_retries(
            lambda: js.get_last_msg(ev.STREAM_HISTORY, subject, direct=True), f"read {subject}"
        )
    except NOT_FOUND:
        return True
    try:
        last = ev.decode_history(msg.data or b"")
    except ev.DecodeError:
        return False
    return isinstance(last, ev.RunStopped) and last.status.finished


class TurnQueue:
    """One driver's live view of its run's queue, for one episode of the run."""

    def __init__(
        self,
        js: JetStreamContext,
        nc: NatsClient,
        ref: ev.ConcurrencyRef,
        on_msg: Callable[[Msg], Awaitable[None]],
    ) -> None:
        self._js, self._nc, self._ref, self._on_msg = js, nc, ref, on_msg
        self.subject = ev.queue_subject(ref.queue)
        self._log = QueueLog()
        self._sub: Any = None

    async def open(self) -> None:
        """Listen first, then read: no release can fall between the read and the feed."""
        self._sub = await self._nc.subscribe(self.subject, cb=self._on_msg)
        self._log = await read(self._js, self.subject)

    async def take(self, entry: str, run_id: str) -> Turn | None:
        """The run's turn, its place enqueued first if it has none; None when its place
        was released (never expected while the run waits: it then waits for ever, and an
        operator cancels it)."""
        await self._refresh()
        turn = self._log.turn(entry)
        if turn is None and not self._log.released(entry):
            await append(self._js, self._ref, "enqueue", entry, run_id)
            await self._refresh()
            turn = self._log.turn(entry)
        if turn is None:
            log.error("run %s: its place %s in queue %s is gone", run_id, entry, self._ref.queue)
            return None
        if not turn.admitted:
            await self._forget_purged()
            turn = self._log.turn(entry) or turn
        return turn

    async def repair(self, holders: tuple[Line, ...]) -> int:
        """Release the places of `holders` whose runs have finished; how many it released."""
        released = 0
        for line in holders:
            if await finished(self._js, line.run_id):
                log.warning(
                    "queue %s: releasing %s, whose run %s has finished",
                    self._ref.queue,
                    line.entry,
                    line.run_id,
                )
                await append(self._js, self._ref, "release", line.entry, line.run_id)
                released += 1
        return released

    async def _refresh(self) -> None:
        """Fold the lines appended since the last look: one direct get each."""
        while True:
            try:
                msg = await self._next(self._log.last_seq + 1)
            except NOT_FOUND:
                return
            _fold(self._log, int(msg.seq or 0), msg.data)
            if not msg.seq:
                return

    async def _forget_purged(self) -> None:
        try:
            first = await self._next(1)
        except NOT_FOUND:
            self._log.forget_before(self._log.last_seq + 1)
            return
        self._log.forget_before(int(first.seq or 0))

    async def _next(self, seq: int) -> Any:
        """The queue's first line at or after `seq` (one direct get; NOT_FOUND: none)."""
        return await with_retries(
            lambda: self._js.get_msg(
                ev.STREAM_QUEUES, seq=seq, subject=self.subject, direct=True, next=True
            ),
            f"read {self.subject}",
        )

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
