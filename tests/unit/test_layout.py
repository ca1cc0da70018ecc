"""Layered coordinates: layers by longest path, stability under a new leaf, every edge kind."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actorflow.definitions.layout import layers, layout
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Workflow

TEXT = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: shape, version: "1"}
spec:
  nodes:
    - {id: a, function: f@1}
    - {id: b, function: f@1, needs: [a]}
    - {id: c, function: f@1, inputs: {x: "${{ nodes.b.output }}"}}
    - {id: d, function: f@1, needs: [a, {node: c, on: failed}]}
    - {id: e, value: {}}
"""


def _wf(text: str) -> Workflow:
    (wf,) = load_text(text)
    assert isinstance(wf, Workflow)
    return wf


def test_layers_follow_the_longest_path_over_every_edge_kind() -> None:
    assert layers(_wf(TEXT)) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_layout_places_each_node_and_routes_long_edges_through_the_layers_between() -> None:
    placed = layout(_wf(TEXT))
    by_id = {n.id: n for n in placed.nodes}
    assert [(n.id, n.layer, n.y) for n in placed.nodes] == [
        ("a", 0, 0.0),
        ("b", 1, 1.0),
        ("c", 2, 2.0),
        ("d", 3, 3.0),
        ("e", 0, 0.0),
    ]
    assert {by_id["a"].x, by_id["e"].x} == {-0.5, 0.5}  # layer 0 centred on 0
    edges = {(e.source, e.target): e for e in placed.edges}
    assert set(edges) == {("a", "b"), ("b", "c"), ("a", "d"), ("c", "d")}
    assert edges["b", "c"].via == "data"
    assert edges["c", "d"].on == "failed"
    long = edges["a", "d"].points
    assert [y for _, y in long] == [0.0, 1.0, 2.0, 3.0]
    assert long[0] == (by_id["a"].x, 0.0)
    assert long[-1] == (by_id["d"].x, 3.0)
    assert (placed.layers, placed.width) == (4, 2)


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    count = draw(st.integers(1, 12))
    return [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(count)
    ]


def _text(deps: list[list[int]]) -> str:
    nodes = [
        f"    - {{id: n{i}, function: f@1, needs: [{', '.join(f'n{d}' for d in ds)}]}}"
        for i, ds in enumerate(deps)
    ]
    head = ["apiVersion: actorflow/v1", "kind: Workflow", "metadata: {name: g}", "spec:"]
    return "\n".join([*head, "  nodes:", *nodes]) + "\n"


@settings(max_examples=80, deadline=None)
@given(dags(), st.data())
def test_adding_a_leaf_moves_no_existing_node_to_another_layer(
    deps: list[list[int]], data: st.DataObject
) -> None:
    before = layout(_wf(_text(deps)))
    parents = sorted(data.draw(st.sets(st.integers(0, len(deps) - 1), max_size=3)))
    after = layout(_wf(_text([*deps, parents])))
    old = {n.id: n.layer for n in before.nodes}
    new = {n.id: n.layer for n in after.nodes}
    assert {k: new[k] for k in old} == old
    assert new[f"n{len(deps)}"] == 1 + max((old[f"n{p}"] for p in parents), default=-1)


@settings(max_examples=80, deadline=None)
@given(dags())
def test_every_edge_points_down_and_each_layer_has_distinct_places(deps: list[list[int]]) -> None:
    placed = layout(_wf(_text(deps)))
    layer = {n.id: n.layer for n in placed.nodes}
    assert all(layer[e.source] < layer[e.target] for e in placed.edges)
    assert len(placed.edges) == sum(len(d) for d in deps)
    spots = [(n.layer, n.order) for n in placed.nodes]
    assert len(set(spots)) == len(spots)
