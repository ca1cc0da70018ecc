"""L1: what the definition language's constructs cost a run, measured beside the same run
without them (and, for scale, plain Ray's per-task cost) in the same sitting.

    python -m benchmarks.language [--skipped 100] [--repeat 5]

L1 — a skipped node: a run whose first step is followed by `--skipped` nodes whose `when`
is false, against the same run without them; the difference per skipped node. A skipped
node publishes no task (checked: the run's history schedules only the two real steps).

L2 — a shell step: a run of one shell node running `true` on its (warm) pool, submit →
result, beside a run of one no-op function node and a plain Ray task running `true`.

L3 — a sub-workflow node: a run of one `workflow:` node whose child is that one-node
function run, submit → result, against the function run itself; the difference is what
the sub-workflow node adds, set beside W4 (submit → first step body) of the same sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from actorflow import AsyncClient, Settings, WorkflowBuilder
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev
from benchmarks import spine


def _with_skips(count: int) -> Any:
    b = WorkflowBuilder(f"bench-skip-{count}", version="1")
    first = b.node("first", "bench-noop@1")
    for i in range(count):
        b.node(f"skip{i}", "bench-noop@1", needs=[first], when="${{ run.id == 'never' }}")
    b.node("last", "bench-noop@1", needs=[first])
    return b.build()


async def _wall(client: AsyncClient, name: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    run = await client.run(name)
    await run.result(timeout=600)
    return time.perf_counter() - t0, run.run_id


async def _main(args: argparse.Namespace) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="actorflow-bench-"))
    settings = Settings(home=home, ray_num_cpus=4)
    async with AsyncClient(settings, log_to_driver=False) as client:
        plain, skips = _with_skips(0), _with_skips(args.skipped)
        await client.apply([*spine.functions(), plain, skips])
        for wf in (plain, skips):
            await _wall(client, wf.metadata.name)  # warm
        without, with_skips = [], []
        run_id = ""
        for _ in range(args.repeat):
            without.append((await _wall(client, plain.metadata.name))[0])
            wall, run_id = await _wall(client, skips.metadata.name)
            with_skips.append(wall)
        history = [rec.event for rec in await replay(client.js, run_id)]
        scheduled = [t.node for e in history if isinstance(e, ev.TasksScheduled) for t in e.tasks]
        if sorted(scheduled) != ["first", "last"]:
            raise SystemExit(f"skipped nodes were scheduled: {scheduled}")
        base, skipped = statistics.median(without), statistics.median(with_skips)
        shell, noop = _one("bench-shell", shell=True), _one("bench-one-noop", shell=False)
        await client.apply([shell, noop])
        await _wall(client, shell.metadata.name)  # the shell pool starts from zero
        shell_runs = [(await _wall(client, shell.metadata.name))[0] for _ in range(args.repeat)]
        noop_runs = [(await _wall(client, noop.metadata.name))[0] for _ in range(args.repeat)]
        ray.get(_ray_true.remote())
        ray_runs = [_timed(lambda: ray.get(_ray_true.remote())) for _ in range(args.repeat)]
        parent = WorkflowBuilder("bench-sub", version="1")
        parent.workflow("child", noop)
        await client.apply([parent.build(), spine.first_step()])
        await _wall(client, "bench-sub")  # the workflow pool starts from zero
        sub_runs = [(await _wall(client, "bench-sub"))[0] for _ in range(args.repeat)]
        noop_again = [(await _wall(client, noop.metadata.name))[0] for _ in range(args.repeat)]
        w4 = statistics.median(await spine.af_start_latency(client, 4 * args.repeat))
        sub, fn = statistics.median(sub_runs), statistics.median(noop_again)
        return {
            "run without skipped nodes, ms": base * 1000,
            f"run with {args.skipped} skipped nodes, ms": skipped * 1000,
            "L1 per skipped node, ms": (skipped - base) * 1000 / args.skipped,
            "L2 shell step `true`, run submit -> result, ms": statistics.median(shell_runs) * 1000,
            "   one no-op function node, same, ms": statistics.median(noop_runs) * 1000,
            "   plain Ray task running `true`, ms": statistics.median(ray_runs) * 1000,
            "L3 run of one sub-workflow node, ms": sub * 1000,
            "   the same child as a run of its own, ms": fn * 1000,
            "   added by the sub-workflow node, ms": (sub - fn) * 1000,
            "   W4 submit -> first step body, ms": w4 * 1000,
            "   added / W4": (sub - fn) / w4,
        }


def _one(name: str, *, shell: bool) -> Any:
    b = WorkflowBuilder(name, version="1")
    if shell:
        b.shell("s", ["true"])
    else:
        b.node("s", "bench-noop@1")
    return b.build()


@ray.remote
def _ray_true() -> int:
    return subprocess.run(["true"], check=False).returncode


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.language")
    parser.add_argument("--skipped", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for name, value in asyncio.run(_main(args)).items():
        print(f"{name:48} {value:10.3f}")


if __name__ == "__main__":
    main()
