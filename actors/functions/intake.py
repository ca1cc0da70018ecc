"""How a pool's tasks reach its replicas: one durable consumer per priority, and the pull
a replica makes across them.

A task waits on its priority's subject (``af.task.<function>.<version>[.p<N>]``) and every
replica of the pool pulls from the same durable consumer of each priority, so NATS still
balances the load and a task whose replica dies is redelivered. What a replica with free
slots takes next is `BandPicker`'s choice over what waits per priority. Knowing what waits
must not cost a round trip per priority per task, so a replica keeps, per priority:

- a *watch*: an open pull request (``fetch(1)``). While one is open, that priority has
  nothing waiting — a task queued there would have been handed to it. An idle replica
  watches every priority, so a task queued at any of them starts at once (one push, as
  with a single consumer);
- otherwise the backlog it last saw, with when: a fetched message's ``num_pending``, or one
  look at the queue (``stream_info`` filtered to the pool's subjects, then
  ``consumer_info`` only for priorities with messages) — taken only when two or more
  priorities could have tasks waiting and one of them was last seen over `FRESH` ago.

With everything at one priority (the default) the pull is what it always was: a waiting
pull on one consumer, a batch when ``num_pending`` says more are queued.

A task handed to a watch while the replica has no free slot is handed back at once (a nak:
the server redelivers it first, to whichever replica asks) and remembered as waiting. The
server counts a handed-back task as delivered, not pending, so only the replica that handed
it back knows it waits: until some replica pulls from its priority again — at the latest
when that one frees a slot — other replicas may start lower-priority tasks before it. (A
single replica's order is exact; watches that outlive an idle moment last `WATCH_TIMEOUT`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions.bands import BandPicker
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.definitions import events as ev
from actorflow.definitions.models import Function
from actorflow.definitions.priorities import DEFAULT_PRIORITY, PRIORITIES

log = logging.getLogger(__name__)

WATCH_TIMEOUT: Final = 2.0
#: How long a watch (an open pull request) lives before it is renewed; also the longest a
#: drain waits for the pull to notice.
CHECK_TIMEOUT: Final = 0.1
#: A pull from a priority believed to hold tasks while others may too: if another replica
#: took them meanwhile, this is all it waits before looking again.
FRESH: Final = 0.05
#: Seconds a priority's observed backlog is trusted before it is read again (only read when
#: two or more priorities could have tasks waiting).


# --- consumers ------------------------------------------------------------------------------
def consumer_config(
    function: Function, config: EngineConfig, priority: int = DEFAULT_PRIORITY
) -> ConsumerConfig:
    """The durable consumer of one priority of a pool (all share their settings)."""
    name, version = function.metadata.name, function.metadata.version
    ack_wait = max(config.task_ack_wait, 3.0)
    return ConsumerConfig(
        durable_name=ev.pool_consumer(name, version, priority),
        filter_subject=ev.task_subject(name, version, priority),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=max(1000, function.spec.replicas.max * function.spec.max_concurrency * 4),
        max_waiting=512,
    )


async def ensure_consumers(js: JetStreamContext, function: Function, config: EngineConfig) -> None:
    """Create (or update: ack wait & co.) every priority's consumer of the pool. The
    default priority's is the one a pool always had, so what an older engine queued there
    is served as it stands."""

    async def ensure(cfg: ConsumerConfig) -> None:
        with contextlib.suppress(*NOT_FOUND):
            await js.consumer_info(ev.STREAM_TASKS, cfg.durable_name or "")
        await js.add_consumer(ev.STREAM_TASKS, cfg)

    await asyncio.gather(*(ensure(consumer_config(function, config, p)) for p in PRIORITIES))


async def delete_consumers(js: JetStreamContext, function: Function) -> None:
    """Delete every priority's consumer of a deleted function version. The tasks stay in
    the work-queue stream: a consumer created again later serves them."""
    name, version = function.metadata.name, function.metadata.version

    async def delete(priority: int) -> None:
        with contextlib.suppress(*NOT_FOUND):
            await js.delete_consumer(ev.STREAM_TASKS, ev.pool_consumer(name, version, priority))

    await asyncio.gather(*(delete(p) for p in PRIORITIES))


@dataclass(frozen=True)
class Backlog:
    """A pool's queue: tasks waiting, per priority, and delivered but not yet acknowledged."""

    pending: dict[int, int] = field(default_factory=dict)
    in_flight: int = 0

    @property
    def total(self) -> int:
        return sum(self.pending.values())


