"""Graph edits on a workflow's text: exact text kept, refusals with the path, inverses, and
the diff back from text to ops."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorflow.definitions.edit import (
    AddDependency,
    AddNode,
    GraphOp,
    RemoveDependency,
    RemoveNode,
    UpdateNode,
    add_dependency,
    add_node,
    apply_op,
    apply_ops,
    parse_ops,
    remove_dependency,
    remove_node,
    update_node,
)
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.graph_diff import diff_graph
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Workflow

TEXT = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: demo, version: "1"}   # the demo
spec:
  inputs:
    n: {type: integer}
  nodes:
    # fetch it
    - id: fetch
      function: "add@1"
      inputs: {a: '${{ inputs.n }}', b: 2}

    - id: report   # tail
      function: add@1
      needs: [fetch]
      inputs:
        a: "${{ nodes.fetch.output }}"
        b: 3
  outputs:
    total: "${{ nodes.report.output }}"
"""


def _workflow(text: str) -> Workflow:
    (wf,) = [d for d in load_text(text) if isinstance(d, Workflow)]
    return wf


def test_add_node_appends_a_block_item_and_keeps_every_other_byte() -> None:
    out = add_node(TEXT, {"id": "notify", "function": "mail@1", "needs": ["report"]})
    lines = TEXT.splitlines(keepends=True)
    added = ["    - id: notify\n", "      function: mail@1\n", "      needs: [report]\n"]
    assert out == "".join([*lines[:18], *added, *lines[18:]])
    assert [n.id for n in _workflow(out).spec.nodes] == ["fetch", "report", "notify"]


def test_add_node_at_the_front_goes_before_the_comment_of_the_first() -> None:
    out = add_node(TEXT, {"id": "start", "value": {}}, index=0)
    assert "  nodes:\n    - id: start\n      value: {}\n    # fetch it\n" in out
    assert out.replace("    - id: start\n      value: {}\n", "") == TEXT


def test_remove_node_takes_its_comment_and_leaves_the_rest() -> None:
    text = TEXT.replace('    total: "${{ nodes.report.output }}"\n', "    total: 1\n")
    out = remove_node(text, "report")
    report = text[text.index("\n    - id: report") : text.index("  outputs")]
    assert out == text.replace(report, "")  # the blank line above it went with it
    assert "b: 2}\n  outputs:" in out


def test_add_dependency_extends_a_flow_list_in_place() -> None:
    text = add_node(TEXT, {"id": "c", "function": "f@1", "needs": ["fetch"]})
    out = add_dependency(text, "c", "report", on="failed")
    assert "      needs: [fetch, {node: report, 'on': failed}]\n" in out
    assert _workflow(out).spec.nodes[2].need_kinds == {"fetch": "succeeded", "report": "failed"}


def test_add_dependency_writes_needs_after_the_kind_when_there_is_none() -> None:
    text = TEXT.replace("needs: [fetch]\n      ", "").replace("nodes.fetch.output", "inputs.n")
    out = add_dependency(text, "report", "fetch")
    assert "    - id: report   # tail\n      function: add@1\n      needs: [fetch]\n" in out
    assert out.count("\n") == text.count("\n") + 1


def test_block_needs_gain_and_lose_a_line() -> None:
    text = TEXT.replace("needs: [fetch]", "needs:\n        - fetch  # first")
    text = add_node(text, {"id": "c", "value": {}}, index=1)
    out = add_dependency(text, "report", "c")
    assert "needs:\n        - fetch  # first\n        - c\n" in out
    assert remove_dependency(out, "report", "c") == text


def test_removing_the_last_need_drops_the_key() -> None:
    text = TEXT.replace("nodes.fetch.output", "inputs.n")
    out = remove_dependency(text, "report", "fetch")
    assert out == text.replace("      needs: [fetch]\n", "")


def test_update_rewrites_changed_fields_only() -> None:
    out = update_node(TEXT, "fetch", {"function": "mul@2", "retry": {"maxAttempts": 3}})
    assert out == TEXT.replace(
        "      function: \"add@1\"\n      inputs: {a: '${{ inputs.n }}', b: 2}\n",
        "      function: mul@2\n      inputs: {a: '${{ inputs.n }}', b: 2}\n"
        "      retry: {maxAttempts: 3}\n",
    )
    dropped = update_node(TEXT, "report", {"inputs": {"a": 1}})
    assert "      inputs: {a: 1}\n  outputs:" in dropped


