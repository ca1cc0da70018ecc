"""Handlers used by the integration tests (imported by replicas through codeDir)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
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


MARKERS = "/tmp/actorflow-test-markers"


def _marker(run_id: str, node: str) -> str:
    return os.path.join(MARKERS, f"{run_id}.{node}")


def flaky(ctx: StepContext, code: str = "STALE") -> str:
    """Fails with `code` until the marker for this run and node exists."""
    if not os.path.exists(_marker(ctx.run_id, ctx.node)):
        raise StepError(code, f"{ctx.node} is not ready yet (attempt {ctx.attempt})")
    return f"ok on attempt {ctx.attempt}"


def fix(error: dict[str, Any], node: str, run_id: str, **_: Any) -> str:
    """A remediation: makes the flaky node's marker, so its next attempt succeeds."""
    os.makedirs(MARKERS, exist_ok=True)
    with open(_marker(run_id, node), "w") as fh:
        fh.write(error["code"])
    return f"fixed {error['code']}"


def poison(ledger: str, ctx: StepContext) -> None:
    """Records each execution (with its time), then fails."""
    with open(ledger, "a") as fh:
        fh.write(f"{ctx.idempotency_key} {time.time()}\n")
    raise RuntimeError(f"poisoned attempt {ctx.attempt}")


def slow_report(ctx: StepContext, steps: int = 3, pause: float = 0.4) -> int:
    """Reports its progress as it goes."""
    for i in range(steps):
        ctx.progress(100 * i / steps, f"step {i + 1} of {steps}")
        time.sleep(pause)
    return steps


def where(ctx: StepContext, value: Any = None) -> dict[str, Any]:
    """Which Ray node and GPUs ran this, and what the runtime environment set."""
    import ray

    runtime = ray.get_runtime_context()
    return {
        "node_id": runtime.get_node_id(),
        "gpus": runtime.get_accelerator_ids().get("GPU", []),
        "env": os.environ.get("AF_TEST_ENV", ""),
        "pid": os.getpid(),
        "value": value,
    }


def version_one() -> str:
    return "v1"


def version_two() -> str:
    return "v2"


def version_three() -> str:
    return "v3"


def _rendezvous(folder: str | None, tag: str) -> bool:
    """Announce `tag` in `folder`; True once two requests have announced themselves."""
    if not folder:
        return True
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, tag), "w"):
        pass
    return len(os.listdir(folder)) >= 2


def chatty(
    ctx: StepContext, tag: str, lines: int = 3, pause: float = 0.0, meet: str | None = None
) -> str:
    """Writes `lines` lines to stdout and stderr and logs at several levels, all tagged
    with `tag`; with `meet`, first waits (bounded) until a second request is running too."""
    deadline = time.monotonic() + 60
    while not _rendezvous(meet, tag) and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(lines):
        print(f"{tag} out {i}")
        print(f"{tag} err {i}", file=sys.stderr)
        if pause:
            time.sleep(pause)
    ctx.logger.debug("%s debug", tag)  # below INFO: not captured
    ctx.logger.info("%s info", tag)
    ctx.logger.warning("%s warning", tag)
    logging.getLogger("af_test_steps").error("%s error", tag)
    return tag


async def async_chatty(
    tag: str, lines: int = 3, pause: float = 0.0, meet: str | None = None
) -> str:
    """`chatty` on the event loop: writes between awaits, interleaving with other requests."""
    deadline = time.monotonic() + 60
    while not _rendezvous(meet, tag) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # the other request is in another workflow: poll the file
    for i in range(lines):
        print(f"{tag} out {i}")
        sys.stderr.write(f"{tag} err {i}\n")
        await asyncio.sleep(pause)
    logging.getLogger("af_test_steps").warning("%s warning", tag)
    return tag


def burn(seconds: float) -> int:
    """Burns `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


def ordered(ledger: str, label: str, gate: str | None = None, timeout: float = 120.0) -> str:
    """Append `label` to `ledger` when the step starts (the start order is what priority
    tests check), then hold until the file `gate` exists (bounded), so a backlog forms."""
    with open(ledger, "a") as fh:
        fh.write(label + "\n")
    if gate:
        deadline = time.monotonic() + timeout
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise StepError("GATE_TIMEOUT", f"{gate} never appeared")
            time.sleep(0.02)
    return label