async def read_backlog(
    js: JetStreamContext, function: Function, priorities: Iterable[int] = PRIORITIES
) -> Backlog:
    """`priorities`' backlog in two requests plus one per other priority with messages: the
    stream's per-subject counts say which priorities have any (waiting or in flight), and
    only their consumers are asked how many wait."""
    name, version = function.metadata.name, function.metadata.version
    wanted = set(priorities)
    busy = {DEFAULT_PRIORITY} & wanted
    if wanted - busy:
        info = await js.stream_info(
            ev.STREAM_TASKS, subjects_filter=ev.task_bands_filter(name, version)
        )
        for subject, count in (info.state.subjects or {}).items():
            priority = ev.task_subject_priority(subject, name, version)
            if count and priority in wanted:
                busy.add(priority)

    async def one(priority: int) -> tuple[int, int, int]:
        try:
            ci = await js.consumer_info(ev.STREAM_TASKS, ev.pool_consumer(name, version, priority))
        except NOT_FOUND:
            return priority, 0, 0
        return priority, ci.num_pending or 0, ci.num_ack_pending or 0

    seen = await asyncio.gather(*(one(p) for p in sorted(busy)))
    return Backlog(
        pending=dict.fromkeys(wanted, 0) | {p: n for p, n, _ in seen},
        in_flight=sum(a for _, _, a in seen),
    )


# --- a replica's pull -----------------------------------------------------------------------
@dataclass(eq=False)
class _Band:
    priority: int
    sub: JetStreamContext.PullSubscription
    pull: asyncio.Task[list[Msg]] | None = None  # an open fetch (a watch, or a planned take)
    pending: int = 0  # waiting, as last seen
    seen_at: float = -math.inf  # when
    handed_back: int = 0  # nak'd by this replica since it last pulled here (not in num_pending)

    @property
    def waiting(self) -> int:
        return self.pending + self.handed_back


