"""Sub-workflows under fire: the run actors driving a parent and its child are SIGKILLed
(by pid) while the child's step runs; the ledger the step writes shows it ran once, the
records show one child run, and the parent ends with the child's output."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import faults_support as fs
import pytest

from actorflow import RunStatus, WorkflowBuilder
from actorflow.definitions import events as ev


def _apply(engine: fs.Engine) -> None:
    child = WorkflowBuilder("fsw-child", version="1")
    path = child.input("path", type="string")
    gate = child.input("gate", type="string")
    held = child.node("held", "fheld@1", inputs={"path": path, "gate": gate})
    child.output("said", held.output)
    parent = WorkflowBuilder("fsw-parent", version="1")
    p_path = parent.input("path", type="string")
    p_gate = parent.input("gate", type="string")
    call = parent.workflow("call", "fsw-child@1", inputs={"path": p_path, "gate": p_gate})
    parent.output("said", "${{ nodes.call.output.said }}")
    del call
    engine.client.apply([child.build(), parent.build()])


def _driver_of(run_id: str) -> str | None:
    return next((n for n in fs.named("af-run-actor-") if run_id in (fs.active(n) or [])), None)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("victims", [("parent",), ("child",), ("parent", "child")])
def test_killing_the_run_actors_of_a_parent_and_its_child_loses_and_repeats_nothing(
    engine: fs.Engine, tmp_path: Path, victims: tuple[str, ...]
) -> None:
    _apply(engine)
    c = engine.client
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    run = c.run("fsw-parent", {"path": str(ledger), "gate": str(gate)}, version="1")
    child_id = ev.child_run_id(run.run_id, ev.TaskRef(node="call"), "fsw-child")
    # The child's step is running (and held): both runs are being driven right now.
    fs.wait_for(lambda: fs.starts(ledger), 60, "the child's step to start")
    drivers = {
        "parent": fs.wait_for(lambda: _driver_of(run.run_id), 30, "the parent's driver"),
        "child": fs.wait_for(lambda: _driver_of(child_id), 30, "the child's driver"),
    }
    killed = set()
    for victim in victims:
        name = drivers[victim]
        if name in killed:
            continue  # one run actor drove both
        before = set(fs.named("af-run-actor-"))
        os.kill(fs.pid(fs.run_actor(name)), signal.SIGKILL)
        killed.add(name)
        fs.wait_for(
            lambda: set(fs.named("af-run-actor-")) - before,  # noqa: B023
            60,
            "a replacement run actor",
        )
    (gate.parent / f"{gate.name}.held").touch()  # let the child's step finish
    record = run.wait(timeout=90)
    assert record.status is RunStatus.SUCCEEDED, record
    assert record.outputs == {"said": "slept:held"}
    notes = fs.ledger(ledger)
    fs.report({"test": "subworkflow_kill", "victims": list(victims), "notes": len(notes)})
    # The child's step ran exactly once: no child was started twice, none redone.
    assert [n.what for n in notes] == ["start", "done"]
    assert {n.key for n in notes} == {f"{child_id}.held.1"}
    children = [r for r in fs.records(engine.url).values() if r.parent_run_id == run.run_id]
    assert [r.run_id for r in children] == [child_id]
    assert children[0].status is RunStatus.SUCCEEDED