def test_the_id_cannot_change() -> None:
    with pytest.raises(DefinitionError, match="id cannot change"):
        update_node(TEXT, "fetch", {"id": "other"})


def test_a_cycle_is_refused_with_its_path() -> None:
    with pytest.raises(DefinitionError) as caught:
        add_dependency(TEXT, "fetch", "report", file="wf.yaml")
    (issue,) = caught.value.issues
    assert issue.message == "edit refused: cycle: fetch -> report -> fetch"
    assert (issue.file, issue.field) == ("wf.yaml", "spec.nodes[0]")
    assert issue.line == 9  # where `fetch` is written


def test_removing_a_needed_node_is_refused_with_each_reference() -> None:
    with pytest.raises(DefinitionError) as caught:
        remove_node(TEXT, "fetch", file="wf.yaml")
    found = {(i.field, i.line, i.message) for i in caught.value.issues}
    assert found == {
        ("spec.nodes[0].needs[0]", 15, "edit refused: needs unknown node 'fetch'"),
        ("spec.nodes[0].inputs.a", 17, "edit refused: expression reads unknown node 'fetch'"),
    }


def test_a_file_that_does_not_parse_is_reported_where_and_nothing_changes() -> None:
    broken = TEXT.replace("    - id: report", "    - id: [report")
    with pytest.raises(DefinitionError) as caught:
        add_dependency(broken, "report", "fetch", file="wf.yaml")
    (issue,) = caught.value.issues
    assert issue.file == "wf.yaml"
    assert issue.line is not None
    assert issue.line >= 13
    assert issue.message.startswith("invalid YAML")


def test_a_file_that_does_not_validate_reports_its_own_issues() -> None:
    bad = TEXT.replace('function: "add@1"', "function: add@1\n      sleep: 5")
    with pytest.raises(DefinitionError) as caught:
        add_node(bad, {"id": "x", "value": {}}, file="wf.yaml")
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("wf.yaml", 9, "spec.nodes[0]")
    assert "exactly one of" in issue.message


def test_unknown_nodes_and_bad_indexes_are_refused() -> None:
    with pytest.raises(DefinitionError, match="no node 'ghost'"):
        remove_node(TEXT, "ghost")
    with pytest.raises(DefinitionError, match="out of range"):
        add_node(TEXT, {"id": "x", "value": {}}, index=7)
    with pytest.raises(DefinitionError, match="does not need"):
        remove_dependency(TEXT, "fetch", "report")


def test_flow_style_nodes_are_rewritten_whole() -> None:
    text = TEXT.replace(
        "    - id: fetch\n      function: \"add@1\"\n      inputs: {a: '${{ inputs.n }}', b: 2}\n",
        "    - {id: fetch, function: add@1}\n",
    )
    out = update_node(text, "fetch", {"timeout": 5})
    assert "    - {id: fetch, function: add@1, timeout: 5}\n" in out
    assert out.replace(", timeout: 5", "") == text


def test_a_crlf_file_keeps_its_line_ends() -> None:
    text = TEXT.replace("\n", "\r\n")
    out = add_node(text, {"id": "notify", "function": "mail@1", "needs": ["report"]})
    assert out.count("\r\n") == out.count("\n") == text.count("\n") + 3
    assert remove_node(out, "notify") == text
    out = add_node(text, {"id": "c", "value": {}})
    assert add_dependency(out, "report", "c") == out.replace("[fetch]", "[fetch, c]")


FUNCTION = """\
apiVersion: actorflow/v1
kind: Function
metadata: {name: add}
spec: {handler: "m:add"}
"""


