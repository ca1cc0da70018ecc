"""Runs end to end on a real Ray and a real nats-server: shapes, data, failures, scale."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import ray
from nats.js import JetStreamContext

import actorflow
from actorflow import NodeInfo, RunFailedError, RunStatus, WorkflowBuilder
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev

TIMEOUT = 120


def _run(
    client: actorflow.Client, wf: actorflow.Workflow, inputs: dict[str, Any] | None = None
) -> actorflow.Run:
    client.apply(wf)
    return client.run(wf.metadata.name, inputs or {}, version=wf.metadata.version)


def _by_node(nodes: list[NodeInfo]) -> dict[str, NodeInfo]:
    return {n.key: n for n in nodes}


def test_chain_passes_data_in_order(client: actorflow.Client) -> None:
    b = WorkflowBuilder("chain", version="1")
    n = b.input("n", type="integer")
    prev = b.node("s0", "add@1", inputs={"a": n, "b": 1})
    for i in range(1, 10):
        prev = b.node(f"s{i}", "add@1", inputs={"a": prev.output, "b": 1})
    b.output("result", prev.output)
    run = _run(client, b.build(), {"n": 5})
    assert run.result(timeout=TIMEOUT) == {"result": 15}
    nodes = _by_node(run.nodes())
    assert all(n.status == "SUCCEEDED" and n.attempt == 1 for n in nodes.values())
    for i in range(1, 10):  # each step started only after its predecessor finished
        assert nodes[f"s{i}"].started_at >= nodes[f"s{i - 1}"].finished_at


def test_diamond_joins_both_branches(client: actorflow.Client) -> None:
    b = WorkflowBuilder("diamond", version="1")
    top = b.node("top", "echo@1", inputs={"value": 3})
    left = b.node("left", "add@1", inputs={"a": top.output, "b": 10})
    right = b.node("right", "add@1", inputs={"a": top.output, "b": 20})
    bottom = b.node("bottom", "add@1", inputs={"a": left.output, "b": right.output})
    b.output("sum", bottom.output)
    run = _run(client, b.build())
    assert run.result(timeout=TIMEOUT) == {"sum": 36}
    nodes = _by_node(run.nodes())
    assert nodes["bottom"].started_at >= max(nodes["left"].finished_at, nodes["right"].finished_at)


def test_fan_out_of_100_and_fan_in(client: actorflow.Client) -> None:
    b = WorkflowBuilder("fan100", version="1")
    src = b.node("src", "echo@1", inputs={"value": 1})
    mids = [b.node(f"m{i}", "add@1", inputs={"a": src.output, "b": i}) for i in range(100)]
    join = b.node("join", "total@1", inputs={"values": [m.output for m in mids]})
    b.output("total", join.output)
    run = _run(client, b.build())
    assert run.result(timeout=TIMEOUT) == {"total": sum(1 + i for i in range(100))}
    assert len(run.nodes()) == 102


def test_for_each_fans_out_over_data(client: actorflow.Client) -> None:
    wf = actorflow.load_text(
        """
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: foreach, version: "1"}
spec:
  inputs: {words: {type: array}}
  nodes:
    - id: lens
      function: length@1
      forEach: "${{ inputs.words }}"
      inputs: {text: "${{ item }}"}
    - id: sum
      function: total@1
      inputs: {values: "${{ nodes.lens.output }}"}
  outputs: {lengths: "${{ nodes.lens.output }}", total: "${{ nodes.sum.output }}"}
