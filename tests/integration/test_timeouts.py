"""Node and run timeouts end to end: the clock is the engine's, the expiry is recorded."""

from __future__ import annotations

from collections.abc import Callable

import actorflow
from actorflow import WorkflowBuilder

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
