"""Node and run timeouts end to end: the clock is the engine's, the expiry is recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import actorflow
from actorflow import WorkflowBuilder

STEPS_DIR = Path(__file__).parent / "steps"
RunInterrupted = Callable[..., tuple[actorflow.Run, actorflow.ErrorInfo]]  # the conftest fixture


def test_a_node_past_its_timeout_fails_the_run_with_timeout(
    run_interrupted: RunInterrupted,
) -> None:
    b = WorkflowBuilder("node-timeout", version="1")
    b.node("slow", "sleep@1", inputs={"seconds": 3}, timeout="0.5s")
    run, error = run_interrupted(b)
    assert run.status().node == "slow"
    assert error.code == "TIMEOUT"
    assert "all attempts" in error.message
    (node,) = run.nodes()
    assert node.status is actorflow.NodeStatus.FAILED


def test_a_run_past_its_workflow_timeout_stops_with_run_timeout(
    run_interrupted: RunInterrupted,
) -> None:
    b = WorkflowBuilder("run-timeout", version="1", timeout="1s")
    first = b.node("first", "sleep@1", inputs={"seconds": 0.2})
    b.node("second", "sleep@1", inputs={"seconds": 3}, needs=[first])
    run, error = run_interrupted(b)
    assert error.code == "RUN_TIMEOUT"
    statuses = {n.node: n.status for n in run.nodes()}
    assert statuses["first"] is actorflow.NodeStatus.SUCCEEDED


def test_a_step_past_its_functions_timeout_fails_its_node_with_timeout(
    client: actorflow.Client, run_interrupted: RunInterrupted, tmp_path: Path
) -> None:
    """The function's own `timeout` bounds one attempt in the replica: the node fails
    with TIMEOUT while the step is still running (its ledger shows it started, once, and
    had not finished when the run stopped)."""
    client.apply(
        actorflow.Function.model_validate(
            {
                "metadata": {"name": "slow-bounded", "version": "1"},
                "spec": {
                    "handler": "af_fault_steps:slow_step",
                    "codeDir": str(STEPS_DIR),
                    "resources": {"cpus": 0.1},
                    "nodeLabels": {"af-role": "head"},
                    "timeout": "0.5s",
                },
            }
        )
    )
    ledger = tmp_path / "ledger"
    b = WorkflowBuilder("fn-timeout", version="1")
    b.node("slow", "slow-bounded@1", inputs={"path": str(ledger), "seconds": 10})
    run, error = run_interrupted(b)
    notes = [line.split()[0] for line in ledger.read_text().splitlines()]
    assert notes == ["start"]
    assert error.code == "TIMEOUT"
    assert "exceeded its 0.5s timeout" in error.message
    (node,) = run.nodes()
    assert node.status is actorflow.NodeStatus.FAILED
    assert node.attempt == 1
