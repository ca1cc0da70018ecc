"""Function-pool replicas killed: a step interrupted mid-execution is redelivered and runs
again with the same key; a pool replaces a dead replica."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import faults_support as fs
import pytest
import ray

from actorflow.definitions import events as ev


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["ray_kill", "sigkill_long_step"])
def test_replica_killed_mid_step(engine: fs.Engine, tmp_path: Path, how: str) -> None:
    """Kill the replica running a step: the task is redelivered to the pool's other replica
    once the ack wait passes without its heartbeat, and runs again, same key, attempt 1.
    `ray_kill`: a 2 s step, killed by Ray. `sigkill_long_step`: a step three ack waits
    long, SIGKILLed by pid once it has outlived one ack wait (so only its heartbeats kept
    it) — redelivered within the recovery bound (ack wait + 10 s) of the kill, by the
    ledger's clock."""
    c = engine.client
    ledger = tmp_path / "ledger"
    ack_wait = engine.settings.task_ack_wait
    step_s = 2.0 if how == "ray_kill" else 3 * ack_wait
    fs.wait_for(lambda: len(fs.named("af-fn-fslow-1-")) == 2, 60, "both fslow replicas")
    t0 = time.monotonic()
    run = c.run("fslowrun", {"ledger": str(ledger), "seconds": step_s}, version="1")
    key = f"{run.run_id}.s.1"

    def runner() -> str | None:
        for e in fs.replayed(engine.url, run.run_id):
            if isinstance(e, ev.TaskStarted) and e.task.node == "s":
                return str(e.replica)
        return None

    victim = fs.wait_for(runner, 30, "step s to start on a replica")
    fs.wait_for(lambda: fs.starts(ledger)[key] == 1, 10, "the step's body to start")
    actor = ray.get_actor(victim, namespace=fs.NS)
    if how == "ray_kill":
        killed_at = time.time()
        ray.kill(actor, no_restart=True)
    else:
        victim_pid = fs.pid(actor)
        began = fs.ledger(ledger)[0].at
        fs.wait_for(lambda: time.time() > began + ack_wait + 0.5, 10, "one ack wait to pass")
        assert fs.starts(ledger)[key] == 1  # heartbeats kept it: not redelivered so far
        killed_at = time.time()
        os.kill(victim_pid, signal.SIGKILL)
    outputs = run.result(timeout=60)
    seconds = time.monotonic() - t0

    notes = [n for n in fs.ledger(ledger) if n.key == key]
    starts = [n for n in notes if n.what == "start"]
    events = fs.replayed(engine.url, run.run_id)
    completions = [e for e in events if isinstance(e, ev.TaskCompleted) and e.task.node == "s"]
    nodes = {n.key: n for n in run.nodes()}
    figures = {
        "test": "kill_replica_mid_step",
        "how": how,
        "step_s": step_s,
        "runs": 1,
        "kills": 1,
        "completed": int(outputs == {"s": "slept:s", "t": 1}),
        "executions_of_killed_step": len(starts),
        "finished_executions": sum(n.what == "done" for n in notes),
        "completions_in_history": len(completions),
        "attempt": nodes["s"].attempt,
        "redelivered_after_s": round(starts[-1].at - killed_at, 2) if len(starts) > 1 else None,
        "replicas_alive_after": len(fs.named("af-fn-fslow-1-")),
        "seconds": round(seconds, 1),
    }
    fs.report(figures)
    assert outputs == {"s": "slept:s", "t": 1}
    assert len(starts) == 2  # interrupted once, run again: at least once, here exactly twice
    assert len({n.pid for n in starts}) == 2  # the second execution ran on the other replica
    assert figures["finished_executions"] == 1
    assert len(completions) == 1
    assert nodes["s"].status == "SUCCEEDED"
    assert nodes["s"].attempt == 1
    assert nodes["s"].replica != victim
    assert nodes["t"].status == "SUCCEEDED"
    assert nodes["t"].attempt == 1
    assert not any(isinstance(e, ev.TaskFailed) for e in events)
    assert starts[1].at - killed_at <= ack_wait + 10  # the recovery bound of issue 13


@pytest.mark.timeout(60)
def test_pool_replaces_a_killed_replica(engine: fs.Engine, tmp_path: Path) -> None:
    c = engine.client
    ledger = tmp_path / "ledger"
    warm = c.run("fsolorun", {"ledger": str(ledger)}, version="1")
    assert warm.result(timeout=30) == {"one": 1}
    [victim] = fs.named("af-fn-fsolo-1-")
    ray.kill(ray.get_actor(victim, namespace=fs.NS), no_restart=True)
    fs.wait_for(lambda: victim not in fs.named("af-fn-fsolo-"), 10, "the replica to die")
    run = c.run("fsolorun", {"ledger": str(ledger)}, version="1")
    assert run.result(timeout=30) == {"one": 1}


@pytest.mark.timeout(90)
def test_a_step_longer_than_the_ack_wait_runs_once(engine: fs.Engine, tmp_path: Path) -> None:
    """A step three ack waits long (the engine's `task_ack_wait` is 3 s) is kept alive by
    its replica's progress acks: never redelivered, run once, completed once."""
    seconds = 3 * engine.settings.task_ack_wait
    ledger = tmp_path / "ledger"
    run = engine.client.run("fslowrun", {"ledger": str(ledger), "seconds": seconds}, version="1")
    assert run.result(timeout=60) == {"s": "slept:s", "t": 1}
    key = f"{run.run_id}.s.1"
    notes = [n for n in fs.ledger(ledger) if n.key == key]
    assert [n.what for n in notes] == ["start", "done"]  # the witness: one execution
    assert notes[1].at - notes[0].at >= seconds  # it really outlived the ack wait
    events = fs.replayed(engine.url, run.run_id)
    completed = [e for e in events if isinstance(e, ev.TaskCompleted) and e.task.node == "s"]
    assert len(completed) == 1
    assert {n.key: n for n in run.nodes()}["s"].attempt == 1
