"""Handlers used by the integration tests (imported by replicas through codeDir)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from actorflow import StepContext, StepError


def noop(**_: Any) -> None:
    return None


def echo(value: Any = None) -> Any:
    return value


def add(a: int, b: int) -> int:
    return a + b


def total(values: list[int]) -> int:
    return sum(values)


def big(size: int) -> str:
    return "x" * size


def length(text: str) -> int:
    return len(text)


async def async_echo(value: Any = None) -> Any:
    await asyncio.sleep(0)
    return value


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def coded_fail(code: str, message: str) -> None:
    raise StepError(code, message, retryable=False, details={"hint": "see runbook"})


def not_json() -> Any:
    return {1, 2, 3}


def whoami(ctx: StepContext) -> dict[str, Any]:
    return {
        "run_id": ctx.run_id,
        "node": ctx.node,
        "attempt": ctx.attempt,
        "key": ctx.idempotency_key,
        "pid": os.getpid(),
    }


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
