"""Template groups: expansion (ids, references, gates), the checks made at apply, and the
run state machine running an expanded workflow. No Ray, no NATS."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_support import complete, only_stop, schedule, started

from actorflow.actors.run.state import RunState
from actorflow.definitions import events as ev
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.graph import check_template, check_workflow
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import StepTemplate, Workflow
from actorflow.definitions.templates import _rewrite_cel, catalog, check_uses, expand


def _template(name: str, nodes: list[dict[str, Any]], **spec: Any) -> StepTemplate:
    return StepTemplate.model_validate(
        {"metadata": {"name": name, "version": "1"}, "spec": {"nodes": nodes, **spec}}
    )


def _workflow(nodes: list[dict[str, Any]], **spec: Any) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": "wf"}, "spec": {"nodes": nodes, **spec}})


PREP = _template(
    "prep",
    [
        {"id": "fetch", "function": "echo@1", "inputs": {"url": "${{ inputs.url }}"}},
        {"id": "parse", "function": "echo@1", "inputs": {"x": "${{ nodes.fetch.output }}"}},
    ],
    inputs={"url": {"type": "string"}, "depth": {"type": "integer", "default": 2}},
    outputs={"parsed": "${{ nodes.parse.output }}", "depth": "${{ inputs.depth }}"},
)
TEMPLATES = catalog([PREP], {"prep": "1"})


def _expanded(wf: Workflow) -> Workflow:
    out, versions = expand(wf, TEMPLATES.get)
    assert versions in ({"prep@latest": "1"}, {"prep@1": "1"})
    return out


def test_a_group_expands_into_its_nodes_between_an_entry_and_an_exit() -> None:
    wf = _workflow(
        [
            {"id": "start", "function": "echo@1"},
            {"id": "prep", "template": "prep", "needs": ["start"], "inputs": {"url": "u"}},
            {"id": "use", "function": "echo@1", "inputs": {"p": "${{ nodes.prep.output }}"}},
        ]
    )
    out = _expanded(wf)
    nodes = {n.id: n for n in out.spec.nodes}
    assert list(nodes) == ["start", "prep.inputs", "prep.fetch", "prep.parse", "prep", "use"]
    assert nodes["prep.inputs"].value == {"url": "u", "depth": 2}  # the default filled in
    assert nodes["prep.inputs"].need_ids == ["start"]
    assert nodes["prep.fetch"].inputs == {"url": '${{ nodes["prep.inputs"].output.url }}'}
    assert nodes["prep.parse"].inputs == {"x": '${{ nodes["prep.fetch"].output }}'}
    assert nodes["prep"].need_ids == ["prep.parse"]  # the leaves
    assert check_workflow(out, known_functions={"echo@1"}, expanded=True) == []


def test_nested_groups_get_both_prefixes_and_keep_their_references() -> None:
    outer = _template(
        "outer",
        [{"id": "inner", "template": "prep@1", "inputs": {"url": "${{ inputs.u }}"}}],
        inputs={"u": {}},
        outputs={"got": "${{ nodes.inner.output.parsed }}"},
    )
    lookup = catalog([PREP, outer], {"prep": "1", "outer": "1"}).get
    wf = _workflow([{"id": "o", "template": "outer", "inputs": {"u": "x"}}])
    out, versions = expand(wf, lookup)
    ids = [n.id for n in out.spec.nodes]
    assert ids == ["o.inputs", "o.inner.inputs", "o.inner.fetch", "o.inner.parse", "o.inner", "o"]
    by_id = {n.id: n for n in out.spec.nodes}
    assert by_id["o.inner.inputs"].value == {"url": '${{ nodes["o.inputs"].output.u }}', "depth": 2}
    assert by_id["o"].value == {"got": '${{ nodes["o.inner"].output.parsed }}'}
    assert versions == {"outer@latest": "1", "prep@1": "1"}
    assert check_workflow(out, expanded=True) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("inputs.url", 'nodes["g.inputs"].output.url'),
        ("has(inputs.url)", 'has(nodes["g.inputs"].output.url)'),
        (
            "nodes.fetch.output + 'nodes.fetch inputs.x'",
            "nodes[\"g.fetch\"].output + 'nodes.fetch inputs.x'",
        ),
        ('nodes["fetch"].status', 'nodes["g.fetch"].status'),
        ("nodes.elsewhere.output", "nodes.elsewhere.output"),  # not the template's: kept
        ("run.id + x.inputs", "run.id + x.inputs"),
    ],
)
def test_references_are_rewritten_outside_string_literals(source: str, expected: str) -> None:
    assert _rewrite_cel(source, "g", {"fetch"}) == expected


@given(st.text(alphabet="abc .'\"", max_size=12))
def test_string_literals_survive_the_rewrite(text: str) -> None:
    literal = "'" + text.replace("\\", "").replace("'", "") + "'"
    assert _rewrite_cel(f"{literal} + inputs.a", "g", set()).startswith(literal)


def test_the_group_gates_the_template_the_way_a_node_would() -> None:
    wf = _workflow(
        [
            {"id": "start", "function": "echo@1"},
            {
                "id": "prep",
                "template": "prep",
                "needs": ["start"],
                "when": "${{ nodes.start.output == 'go' }}",
                "inputs": {"url": "u"},
            },
            {"id": "after", "function": "echo@1", "needs": [{"node": "prep", "on": "skipped"}]},
        ]
    )
    state = RunState(started(_expanded(wf)))
    (task,) = schedule(state)
    complete(state, task, "stop")
    (after,) = schedule(state)  # the whole group skipped: only the skip branch runs
    assert after.ref.node == "after"
    assert {
        n: state.nodes[n].status for n in ("prep.inputs", "prep.fetch", "prep.parse", "prep")
    } == dict.fromkeys(("prep.inputs", "prep.fetch", "prep.parse", "prep"), ev.NodeStatus.SKIPPED)


def test_an_expanded_run_computes_inputs_and_outputs_without_tasks() -> None:
    wf = _workflow(
        [{"id": "prep", "template": "prep", "inputs": {"url": "http://x"}}],
        outputs={"result": "${{ nodes.prep.output }}"},
    )
    state = RunState(started(_expanded(wf)))
    (fetch,) = schedule(state)
    assert (fetch.ref.node, fetch.inputs) == ("prep.fetch", {"url": "http://x"})
    complete(state, fetch, "page")
    (parse,) = schedule(state)
    assert parse.inputs == {"x": "page"}
    complete(state, parse, {"ok": True})
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.SUCCEEDED
    assert stop.outputs == {"result": {"parsed": {"ok": True}, "depth": 2}}
    assert "prep.inputs" in state.newly_settled
    assert "prep" in state.newly_settled


def test_a_value_node_that_cannot_render_fails_the_run_with_an_expression_error() -> None:
    wf = _workflow(
        [
            {"id": "a", "function": "echo@1"},
            {"id": "v", "value": {"x": "${{ nodes.a.output.missing }}"}},
        ]
    )
    state = RunState(started(wf))
    (task,) = schedule(state)
    complete(state, task, {"other": 1})
    stop = only_stop(state)
    assert (stop.status, stop.node) == (ev.RunStatus.INTERRUPTED, "v")
    assert stop.error is not None
    assert stop.error.code == "EXPRESSION_ERROR"


# --- checks ---------------------------------------------------------------------------------
def test_uses_are_checked_unknown_undeclared_missing() -> None:
    nodes = _workflow(
        [
            {"id": "a", "template": "nope@1"},
            {"id": "b", "template": "prep@1", "inputs": {"depth": 3, "extra": 1}},
        ]
    ).spec.nodes
    issues = {(i.field, i.message) for i in check_uses(nodes, TEMPLATES.get)}
    assert issues == {
        ("spec.nodes[0].template", "unknown template 'nope@1'"),
        ("spec.nodes[1].inputs.extra", "template prep@1 declares no input 'extra'"),
        ("spec.nodes[1].inputs", "missing required input 'url' of template prep@1"),
    }


def test_a_cycle_of_templates_is_refused_with_its_path() -> None:
    a = _template("a", [{"id": "x", "template": "b@1"}])
    b = _template("b", [{"id": "y", "template": "a@1"}])
    lookup = catalog([a, b], {}).get
    wf = _workflow([{"id": "top", "template": "a@1"}])
    (issue,) = check_uses(wf.spec.nodes, lookup)
    assert issue.message == "template cycle: a@1 -> b@1 -> a@1"
    with pytest.raises(DefinitionError, match="template cycle"):
        expand(wf, lookup)


def test_user_ids_may_not_be_dotted_and_inputs_is_reserved_in_templates() -> None:
    wf = _workflow([{"id": "a.b", "function": "echo@1"}])
    assert [i.field for i in check_workflow(wf)] == ["spec.nodes[0].id"]
    template = _template("t", [{"id": "inputs", "function": "echo@1"}])
    assert [i.field for i in check_template(template)] == ["spec.nodes[0].id"]


def test_a_group_cannot_be_an_error_branchs_need() -> None:
    wf = _workflow(
        [
            {"id": "prep", "template": "prep", "inputs": {"url": "u"}},
            {"id": "h", "function": "echo@1", "needs": [{"node": "prep", "on": "failed"}]},
        ]
    )
    (issue,) = check_workflow(wf)
    assert issue.field == "spec.nodes[1].needs[0]"
    assert "template group" in issue.message


def test_template_nodes_refuse_what_belongs_inside() -> None:
    with pytest.raises(ValueError, match="template node takes needs, when and inputs only"):
        _workflow([{"id": "p", "template": "prep", "forEach": "${{ [1] }}"}])


def test_the_loader_reports_template_problems_with_file_and_line() -> None:
    text = """
apiVersion: actorflow/v1
kind: Template
metadata: {name: greet}
spec:
  inputs: {who: {type: string}}
  nodes:
    - id: say
      function: echo@1
      inputs: {text: "${{ inputs.who }}"}
  outputs: {said: "${{ nodes.say.output }}"}
---
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: hello}
spec:
  nodes:
    - id: hi
      template: greet
      inputs:
        whom: x
"""
    with pytest.raises(DefinitionError) as caught:
        load_text(text, file="t.yaml")
    messages = {(i.line, i.field, i.message) for i in caught.value.issues}
    assert (
        21,
        "spec.nodes[0].inputs.whom",
        "template greet@1 declares no input 'whom'",
    ) in messages
    assert any(field == "spec.nodes[0].inputs" for _, field, _ in messages)