class Intake:
    """One replica's pull across its pool's priorities (see the module docstring)."""

    def __init__(self, js: JetStreamContext, function: Function, config: EngineConfig) -> None:
        self._js = js
        self._function = function
        self._config = config
        self._bands: dict[int, _Band] = {}
        self._picker = BandPicker()
        self._accepting = False  # inside `pull`: what a fetch brings is taken, not handed back
        self._wake: asyncio.Future[None] | None = None
        self._planned: set[_Band] = set()  # this pull's takes from priorities seen waiting
        self._naks: set[asyncio.Task[None]] = set()
        self._backoff = False
        name, version = function.metadata.name, function.metadata.version
        self._priority_of = {ev.task_subject(name, version, p): p for p in PRIORITIES}

    async def open(self) -> None:
        """Bind to every priority's consumer — the pool created them all before its first
        replica (`ensure_consumers`), so binding costs no round trip."""
        name, version = self._function.metadata.name, self._function.metadata.version
        subs = await asyncio.gather(
            *(
                self._js.pull_subscribe_bind(
                    durable=ev.pool_consumer(name, version, p), stream=ev.STREAM_TASKS
                )
                for p in PRIORITIES
            )
        )
        self._bands = {p: _Band(p, sub) for p, sub in zip(PRIORITIES, subs, strict=True)}

    @property
    def backlog(self) -> int:
        """Tasks known to wait (as last seen): the replica asks for several slots if any."""
        return sum(b.waiting for b in self._bands.values())

    async def pull(self, free: int) -> list[Msg]:
        """Up to `free` tasks, the most urgent waiting first (`BandPicker`); waits until
        one comes or a watch runs out (`WATCH_TIMEOUT`), then returns what it has (maybe
        nothing: the caller checks whether it is stopping and asks again)."""
        loop = asyncio.get_running_loop()
        self._accepting = True
        try:
            waiting = await self._observe(loop.time())
            taking = 0  # slots the pulls below ask tasks for
            if len(waiting) == 1 and self._alone(waiting, loop.time()):
                # One priority can hold tasks: pull from it as from a single queue — a watch
                # for one slot, a batch for several (`num_pending` said more were queued).
                (priority,) = waiting
                band = self._bands[priority]
                self._open(band, free, WATCH_TIMEOUT if free == 1 else CHECK_TIMEOUT)
                if free > 1:
                    self._planned.add(band)
                taking = free
            else:
                # A batch left open past this call could bring tasks nobody takes: every
                # take is waited for, and bounded by `CHECK_TIMEOUT`.
                takes, _ = self._picker.plan(waiting, free)
                for priority, n in Counter(takes).items():
                    band = self._bands[priority]
                    self._open(band, n, CHECK_TIMEOUT)
                    self._planned.add(band)
                taking = len(takes)
            if taking < free:
                for band in self._bands.values():
                    if band.pull is None and band.waiting == 0:
                        self._open(band, 1, WATCH_TIMEOUT)
            msgs = await self._arrivals(loop)
            if self._backoff and not msgs:
                self._backoff = False
                await asyncio.sleep(0.2)  # reconnecting, server restarting: briefly
            return self._keep(msgs, free, waiting)
        finally:
            self._accepting = False
            self._planned.clear()

    async def close(self) -> None:
        """Let the open fetches end (within `WATCH_TIMEOUT`; cancelled mid-way, a fetch can
        swallow a task until its ack wait runs out) and hand back whatever they bring."""
        self._accepting = False
        pulls = [b.pull for b in self._bands.values() if b.pull is not None]
        if pulls:
            await asyncio.wait(pulls)
        await asyncio.sleep(0)  # the fetches' callbacks queue their naks
        if self._naks:
            await asyncio.wait(list(self._naks))

    # --- knowing what waits ---------------------------------------------------------------
    async def _observe(self, now: float) -> dict[int, int]:
        """Tasks waiting per priority that is not watched (known or last seen)."""
        open_ = [b for b in self._bands.values() if b.pull is None]
        unknown = [b for b in open_ if now - b.seen_at > FRESH]
        candidates = [b for b in open_ if b.waiting > 0 or b in unknown]
        if unknown and len(candidates) >= 2:
            try:
                backlog = await read_backlog(
                    self._js, self._function, (b.priority for b in unknown)
                )
            except Exception as exc:  # keep what was seen; the fetches will tell
                log.debug("backlog not read: %s", exc)
            else:
                for band in unknown:
                    band.pending, band.seen_at = backlog.pending.get(band.priority, 0), now
                return {b.priority: b.waiting for b in open_ if b.waiting > 0}
        if len(candidates) == 1 and candidates[0] in unknown:
            # The one priority that could hold tasks: take from it as from a single queue
            # (a batch when its last `num_pending` said more were queued, else a watch).
            band = candidates[0]
            return {band.priority: band.waiting} if band.waiting else {}
        return {b.priority: b.waiting for b in candidates if b.waiting > 0}

    def _alone(self, waiting: dict[int, int], now: float) -> bool:
        """Is every priority not in `waiting` watched, or seen empty within `FRESH`?"""
        return all(
            b.pull is not None
            or b.priority in waiting
            or (not b.waiting and now - b.seen_at <= FRESH)
            for b in self._bands.values()
        )

    # --- fetching -------------------------------------------------------------------------
    def _open(self, band: _Band, batch: int, timeout: float) -> None:
        task = asyncio.create_task(band.sub.fetch(batch, timeout=timeout))
        band.pull = task
        task.add_done_callback(functools.partial(self._fetched, band))

    def _fetched(self, band: _Band, task: asyncio.Task[list[Msg]]) -> None:
        if band.pull is not task:
            return  # already collected by `pull`
        if self._accepting:
            wake = self._wake
            if wake is not None and not wake.done() and (not self._planned or self._ready()):
                wake.set_result(None)
            return
        # Nobody is taking: a watch brought a task while the replica is busy (or closing).
        msgs = self._collect(band)
        for msg in msgs:
            band.handed_back += 1
            nak = asyncio.create_task(_nak(msg))
            self._naks.add(nak)
            nak.add_done_callback(self._naks.discard)

    def _ready(self) -> bool:
        """Planned takes: when all have ended (they end within `CHECK_TIMEOUT`), so they
        are kept in the policy's order, not in the order their replies came. Otherwise:
        when any open fetch has ended."""
        if self._planned:
            return all(b.pull is None or b.pull.done() for b in self._planned)
        return any(b.pull is not None and b.pull.done() for b in self._bands.values())

    async def _arrivals(self, loop: asyncio.AbstractEventLoop) -> list[Msg]:
        """Wait until `_ready`; collect every fetch that has ended."""
        if not self._ready():
            if not any(b.pull is not None for b in self._bands.values()):
                return []
            self._wake = loop.create_future()
            try:
                await self._wake
            finally:
                self._wake = None
        msgs: list[Msg] = []
        for band in self._bands.values():
            if band.pull is not None and band.pull.done():
                msgs.extend(self._collect(band))
        return msgs

    def _collect(self, band: _Band) -> list[Msg]:
        """What `band`'s finished fetch brought; it updates what the band is known to hold."""
        assert band.pull is not None
        task, band.pull = band.pull, None
        now = asyncio.get_running_loop().time()
        try:
            msgs = task.result()
        except (TimeoutError, asyncio.CancelledError):
            band.pending, band.handed_back, band.seen_at = 0, 0, now
            return []
        except Exception as exc:
            log.debug("fetch of priority %s failed: %s", band.priority, exc)
            self._backoff = True
            return []
        band.handed_back = 0  # redeliveries go first: what was handed back came with these
        if msgs:
            band.pending, band.seen_at = msgs[-1].metadata.num_pending or 0, now
        return msgs

    def _keep(self, msgs: list[Msg], free: int, waiting: dict[int, int]) -> list[Msg]:
        """At most `free` of `msgs`, in the policy's order; the rest go back (nak)."""
        if (
            len(msgs) <= free
            and not waiting
            and not self._picker.passed
            and len({m.subject for m in msgs}) <= 1
        ):
            # One priority's, nothing else waiting, none passed over: all of them, as
            # they came (the policy's state stays empty) — the common case, kept cheap.
            return msgs
        by_band: dict[int, list[Msg]] = {}
        for msg in msgs:
            by_band.setdefault(self._priority_of.get(msg.subject, DEFAULT_PRIORITY), []).append(msg)
        seen = {p: max(waiting.get(p, 0), len(m)) for p, m in by_band.items()}
        seen |= {p: n for p, n in waiting.items() if p not in seen}
        kept: list[Msg] = []
        for _ in range(min(free, len(msgs))):
            available = {p: len(m) for p, m in by_band.items() if m}
            priority = self._picker.choose(available)
            if priority is None:
                break
            self._picker = self._picker.took(priority, seen)
            seen[priority] -= 1
            kept.append(by_band[priority].pop(0))
        for priority, rest in by_band.items():
            for msg in rest:
                self._bands[priority].handed_back += 1
                nak = asyncio.create_task(_nak(msg))
                self._naks.add(nak)
                nak.add_done_callback(self._naks.discard)
        return kept


async def _nak(msg: Msg) -> None:
    with contextlib.suppress(Exception):  # unacknowledged, it comes back after its ack wait
        await msg.nak()


__all__ = [
    "CHECK_TIMEOUT",
    "FRESH",
    "WATCH_TIMEOUT",
    "Backlog",
    "Intake",
    "consumer_config",
    "delete_consumers",
    "ensure_consumers",
    "read_backlog",
]