def test_in_a_file_of_several_documents_only_the_named_workflow_changes() -> None:
    other = TEXT.replace("name: demo", "name: other")
    text = f"{FUNCTION}---\n{TEXT}---\n{other}"
    with pytest.raises(DefinitionError, match="several workflows \\(demo, other\\)"):
        remove_dependency(text, "report", "fetch")
    out = update_node(text, "fetch", {"timeout": 9}, workflow="other")
    assert out[: len(FUNCTION) + 4 + len(TEXT)] == f"{FUNCTION}---\n{TEXT}"
    fetch_inputs = "      inputs: {a: '${{ inputs.n }}', b: 2}\n"
    assert out.endswith(other.replace(fetch_inputs, fetch_inputs + "      timeout: 9\n"))
    with pytest.raises(DefinitionError, match="no native Workflow named 'ghost'"):
        remove_node(text, "fetch", workflow="ghost")


def test_ops_travel_as_json() -> None:
    ops = parse_ops(json.dumps([{"type": "add_dependency", "node": "a", "needs": "b"}]))
    assert ops == [AddDependency(node="a", needs="b")]
    with pytest.raises(DefinitionError):
        parse_ops('[{"type": "teleport"}]')


def test_diff_lists_node_and_dependency_changes() -> None:
    new = add_node(TEXT, {"id": "notify", "function": "mail@1", "needs": ["report"]})
    new = update_node(new, "fetch", {"retry": {"maxAttempts": 2}})
    new = remove_dependency(new, "report", "fetch")
    ops = diff_graph(TEXT, new)
    assert ops == [
        RemoveDependency(node="report", needs="fetch"),
        UpdateNode(id="fetch", values={"retry": {"maxAttempts": 2}}),
        AddNode(node={"id": "notify", "function": "mail@1"}, index=2),
        AddDependency(node="report", needs="fetch", via="data"),
        AddDependency(node="notify", needs="report"),
    ]
    assert load_text(apply_ops(TEXT, ops).text) == load_text(new)


def test_diff_of_equal_texts_is_empty() -> None:
    assert diff_graph(TEXT, TEXT.replace("# fetch it", "# another comment")) == []


# --- properties ---------------------------------------------------------------------------


@st.composite
def workflows(draw: st.DrawFn) -> str:
    """A valid workflow in varied spelling: comments, blank lines, flow and block `needs`,
    `{node, on}` entries, quoted values, data references and flow-mapping nodes."""
    count = draw(st.integers(1, 7))
    lines = [
        "apiVersion: actorflow/v1",
        "kind: Workflow",
        "metadata: {name: gen, version: '1'}  # generated",
        "spec:",
        "  inputs: {go: {type: boolean, default: true}}",
        "  nodes:",
    ]
    for i in range(count):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        if draw(st.booleans()):
            lines.append("")
        if draw(st.booleans()):
            lines.append(f"    # node {i}")
        if not deps and draw(st.integers(0, 4)) == 0:
            lines.append(f"    - {{id: n{i}, function: f@1}}")
            continue
        lines.append(f"    - id: n{i}" + ("  # id" if draw(st.booleans()) else ""))
        lines.append('      function: "f@1"' if draw(st.booleans()) else "      function: f@1")
        entries = [
            f"n{d}" if draw(st.booleans()) else f"{{node: n{d}, on: finished}}" for d in deps
        ]
        if entries and draw(st.booleans()):
            comment = "  # waits" if draw(st.booleans()) else ""
            lines.append(f"      needs: [{', '.join(entries)}]{comment}")
        elif entries:
            lines.append("      needs:")
            lines += [f"        - {e}" for e in entries]
        if draw(st.booleans()):
            lines.append('      when: "${{ inputs.go }}"  # a condition')
        if i and draw(st.booleans()):
            read = draw(st.integers(0, i - 1))
            lines.append(f"      inputs: {{x: '${{{{ nodes.n{read}.output }}}}'}}")
        elif draw(st.booleans()):
            lines += ["      inputs:", "        a: 1", '        b: "two"']
        elif draw(st.booleans()):
            lines += ["      inputs:", "        script: |", "          echo hi", ""]
    if draw(st.booleans()):
        lines.append("  # the end")
    if draw(st.booleans()):  # another document before it
        lines = [*FUNCTION.splitlines(), "---", *lines]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + (newline if draw(st.booleans()) else "")


