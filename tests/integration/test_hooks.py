"""Workflow hooks: called at each point once, failures reported on the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import actorflow
from actorflow import WorkflowBuilder

STEPS = Path(__file__).parent / "steps"
TIMEOUT = 120


def _hooked(name: str, hooks: list[dict[str, object]]) -> actorflow.Workflow:
    b = WorkflowBuilder(name, version="1")
    a = b.node("a", "echo@1", inputs={"value": 1})
    b.node("b", "add@1", inputs={"a": a.output, "b": 1})
    wf = b.build()
    spec = wf.spec.model_copy(
        update={"hooks": [actorflow.HookSpec.model_validate(h) for h in hooks]}
    )
    return wf.model_copy(update={"spec": spec})


def test_hooks_fire_once_per_point_and_node(client: actorflow.Client) -> None:
    # The run actor imports the hook module: put the steps folder on its path through a
    # function whose codeDir is that folder (a function-reference hook).
    hook_fn = actorflow.function(
        "hook-record", "af_test_hooks:record", cpus=0.1, code_dir=str(STEPS)
    )
    client.apply(hook_fn)
    wf = _hooked(
        "hooked",
        [
            {"on": "before_run", "call": "hook-record@1"},
            {"on": "before_node", "call": "hook-record@1"},
            {"on": "after_node", "call": "hook-record@1", "nodes": ["b"]},
            {"on": "after_run", "call": "hook-record@1"},
        ],
    )
    client.apply(wf)
    run = client.run("hooked")
    assert run.result(timeout=TIMEOUT) == {}
    lines = [
        json.loads(x)
        for x in Path(f"/tmp/actorflow-test-hooks/{run.run_id}").read_text().splitlines()
    ]
    assert [(x["point"], x["node"]) for x in lines] == [
        ("before_run", None),
        ("before_node", "a"),
        ("before_node", "b"),
        ("after_node", "b"),
        ("after_run", None),
    ]
    assert lines[3]["status"] == "SUCCEEDED"
    assert lines[4]["status"] == "SUCCEEDED"
    assert run.status().hook_failures == []


def test_a_failing_hook_is_reported_and_the_run_goes_on(client: actorflow.Client) -> None:
    client.apply(
        actorflow.function("hook-explode", "af_test_hooks:explode", cpus=0.1, code_dir=str(STEPS))
    )
    wf = _hooked("hook-fails", [{"on": "after_node", "call": "hook-explode@1", "nodes": ["a"]}])
    client.apply(wf)
    run = client.run("hook-fails")
    run.result(timeout=TIMEOUT)
    failures = run.status().hook_failures
    assert len(failures) == 1
    assert "after_node a hook-explode@1" in failures[0]
    assert "hook exploded at after_node" in failures[0]


def test_unknown_hook_function_is_refused_at_apply(client: actorflow.Client) -> None:
    wf = _hooked("hook-ghost", [{"on": "after_run", "call": "no-such-hook@1"}])
    with pytest.raises(actorflow.DefinitionError, match="no-such-hook@1"):
        client.apply(wf)
