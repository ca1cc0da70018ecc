"""Output routing and accounting, without Ray or NATS: each request gets its own lines."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from actorflow.actors.functions import capture
from actorflow.actors.functions.accounting import CpuMeter, RssSampler, gpu_ids, in_thread
from actorflow.definitions import events as ev


def _tag(run_id: str, node: str = "n") -> capture.LogTag:
    return capture.LogTag(run_id, "wf", node, None, 1, "replica-0")


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Installed inside the test body: pytest swaps sys.stdout between setup and call."""
    capture.install()
    try:
        yield
    finally:
        capture.uninstall()


def _texts(log: capture.TaskLog) -> list[tuple[str, str]]:
    return [(line.stream, line.text) for line in log.take(final=True)]


def test_pieces_become_lines_and_partial_lines_complete_at_the_end() -> None:
    log = capture.TaskLog(_tag("r1"))
    log.write("stdout", "hel")
    log.write("stdout", "lo\nwor")
    log.write("stderr", "oops\r\n")
    log.write("stdout", "ld")
    first = log.take()
    assert [(x.stream, x.text) for x in first] == [("stdout", "hello"), ("stderr", "oops")]
    assert _texts(log) == [("stdout", "world")]
    log.write("stdout", "after close\n")
    assert log.take() == []


def test_lines_are_tagged_and_numbered_in_order() -> None:
    log = capture.TaskLog(capture.LogTag("r9", "etl", "load", 3, 2, "rep-1"))
    log.write("stdout", "a\nb\n")
    log.record("ERROR", "mylib", "bad")
    lines = log.take()
    assert [x.seq for x in lines] == [1, 2, 3]
    assert {(x.run_id, x.workflow, x.node, x.index, x.attempt, x.replica) for x in lines} == {
        ("r9", "etl", "load", 3, 2, "rep-1")
    }
    assert (lines[2].stream, lines[2].level, lines[2].logger) == ("log", "ERROR", "mylib")
    assert lines[0].key == "load[3]"


def test_overflow_drops_lines_and_says_so() -> None:
    log = capture.TaskLog(_tag("r1"), max_pending=10)
    log.write("stdout", "12345\n67890\nxxxxx\nyyyyy\n")
    lines = log.take()
    assert [x.text for x in lines[:2]] == ["12345", "67890"]
    assert "2 lines dropped" in lines[-1].text
    assert len(lines) == 3


def test_a_line_without_newline_is_cut_rather_than_grown_forever() -> None:
    log = capture.TaskLog(_tag("r1"))
    log.write("stdout", "x" * (capture.MAX_LINE_CHARS * 2 + 5))
    lines = log.take(final=True)
    assert [len(x.text) for x in lines] == [capture.MAX_LINE_CHARS, capture.MAX_LINE_CHARS, 5]


def test_writes_outside_a_request_pass_through_untagged() -> None:
    with installed():
        log = capture.TaskLog(_tag("r1"))
        print("before")
        with capture.routed(log):
            print("inside")
        print("after")
        assert _texts(log) == [("stdout", "inside")]
        assert capture.current() is None


def test_concurrent_threads_keep_their_own_lines() -> None:
    """Two requests printing interleaved from pool threads: each log holds only its own."""
    with installed():
        logs = {run: capture.TaskLog(_tag(run)) for run in ("a", "b")}
        barrier = threading.Barrier(2)

        def step(run: str) -> None:
            barrier.wait()
            for i in range(200):
                print(f"{run}-{i}")
                sys.stderr.write(f"{run}-err-{i}\n")
                logging.getLogger("step").warning("%s-log-%d", run, i)

        with ThreadPoolExecutor(2) as pool:
            futures = []
            for run, log in logs.items():
                with capture.routed(log):
                    futures.append(pool.submit(in_thread(lambda r=run: step(r), None)))  # type: ignore[misc]
            for f in futures:
                f.result()
        for run, log in logs.items():
            lines = log.take(final=True)
            assert len(lines) == 600
            assert all(x.text.startswith(f"{run}-") for x in lines), run
            assert [x.text for x in lines if x.stream == "stdout"] == [
                f"{run}-{i}" for i in range(200)
            ]
            assert {x.level for x in lines if x.stream == "log"} == {"WARNING"}


