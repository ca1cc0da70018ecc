"""F1-F3: the function engine — cold start from zero, warm dispatch, a 1,000-task burst on an
autoscaled pool — each beside plain Ray doing the same in the same run.

    python -m benchmarks.functions [--burst 1000] [--work-ms 50]

Every actorflow task is durable (queued in JetStream, its result persisted before the ack),
and its pool starts from zero replicas where the figure says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

import actorflow
from actorflow import AsyncClient, Settings, WorkflowBuilder
from benchmarks import steps

HERE = Path(__file__).parent
BURST_MAX = 4


def definitions(work_ms: int) -> list[Any]:
    cold = actorflow.function(
        "bench-cold",
        "steps:stamp",
        cpus=0.1,
        code_dir=str(HERE),
        replicas={"min": 0, "max": 1, "downDelay": "1s"},
    )
    warm = actorflow.function(
        "bench-warm", "steps:stamp", cpus=0.1, max_concurrency=8, code_dir=str(HERE)
    )
    burst = actorflow.function(
        "bench-burst",
        "steps:work",
        cpus=0.25,
        code_dir=str(HERE),
        replicas={"min": 0, "max": BURST_MAX, "target": 8, "downDelay": "2s"},
    )
    out: list[Any] = [cold, warm, burst]
    for name in ("bench-cold", "bench-warm"):
        b = WorkflowBuilder(f"{name}-wf")
        s = b.node("s", f"{name}@1")
        b.output("started", s.output)
        out.append(b.build())
    b = WorkflowBuilder("bench-burst-wf")
    b.input("items", type="array")
    b.node("each", "bench-burst@1", for_each="${{ inputs.items }}", inputs={"ms": work_ms})
    out.append(b.build())
    return out


# --- plain Ray -------------------------------------------------------------------------
@ray.remote(num_cpus=0.1)
class _Stamp:
    def stamp(self) -> float:
        return steps.stamp()


@ray.remote(num_cpus=1)  # with 4 logical CPUs: 4 at a time, like the pool's 4 replicas
def _work(ms: int) -> None:
    steps.work(ms)


def ray_cold() -> float:
    """A fresh actor (new worker process) to its first method's body."""
    t0 = time.time()
    actor = _Stamp.remote()  # type: ignore[attr-defined]
    started = float(ray.get(actor.stamp.remote()))
    ray.kill(actor)
    return started - t0


def ray_warm(samples: int) -> list[float]:
    actor = _Stamp.remote()  # type: ignore[attr-defined]
    ray.get(actor.stamp.remote())
    out = []
    for _ in range(samples):
        t0 = time.time()
        out.append(float(ray.get(actor.stamp.remote())) - t0)
    ray.kill(actor)
    return out


def ray_burst(tasks: int, work_ms: int) -> float:
    t0 = time.perf_counter()
    refs = [_work.options(max_retries=0).remote(work_ms) for _ in range(tasks)]
    ray.get(refs)
    return time.perf_counter() - t0


# --- actorflow -------------------------------------------------------------------------
async def _pool(client: AsyncClient, name: str) -> actorflow.PoolStatus:
    return next(p for p in await client.pools() if p.function == name)


async def _until(client: AsyncClient, name: str, replicas: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (await _pool(client, name)).replicas != replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} never reached {replicas} replicas")
        await asyncio.sleep(0.1)


async def af_cold(client: AsyncClient) -> float:
    await _until(client, "bench-cold", 0)
    t0 = time.time()
    run = await client.run("bench-cold-wf")
    started: float = (await run.result(timeout=120))["started"]
    return started - t0


async def af_warm(client: AsyncClient, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.time()
        run = await client.run("bench-warm-wf")
        out.append((await run.result(timeout=60))["started"] - t0)
    return out


async def af_burst(client: AsyncClient, tasks: int) -> dict[str, float]:
    """Pool at zero → `tasks` tasks → all done → pool back at zero, with the times of each
    change of the pool's size seen by polling its description every 50 ms."""
    await _until(client, "bench-burst", 0)
    sizes: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            sizes.append((time.perf_counter(), (await _pool(client, "bench-burst")).replicas))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    t0 = time.perf_counter()
    run = await client.run("bench-burst-wf", {"items": list(range(tasks))})
    await run.result(timeout=1200)
    done = time.perf_counter()
    await _until(client, "bench-burst", 0, timeout=300)
    zero = time.perf_counter()
    stop.set()
    await watcher
    first = next((t for t, n in sizes if n >= 1), done)
    full = next((t for t, n in sizes if n >= BURST_MAX), float("nan"))
    return {
        "first replica, s": first - t0,
        f"{BURST_MAX} replicas, s": full - t0,
        "all done, s": done - t0,
        "tasks/s": tasks / (done - t0),
        "back to zero after done, s": zero - done,
        "peak replicas": float(max(n for _, n in sizes)),
    }


async def run(client: AsyncClient, *, burst: int, work_ms: int) -> dict[str, Any]:
    await client.apply(definitions(work_ms))
    await af_warm(client, 3)
    ray_warm(3)
    cold_af = statistics.median([await af_cold(client) for _ in range(3)])
    cold_ray = statistics.median([ray_cold() for _ in range(3)])
    warm_af = await af_warm(client, 30)
    warm_ray = ray_warm(30)
    burst_af = await af_burst(client, burst)
    burst_ray = ray_burst(burst, work_ms)
    return {
        "F1 cold start (pool at zero), s": (cold_af, cold_ray),
        "F2 warm dispatch median, ms": (
            statistics.median(warm_af) * 1000,
            statistics.median(warm_ray) * 1000,
        ),
        f"F3 burst of {burst} x {work_ms} ms, s": (burst_af["all done, s"], burst_ray),
        "F3 throughput, tasks/s": (burst_af["tasks/s"], burst / burst_ray),
        "F3 scale-up: first replica, s": (burst_af["first replica, s"], None),
        f"F3 scale-up: {BURST_MAX} replicas, s": (burst_af[f"{BURST_MAX} replicas, s"], None),
        "F3 back to zero after done, s": (burst_af["back to zero after done, s"], None),
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="actorflow-bench-"))
    settings = Settings(home=home, ray_num_cpus=args.cpus, run_actors=2)
    async with AsyncClient(settings, log_to_driver=False) as client:
        return await run(client, burst=args.burst, work_ms=args.work_ms)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.functions")
    parser.add_argument("--burst", type=int, default=1000, help="tasks in the burst")
    parser.add_argument("--work-ms", type=int, default=50, help="each burst task's work")
    parser.add_argument("--cpus", type=int, default=4, help="logical CPUs given to Ray")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    results = asyncio.run(_main(args))
    print(f"machine: {os.cpu_count()} cores, {platform.python_version()}")
    print(f"{'benchmark':40} {'actorflow':>12} {'plain Ray':>12} {'ratio':>8}")
    for name, (ours, theirs) in results.items():
        ratio = f"{ours / theirs:8.2f}" if theirs else f"{'':8}"
        theirs_text = f"{theirs:12.4g}" if theirs is not None else f"{'-':>12}"
        print(f"{name:40} {ours:12.4g} {theirs_text} {ratio}")


if __name__ == "__main__":
    main()
