"""Triggers: event → first node started latency, and a flood of 10,000 events.

python -m benchmarks.triggers [--events 10000] [--samples 50]

Runs on a fresh embedded cluster. T1: a NATS-subject trigger; each sample publishes one
event and measures until the first node's body starts (its own clock stamp), beside
plain Ray's submit → task body. T2: 10,000 events published at once into one trigger
(per-trigger limit 200): wall time until every run succeeded, peak active runs, and the
peak RSS of the Ray and nats-server processes (sampled with psutil), beside plain Ray
running 10,000 no-op tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import ray

import actorflow
from actorflow import AsyncClient, Settings, WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.triggers.evaluate import run_id_for
from benchmarks import spine


def _definitions() -> list[Any]:
    start = WorkflowBuilder("bench-trig-start", version="1")
    s = start.node("s", "bench-stamp@1")
    start.output("started", s.output)
    flood = WorkflowBuilder("bench-trig-flood", version="1")
    flood.node("n", "bench-noop@1")

    def trigger(name: str, subject: str, workflow: str, limit: int) -> actorflow.Trigger:
        return actorflow.Trigger.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "source": {"subject": subject},
                    "workflow": workflow,
                    "maxConcurrency": limit,
                },
            }
        )

    return [
        *spine.functions(),
        start.build(),
        flood.build(),
        trigger("bench-lat", "bench.lat", "bench-trig-start", 10),
        trigger("bench-flood", "bench.flood", "bench-trig-flood", 200),
    ]


def _engine_rss() -> int:
    """Resident memory of this benchmark's own Ray and nats-server processes (bytes): the
    embedded cluster's processes are all descendants of this one; other programs' Ray
    processes on the machine are not counted."""
    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _rss_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (what, MB) for every process of the engine."""
    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            what = " ".join(proc.cmdline())[:40].strip() or proc.name()
            out[proc.pid] = (what, proc.memory_info().rss / 2**20)
        except psutil.Error:
            continue
    return out


def _growth(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> list:
    """The processes that grew most (MB), among those alive before and after."""
    grown = [
        (round(after[pid][1] - mb), what) for pid, (what, mb) in before.items() if pid in after
    ]
    return sorted(grown, reverse=True)[:6]


def _top_processes() -> list[tuple[float, str]]:
    """The biggest processes of the engine at a moment: (MB, what)."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            what = " ".join(proc.cmdline())[:60] or proc.name()
            out.append((round(proc.memory_info().rss / 2**20), what))
        except psutil.Error:
            continue
    return sorted(out, reverse=True)[:5]


async def latency(client: AsyncClient, samples: int) -> list[float]:
    out = []
    for i in range(samples + 3):
        event_id = f"lat-{i}-{time.time_ns()}"
        t0 = time.time()
        await client.publish("bench.lat", {"i": i}, msg_id=event_id)
        run = client.get_run(run_id_for("bench-lat", event_id))
        started = (await run.result(timeout=60))["started"]
        if i >= 3:  # the first few warm the path
            out.append(started - t0)
    return out


async def flood(client: AsyncClient, events: int) -> dict[str, Any]:
    # Each event's run id is derived from its Msg-Id: only those runs count as its run.
    wanted = {run_id_for("bench-flood", f"flood-{i}") for i in range(events)}
    done: set[str] = set()
    all_done = asyncio.Event()

    async def on_done(msg: Any) -> None:
        parsed = ev.parse_run_event_subject(msg.subject)
        if parsed is not None and parsed[1] in wanted:
            done.add(parsed[1])
        if len(done) >= events:
            all_done.set()

    subject = ev.run_events_filter("bench-trig-flood", status="succeeded")
    sub = await client.nc.subscribe(subject, cb=on_done)
    before = _rss_by_process()
    baseline = _engine_rss()
    peak_rss = baseline
    peak_active = 0
    t0 = time.perf_counter()
    js = client.js  # a plain JetStream producer: what any outside publisher does
    for start in range(0, events, 500):
        await asyncio.gather(
            *(
                js.publish(
                    "bench.flood",
                    json.dumps({"i": i}).encode(),
                    headers={"Nats-Msg-Id": f"flood-{i}"},
                )
                for i in range(start, min(start + 500, events))
            )
        )
    published = time.perf_counter() - t0
    top: list[tuple[float, str]] = []
    while not all_done.is_set():
        rss = _engine_rss()
        if rss > peak_rss:
            peak_rss, top = rss, _top_processes()
        with_stats = await client.trigger("bench-flood")
        peak_active = max(peak_active, with_stats.stats.active)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done.wait(), 0.5)
        if time.perf_counter() - t0 > 1800:
            break
    wall = time.perf_counter() - t0
    await sub.unsubscribe()
    await asyncio.sleep(5.0)  # let the last runs' records, acks and buffers settle
    after = _rss_by_process()
    return {
        "events": events,
        "runs_succeeded": len(done),
        "publish_s": published,
        "wall_s": wall,
        "runs_per_s": len(done) / wall,
        "baseline_rss_mb": baseline / 2**20,
        "peak_rss_mb": peak_rss / 2**20,
        "after_rss_mb": _engine_rss() / 2**20,
        "growth_by_process_mb": _growth(before, after),
        "peak_active_runs": peak_active,
        "peak_top_processes_mb": top,
    }


@ray.remote
def _noop() -> None:
    return None


def ray_flood(events: int) -> float:
    t0 = time.perf_counter()
    ray.get([_noop.remote() for _ in range(events)])
    return time.perf_counter() - t0


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="actorflow-bench-"))
    settings = Settings(home=home, ray_num_cpus=args.cpus, webhook_port=0)
    async with AsyncClient(settings, log_to_driver=False) as client:
        await client.apply(_definitions())
        lat = await latency(client, args.samples)
        ray_lat = spine.ray_start_latency(args.samples)
        result = await flood(client, args.events)
        ray_flood(1000)  # warm
        result["ray_wall_s"] = ray_flood(args.events)
        result["latency_median_ms"] = statistics.median(lat) * 1000
        result["latency_p99_ms"] = spine._pct(lat, 0.99) * 1000
        result["ray_latency_median_ms"] = statistics.median(ray_lat) * 1000
        return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.triggers")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--cpus", type=int, default=4, help="logical CPUs given to Ray")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    r = asyncio.run(_main(args))
    print(f"{'benchmark':44} {'actorflow':>12} {'plain Ray':>12} {'ratio':>8}")
    rows = [
        ("T1 event → first node, median ms", r["latency_median_ms"], r["ray_latency_median_ms"]),
        ("T1 event → first node, p99 ms", r["latency_p99_ms"], float("nan")),
        (f"T2 {r['events']} events → all runs done, s", r["wall_s"], r["ray_wall_s"]),
    ]
    for name, ours, theirs in rows:
        ratio = ours / theirs if theirs and not math.isnan(theirs) else float("nan")
        print(f"{name:44} {ours:12.4g} {theirs:12.4g} {ratio:8.2f}")
    print(
        f"T2 runs/s {r['runs_per_s']:.0f}; peak active runs {r['peak_active_runs']} "
        f"(limit 200); engine RSS {r['baseline_rss_mb']:.0f} MB before, "
        f"{r['peak_rss_mb']:.0f} MB peak, {r['after_rss_mb']:.0f} MB after "
        f"(+{r['after_rss_mb'] - r['baseline_rss_mb']:.0f} MB)"
    )
    print(json.dumps(r))
    if r["runs_succeeded"] < r["events"]:
        print(f"FAILED: {r['events']} events sent, {r['runs_succeeded']} runs succeeded")
        sys.exit(1)


if __name__ == "__main__":
    main()
