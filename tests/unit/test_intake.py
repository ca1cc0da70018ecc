"""The replica intake against an in-memory JetStream stand-in: one work queue per priority
with pull requests that wait, redeliveries served first and `num_pending` that (like the
server's) does not count a handed-back task. It checks what the pull decides — which
priority, when it reads the backlog, what it hands back — not NATS itself (the integration
tests do that on a real server)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions import intake as intake_module
from actorflow.actors.functions.bands import STARVATION_LIMIT
from actorflow.actors.functions.intake import Intake
from actorflow.definitions import events as ev
from actorflow.definitions.models import Function
from actorflow.definitions.priorities import DEFAULT_PRIORITY, PRIORITIES

FN = Function.model_validate(
    {"metadata": {"name": "f", "version": "1"}, "spec": {"handler": "m:f"}}
)


@dataclass
class _Msg:
    queue: _Queue
    label: str
    delivered: int = 0
    metadata: Any = None

    @property
    def subject(self) -> str:
        return self.queue.subject

    async def nak(self) -> None:
        self.queue.unacked.discard(self.label)
        self.queue.redeliver.append(self)
        self.queue.serve()


@dataclass
class _Queue:
    subject: str
    pending: deque[_Msg] = field(default_factory=deque)
    redeliver: deque[_Msg] = field(default_factory=deque)
    unacked: set[str] = field(default_factory=set)
    waiters: deque[asyncio.Future[list[_Msg]]] = field(default_factory=deque)

    def take(self, n: int) -> list[_Msg]:
        out: list[_Msg] = []
        while len(out) < n and (self.redeliver or self.pending):
            msg = (self.redeliver or self.pending).popleft()
            msg.delivered += 1
            self.unacked.add(msg.label)
            out.append(msg)
        for msg in out:
            msg.metadata = SimpleNamespace(
                num_pending=len(self.pending), num_delivered=msg.delivered
            )
        return out

    def serve(self) -> None:
        """Hand waiting messages to open pull requests, oldest request first."""
        while self.waiters and (self.redeliver or self.pending):
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(self.take(1))

    async def fetch(self, batch: int, timeout: float) -> list[_Msg]:
        await asyncio.sleep(0)  # a round trip
        if self.redeliver or self.pending:
            return self.take(batch)
        waiter: asyncio.Future[list[_Msg]] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            if waiter.done():  # delivered as the request expired
                return waiter.result()
            waiter.cancel()
            raise


class FakeJetStream:
    """What the intake calls: bind, stream_info (per-subject counts), consumer_info."""

    def __init__(self) -> None:
        self.queues = {p: _Queue(ev.task_subject("f", "1", p)) for p in PRIORITIES}
        self.by_consumer = {ev.pool_consumer("f", "1", p): self.queues[p] for p in PRIORITIES}
        self.reads = 0  # backlog requests (stream_info + consumer_info)

    def publish(self, priority: int, label: str) -> None:
        q = self.queues[priority]
        q.pending.append(_Msg(q, label))
        q.serve()

    async def pull_subscribe_bind(self, durable: str, stream: str) -> Any:
        return self.by_consumer[durable]

    async def stream_info(self, name: str, subjects_filter: str) -> Any:
        self.reads += 1
        counts = {
            q.subject: len(q.pending) + len(q.redeliver) + len(q.unacked)
            for p, q in self.queues.items()
            if p != DEFAULT_PRIORITY
        }
        return SimpleNamespace(
            state=SimpleNamespace(subjects={s: n for s, n in counts.items() if n})
        )

    async def consumer_info(self, stream: str, name: str) -> Any:
        self.reads += 1
        q = self.by_consumer[name]
        return SimpleNamespace(
            num_pending=len(q.pending), num_ack_pending=len(q.unacked) + len(q.redeliver)
        )


async def _intake() -> tuple[FakeJetStream, Intake]:
    js = FakeJetStream()
    intake = Intake(js, FN, EngineConfig(nats_url="nats://unused"))  # type: ignore[arg-type]
    await intake.open()
    return js, intake


def _labels(msgs: list[Any]) -> list[str]:
    return [m.label for m in msgs]


@pytest.fixture(autouse=True)
def _short_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Watches that outlive a test's steps but not by much (close waits for them)."""
    monkeypatch.setattr(intake_module, "WATCH_TIMEOUT", 0.5)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _take_while_idle(js: FakeJetStream, intake: Intake, priority: int, label: str) -> None:
    """An idle replica (watching every priority) takes `label`; the other watches stay open."""
    pull = asyncio.create_task(intake.pull(1))
    await _settle()
    js.publish(priority, label)
    assert _labels(await pull) == [label]