"""
    )[0]
    assert isinstance(wf, actorflow.Workflow)
    run = _run(client, wf, {"words": ["a", "bb", "ccc", ""]})
    assert run.result(timeout=TIMEOUT) == {"lengths": [1, 2, 3, 0], "total": 6}
    keys = {n.key for n in run.nodes()}
    assert {"lens[0]", "lens[3]", "sum"} <= keys
    empty = _run(client, wf, {"words": []})
    assert empty.result(timeout=TIMEOUT) == {"lengths": [], "total": 0}


def test_multi_root_dag(client: actorflow.Client) -> None:
    b = WorkflowBuilder("multiroot", version="1")
    roots = [b.node(f"r{i}", "echo@1", inputs={"value": i}) for i in range(3)]
    j = b.node("j", "total@1", inputs={"values": [r.output for r in roots]})
    lone = b.node("lone", "echo@1", inputs={"value": "alone"})
    b.output("sum", j.output)
    b.output("lone", lone.output)
    run = _run(client, b.build())
    assert run.result(timeout=TIMEOUT) == {"sum": 3, "lone": "alone"}


def test_payload_over_inline_limit_travels_by_address(client: actorflow.Client) -> None:
    size = client.settings.inline_limit * 3
    b = WorkflowBuilder("bigdata", version="1")
    blob = b.node("blob", "big@1", inputs={"size": size})
    n = b.node("len", "length@1", inputs={"text": blob.output})
    b.output("n", n.output)
    run = _run(client, b.build())
    assert run.result(timeout=TIMEOUT) == {"n": size}
    # The witness is the store itself: the history holds only an address, and the object
    # under it is the value, named by its own digest.
    [done] = [
        rec.event
        for rec in client._call(replay(client._async.js, run.run_id))
        if isinstance(rec.event, ev.TaskCompleted) and rec.event.task.node == "blob"
    ]
    ref = done.output.blob
    assert ref is not None
    assert done.output.inline is None
    data = client._call(_object(client._async.js, ref))
    assert data == json.dumps("x" * size).encode()
    assert ref.size == len(data)
    assert ref.name == hashlib.sha256(data).hexdigest()


async def _object(js: JetStreamContext, ref: ev.BlobRef) -> bytes:
    store = await js.object_store(ref.bucket)
    return (await store.get(ref.name)).data or b""


def test_async_handler_and_step_context(client: actorflow.Client) -> None:
    b = WorkflowBuilder("ctx", version="1")
    a = b.node("a", "async-echo@1", inputs={"value": {"k": [1, 2]}})
    w = b.node("who", "whoami@1", needs=["a"])
    b.output("a", a.output)
    b.output("who", w.output)
    run = _run(client, b.build())
    out = run.result(timeout=TIMEOUT)
    assert out["a"] == {"k": [1, 2]}
    assert out["who"]["run_id"] == run.run_id
    assert out["who"]["key"] == f"{run.run_id}.who.1"
    assert out["who"]["attempt"] == 1


def test_failing_handler_interrupts_run_with_error_and_traceback(client: actorflow.Client) -> None:
    b = WorkflowBuilder("failing", version="1")
    ok = b.node("ok", "echo@1", inputs={"value": 1})
    bad = b.node("bad", "fail@1", inputs={"message": "disk full"}, needs=[ok.id])
    b.node("after", "echo@1", inputs={"value": bad.output})
    run = _run(client, b.build())
    with pytest.raises(RunFailedError) as info:
        run.result(timeout=TIMEOUT)
    err = info.value
    assert err.status == "INTERRUPTED"
    assert err.node == "bad"
    assert err.error.code == "HANDLER_ERROR"
    assert "disk full" in err.error.message
    assert "ValueError" in err.error.type
    assert "Traceback" in err.error.traceback
    assert "af_test_steps.py" in err.error.traceback
    record = run.status()
    assert record.status is RunStatus.INTERRUPTED
    nodes = _by_node(run.nodes())
    assert nodes["ok"].status == "SUCCEEDED"
    assert nodes["bad"].status == "FAILED"
    assert nodes["after"].status == "PENDING"  # never started


def test_step_error_code_and_details(client: actorflow.Client) -> None:
    b = WorkflowBuilder("coded", version="1")
    b.node("x", "coded-fail@1", inputs={"code": "DB_DOWN", "message": "primary unreachable"})
    run = _run(client, b.build())
    with pytest.raises(RunFailedError) as info:
        run.result(timeout=TIMEOUT)
    assert info.value.error.code == "DB_DOWN"
    assert info.value.error.message == "primary unreachable"
    assert info.value.error.retryable is False
    assert info.value.error.details == {"hint": "see runbook"}


def test_non_json_output_fails_the_node_clearly(client: actorflow.Client) -> None:
    b = WorkflowBuilder("notjson", version="1")
    b.node("x", "not-json@1")
    run = _run(client, b.build())
    with pytest.raises(RunFailedError) as info:
        run.result(timeout=TIMEOUT)
    assert info.value.error.code == "OUTPUT_NOT_JSON"
    assert "set" in info.value.error.message


def test_expression_error_at_run_time_names_the_node(client: actorflow.Client) -> None:
    b = WorkflowBuilder("badexpr", version="1")
    a = b.node("a", "echo@1", inputs={"value": {"x": 1}})
    b.node("b", "echo@1", inputs={"value": a.out("missing")})
    run = _run(client, b.build())
    with pytest.raises(RunFailedError) as info:
        run.result(timeout=TIMEOUT)
    assert info.value.node == "b"
    assert info.value.error.code == "EXPRESSION_ERROR"
    assert "missing" in info.value.error.message


def test_fifty_concurrent_runs(client: actorflow.Client) -> None:
    b = WorkflowBuilder("conc", version="1")
    x = b.input("x", type="integer")
    a = b.node("a", "add@1", inputs={"a": x, "b": 1})
    c = b.node("c", "add@1", inputs={"a": a.output, "b": 1})
    b.output("y", c.output)
    client.apply(b.build())
    runs = [client.run("conc", {"x": i}) for i in range(50)]
    assert len({r.run_id for r in runs}) == 50
    results = [r.result(timeout=TIMEOUT) for r in runs]
    assert results == [{"y": i + 2} for i in range(50)]
    listed = {r.run_id for r in client.runs(status="SUCCEEDED", workflow="conc")}
    assert {r.run_id for r in runs} <= listed


def test_same_run_id_starts_one_run(client: actorflow.Client) -> None:
    b = WorkflowBuilder("idem", version="1")
    b.node("w", "whoami@1")
    b.output("who", "${{ nodes.w.output }}")
    client.apply(b.build())
    first = client.run("idem", run_id="idem-fixed-1")
    second = client.run("idem", run_id="idem-fixed-1")
    assert first.run_id == second.run_id == "idem-fixed-1"
    first.result(timeout=TIMEOUT)
    assert len(first.nodes()) == 1
    assert first.nodes()[0].attempt == 1


def test_a_run_id_that_is_no_subject_token_is_refused_and_starts_nothing(
    client: actorflow.Client,
) -> None:
    before = {r.run_id for r in client.runs(workflow="idem")}
    for bad in ("idem.x", "idem >", "idem-*"):
        with pytest.raises(actorflow.InputError, match="run_id"):
            client.run("idem", run_id=bad)
    # The controller refuses it too, whoever asks (here: over Ray, as the SDK's fallback).
    with pytest.raises(actorflow.InputError, match="run_id"):
        ray.get(client._async._controller.start_run.remote("idem", {}, "1", "idem.y", None))
    assert {r.run_id for r in client.runs(workflow="idem")} == before


def test_inputs_are_checked_before_anything_starts(client: actorflow.Client) -> None:
    b = WorkflowBuilder("typed", version="1")
    n = b.input("n", type="integer")
    b.node("a", "add@1", inputs={"a": n, "b": 1})
    client.apply(b.build())
    before = len(client.runs(workflow="typed"))
    with pytest.raises(actorflow.InputError, match="missing required input 'n'"):
        client.run("typed", {})
    with pytest.raises(actorflow.InputError, match="must be integer"):
        client.run("typed", {"n": "three"})
    with pytest.raises(actorflow.InputError, match="unknown input"):
        client.run("typed", {"n": 1, "m": 2})
    assert len(client.runs(workflow="typed")) == before


def test_unknown_workflow_and_function(client: actorflow.Client) -> None:
    with pytest.raises(actorflow.NotFoundError, match="workflow 'nope' not found"):
        client.run("nope")
    b = WorkflowBuilder("ghost", version="1")
    b.node("a", "ghost-fn@1")
    with pytest.raises(actorflow.DefinitionError, match="ghost-fn@1"):
        client.apply(b.build())
    assert "ghost" not in {w.metadata.name for w in client.workflows()}
