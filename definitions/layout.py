"""Layered (Sugiyama-style) coordinates for the nodes of a workflow.

Three steps, each kept simple so a drawing changes little when the workflow does:

1. *Layers*: a node's layer is one more than the deepest node it depends on (longest path
   from the roots). A node's layer depends only on what it waits for, so adding a leaf or
   a branch moves no existing node to another layer.
2. *Order*: an edge that spans several layers gets a dummy point in each layer between, then
   each layer is sorted by the mean position of its neighbours in the layer above
   (down-sweep) and below (up-sweep), a few times. Ties keep document order.
3. *Coordinates*: ``y`` is the layer; ``x`` the position in the layer, each layer centred
   on 0. An edge's ``points`` go through its dummies, so a long edge bends around nodes.

Edges are `graph_ops.workflow_edges`: ``needs`` and data references alike.

Example::

    for node in layout(wf).nodes:
        print(node.id, node.x, node.y)
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from pydantic import BaseModel, ConfigDict

from actorflow.definitions.graph import topological_order
from actorflow.definitions.graph_ops import Edge, workflow_edges
from actorflow.definitions.models import NodeKind, Workflow

__all__ = ["EdgePath", "Layout", "NodePosition", "layers", "layout"]

#: Down-and-up sweeps of the barycentre ordering: past four the order rarely changes.
SWEEPS = 4


class NodePosition(BaseModel):
    """Where one node is drawn: its layer (``y``) and its place in the layer (``x``);
    `ref`: the function, sub-workflow or template it names, if any."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: NodeKind
    ref: str | None = None
    layer: int
    order: int
    x: float
    y: float


class EdgePath(Edge):
    """An edge and the points it passes through, from its source to its target."""

    points: list[tuple[float, float]]


class Layout(BaseModel):
    """Every node's position and every edge's path (`width`: the widest layer)."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    version: str
    layers: int
    width: int
    nodes: list[NodePosition]
    edges: list[EdgePath]


def layers(wf: Workflow, edges: list[Edge] | None = None) -> dict[str, int]:
    """Per node id, its layer: 0 for a node that waits for nothing, else one more than the
    deepest node it waits for."""
    deps: dict[str, list[str]] = defaultdict(list)
    for edge in workflow_edges(wf) if edges is None else edges:
        deps[edge.target].append(edge.source)
    layer: dict[str, int] = {}
    for node_id in topological_order(wf):
        layer[node_id] = 1 + max((layer[d] for d in deps[node_id]), default=-1)
    return layer


def layout(wf: Workflow, *, sweeps: int = SWEEPS) -> Layout:
    """Coordinates for every node of `wf` (which must be a DAG, as a loaded one is)."""
    edges = workflow_edges(wf)
    layer_of = layers(wf, edges)
    rows: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for node in wf.spec.nodes:
        rows[layer_of[node.id]].append(node.id)
    # A chain of dummy points per edge that skips layers; `up` / `down`: neighbours.
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    chains: dict[int, list[str]] = {}
    for n, edge in enumerate(edges):
        chain = [edge.source]
        for depth in range(layer_of[edge.source] + 1, layer_of[edge.target]):
            dummy = f"\0{n}.{depth}"
            rows[depth].append(dummy)
            chain.append(dummy)
        chain.append(edge.target)
        chains[n] = chain
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    position = _order(rows, up, down, sweeps)
    xy = {
        name: (float(position[name] - (len(row) - 1) / 2), float(depth))
        for depth, row in enumerate(rows)
        for name in row
    }
    nodes = [
        NodePosition(
            id=node.id,
            kind=node.kind,
            ref=node.function or node.workflow or node.template,
            layer=layer_of[node.id],
            order=position[node.id],
            x=xy[node.id][0],
            y=xy[node.id][1],
        )
        for node in wf.spec.nodes
    ]
    paths = [
        EdgePath(**edge.model_dump(), points=[xy[p] for p in chains[n]])
        for n, edge in enumerate(edges)
    ]
    return Layout(
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        layers=len(rows),
        width=max((len(r) for r in rows), default=0),
        nodes=nodes,
        edges=paths,
    )


def _order(
    rows: list[list[str]],
    up: dict[str, list[str]],
    down: dict[str, list[str]],
    sweeps: int,
) -> dict[str, int]:
    """Barycentre ordering; returns each name's index within its row."""
    position = {name: i for row in rows for i, name in enumerate(row)}
    for _ in range(sweeps):
        for depth in range(1, len(rows)):
            _sort_row(rows, depth, up, position)
        for depth in range(len(rows) - 2, -1, -1):
            _sort_row(rows, depth, down, position)
    return position


def _sort_row(
    rows: list[list[str]], depth: int, neighbours: dict[str, list[str]], position: dict[str, int]
) -> None:
    def key(name: str) -> tuple[float, int]:
        near = neighbours.get(name)
        if not near:  # nothing to follow: stay where it is
            return float(position[name]), position[name]
        return sum(position[n] for n in near) / len(near), position[name]

    row = sorted(rows[depth], key=key)
    rows[depth] = row
    for i, name in enumerate(row):
        position[name] = i
