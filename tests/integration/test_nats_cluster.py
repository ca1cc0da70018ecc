"""A three-server JetStream cluster under the engine (``ACTORFLOW_STREAM_REPLICAS=3``).

One private engine for the module (`faults_support.private_engine` with three
nats-servers on loopback as one JetStream cluster) on the session's Ray. The fault tests
SIGKILL, by pid, the server that leads the history stream while runs are in flight, and a
Ray worker node that hosts a pool's replicas; the independent ledger says what ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faults_support as fs
import nats
import pytest
import ray
from nats.js import JetStreamContext
from otlp_support import Collector
from ray._private import ray_constants
from ray.cluster_utils import Cluster

import actorflow
from actorflow.actors.config import EngineTunables
from actorflow.actors.store.jetstream import ensure_infrastructure
from actorflow.cluster import nats_process
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ClusterUnavailableError

SERVERS = 3
STREAMS = [
    ev.STREAM_HISTORY,
    ev.STREAM_TASKS,
    ev.STREAM_EVENTS,
    ev.STREAM_SIGNALS,
    ev.STREAM_TRIGGERS,
    ev.STREAM_QUEUES,
    ev.STREAM_LOGS,
    *(ev.kv_stream(b) for b in (ev.KV_DEFINITIONS, ev.KV_RUNS, ev.KV_WAITS, ev.KV_TRIGGERS)),
    f"OBJ_{ev.OBJECT_STORE}",
]


@pytest.fixture(scope="module")
def engine3(
    client: actorflow.Client, tmp_path_factory: pytest.TempPathFactory, otlp: Collector
) -> Iterator[fs.Engine]:
    """The module's private engine on a three-server JetStream cluster."""
    with fs.private_engine(tmp_path_factory, otlp.config, nats_servers=SERVERS) as eng:
        yield eng


def _live_url(engine: fs.Engine) -> str:
    """The URLs of the members that run (a killed one would only slow every look-up)."""
    live = [m for m in engine.members if nats_process.alive(engine.member_pids[m.name])]
    return ",".join(f"nats://127.0.0.1:{m.port}" for m in live)


def _leader(engine: fs.Engine, stream: str) -> str | None:
    try:
        info = fs.stream_infos(_live_url(engine), [stream])[stream]
    except Exception:  # an election under way: no answer yet
        return None
    return info.cluster.leader if info.cluster else None


def _all_current(engine: fs.Engine, stream: str) -> bool:
    """Every member keeps the stream: a leader and the others current with it."""
    try:
        info = fs.stream_infos(_live_url(engine), [stream])[stream]
    except Exception:
        return False
    cluster = info.cluster
    if cluster is None or not cluster.leader:
        return False
    peers = cluster.replicas or []
    return len(peers) == SERVERS - 1 and all(p.current and not p.offline for p in peers)


def test_every_stream_and_bucket_has_three_replicas(engine3: fs.Engine) -> None:
    infos = fs.stream_infos(engine3.url, [*STREAMS, ev.STREAM_INGRESS])
    replicas = {name: info.config.num_replicas for name, info in infos.items()}
    assert set(STREAMS) <= set(replicas)
    assert replicas == dict.fromkeys(replicas, SERVERS)
    members = {m.name for m in engine3.members}
    for name, info in infos.items():
        assert info.cluster is not None, name
        assert info.cluster.leader in members, name
        assert {p.name for p in info.cluster.replicas or []} | {info.cluster.leader} == members


