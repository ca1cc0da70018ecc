"""Run the benchmarks on a fresh embedded cluster and print a table (and JSON).

python -m benchmarks                         # W1-W4
python -m benchmarks --sync-interval always  # the same with an fsync per JetStream write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from actorflow import AsyncClient, Settings
from benchmarks import spine


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="actorflow-bench-"))
    settings = Settings(
        home=home,
        ray_num_cpus=args.cpus,
        run_actors=args.run_actors,
        nats_sync_interval=args.sync_interval,
    )
    async with AsyncClient(settings, log_to_driver=False) as client:
        return await spine.run(client, repeat=args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=4, help="logical CPUs given to Ray")
    parser.add_argument("--run-actors", type=int, default=2)
    parser.add_argument(
        "--sync-interval",
        default=Settings.model_fields["nats_sync_interval"].default,
        help="the embedded nats-server's fsync policy: a duration, or `always`",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    results = asyncio.run(_main(args))
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_version()}; "
        f"nats-server sync_interval {args.sync_interval}"
    )
    print(f"{'benchmark':34} {'actorflow':>12} {'plain Ray':>12} {'ratio':>8}")
    for name, (ours, theirs) in results.items():
        ratio = ours / theirs if theirs else float("nan")
        print(f"{name:34} {ours:12.4g} {theirs:12.4g} {ratio:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
