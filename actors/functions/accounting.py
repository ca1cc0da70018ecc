"""What one request cost: CPU time of its handler and the replica's peak memory while it ran.

The figures are recorded on each execution (`ev.Execution`); its docstring says exactly
what they mean. The measuring is done here, close to the mechanism, so that meaning stays
true: CPU time is per-thread (`time.thread_time`), never the process's, because a replica
runs several requests at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import psutil

log = logging.getLogger(__name__)

_T = TypeVar("_T")

RSS_SAMPLE_INTERVAL = 0.05


class CpuMeter:
    """CPU seconds spent by one request; added to by the one thread running it at a time."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def call(self, func: Callable[[], _T]) -> _T:
        """Run `func` here (a pool thread), counting this thread's CPU time while it runs."""
        start = time.thread_time()
        try:
            return func()
        finally:
            self.seconds += time.thread_time() - start

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await `coro`, counting the loop thread's CPU time during its own steps only.

        Timing the whole await would also count every other request the loop ran in the
        meantime; timing each `send` / `throw` into the coroutine counts just this one.
        """
        return await _timed_steps(coro, self)


@types.coroutine
def _timed_steps(coro: Coroutine[Any, Any, _T], meter: CpuMeter) -> Generator[Any, Any, _T]:
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            start = time.thread_time()
            try:
                yielded = coro.throw(error) if error is not None else coro.send(send)
            except StopIteration as stop:
                result: _T = stop.value
                return result
            finally:
                meter.seconds += time.thread_time() - start
            send, error = None, None
            try:
                send = yield yielded
            except GeneratorExit:
                raise
            except BaseException as exc:  # cancellation goes on into the handler
                error = exc
    finally:
        coro.close()


def in_thread(func: Callable[[], _T], meter: CpuMeter | None) -> Callable[[], _T]:
    """`func` to run on a pool thread in a copy of the caller's context (so the request's
    output routing follows it), timed by `meter` when there is one."""
    context = contextvars.copy_context()
    if meter is None:
        return lambda: context.run(func)
    return lambda: context.run(meter.call, func)


class _Peak:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


class RssSampler:
    """The process's peak resident set size while each request runs.

    A request samples at its start and end; while any request runs, one background task
    samples every `interval` seconds and raises every running request's peak. It stops by
    itself when no request runs, so an idle replica does no work.
    """

    def __init__(
        self, interval: float = RSS_SAMPLE_INTERVAL, read: Callable[[], int] | None = None
    ) -> None:
        self._interval = interval
        self._read = read or _process_rss()
        self._active: set[_Peak] = set()
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> _Peak:
        peak = _Peak(self._sample())
        self._active.add(peak)
        if self._task is None or self._task.done():
            # A fresh context: the sampler belongs to no request.
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), context=contextvars.Context()
            )
        return peak

    def end(self, peak: _Peak) -> int | None:
        """The request's peak in bytes (None where the process's RSS cannot be read)."""
        self._active.discard(peak)
        peak.value = max(peak.value, self._sample())
        return peak.value or None

    def _sample(self) -> int:
        try:
            return self._read()
        except Exception:
            return 0

    async def _loop(self) -> None:
        while self._active:
            await asyncio.sleep(self._interval)
            rss = self._sample()
            for peak in list(self._active):
                peak.value = max(peak.value, rss)


def _process_rss() -> Callable[[], int]:
    """This process's RSS (what psutil reports), read from a `/proc/self/statm` kept open:
    a request samples twice, and opening the file each time cost more than the rest."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        page = os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux
        process = psutil.Process()
        return lambda: int(process.memory_info().rss)

    def read() -> int:
        return int(os.pread(fd, 128, 0).split()[1]) * page

    return read


def gpu_ids() -> list[str]:
    """The GPU ids Ray assigned to this actor process (empty without GPUs)."""
    try:
        import ray

        ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    except Exception as exc:  # outside Ray, or an older Ray
        log.debug("no accelerator ids: %s", exc)
        return []
    return [str(i) for i in ids]
