"""Handlers for the fault-injection tests: every execution leaves a line in a ledger file.

A ledger line is ``<what> <idempotency key> <pid> <unix time>``; short ``O_APPEND`` writes
are atomic, so concurrent replicas on one machine never interleave lines.
"""

from __future__ import annotations

import os
import time

from actorflow import StepContext


def _note(path: str, what: str, ctx: StepContext) -> None:
    line = f"{what} {ctx.idempotency_key} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def ledger_step(path: str, values: list[int], add: int, delay: float, ctx: StepContext) -> int:
    """A side effect keyed by the idempotency key, then a value the next nodes add up."""
    _note(path, "start", ctx)
    time.sleep(delay)
    _note(path, "done", ctx)
    return sum(values) + add


def held_step(path: str, gate: str, ctx: StepContext) -> str:
    """A step that finishes only when the test lets it (the file ``<gate>.<node>`` exists),
    so the order of a fault scenario is forced, not raced against a sleep."""
    _note(path, "start", ctx)
    release = f"{gate}.{ctx.node}"
    deadline = time.monotonic() + 120.0
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.01)
    _note(path, "done", ctx)
    return f"slept:{ctx.node}"


def slow_step(path: str, seconds: float, ctx: StepContext) -> str:
    """A long step: long enough to kill (or freeze) whoever runs or drives it meanwhile."""
    _note(path, "start", ctx)
    time.sleep(seconds)
    _note(path, "done", ctx)
    return f"slept:{ctx.node}"