async def test_async_tasks_keep_their_own_lines() -> None:
    with installed():
        logs = {run: capture.TaskLog(_tag(run)) for run in ("a", "b")}

        async def step(run: str) -> None:
            for i in range(50):
                print(f"{run}-{i}")
                logging.getLogger("step").info("%s-info-%d", run, i)
                await asyncio.sleep(0)

        tasks = []
        for run, log in logs.items():
            with capture.routed(log):
                tasks.append(asyncio.create_task(step(run)))
        await asyncio.gather(*tasks)
        for run, log in logs.items():
            lines = log.take(final=True)
            assert len(lines) == 100
            assert all(x.text.startswith(f"{run}-") for x in lines)
            assert {x.level for x in lines if x.stream == "log"} == {"INFO"}


def test_a_record_emitted_outside_a_request_is_not_captured() -> None:
    with installed():
        log = capture.TaskLog(_tag("r1"))
        logging.getLogger("elsewhere").error("not mine")
        assert log.take() == []


def test_install_is_idempotent_and_uninstall_restores() -> None:
    original = sys.stdout
    capture.install()
    proxy = sys.stdout
    capture.install()
    assert sys.stdout is proxy
    capture.uninstall()
    assert sys.stdout is original


def test_thread_cpu_time_counts_work_not_sleep() -> None:
    busy, idle = CpuMeter(), CpuMeter()

    def burn() -> int:
        end = time.thread_time() + 0.05
        n = 0
        while time.thread_time() < end:
            n += 1
        return n

    assert busy.call(burn) > 0
    idle.call(lambda: time.sleep(0.1))
    assert busy.seconds >= 0.05
    assert idle.seconds < busy.seconds


async def test_async_cpu_time_counts_only_the_coroutines_own_steps() -> None:
    meter = CpuMeter()

    async def sleepy() -> str:
        await asyncio.sleep(0.05)
        return "done"

    async def hog() -> None:  # another request burning the loop meanwhile
        for _ in range(10):
            end = time.thread_time() + 0.005
            while time.thread_time() < end:
                pass
            await asyncio.sleep(0)

    other = asyncio.create_task(hog())
    assert await meter.run(sleepy()) == "done"
    await other
    assert meter.seconds < 0.04


async def test_async_cpu_meter_passes_cancellation_into_the_handler() -> None:
    meter = CpuMeter()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = asyncio.create_task(meter.run(waits()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_rss_sampler_keeps_the_peak_seen_while_a_request_runs() -> None:
    readings = iter([100, 500, 200, 200, 200, 200, 200, 200])
    sampler = RssSampler(interval=0.001, read=lambda: next(readings, 150))
    peak = sampler.begin()
    for _ in range(20):
        await asyncio.sleep(0.002)
    assert sampler.end(peak) == 500


def test_in_thread_carries_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(in_thread(var.get, None)).result() == "caller"
        assert pool.submit(var.get).result() == "unset"


def test_log_lines_round_trip_the_wire() -> None:
    log = capture.TaskLog(_tag("r1"))
    log.write("stdout", "héllo\n")
    batch = ev.LogBatch(lines=log.take())
    assert ev.decode(ev.LogBatch, ev.encode(batch)) == batch


def test_gpu_ids_are_what_ray_assigned(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    class _Context:
        def get_accelerator_ids(self) -> dict[str, list[int | str]]:
            return {"GPU": [0, "3"], "neuron_cores": []}

    monkeypatch.setattr(ray, "get_runtime_context", _Context)
    assert gpu_ids() == ["0", "3"]
    monkeypatch.setattr(ray, "get_runtime_context", lambda: 1 / 0)
    assert gpu_ids() == []  # outside a Ray worker: no GPUs, no error
