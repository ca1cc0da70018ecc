"""Compensation under fire: the run actor driving a compensating run is SIGKILLed (by pid)
while a compensation runs; the ledger the steps and compensations write shows each step and
each compensation ran exactly once, newest completion undone first, and the run ends
COMPENSATED."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import faults_support as fs
import pytest

from actorflow import RunStatus, WorkflowBuilder


def _apply(engine: fs.Engine) -> None:
    b = WorkflowBuilder("fsaga", version="1")
    path = b.input("path", type="string")
    gate = b.input("gate", type="string")
    step = {"path": path, "values": [], "add": 1, "delay": 0}
    b.node(
        "a",
        "fstep@1",
        inputs=step,
        compensate={"function": "fheld@1", "inputs": {"path": path, "gate": gate}},
    )
    b.node(
        "b", "fstep@1", inputs=step, needs=["a"], compensate={"function": "fstep@1", "inputs": step}
    )
    b.shell("c", ["sh", "-c", "exit 3"], needs=["b"])
    engine.client.apply(b.build())


def _driver_of(run_id: str) -> str | None:
    return next((n for n in fs.named("af-run-actor-") if run_id in (fs.active(n) or [])), None)


@pytest.mark.timeout(150)
def test_killing_the_run_actor_mid_compensation_repeats_and_loses_nothing(
    engine: fs.Engine, tmp_path: Path
) -> None:
    _apply(engine)
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    run = engine.client.run("fsaga", {"path": str(ledger), "gate": str(gate)}, version="1")
    undo_a = f"{run.run_id}.a.1.undo"
    # a's compensation is running (held): b's is done, the run is compensating.
    fs.wait_for(lambda: fs.starts(ledger)[undo_a], 90, "a's compensation to start")
    name = fs.wait_for(lambda: _driver_of(run.run_id), 30, "the run's driver")
    before = set(fs.named("af-run-actor-"))
    os.kill(fs.pid(fs.run_actor(name)), signal.SIGKILL)
    fs.wait_for(lambda: set(fs.named("af-run-actor-")) - before, 60, "a replacement run actor")
    (gate.parent / f"{gate.name}.a").touch()  # let a's compensation finish
    record = run.wait(timeout=90)
    assert record.status is RunStatus.COMPENSATED, record
    assert record.node == "c"
    notes = fs.ledger(ledger)
    fs.report({"test": "compensation_kill", "notes": len(notes)})
    keys = [f"{run.run_id}.{k}" for k in ("a.1", "b.1", "b.1.undo", "a.1.undo")]
    # every step and every compensation started once and finished once, in this order
    assert [(n.what, n.key) for n in notes] == [(w, k) for k in keys for w in ("start", "done")]
