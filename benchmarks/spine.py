"""W1-W4: the spine's speed, each beside plain Ray tasks doing the same DAG in the same run.

Every actorflow figure is durable: each decision and result is persisted in JetStream
before the next step starts.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

import actorflow
from actorflow import AsyncClient, WorkflowBuilder
from benchmarks import steps

HERE = Path(__file__).parent


def functions() -> list[actorflow.Function]:
    return [
        actorflow.function(
            "bench-noop",
            "steps:noop",
            version="1",
            cpus=0.1,
            max_concurrency=64,
            code_dir=str(HERE),
        ),
        actorflow.function(
            "bench-stamp",
            "steps:stamp",
            version="1",
            cpus=0.1,
            max_concurrency=8,
            code_dir=str(HERE),
        ),
    ]


def chain(n: int) -> actorflow.Workflow:
    b = WorkflowBuilder(f"bench-chain-{n}", version="1")
    prev = b.node("s0", "bench-noop@1")
    for i in range(1, n):
        prev = b.node(f"s{i}", "bench-noop@1", needs=[prev.id])
    return b.build()


def fan(width: int) -> actorflow.Workflow:
    b = WorkflowBuilder(f"bench-fan-{width}", version="1")
    src = b.node("src", "bench-noop@1")
    mids = [b.node(f"m{i}", "bench-noop@1", needs=[src.id]) for i in range(width)]
    b.node("sink", "bench-noop@1", needs=[m.id for m in mids])
    return b.build()


def diamond() -> actorflow.Workflow:
    b = WorkflowBuilder("bench-diamond", version="1")
    a = b.node("a", "bench-noop@1")
    left = b.node("b", "bench-noop@1", needs=[a.id])
    right = b.node("c", "bench-noop@1", needs=[a.id])
    b.node("d", "bench-noop@1", needs=[left.id, right.id])
    return b.build()


def first_step() -> actorflow.Workflow:
    b = WorkflowBuilder("bench-start", version="1")
    s = b.node("s", "bench-stamp@1")
    b.output("started", s.output)
    return b.build()


# --- plain Ray baselines ----------------------------------------------------------------
@ray.remote
def _ray_noop(*_: Any) -> None:
    return None


@ray.remote
def _ray_stamp() -> float:
    return steps.stamp()


def ray_chain(n: int) -> float:
    t0 = time.perf_counter()
    ref = _ray_noop.remote()
    for _ in range(n - 1):
        ref = _ray_noop.remote(ref)
    ray.get(ref)
    return time.perf_counter() - t0


def ray_fan(width: int) -> float:
    t0 = time.perf_counter()
    src = _ray_noop.remote()
    mids = [_ray_noop.remote(src) for _ in range(width)]
    ray.get(_ray_noop.remote(*mids))
    return time.perf_counter() - t0


def ray_diamonds(count: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    submitted, sinks = [], []
    for _ in range(count):
        submitted.append(time.perf_counter())
        a = _ray_noop.remote()
        sinks.append(_ray_noop.remote(_ray_noop.remote(a), _ray_noop.remote(a)))
    latencies = []
    pending = {ref: i for i, ref in enumerate(sinks)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            latencies.append(time.perf_counter() - submitted[pending.pop(ref)])
    return time.perf_counter() - t0, latencies


def ray_start_latency(samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.time()
        out.append(ray.get(_ray_stamp.remote()) - t0)
    return out


# --- actorflow ------------------------------------------------------------------------
async def af_wall(client: AsyncClient, name: str) -> float:
    t0 = time.perf_counter()
    run = await client.run(name)
    await run.result(timeout=600)
    return time.perf_counter() - t0


async def af_diamonds(client: AsyncClient, count: int) -> tuple[float, list[float]]:
    async def one() -> float:
        t0 = time.perf_counter()
        run = await client.run("bench-diamond")
        await run.result(timeout=600)
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    latencies = await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - t0, list(latencies)


async def af_start_latency(client: AsyncClient, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.time()
        run = await client.run("bench-start")
        started = (await run.result(timeout=60))["started"]
        out.append(started - t0)
    return out


def _best(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def _median_burst(bursts: list[tuple[float, list[float]]]) -> tuple[float, list[float]]:
    """The burst whose wall time is the median: its wall time and its latencies."""
    return sorted(bursts, key=lambda b: b[0])[len(bursts) // 2]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(client: AsyncClient, *, repeat: int = 3) -> dict[str, Any]:
    await client.apply([*functions(), chain(100), fan(200), diamond(), first_step()])
    for name in ("bench-chain-100", "bench-fan-200", "bench-diamond", "bench-start"):
        await af_wall(client, name)  # warm: pools pulling, code paths hot
    ray_chain(100)
    ray_fan(200)

    w1_af = statistics.median([await af_wall(client, "bench-chain-100") for _ in range(repeat)])
    w1_ray = _best(lambda: ray_chain(100), repeat)
    w2_af = statistics.median([await af_wall(client, "bench-fan-200") for _ in range(repeat)])
    w2_ray = _best(lambda: ray_fan(200), repeat)
    # W3 is one burst of 100 runs (~0.5 s): measured `repeat` times, the median burst.
    w3_af_wall, w3_af_lat = _median_burst([await af_diamonds(client, 100) for _ in range(repeat)])
    w3_ray_wall, w3_ray_lat = _median_burst([ray_diamonds(100) for _ in range(repeat)])
    w4_af = await af_start_latency(client, 20)
    w4_ray = ray_start_latency(20)
    return {
        "W1 chain of 100, ms/step": (w1_af * 10, w1_ray * 10),
        "W2 fan-out 1-200-1, s": (w2_af, w2_ray),
        "W3 100 diamonds, runs/s": (100 / w3_af_wall, 100 / w3_ray_wall),
        "W3 latency p50, s": (_pct(w3_af_lat, 0.5), _pct(w3_ray_lat, 0.5)),
        "W3 latency p99, s": (_pct(w3_af_lat, 0.99), _pct(w3_ray_lat, 0.99)),
        "W4 start latency median, ms": (
            statistics.median(w4_af) * 1000,
            statistics.median(w4_ray) * 1000,
        ),
    }
