"""Sub-workflows end to end on the real Ray and nats-server: a child run per attempt of a
`workflow:` node, its outputs the node's, its failure the node's; fan-out over children;
a cancelled parent cancels its child; recursion ends; cycles are refused at apply."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

import actorflow
from actorflow import DefinitionError, NodeStatus, RunStatus, WorkflowBuilder
from actorflow.definitions import events as ev

TIMEOUT = 120


def _child() -> actorflow.Workflow:
    b = WorkflowBuilder("sw-child", version="1")
    x = b.input("x", type="integer")
    inc = b.node("inc", "add@1", inputs={"a": x, "b": 1})
    b.output("y", inc.output)
    return b.build()


def _records(client: actorflow.Client, parent: str) -> list[ev.RunRecord]:
    return [r for r in client.runs() if r.parent_run_id == parent]


def test_a_child_runs_as_a_run_of_its_own_and_its_outputs_are_the_nodes(
    client: actorflow.Client,
) -> None:
    b = WorkflowBuilder("sw-parent", version="1")
    call = b.workflow("call", "sw-child", inputs={"x": 41})
    b.output("y", "${{ nodes.call.output.y }}")
    wf = b.build()
    client.apply([_child(), wf])
    run = client.run("sw-parent", version="1")
    assert run.result(timeout=TIMEOUT) == {"y": 42}
    del call
    (child,) = _records(client, run.run_id)
    assert child.run_id == ev.child_run_id(run.run_id, ev.TaskRef(node="call"), "sw-child")
    assert (child.workflow, child.version, child.status) == ("sw-child", "1", RunStatus.SUCCEEDED)
    assert child.outputs == {"y": 42}
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["call"].kind == "workflow"
    assert nodes["call"].child_run_id == child.run_id


def test_a_failing_child_fails_its_node_with_the_childs_code(
    client: actorflow.Client,
) -> None:
    cb = WorkflowBuilder("sw-failing-child", version="1")
    cb.node(
        "load",
        "coded-fail@1",
        inputs={"code": "DB_DOWN", "message": "primary is down"},
        retry={"max_attempts": 1},
    )
    pb = WorkflowBuilder("sw-failing-parent", version="1")
    pb.workflow("call", "sw-failing-child@1")
    client.apply([cb.build(), pb.build()])
    run = client.run("sw-failing-parent", version="1")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.INTERRUPTED
    assert record.node == "call"
    assert record.error is not None
    assert record.error.code == "DB_DOWN"
    (child,) = _records(client, run.run_id)
    assert child.run_id in record.error.message
    assert record.error.details["child_run_id"] == child.run_id
    assert child.status is RunStatus.INTERRUPTED


def test_for_each_over_a_sub_workflow_starts_one_child_per_item(
    client: actorflow.Client,
) -> None:
    b = WorkflowBuilder("sw-fan", version="1")
    fan = b.workflow("fan", "sw-child@1", inputs={"x": "${{ item }}"}, for_each="${{ [1, 2, 3] }}")
    b.output("ys", "${{ nodes.fan.output.map(o, o.y) }}")
    client.apply([_child(), b.build()])
    run = client.run("sw-fan", version="1")
    assert run.result(timeout=TIMEOUT) == {"ys": [2, 3, 4]}
    del fan
    children = _records(client, run.run_id)
    assert len(children) == 3
    assert len({c.run_id for c in children}) == 3


def test_cancelling_the_parent_cancels_its_running_child(
    client: actorflow.Client, wait_status: Any
) -> None:
    cb = WorkflowBuilder("sw-waiting-child", version="1")
    cb.wait("hold", "sw-never", key="${{ run.id }}")
    pb = WorkflowBuilder("sw-cancelled-parent", version="1")
    pb.workflow("call", "sw-waiting-child@1")
    client.apply([cb.build(), pb.build()])
    run = client.run("sw-cancelled-parent", version="1")
    child_id = ev.child_run_id(run.run_id, ev.TaskRef(node="call"), "sw-waiting-child")
    child = client.get_run(_eventually(lambda: _known(client, child_id)))
    wait_status(child, RunStatus.WAITING)
    run.cancel("enough")
    record = run.wait(timeout=TIMEOUT)
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, ev.StopReason.CANCELLED)
    ended = child.wait(timeout=TIMEOUT)
    assert (ended.status, ended.reason) == (RunStatus.INTERRUPTED, ev.StopReason.CANCELLED)


def test_recursion_with_a_condition_runs_and_ends(client: actorflow.Client) -> None:
    b = WorkflowBuilder("sw-countdown", version="1")
    n = b.input("n", type="integer")
    deeper = b.workflow(
        "deeper", "sw-countdown", inputs={"n": "${{ inputs.n - 1 }}"}, when="${{ inputs.n > 0 }}"
    )
    b.output("n", n)
    b.output("depth", "${{ run.depth }}")
    b.output("below", deeper.output)
    client.apply(b.build())
    run = client.run("sw-countdown", {"n": 2}, version="1")
    result = run.result(timeout=TIMEOUT)
    assert result == {
        "n": 2,
        "depth": 0,
        "below": {"n": 1, "depth": 1, "below": {"n": 0, "depth": 2, "below": None}},
    }
    statuses = {i.node: i.status for i in run.nodes()}
    assert statuses == {"deeper": NodeStatus.SUCCEEDED}


def test_a_cycle_with_no_condition_and_an_unknown_workflow_are_refused(
    client: actorflow.Client,
) -> None:
    a = WorkflowBuilder("sw-ping", version="1")
    a.workflow("go", "sw-pong")
    b = WorkflowBuilder("sw-pong", version="1")
    b.workflow("go", "sw-ping")
    before = {w.ref for w in client.workflows()}
    with pytest.raises(DefinitionError, match="sw-ping -> sw-pong -> sw-ping"):
        client.apply([a.build(), b.build()])
    c = WorkflowBuilder("sw-orphan", version="1")
    c.workflow("go", "sw-no-such-workflow@1")
    with pytest.raises(DefinitionError, match="unknown workflow 'sw-no-such-workflow@1'"):
        client.apply(c.build())
    assert {w.ref for w in client.workflows()} == before


def _known(client: actorflow.Client, run_id: str) -> str | None:
    try:
        return client.get_run(run_id).status().run_id
    except actorflow.NotFoundError:
        return None


def _eventually(fn: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_runs_show_folds_the_childs_nodes_under_the_parents_node(
    client: actorflow.Client, cli_env: dict[str, str]
) -> None:
    b = WorkflowBuilder("sw-shown", version="1")
    b.node("first", "echo@1", inputs={"value": 1})
    b.workflow("call", "sw-child", inputs={"x": 1}, needs=["first"])
    b.node("last", "echo@1", inputs={"value": "${{ nodes.call.output.y }}"})
    client.apply([_child(), b.build()])
    run = client.run("sw-shown", version="1")
    assert run.result(timeout=TIMEOUT) is not None
    shown = subprocess.run(
        [sys.executable, "-m", "actorflow.cli", "runs", "show", run.run_id],
        env={**cli_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    nodes_table = shown.split("executions")[0].split("node ", 1)[-1]  # below its header
    rows = [r.rstrip() for r in nodes_table.splitlines()[1:] if "SUCCEEDED" in r]
    rows = [r[: len(r) - len(r.lstrip()) + len(r.split()[0])] for r in rows]  # the node cell
    # the child's node sits one level in, right under the node that started it
    assert [r.strip() for r in rows] == ["first", "call", "inc", "last"]
    indent = [len(r) - len(r.lstrip()) for r in rows]
    assert indent[2] == indent[1] + 2
    assert indent[0] == indent[1] == indent[3]