@pytest.mark.timeout(180)
def test_history_leader_killed_mid_run(engine3: fs.Engine, tmp_path: Path) -> None:
    """SIGKILL the server that leads AF_HISTORY while 30 DAG runs are in flight: another
    member takes the lead, every run succeeds with the right outputs, each step completes
    once, and no step whose result was stored runs again (the ledger says so); the
    killed server, restarted on its store, catches up."""
    c = engine3.client
    ledger = tmp_path / "ledger"
    leader = fs.wait_for(lambda: _leader(engine3, ev.STREAM_HISTORY), 30, "a history leader")
    expected = fs.submit_dags(c, ledger, range(30), 0.05)
    fs.wait_for(lambda: sum(fs.starts(ledger).values()) >= 20, 60, "steps to run")
    finished_before_kill = len(fs.finished(engine3.url, set(expected)))
    t0 = time.monotonic()
    engine3.kill_member(leader)
    new_leader = fs.wait_for(
        lambda: (lead := _leader(engine3, ev.STREAM_HISTORY)) != leader and lead,
        30,
        "another member to lead AF_HISTORY",
    )
    live = _live_url(engine3)
    done = fs.wait_finished(live, set(expected), 90)
    seconds = time.monotonic() - t0

    common, keys, notes, starts = fs.dag_audit(c, live, ledger, expected, done)
    completed_step_reruns = fs.completed_step_reruns(notes, keys)
    figures = {
        "test": "kill_history_leader",
        **common,
        "killed": leader,
        "new_leader": new_leader,
        "finished_before_kill": finished_before_kill,
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "completed_step_reruns": completed_step_reruns,
        "seconds_after_kill": round(seconds, 1),
    }
    fs.report(figures)
    assert finished_before_kill < len(expected)  # the kill met runs in flight
    fs.invariants(figures, len(expected), live, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert figures["missing_side_effects"] == 0
    # A step whose result publish met the dying server may run again (same key); a step
    # whose result was already stored never does.
    assert completed_step_reruns == 0

    engine3.start_member(leader)
    fs.wait_for(lambda: _all_current(engine3, ev.STREAM_HISTORY), 60, "the member to catch up")


def test_fewer_replicas_are_raised_and_never_lowered(engine3: fs.Engine) -> None:
    """A stream and a bucket taken down to one replica get three again from an engine
    configured with three; an engine configured with one leaves three alone."""
    lowered = [ev.STREAM_EVENTS, ev.kv_stream(ev.KV_WAITS)]

    async def scenario(js: JetStreamContext) -> tuple[dict[str, int], ...]:
        async def replicas() -> dict[str, int]:
            return {
                name: (await js.stream_info(name)).config.num_replicas or 1
                for name in [*lowered, ev.STREAM_HISTORY]
            }

        for name in lowered:
            info = await js.stream_info(name)
            await js.update_stream(dataclasses.replace(info.config, num_replicas=1))
        before = await replicas()
        await ensure_infrastructure(js, EngineTunables(stream_replicas=1))
        with_one = await replicas()
        await ensure_infrastructure(js, EngineTunables(stream_replicas=SERVERS))
        return before, with_one, await replicas()

    before, with_one, with_three = fs._on_nats(engine3.url, scenario)
    assert before == with_one == {**dict.fromkeys(lowered, 1), ev.STREAM_HISTORY: SERVERS}
    assert with_three == dict.fromkeys(with_three, SERVERS)


def test_replicas_on_a_lone_server_are_one_clear_error(tmp_path: Path) -> None:
    """``ACTORFLOW_STREAM_REPLICAS=3`` against one nats-server: one error naming the
    setting and what it needs, and nothing created."""
    proc = nats_process.start(tmp_path / "js", tmp_path / "run", detached=False)

    async def scenario() -> list[str]:
        nc = await nats.connect(proc.url)
        try:
            js = nc.jetstream()
            with pytest.raises(ClusterUnavailableError) as caught:
                await ensure_infrastructure(js, EngineTunables(stream_replicas=3))
            message = str(caught.value)
            assert "ACTORFLOW_STREAM_REPLICAS=3" in message
            assert "cluster of at least 3 servers" in message
            assert "\n" not in message
            names = await js.streams_info()
            return [s.config.name or "" for s in names]
        finally:
            await nc.close()

    try:
        assert asyncio.run(scenario()) == []
    finally:
        nats_process.stop(proc.pid)


def test_cluster_restarted_on_new_ports_keeps_its_streams(tmp_path: Path) -> None:
    """`down` then `up` gives the members new ports: on the same stores they find each
    other again by their routes, and a replicated stream keeps its messages."""
    store, run = tmp_path / "stores", tmp_path / "run"

    async def publish(url: str) -> None:
        nc = await nats.connect(nats_process.urls(url))
        try:
            js = nc.jetstream()
            await js.add_stream(name="KEPT", subjects=["kept.>"], num_replicas=SERVERS)
            for i in range(5):
                await js.publish("kept.x", str(i).encode())
        finally:
            await nc.close()

    async def count(url: str) -> tuple[int, int]:
        nc = await nats.connect(nats_process.urls(url))
        try:
            info = await nc.jetstream().stream_info("KEPT")
            return info.state.messages, info.config.num_replicas or 1
        finally:
            await nc.close()

    first = nats_process.start_cluster(
        store, run, nats_process.plan_cluster(SERVERS), detached=False
    )
    try:
        asyncio.run(publish(nats_process.cluster_url(first)))
    finally:
        for proc in first:
            nats_process.stop(proc.pid)
    members = nats_process.plan_cluster(SERVERS)
    second = nats_process.start_cluster(store, run, members, detached=False)
    try:
        assert {p.url for p in second}.isdisjoint({p.url for p in first})
        url = nats_process.cluster_url(second)
        # The stream's own leader is elected after the meta leader: ask until it answers.
        kept = fs.wait_for(lambda: _answer(count(url)), 30, "the stream to answer")
        assert kept == (5, SERVERS)
    finally:
        for proc in second:
            nats_process.stop(proc.pid)


def _answer(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except Exception:
        return None


# --- a Ray worker node dies -------------------------------------------------------------------
NODE_LABEL = {"af-role": "faults-node"}


def _node_workflow() -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("fnoderun", version="1")
    ledger = b.input("ledger", type="string")
    gate = b.input("gate", type="string")
    h = b.node("h", "fnode@1", inputs={"path": ledger, "gate": gate})
    t = b.node(
        "t", "fstep@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0}, needs=[h]
    )
    b.output("h", h.output)
    b.output("t", t.output)
    return b.build()


def _replica_nodes(prefix: str) -> dict[str, str]:
    """Replica name -> the Ray node id it runs on, for the live replicas of a pool."""
    out = {}
    for name in fs.named(prefix):
        try:
            actor = ray.get_actor(name, namespace=fs.NS)
            out[name] = ray.get(
                actor.__ray_call__.remote(lambda _s: ray.get_runtime_context().get_node_id()),
                timeout=10,
            )
        except Exception:  # dead, or on the dead node
            continue
    return out


@pytest.mark.timeout(300)
def test_ray_worker_node_killed_mid_run(
    engine3: fs.Engine, ray_cluster: Cluster, tmp_path: Path
) -> None:
    """A pool's replicas all on one Ray worker node, each holding a step of a run in
    flight; the node's raylet SIGKILLed by pid. Its workers die with it, the pool starts
    replicas on another node with the same label, the held tasks are redelivered there
    (same idempotency key, attempt 1), and every run succeeds; no step that completed
    runs again."""
    c = engine3.client
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    victim = ray_cluster.add_node(num_cpus=1, labels=NODE_LABEL)
    spare = None
    try:
        c.apply(
            [
                fs.fn("fnode", "held_step", replicas=2, maxConcurrency=4, nodeLabels=NODE_LABEL),
                _node_workflow(),
            ]
        )
        placed = fs.wait_for(
            lambda: r if len(r := _replica_nodes("af-fn-fnode-1-")) == 2 else None,
            120,
            "both fnode replicas on the victim node",
        )
        assert set(placed.values()) == {victim.node_id}
        # The spare joins only now, so the first replicas could land nowhere else.
        spare = ray_cluster.add_node(num_cpus=1, labels=NODE_LABEL)
        ray_cluster.wait_for_nodes()
        runs = [c.run("fnoderun", {"ledger": str(ledger), "gate": str(gate)}) for _ in range(6)]
        keys = {f"{r.run_id}.h.1" for r in runs}
        fs.wait_for(lambda: set(fs.starts(ledger)) >= keys, 60, "every held step to start")
        first_pids = {n.pid for n in fs.ledger(ledger) if n.key in keys}

        raylet = victim.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
        killed_at = time.time()
        os.kill(raylet.pid, signal.SIGKILL)
        raylet.wait(timeout=10)  # reaped: a zombie parent would keep its workers waiting
        fs.wait_for(
            lambda: not any(nats_process.alive(p) for p in first_pids),
            60,
            "the dead node's replica processes to exit",
        )
        fs.wait_for(
            lambda: all(fs.starts(ledger)[k] >= 2 for k in keys),
            180,
            "every held step to be redelivered to a new replica",
        )
        Path(f"{gate}.h").touch()  # let the held steps finish (held_step's gate)
        outputs = [r.result(timeout=60) for r in runs]
        seconds = time.time() - killed_at

        notes = fs.ledger(ledger)
        starts = fs.starts(ledger)
        moved = _replica_nodes("af-fn-fnode-1-")
        completions: dict[str, float] = {}
        for run in runs:
            for e in fs.history(_live_url(engine3)).get(run.run_id, []):
                if isinstance(e.event, ev.TaskCompleted):
                    completions.setdefault(e.event.task.idempotency_key(run.run_id), e.stored_at)
        reruns = sum(
            1
            for n in notes
            if n.what == "start" and n.key in completions and n.at > completions[n.key]
        )
        attempts = {n.key: n.attempt for r in runs for n in r.nodes()}
        figures = {
            "test": "kill_ray_worker_node",
            "runs": len(runs),
            "succeeded": sum(o == {"h": "slept:h", "t": 1} for o in outputs),
            "held_step_executions": sum(starts[k] for k in keys),
            "re_executions_on_dead_node": sum(
                1 for n in notes if n.key in keys and n.pid in first_pids and n.what == "done"
            ),
            "completions": len(completions),
            "completed_step_reruns": reruns,
            "replicas_after_on_spare": sum(n == spare.node_id for n in moved.values()),
            "seconds_after_kill": round(seconds, 1),
        }
        fs.report(figures)
        assert figures["succeeded"] == len(runs)
        # Each held step ran on the dead node and once more on a new replica: same key.
        assert all(starts[k] == 2 for k in keys), starts
        assert figures["re_executions_on_dead_node"] == 0  # none finished there
        assert completions.keys() == keys | {f"{r.run_id}.t.1" for r in runs}
        assert reruns == 0
        assert set(attempts.values()) == {1}
        assert moved
        assert set(moved.values()) == {spare.node_id}
    finally:
        for kind, ref in (("Workflow", "fnoderun@1"), ("Function", "fnode@1")):
            with contextlib.suppress(actorflow.ActorflowError):
                c.delete(kind, ref)
        fs.kill_named(fs.named("af-fn-fnode-1-"))
        gone = {victim.node_id}
        ray_cluster.remove_node(victim, allow_graceful=False)
        if spare is not None:  # gracefully: it tells the GCS it is leaving
            gone.add(spare.node_id)
            ray_cluster.remove_node(spare)
        # Until the GCS has declared them dead (the victim: missed heartbeats), it may
        # still place a later test's actors there.
        fs.wait_for(
            lambda: not any(n["Alive"] for n in ray.nodes() if n["NodeID"] in gone),
            120,
            "the GCS to declare the removed nodes dead",
            0.5,
        )
