"""The soak's step: a side effect keyed by the idempotency key, counted in a ledger."""

from __future__ import annotations

import os
import time

from actorflow import StepContext


def ledger(path: str, add: int, values: list[int], ctx: StepContext) -> int:
    line = f"{ctx.idempotency_key} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # short O_APPEND writes are atomic: lines never interleave
    finally:
        os.close(fd)
    time.sleep(0.002)
    return sum(values) + add
