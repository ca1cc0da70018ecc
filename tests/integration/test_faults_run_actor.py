"""Run actors killed while driving runs: each death is replaced (once), and every run it
drove completes, exactly once per step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import faults_support as fs
import pytest
import ray

from actorflow.definitions import events as ev


@pytest.mark.timeout(90)
def test_run_actors_killed_repeatedly(engine: fs.Engine, tmp_path: Path) -> None:
    """Kill the busiest run actor (the originals, then their replacements) eight times while
    120 runs of a ten-node DAG are in flight: every run completes, exactly once per step."""
    c = engine.client
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    kills = interrupted = max_run_actors = 0
    t0 = time.monotonic()
    for wave in range(8):
        fs.submit_dags(c, ledger, range(wave * 1000, wave * 1000 + 15), 0.05, expected)
        before = fs.named("af-run-actor-")
        max_run_actors = max(max_run_actors, len(before))
        load = {name: fs.active(name) or [] for name in before}
        victim = max(load, key=lambda n: len(load[n]))
        if load[victim]:
            ray.kill(fs.run_actor(victim), no_restart=True)
            kills += 1
            interrupted += len(load[victim])
            # The controller learns of the death from the drivers it awaits, and starts a
            # replacement under a fresh name.
            fs.wait_for(
                lambda: set(fs.named("af-run-actor-")) - set(before),  # noqa: B023
                30,
                "a replacement run actor",
            )
            max_run_actors = max(max_run_actors, len(fs.named("af-run-actor-")))
    done = fs.wait_finished(engine.url, set(expected), 40)
    seconds = time.monotonic() - t0

    common, keys, _, starts = fs.dag_audit(c, engine.url, ledger, expected, done)
    figures = {
        "test": "kill_run_actors",
        **common,
        "kills": kills,
        "runs_on_killed_actors": interrupted,
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "max_run_actors_alive": max_run_actors,
        "seconds": round(seconds, 1),
    }
    fs.report(figures)
    assert kills >= 3  # repeated kills, of originals and of replacements
    assert interrupted > 0
    fs.invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert len(keys) == len(expected) * len(fs.DAG)
    assert figures["missing_side_effects"] == 0
    assert figures["reexecuted_steps"] == 0  # no replica died: no step may run twice


@pytest.mark.timeout(60)
def test_run_actor_death_is_replaced_once_and_loses_no_run(
    engine: fs.Engine, tmp_path: Path
) -> None:
    """The minimal case of the bug above: one kill of a run actor driving a dozen runs."""
    c = engine.client
    ledger = tmp_path / "ledger"
    expected = fs.submit_dags(c, ledger, range(24), 0.3)
    load = {name: fs.active(name) or [] for name in fs.named("af-run-actor-")}
    victim = max(load, key=lambda n: len(load[n]))
    assert len(load[victim]) >= 6
    index = victim.split("-")[3]
    before = set(fs.named("af-run-actor-"))
    ray.kill(fs.run_actor(victim), no_restart=True)
    replacements: set[str] = set()
    deadline = time.monotonic() + 30
    done: dict[str, ev.RunRecord] = {}
    while time.monotonic() < deadline and len(done) < len(expected):
        replacements |= {
            n for n in fs.named(f"af-run-actor-{index}-") if n not in before and n != victim
        }
        done = fs.finished(engine.url, set(expected))
    common, keys, _, starts = fs.dag_audit(c, engine.url, ledger, expected, done)
    figures = {
        "test": "run_actor_replaced_once",
        **common,
        "runs_on_killed_actor": len(load[victim]),
        "replacements": len(replacements),
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
    }
    fs.report(figures)
    assert len(replacements) == 1
    # Finished is not enough (an INTERRUPTED run is finished too): SUCCEEDED, right outputs.
    fs.invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert len(keys) == len(expected) * len(fs.DAG)
    assert figures["missing_side_effects"] == 0
    assert figures["reexecuted_steps"] == 0  # no replica died: no step may run twice
