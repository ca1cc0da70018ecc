"""A1-A3: what the REST API adds to starting and reading runs, on the embedded cluster.

    python -m benchmarks.api [--starts 200] [--clients 50] [--seconds 10]

A1 — `POST /api/v1/workflows/NAME/runs` round trip (HTTP over loopback, token checked,
rate limit off), sequential, p50 / p90; beside it the SDK's own `client.run` (no HTTP).
Target: p50 ≤ 15 ms.
A2 — `GET /api/v1/runs/{id}` (record + nodes) round trip, p50 / p90. Target: p50 ≤ 5 ms.
A3 — `--clients` concurrent HTTP clients starting runs for `--seconds`: starts per second,
5xx answers (target 0) and runs lost (started, answered 201, never recorded; target 0).
A4 — a one-node run started and its result read by the SDK through the API (the client
`ACTORFLOW_API_URL` gives: a start, then the record read at growing intervals), p50 / p90,
beside the direct client's `run` + `result` (woken by the run's events); no target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from actorflow import AsyncClient, Settings, WorkflowBuilder
from actorflow._remote import RemoteClient
from actorflow.server.serve import server
from actorflow.server.store import AccessStore
from benchmarks import spine


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="actorflow-bench-api-"))
    settings = Settings(
        home=home,
        ray_num_cpus=args.cpus,
        run_actors=args.run_actors,
        api_port=0,
        api_rate_limit=0,
    )
    async with AsyncClient(settings, log_to_driver=False) as client:
        b = WorkflowBuilder("bench-api", version="1")
        b.node("s", "bench-noop@1")
        await client.apply([*spine.functions(), b.build()])
        store = await AccessStore.open(client.js, home)
        await store.add_user("bench", {"*": "admin"})
        token, _ = await store.create_token("bench")
        srv = server(client, store, settings)
        serving = asyncio.create_task(srv.serve())
        await srv.ready.wait()
        auth = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=srv.url, headers=auth, timeout=60) as http:
            for _ in range(20):  # warm: pools, run actors, connections
                (await http.post("/api/v1/workflows/bench-api/runs", json={})).raise_for_status()
            starts, ids = [], []
            for _ in range(args.starts):
                t0 = time.perf_counter()
                answer = await http.post("/api/v1/workflows/bench-api/runs", json={})
                starts.append(time.perf_counter() - t0)
                ids.append(answer.json()["run_id"])
            sdk = []
            for _ in range(args.starts):
                t0 = time.perf_counter()
                await client.run("bench-api", {})
                sdk.append(time.perf_counter() - t0)
            for run_id in ids[-20:]:
                await client.get_run(run_id).wait(timeout=60)
            gets = []
            for run_id in ids:
                t0 = time.perf_counter()
                (await http.get(f"/api/v1/runs/{run_id}")).raise_for_status()
                gets.append(time.perf_counter() - t0)
            print(f"machine: {os.cpu_count()} cores")
            print(
                f"A1 start via API  p50 {_pct(starts, 0.5):6.2f} ms  p90 {_pct(starts, 0.9):6.2f}"
                f" ms   (SDK client.run p50 {_pct(sdk, 0.5):.2f} ms)   target p50 <= 15 ms"
            )
            print(
                f"A2 GET /runs/{{id}} p50 {_pct(gets, 0.5):6.2f} ms  p90 {_pct(gets, 0.9):6.2f}"
                f" ms   target p50 <= 5 ms"
            )
            remote = RemoteClient(settings, srv.url, token)
            await remote.connect()
            through, direct = [], []
            for _ in range(args.results):
                t0 = time.perf_counter()
                await (await remote.run("bench-api", {})).result(timeout=60)
                through.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await (await client.run("bench-api", {})).result(timeout=60)
                direct.append(time.perf_counter() - t0)
            await remote.close()
            print(
                f"A4 run + result through the API p50 {_pct(through, 0.5):6.2f} ms  p90 "
                f"{_pct(through, 0.9):6.2f} ms   (direct client p50 {_pct(direct, 0.5):.2f} ms,"
                f" {statistics.median(through) / statistics.median(direct):.2f}x)"
            )
            started: list[str] = []
            statuses: list[int] = []
            stop = time.monotonic() + args.seconds

            async def one_client() -> None:
                async with httpx.AsyncClient(base_url=srv.url, headers=auth, timeout=60) as c:
                    while time.monotonic() < stop:
                        answer = await c.post("/api/v1/workflows/bench-api/runs", json={})
                        statuses.append(answer.status_code)
                        if answer.status_code == 201:
                            started.append(answer.json()["run_id"])

            await asyncio.gather(*(one_client() for _ in range(args.clients)))
            deadline = time.monotonic() + 120
            recorded = {r.run_id for r in await client.runs()}
            while set(started) - recorded and time.monotonic() < deadline:
                await asyncio.sleep(1)
                recorded = {r.run_id for r in await client.runs()}
            lost = len(set(started) - recorded)
            errors = sum(1 for s in statuses if s >= 500)
            print(
                f"A3 {args.clients} clients x {args.seconds}s: {len(started)} runs started"
                f" ({len(started) / args.seconds:.0f}/s), {errors} 5xx, {lost} lost"
                f" (median start {statistics.median(starts) * 1000:.2f} ms sequential)"
            )
        srv.should_exit = True
        await serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api")
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--results", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--run-actors", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