async def test_an_idle_replica_starts_a_task_of_any_priority_at_once() -> None:
    js, intake = await _intake()
    for priority, label in [(7, "seven"), (DEFAULT_PRIORITY, "five"), (0, "zero")]:
        pull = asyncio.create_task(intake.pull(1))
        await _settle()
        assert not pull.done()  # watching every priority
        js.publish(priority, label)
        assert _labels(await asyncio.wait_for(pull, 1)) == [label]
    await intake.close()


async def test_the_most_urgent_waiting_task_goes_first_then_fifo(monkeypatch: Any) -> None:
    monkeypatch.setattr(intake_module, "FRESH", 0.0)  # always look again: the queue moved
    js, intake = await _intake()
    await _take_while_idle(js, intake, DEFAULT_PRIORITY, "blocker")
    for label in ["low-0", "low-1", "low-2"]:
        js.publish(1, label)
    js.publish(8, "high")
    js.publish(DEFAULT_PRIORITY, "default")
    await _settle()
    order = [_labels(await intake.pull(1)) for _ in range(5)]
    assert order == [["high"], ["default"], ["low-0"], ["low-1"], ["low-2"]]
    await intake.close()


async def test_a_task_a_busy_replica_is_handed_goes_back_and_keeps_its_place(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(intake_module, "FRESH", 0.0)
    js, intake = await _intake()
    await _take_while_idle(js, intake, DEFAULT_PRIORITY, "blocker")
    js.publish(9, "urgent")  # lands on the open watch of priority 9 while busy
    js.publish(2, "low")
    await _settle()
    urgent = js.queues[9]
    assert _labels(list(urgent.redeliver)) == ["urgent"]  # handed back
    assert urgent.pending == deque()  # the server no longer counts it as pending
    assert _labels(await intake.pull(1)) == ["urgent"]  # but the intake remembers it
    assert _labels(await intake.pull(1)) == ["low"]
    await intake.close()


async def test_several_free_slots_are_filled_in_priority_order() -> None:
    js, intake = await _intake()
    await _take_while_idle(js, intake, DEFAULT_PRIORITY, "blocker")
    for i in range(3):
        js.publish(1, f"low-{i}")
    js.publish(6, "six")
    await asyncio.sleep(intake_module.FRESH * 2)
    assert sorted(_labels(await intake.pull(3))) == ["low-0", "low-1", "six"]
    assert _labels(await intake.pull(3)) == ["low-2"]
    await intake.close()


async def test_one_priority_in_use_reads_no_backlog_and_pulls_batches() -> None:
    js, intake = await _intake()
    await _take_while_idle(js, intake, DEFAULT_PRIORITY, "first")
    reads = js.reads
    for i in range(20):  # steady work at the default priority, with a backlog at times
        js.publish(DEFAULT_PRIORITY, f"a{i}")
        js.publish(DEFAULT_PRIORITY, f"b{i}")
        got = _labels(await intake.pull(1))
        assert got == [f"a{i}"]
        assert intake.backlog == 1  # num_pending said one more is queued
        assert _labels(await intake.pull(4)) == [f"b{i}"]  # a batch, as a single queue
    assert js.reads == reads  # the other priorities are watched: nothing to look up
    await intake.close()


async def test_starvation_bound_holds_through_the_intake(monkeypatch: Any) -> None:
    monkeypatch.setattr(intake_module, "FRESH", 0.0)
    js, intake = await _intake()
    await _take_while_idle(js, intake, 9, "blocker")
    js.publish(0, "low")
    for i in range(12):
        js.publish(9, f"u{i}")
    await _settle()
    order = [_labels(await intake.pull(1))[0] for _ in range(13)]
    assert order.index("low") == STARVATION_LIMIT
    await intake.close()


async def test_close_hands_back_what_open_watches_bring() -> None:
    js, intake = await _intake()
    pull = asyncio.create_task(intake.pull(1))
    await _settle()
    js.publish(3, "three")
    assert _labels(await pull) == ["three"]
    closing = asyncio.create_task(intake.close())
    await _settle()
    js.publish(4, "four")  # caught by a watch that was still open
    await asyncio.wait_for(closing, intake_module.WATCH_TIMEOUT + 1)
    assert _labels(list(js.queues[4].redeliver)) == ["four"]
