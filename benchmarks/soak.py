"""Soak: 1,000+ runs of a 10-node DAG while run actors are killed and nats-server is
SIGKILLed and restarted; then every run is audited.

    python -m benchmarks.soak [--runs 1000] [--kill-every 3] [--nats-restarts 2]

Prints one JSON line of figures and exits non-zero if an invariant is broken: every run
SUCCEEDED with the right output, no step completed twice in any history, and, by the
steps' own ledger (the independent witness), every completed step ran (no side effect
missing) and none ran again after its result was in the history (no replica is killed, so
recovery may re-execute only a step whose result never became durable). Run actors are
killed in turn by `ray.kill` and by SIGKILL of their process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from nats.js import JetStreamContext

import actorflow
from actorflow import AsyncClient, Settings, WorkflowBuilder
from actorflow.actors.store.streams import read_records, read_stream
from actorflow.cluster import nats_process
from actorflow.definitions import events as ev

HERE = Path(__file__).parent
WIDTH = 4  # 1 root, 2 layers of 4, 1 sink = 10 nodes


def workflow(ledger: str) -> tuple[actorflow.Function, actorflow.Workflow]:
    fn = actorflow.function(
        "soak-step", "soak_steps:ledger", cpus=0.1, max_concurrency=32, code_dir=str(HERE)
    )
    b = WorkflowBuilder("soak", version="1")
    x = b.input("x", type="integer")
    root = b.node("root", fn, inputs={"path": ledger, "add": x, "values": []})
    layer = [root]
    for depth in range(2):
        layer = [
            b.node(
                f"l{depth}n{i}",
                fn,
                inputs={"path": ledger, "add": 1, "values": [n.output for n in layer]},
            )
            for i in range(WIDTH)
        ]
    sink = b.node(
        "sink", fn, inputs={"path": ledger, "add": 0, "values": [n.output for n in layer]}
    )
    b.output("y", sink.output)
    return fn, b.build()


def expected(x: int) -> int:
    layer1 = x + 1
    layer2 = WIDTH * layer1 + 1
    return WIDTH * layer2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def chaos(
    stop: asyncio.Event, namespace: str, kill_every: float, nats: dict[str, Any], restarts: int
) -> dict[str, int]:
    """Kill a run actor every `kill_every` seconds; SIGKILL + restart nats-server `restarts`
    times along the way."""
    kills = nats_restarts = 0
    rng = random.Random(7)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), kill_every)
            break
        except TimeoutError:
            pass
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == namespace and a["name"].startswith("af-run-actor-")
        ]
        if names:
            actor = ray.get_actor(rng.choice(names), namespace=namespace)
            if kills % 2:  # the OS's kill, by pid, as well as Ray's
                pid = await actor.__ray_call__.remote(lambda _self: os.getpid())
                os.kill(pid, signal.SIGKILL)
            else:
                ray.kill(actor, no_restart=True)
            kills += 1
        if nats_restarts < restarts and kills % 2 == 0:
            os.kill(nats["pid"], signal.SIGKILL)
            await asyncio.sleep(0.5)
            proc = nats_process.start(nats["store"], nats["run"], detached=False, port=nats["port"])
            nats["pid"] = proc.pid
            nats_restarts += 1
    return {"run_actor_kills": kills, "nats_restarts": nats_restarts}


async def main(args: argparse.Namespace) -> int:
    home = Path(tempfile.mkdtemp(prefix="actorflow-soak-"))
    port = free_port()
    store, run_dir = home / "jetstream", home / "run"
    proc = nats_process.start(store, run_dir, detached=False, port=port)
    nats = {"pid": proc.pid, "port": port, "store": store, "run": run_dir}
    settings = Settings(
        home=home, nats_url=proc.url, ray_num_cpus=4, run_actors=2, task_ack_wait=5.0
    )
    ledger = home / "ledger"
    fn, wf = workflow(str(ledger))
    t0 = time.perf_counter()
    async with AsyncClient(settings, log_to_driver=False) as client:
        await client.apply([fn, wf])
        stop = asyncio.Event()
        chaos_task = asyncio.create_task(
            chaos(stop, settings.namespace, args.kill_every, nats, args.nats_restarts)
        )
        run_ids: dict[str, int] = {}
        sem = asyncio.Semaphore(args.concurrency)

        async def one(x: int) -> None:
            async with sem:
                run = await client.run("soak", {"x": x}, run_id=f"soak-{x}")
                run_ids[run.run_id] = x
                await run.wait(timeout=args.timeout)

        results = await asyncio.gather(*(one(x) for x in range(args.runs)), return_exceptions=True)
        stop.set()
        figures: dict[str, Any] = await chaos_task
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        wall = time.perf_counter() - t0
        records = {r.run_id: r async for r in read_records(client.js)}
        completed = await _completions(client.js)
    wrong = sum(
        records.get(run_id) is None or records[run_id].outputs != {"y": expected(x)}
        for run_id, x in run_ids.items()
    )
    duplicates = sum(n - 1 for n in collections.Counter(k for k, _ in completed).values())
    stored = dict(reversed(completed))  # key -> when its (first) result was stored
    notes = [line.split() for line in ledger.read_text().splitlines()]
    executions = collections.Counter(key for key, _, _ in notes)
    figures.update(
        runs=args.runs,
        succeeded=sum(r.status is ev.RunStatus.SUCCEEDED for r in records.values()),
        wrong_or_lost=wrong,
        duplicate_completions=duplicates,
        steps=len(executions),
        steps_run_more_than_once=sum(1 for n in executions.values() if n > 1),
        completed_step_reruns=sum(
            key in stored and float(at) > stored[key] for key, _, at in notes
        ),
        missing_side_effects=sum(executions[key] == 0 for key in stored),
        errors=errors[:3],
        seconds=round(wall, 1),
        runs_per_second=round(args.runs / wall, 1),
    )
    print(json.dumps(figures))
    nats_process.stop(nats["pid"])
    ok = (
        figures["succeeded"] == args.runs
        and not wrong
        and not duplicates
        and not figures["completed_step_reruns"]
        and not figures["missing_side_effects"]
        and not errors
    )
    return 0 if ok else 1


async def _completions(js: JetStreamContext) -> list[tuple[str, float]]:
    """(idempotency key, when stored) of every `TaskCompleted` in the history, in order."""
    out = []
    async for msg in read_stream(js, ev.STREAM_HISTORY, ev.HISTORY_SUBJECTS):
        event = ev.decode_history(msg.data)
        if isinstance(event, ev.TaskCompleted):
            run_id = msg.subject.split(".")[2]
            out.append((event.task.idempotency_key(run_id), msg.metadata.timestamp.timestamp()))
    return out


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--nats-restarts", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    cli()
