"""A breakpoint survives every engine process: the run actors and the controller are
SIGKILLed (by pid) while a run is paused at one; it is still paused there afterwards, and
`continue` finishes it with every step done once (the steps' ledger is the witness)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from pathlib import Path

import faults_support as fs
import pytest
import ray

import actorflow
from actorflow.actors.controller import CONTROLLER_NAME
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ControlError


def _hits(run: actorflow.Run) -> list[ev.BreakpointHit] | None:
    with contextlib.suppress(ControlError):
        return run.paused_at()
    return None


def _alive(c: actorflow.Client) -> bool:
    try:
        c.engine_info()
    except Exception:
        return False
    return True


@pytest.mark.timeout(240)
def test_a_breakpoint_survives_killing_the_run_actors_and_the_controller(
    engine: fs.Engine, tmp_path: Path
) -> None:
    c = engine.client
    ledger = tmp_path / "ledger"
    run = c.run(
        "fdag", {"ledger": str(ledger), "x": 5, "delay": 0}, version="1", break_before=["n4"]
    )
    hits = fs.wait_for(lambda: _hits(run), 60, "the run to stop at n4", 0.1)
    assert [h.node for h in hits] == ["n4"]
    assert hits[0].inputs["values"] == [6, 7]  # n1 = 5 + 1, n2 = 5 + 2

    victims = [fs.pid(fs.run_actor(n)) for n in fs.named("af-run-actor-")]
    victims.append(fs.pid(ray.get_actor(CONTROLLER_NAME, namespace=fs.NS)))
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    fs.wait_for(lambda: _alive(c), 60, "the controller to come back", 0.2)

    assert run.status().status is actorflow.RunStatus.PAUSED
    assert [h.node for h in run.paused_at()] == ["n4"]
    done = Counter(n.key.split(".")[1] for n in fs.ledger(ledger) if n.what == "done")
    # Nothing past the breakpoint ran. n5 (n2 + n3) is a sibling branch: when n2 and n3
    # finish before n1 it is scheduled before n4 is held, and runs; the run then pauses.
    assert {"n0", "n1", "n2", "n3"} <= set(done) <= {"n0", "n1", "n2", "n3", "n5"}

    run.continue_()
    assert run.result(timeout=120) == fs._dag_expected(5)
    done = Counter(n.key.split(".")[1] for n in fs.ledger(ledger) if n.what == "done")
    assert done == Counter(dict.fromkeys(fs.DAG, 1))  # every step once, none again


def _done_by_run(ledger: Path) -> Counter[tuple[str, str]]:
    """(run id, node) → how often its step finished, by the steps' own ledger."""
    return Counter(
        (n.key.split(".")[0], n.key.split(".")[1]) for n in fs.ledger(ledger) if n.what == "done"
    )


@pytest.mark.timeout(240)
def test_rerun_from_a_node_reuses_the_upstream_outputs_without_running_them(
    engine: fs.Engine, tmp_path: Path
) -> None:
    c = engine.client
    ledger = tmp_path / "ledger"
    first = c.run("fdag", {"ledger": str(ledger), "x": 1, "delay": 0}, version="1")
    assert first.result(timeout=120) == fs._dag_expected(1)
    n4, n5 = 1 + 1 + 1 + 2 + 4, 1 + 2 + 1 + 3 + 5  # (n1 + n2) + 4, (n2 + n3) + 5
    second = first.rerun("n6", {"add": 1000})
    n6 = n4 + n5 + 1000
    assert second.result(timeout=120) == {"result": (n6 + 7) + (n6 + 8) + 9}

    done = _done_by_run(ledger)
    assert {node for run, node in done if run == second.run_id} == {"n6", "n7", "n8", "n9"}
    assert all(done[(second.run_id, n)] == 1 for n in ("n6", "n7", "n8", "n9"))
    assert all(done[(first.run_id, n)] == 1 for n in fs.DAG)  # the first run's, once each
    statuses = {n.node: n.status for n in second.nodes()}
    assert set(statuses.values()) == {actorflow.NodeStatus.SUCCEEDED}

    with pytest.raises(ControlError, match="no node 'nope'"):
        first.rerun("nope")
