"""Node and run timeouts end to end: the clock is the engine's, the expiry is recorded."""

from __future__ import annotations

import actorflow
from actorflow import RunStatus, WorkflowBuilder

TIMEOUT = 60


def test_a_node_past_its_timeout_fails_the_run_with_timeout(client: actorflow.Client) -> None:
    b = WorkflowBuilder("node-timeout", version="1")
    b.node("slow", "sleep@1", inputs={"seconds": 3}, timeout="0.5s")
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, version="1")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.INTERRUPTED
    assert record.node == "slow"
    assert record.error is not None
    assert record.error.code == "TIMEOUT"
    assert "all attempts" in record.error.message
    (node,) = run.nodes()
    assert node.status is actorflow.NodeStatus.FAILED


def test_a_run_past_its_workflow_timeout_stops_with_run_timeout(client: actorflow.Client) -> None:
    b = WorkflowBuilder("run-timeout", version="1", timeout="1s")
    first = b.node("first", "sleep@1", inputs={"seconds": 0.2})
    b.node("second", "sleep@1", inputs={"seconds": 3}, needs=[first])
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, version="1")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.INTERRUPTED
    assert record.error is not None
    assert record.error.code == "RUN_TIMEOUT"
    statuses = {n.node: n.status for n in run.nodes()}
    assert statuses["first"] is actorflow.NodeStatus.SUCCEEDED
