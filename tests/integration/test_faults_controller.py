"""The controller killed and started again: its successor keeps one reservation per
resource level."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import faults_support as fs
import pytest
import ray

import actorflow


@pytest.mark.timeout(180)
def test_controller_restart_keeps_one_reservation_per_level(
    engine: fs.Engine, tmp_path: Path
) -> None:
    """A killed controller's successor finds the level's detached placement group instead
    of reserving the capacity twice, and brings back a pool that had scaled to zero."""
    from ray.util import placement_group_table

    from actorflow.actors.controller import CONTROLLER_NAME

    env = actorflow.RuntimeEnv.model_validate(
        {
            "metadata": {"name": "faults-env"},
            "spec": {"level": {"name": "faults-level", "bundles": [{"cpus": 0.5, "count": 2}]}},
        }
    )
    lazy = fs.fn(
        "flazy",
        "ledger_step",
        runtimeEnv="faults-env@1",
        replicas={"min": 0, "max": 2, "downDelay": "1s"},
    )
    b = actorflow.WorkflowBuilder("flazyrun", version="1")
    ledger = b.input("ledger", type="string")
    one = b.node("one", "flazy@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0})
    b.output("one", one.output)

    def groups() -> list[dict[str, Any]]:
        return [
            g
            for g in placement_group_table().values()
            if g["name"].startswith("af-level-faults-level-") and g["state"] != "REMOVED"
        ]

    engine.client.apply([env, lazy, b.build()])
    assert len(groups()) == 1

    def lazy_replicas() -> int:
        return int(next(p for p in engine.client.pools() if p.function == "flazy").replicas)

    fs.wait_for(lambda: lazy_replicas() == 0, 30, "the pool to scale to zero", interval=0.2)
    fs.wait_for(lambda: not fs.named("af-fn-flazy-1-"), 30, "its replica to exit", interval=0.5)
    ray.kill(ray.get_actor(CONTROLLER_NAME, namespace=fs.NS), no_restart=True)
    fs.wait_for(lambda: CONTROLLER_NAME not in fs.named(), 30, "the controller to die")
    with contextlib.suppress(Exception):
        engine.client.close()
    engine.client = fs.new_client(engine.settings)
    ledger_path = tmp_path / "ledger"
    run = engine.client.run("flazyrun", {"ledger": str(ledger_path)}, version="1")
    assert run.result(timeout=60) == {"one": 1}
    assert [(n.what, n.key) for n in fs.ledger(ledger_path)] == [
        ("start", f"{run.run_id}.one.1"),
        ("done", f"{run.run_id}.one.1"),
    ]
    [group] = groups()
    assert group["state"] == "CREATED"
    fs.report({"test": "controller_restart_levels", "placement_groups": len(groups())})


@pytest.mark.timeout(240)
def test_a_killed_controller_starts_by_itself_and_recovers_the_runs(
    engine: fs.Engine, tmp_path: Path
) -> None:
    """Every run actor and the controller SIGKILLed together while runs are in flight:
    Ray restarts the controller, which starts on its own and drives the orphaned runs to
    their end — no client calls it meanwhile (the test watches over NATS alone)."""
    from actorflow.actors.controller import CONTROLLER_NAME

    c = engine.client
    ledger = tmp_path / "ledger"
    expected = fs.submit_dags(c, ledger, range(12), 0.2)
    fs.wait_for(lambda: any(fs.active(n) for n in fs.named("af-run-actor-")), 30, "runs in flight")
    victims = [fs.pid(fs.run_actor(n)) for n in fs.named("af-run-actor-")]
    victims.append(fs.pid(ray.get_actor(CONTROLLER_NAME, namespace=fs.NS)))
    for victim in victims:
        os.kill(victim, signal.SIGKILL)
    done = fs.wait_finished(engine.url, set(expected), 120)

    common, keys, notes, starts = fs.dag_audit(c, engine.url, ledger, expected, done)
    completed_step_reruns = fs.completed_step_reruns(notes, keys)
    figures = {
        "test": "controller_and_run_actors_killed",
        **common,
        "killed_processes": len(victims),
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "completed_step_reruns": completed_step_reruns,
    }
    fs.report(figures)
    fs.invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["lost_runs"] == 0
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert figures["missing_side_effects"] == 0
    # The pools' replicas are the controller's actors and die with it (Ray's ownership):
    # a step they were running runs again, under the same key; one whose result was
    # stored never does.
    assert completed_step_reruns == 0