@st.composite
def ops_for(draw: st.DrawFn, text: str) -> GraphOp:
    """Any op on `text`'s nodes; many are refused (cycles, dangling references)."""
    wf = _workflow(text)
    ids = [n.id for n in wf.spec.nodes]
    pick = st.sampled_from(ids)
    kind = draw(st.sampled_from(["dep", "undep", "update", "remove", "add"]))
    if kind == "add":
        needs = draw(st.lists(pick, max_size=2, unique=True))
        node: dict[str, Any] = {"id": f"x{draw(st.integers(0, 99))}", "function": "g@1"}
        if needs:
            node["needs"] = needs
        if draw(st.booleans()):
            node["inputs"] = {"v": draw(st.sampled_from([1, "yes", "a: b", None, [1, "2"]]))}
        return AddNode(node=node, index=draw(st.none() | st.integers(0, len(ids))))
    if kind == "remove":
        return RemoveNode(id=draw(pick))
    if kind == "update":
        values = draw(
            st.sampled_from(
                [{"function": "h@2"}, {"retry": {"maxAttempts": 2}}, {"inputs": {"k": "on"}}, {}]
            )
        )
        unset = draw(st.sampled_from([[], ["inputs"]]))
        return UpdateNode(id=draw(pick), values=values, unset=unset)
    on = draw(st.sampled_from(["succeeded", "failed"]))
    if kind == "dep":
        pair = draw(st.lists(pick, min_size=2, max_size=2, unique=len(ids) > 1))
        earlier, later = sorted(pair, key=ids.index)
        if draw(st.integers(0, 3)) == 0:  # backwards: a cycle when a path leads back
            earlier, later = later, earlier
        return AddDependency(node=later, needs=earlier, on=on)
    needed = [(n.id, dep) for n in wf.spec.nodes for dep in n.need_ids]
    node, dep = draw(st.sampled_from(needed)) if needed else (draw(pick), draw(pick))
    return RemoveDependency(node=node, needs=dep)


def _graph(text: str) -> dict[str, Any]:
    """What a run depends on, order aside: each node's fields and its needs as a set."""
    wf = _workflow(text)
    return {
        n.id: (n.model_dump(exclude={"needs"}), sorted(n.need_kinds.items())) for n in wf.spec.nodes
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_op_then_its_inverse_gives_the_text_back(data: st.DataObject) -> None:
    text = data.draw(workflows())
    op = data.draw(ops_for(text))
    try:
        edit = apply_op(text, op)
    except DefinitionError:
        return  # refused: nothing to undo (refusals are checked above)
    assert apply_ops(edit.text, edit.inverse).text == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_keep_the_file_valid_and_the_diff_replays_them(
    data: st.DataObject,
) -> None:
    original = text = data.draw(workflows())
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(ops_for(text))
        try:
            edited = apply_op(text, op).text
        except DefinitionError as exc:
            refused = exc.issues
            assert all(i.message.startswith("edit refused") for i in refused), refused
            continue
        load_text(edited)  # the native loader accepts every accepted edit
        untouched = set(text.splitlines()) - set(edited.splitlines())
        assert len(untouched) <= 12  # an edit rewrites a node's lines at most
        text = edited
    replayed = apply_ops(original, diff_graph(original, text)).text
    assert _graph(replayed) == _graph(text)


def test_the_fast_reader_reads_what_the_loader_reads() -> None:
    from actorflow.definitions.yaml_text import WorkflowText

    text = TEXT.replace(
        "  inputs:\n    n: {type: integer}\n",
        "  inputs:\n    n: {type: integer, default: 0x1F}\n"
        "    m: &m {type: boolean, default: on}\n    k: *m\n"
        "    d: {type: number, default: 1_000.5}\n",
    )
    (wf,) = load_text(text)
    assert isinstance(wf, Workflow)
    data = WorkflowText.read(text, "x").data
    assert Workflow.model_validate(data) == wf
    assert data["spec"]["inputs"]["n"]["default"] == 31
    assert data["spec"]["inputs"]["m"]["default"] == "on"  # YAML 1.2 booleans only
    assert data["spec"]["inputs"]["d"]["default"] == 1000.5
