"""Follow the history stream into the metrics fold, and keep the fold's snapshot.

One reader, in the controller: it loads the last snapshot (the fold and the stream
sequence it covers), reads the history from the next sequence on, and writes a snapshot
every `checkpoint_every` seconds when something changed. A controller that dies between
two snapshots re-reads what came after the older one — the fold skips nothing and counts
nothing twice, because the snapshot and its sequence are one object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actorflow.actors.metrics.fold import MetricsFold
from actorflow.actors.run.state import plan_of
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.streams import read_trigger_stats
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)

_BATCH = 512


def node_functions(started: ev.RunStarted) -> Mapping[str, str]:
    """Node id → ``name@version`` of the pool its tasks go to (task nodes only)."""
    return {
        n.id: f"{n.function}@{n.version}" for n in plan_of(started).nodes.values() if n.function
    }


# What `MetricsFold.apply` looks at; the rest (starts of attempts, progress, claims, hooks,
# waits — half of a run's history) is skipped without being decoded.
_FOLDED = frozenset(
    t.__name__.encode()
    for t in (
        ev.RunStarted,
        ev.TasksScheduled,
        ev.TaskCompleted,
        ev.TaskFailed,
        ev.RunStopped,
        ev.RunControlled,
    )
)
_TYPE = b'"type":"'


def folded(data: bytes) -> bool:
    """Whether the fold needs this event, by the ``type`` its JSON names among its first
    fields; when that is not where an encoded event has it, decode and see."""
    at = data.find(_TYPE, 0, 512)
    if at < 0:
        return True
    start = at + len(_TYPE)
    end = data.find(b'"', start, start + 64)
    return end < 0 or data[start:end] in _FOLDED


class HistoryTail:
    """Owns the fold; `run` until cancelled, `close` to write a last snapshot."""

    def __init__(self, js: JetStreamContext, checkpoint_every: float = 5.0) -> None:
        self._js = js
        self._every = checkpoint_every
        self.fold = MetricsFold()
        self.triggers: dict[str, ev.TriggerStats] = {}
        self._saved_seq = 0

    async def run(self) -> None:
        await self._load()
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting, the consumer gone: read on from seq
                log.warning("metrics: reading the history failed (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._save()

    async def _load(self) -> None:
        store = await self._js.object_store(ev.OBJECT_STORE)
        try:
            result = await store.get(ev.METRICS_SNAPSHOT)
        except NOT_FOUND:
            return
        except Exception as exc:  # unreadable: count again from the stream's start
            log.warning("metrics: snapshot unreadable (%s); re-reading the history", exc)
            return
        try:
            self.fold = MetricsFold.from_json(result.data or b"")
        except Exception as exc:
            log.warning("metrics: snapshot undecodable (%s); re-reading the history", exc)
            return
        self._saved_seq = self.fold.seq

    async def _save(self) -> None:
        if self.fold.seq == self._saved_seq:
            return
        seq = self.fold.seq
        store = await self._js.object_store(ev.OBJECT_STORE)
        await store.put(ev.METRICS_SNAPSHOT, self.fold.to_json())
        self._saved_seq = seq

    async def _follow(self) -> None:
        sub = await self._js.pull_subscribe(
            ev.HISTORY_SUBJECTS,
            stream=ev.STREAM_HISTORY,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.fold.seq + 1,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=60.0,
                filter_subject=ev.HISTORY_SUBJECTS,
            ),
        )
        saved_at = time.monotonic()
        try:
            while True:
                try:
                    msgs = await sub.fetch(_BATCH, timeout=1.0)
                except TimeoutError:
                    msgs = []
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if not folded(msg.data):
                        self.fold.seq = max(self.fold.seq, seq)
                        continue
                    try:
                        event = ev.decode_history(msg.data)
                    except ev.DecodeError as exc:
                        log.error("metrics: skipping undecodable %s: %s", msg.subject, exc)
                        self.fold.seq = max(self.fold.seq, seq)
                        continue
                    self.fold.apply(seq, event, node_functions)
                if time.monotonic() - saved_at >= self._every:
                    saved_at = time.monotonic()
                    await self._save()
                    self.triggers = await read_trigger_stats(self._js)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
