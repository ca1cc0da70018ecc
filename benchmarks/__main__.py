"""Run the benchmarks on a fresh embedded cluster and print a table (and JSON).

python -m benchmarks                         # W1-W4
python -m benchmarks --sync-interval always  # the same with an fsync per JetStream write
python -m benchmarks --nats-servers 3        # on a three-server JetStream, streams at R3
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
from actorflow.cluster import nats_process
from benchmarks import spine


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="actorflow-bench-"))
    cluster: list[nats_process.NatsProcess] = []
    if args.nats_servers > 1:
        # A JetStream cluster on loopback (as `actorflow up --nats-servers N` starts one):
        # every stream and bucket at min(N, 3) replicas, each write acknowledged once a
        # majority of them has it.
        cluster = nats_process.start_cluster(
            home / "jetstream-cluster",
            home / "run",
            nats_process.plan_cluster(args.nats_servers),
            detached=False,
            sync_interval=args.sync_interval,
        )
    settings = Settings(
        home=home,
        ray_num_cpus=args.cpus,
        run_actors=args.run_actors,
        nats_sync_interval=args.sync_interval,
        nats_url=nats_process.cluster_url(cluster) if cluster else None,
        stream_replicas=min(args.nats_servers, 3),
    )
    try:
        async with AsyncClient(settings, log_to_driver=False) as client:
            return await spine.run(client, repeat=args.repeat)
    finally:
        for proc in cluster:
            nats_process.stop(proc.pid)


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
    parser.add_argument(
        "--nats-servers",
        type=int,
        default=1,
        help="nats-servers on loopback as one JetStream cluster (default 1: the embedded one)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    results = asyncio.run(_main(args))
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_version()}; "
        f"nats-server sync_interval {args.sync_interval}; "
        f"{args.nats_servers} nats-server(s), streams at {min(args.nats_servers, 3)} replicas"
    )
    print(f"{'benchmark':34} {'actorflow':>12} {'plain Ray':>12} {'ratio':>8}")
    for name, (ours, theirs) in results.items():
        ratio = ours / theirs if theirs else float("nan")
        print(f"{name:34} {ours:12.4g} {theirs:12.4g} {ratio:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
