"""Graph checks: references resolve, the graph is a DAG; properties over random DAGs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.expressions import is_expression
from actorflow.definitions.graph import (
    check_workflow,
    dependencies,
    topological_order,
    validate_workflow,
)
from actorflow.definitions.loader import dump, load_text
from actorflow.definitions.models import Need, Workflow


def _wf(nodes: list[dict[str, Any]], **spec: Any) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": "w"}, "spec": {"nodes": nodes, **spec}})


def _messages(wf: Workflow, **kwargs: Any) -> list[tuple[str | None, str]]:
    return [(i.field, i.message) for i in check_workflow(wf, **kwargs)]


def test_sound_workflow_has_no_issues() -> None:
    wf = _wf(
        [
            {"id": "a", "function": "f@1", "inputs": {"x": "${{ inputs.n }}"}},
            {"id": "b", "function": "f@1", "forEach": "${{ nodes.a.output }}",
             "inputs": {"v": "${{ item }}", "i": "${{ index }}"}},
            {"id": "c", "function": "g", "needs": ["a"],
             "inputs": {"all": "${{ nodes.b.output }}"}},
        ],
        inputs={"n": {"type": "integer"}},
        outputs={"r": "${{ nodes.c.output }}", "lit": [1, "two"]},
    )  # fmt: skip
    assert check_workflow(wf, known_functions={"f@1", "g@3"}) == []
    assert dependencies(wf) == {"a": set(), "b": {"a"}, "c": {"a", "b"}}
    assert topological_order(wf) == ["a", "b", "c"]
    assert validate_workflow(wf) is wf


def test_unknown_references() -> None:
    wf = _wf(
        [
            {"id": "a", "function": "f@1", "needs": ["zz"],
             "inputs": {"x": "${{ inputs.missing }}", "y": {"deep": ["${{ nodes.q.output }}"]}}},
        ],
        outputs={"o": "${{ nodes.nope.output + inputs.gone }}"},
    )  # fmt: skip
    assert _messages(wf) == [
        ("spec.nodes[0].needs[0]", "needs unknown node 'zz'"),
        ("spec.nodes[0].inputs.x", "expression reads undeclared input 'missing'"),
        ("spec.nodes[0].inputs.y", "expression reads unknown node 'q'"),
        ("spec.outputs.o", "expression reads unknown node 'nope'"),
        ("spec.outputs.o", "expression reads undeclared input 'gone'"),
    ]


def test_self_references() -> None:
    wf = _wf(
        [{"id": "a", "function": "f", "needs": ["a"], "inputs": {"x": "${{ nodes.a.output }}"}}]
    )
    assert _messages(wf) == [
        ("spec.nodes[0].needs[0]", "node 'a' needs itself"),
        ("spec.nodes[0].inputs.x", "node 'a' reads its own output"),
    ]


def test_expression_errors_carry_the_nested_field() -> None:
    wf = _wf([{"id": "a", "function": "f", "inputs": {"x": {"y": ["ok", "${{ 1 + }}"]}}}])
    ((field, message),) = _messages(wf)
    assert field == "spec.nodes[0].inputs.x.y[1]"
    assert message.startswith("expression '1 +': ")


def test_loop_variables() -> None:
    wf = _wf(
        [
            {"id": "a", "function": "f", "inputs": {"x": "${{ index + 1 }}",
                                                     "s": "${{ 'item' + nodes.b.output.item }}"}},
            {"id": "b", "function": "f", "forEach": "${{ [item] }}"},
        ],
        outputs={"o": "${{ item }}"},
    )  # fmt: skip
    assert _messages(wf) == [
        ("spec.nodes[0].inputs.x", "'index' is only defined inside forEach (used without forEach)"),
        ("spec.nodes[1].forEach", "'item' is only defined inside forEach (used in forEach itself)"),
        ("spec.outputs.o", "'item' is only defined inside forEach (used without forEach)"),
    ]


@pytest.mark.parametrize("for_each", ["[1, 2]", "${{ [1] }}-${{ [2] }}", "x ${{ [1] }}"])
def test_for_each_must_be_one_expression(for_each: str) -> None:
    wf = _wf([{"id": "a", "function": "f", "forEach": for_each}])
    ((field, message),) = _messages(wf)
    assert field == "spec.nodes[0].forEach"
    assert message.startswith("must be a single ${{ expression }}")


def test_duplicate_ids() -> None:
    wf = _wf(
        [{"id": "a", "function": "f"}, {"id": "b", "function": "f"}, {"id": "a", "function": "g"}]
    )
    assert _messages(wf) == [("spec.nodes[2].id", "duplicate node id 'a' (first at spec.nodes[0])")]


def test_cycles_are_reported_once_per_component_with_path() -> None:
    wf = _wf(
        [
            {"id": "a", "function": "f", "needs": ["c"]},
            {"id": "b", "function": "f", "inputs": {"x": "${{ nodes.a.output }}"}},
            {"id": "c", "function": "f", "needs": ["b"]},
            {"id": "d", "function": "f", "needs": ["e"]},
            {"id": "e", "function": "f", "needs": ["d", "a"]},
        ]
    )
    assert _messages(wf) == [
        ("spec.nodes[0]", "cycle: a -> b -> c -> a"),
        ("spec.nodes[3]", "cycle: d -> e -> d"),
    ]
    with pytest.raises(DefinitionError, match="cycle: a -> b -> c -> a"):
        topological_order(wf)


def test_unknown_functions() -> None:
    wf = _wf(
        [
            {"id": "a", "function": "f@1"},
            {"id": "b", "function": "f"},
            {"id": "c", "function": "f@2"},
            {"id": "d", "function": "g"},
        ]
    )
    assert _messages(wf) == []  # not checked without a registry
    assert _messages(wf, known_functions=["f@1", "f@3"]) == [
        ("spec.nodes[2].function", "unknown function 'f@2' (known versions: 1, 3)"),
        ("spec.nodes[3].function", "unknown function 'g@latest'"),
    ]


def test_validate_workflow_raises_with_file() -> None:
    wf = _wf([{"id": "a", "function": "f", "needs": ["b"]}])
    with pytest.raises(DefinitionError) as info:
        validate_workflow(wf, file="w.yaml")
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.field) == ("w.yaml", None, "spec.nodes[0].needs[0]")


# --- properties over random DAGs ----------------------------------------------------------

# CEL's reserved words cannot follow a dot (`inputs.in` does not parse), so they are no
# identifiers a valid workflow could read.
_CEL_RESERVED = frozenset(
    [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "namespace",
        "null",
        "package",
        "return",
        "true",
        "var",
        "void",
        "while",
    ]
)
_IDS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("item", "index") and s not in _CEL_RESERVED
)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12).filter(
    lambda s: not is_expression(s)
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@st.composite
def _dags(draw: st.DrawFn) -> tuple[Workflow, list[tuple[int, int]]]:
    """A random valid workflow and its edges (i, j): node j depends on earlier node i."""
    ids = draw(st.lists(_IDS, min_size=1, max_size=10, unique=True))
    inputs = draw(st.lists(_IDS, max_size=3, unique=True))
    edges: list[tuple[int, int]] = []
    nodes = []
    for j, node_id in enumerate(ids):
        deps = draw(st.sets(st.integers(0, j - 1), max_size=3)) if j else set()
        node: dict[str, Any] = {"id": node_id, "function": draw(st.sampled_from(["f@1", "g"]))}
        node_inputs: dict[str, Any] = draw(st.dictionaries(_TEXT, _JSON, max_size=2))
        needs = []
        for i in sorted(deps):
            edges.append((i, j))
            if draw(st.booleans()):
                needs.append(ids[i])
            else:
                node_inputs[f"from_{i}"] = f"${{{{ nodes.{ids[i]}.output }}}}"
        if inputs and draw(st.booleans()):
            node_inputs["param"] = f"${{{{ inputs.{draw(st.sampled_from(inputs))} }}}}"
        if deps and draw(st.booleans()):
            node["forEach"] = f"${{{{ nodes.{ids[min(deps)]}.output }}}}"
            node_inputs["each"] = "${{ item }}"
        node["needs"] = needs
        node["inputs"] = node_inputs
        nodes.append(node)
    spec_inputs = {
        name: draw(st.fixed_dictionaries({}, optional={"default": _JSON})) for name in inputs
    }
    outputs = {"last": f"${{{{ nodes.{ids[-1]}.output }}}}"}
    wf = Workflow.model_validate(
        {
            "metadata": {"name": "dag", "description": draw(_TEXT)},
            "spec": {"inputs": spec_inputs, "nodes": nodes, "outputs": outputs},
        }
    )
    return wf, edges


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_dags())
def test_random_dags_validate_and_round_trip(case: tuple[Workflow, list[tuple[int, int]]]) -> None:
    wf, edges = case
    assert check_workflow(wf, known_functions={"f@1", "g@2"}) == []
    order = topological_order(wf)
    ids = [n.id for n in wf.spec.nodes]
    assert sorted(order) == sorted(ids)
    for i, j in edges:
        assert order.index(ids[i]) < order.index(ids[j])
    assert load_text(dump([wf])) == [wf]


@_SETTINGS
@given(_dags(), st.data())
def test_a_back_edge_always_makes_a_cycle(
    case: tuple[Workflow, list[tuple[int, int]]], data: st.DataObject
) -> None:
    wf, edges = case
    assume(edges)
    i, j = data.draw(st.sampled_from(edges))
    nodes = list(wf.spec.nodes)
    later = nodes[j].id
    if data.draw(st.booleans()):
        back = nodes[i].model_copy(update={"needs": [*nodes[i].needs, Need(node=later)]})
    else:
        inputs = {**nodes[i].inputs, "back": f"${{{{ nodes.{later}.output }}}}"}
        back = nodes[i].model_copy(update={"inputs": inputs})
    nodes[i] = back
    cyclic = wf.model_copy(update={"spec": wf.spec.model_copy(update={"nodes": nodes})})
    cycles = [m for _, m in _messages(cyclic) if m.startswith("cycle: ")]
    assert len(cycles) == 1
    path = cycles[0].removeprefix("cycle: ").split(" -> ")
    assert path[0] == path[-1]
    assert {nodes[i].id, later} <= set(path)
    with pytest.raises(DefinitionError):
        topological_order(cyclic)
