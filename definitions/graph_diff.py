"""From two texts of a workflow to the graph operations between them.

`diff_graph(old, new)` lists what changed as the ops `edit` applies, so a front end can
show a change (node added / removed / changed, dependency added / removed) and the same
list, applied to `old` with `edit.apply_ops`, gives a workflow equal to `new` — except for
the order of nodes and of ``needs`` entries, which no op describes (they change nothing
a run does). Dependencies are the edges of `graph_ops.workflow_edges`: ``needs`` entries
and data references (``${{ nodes.a.output }}``); the edges of a removed node go with it.

Example::

    for op in diff_graph(before, after):
        print(op.model_dump_json())
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.graph import check_workflow
from actorflow.definitions.graph_ops import (
    AddDependency,
    AddNode,
    Edge,
    GraphOp,
    RemoveDependency,
    RemoveNode,
    UpdateNode,
    workflow_edges,
)
from actorflow.definitions.loader import issues_from_validation
from actorflow.definitions.models import Workflow
from actorflow.definitions.yaml_source import line_of, parse_field
from actorflow.definitions.yaml_text import WorkflowText

__all__ = ["diff_graph", "read_workflow"]

_NOT_FIELDS = ("id", "needs")  # identity, and what the dependency ops describe


def diff_graph(
    old_text: str,
    new_text: str,
    *,
    workflow: str | None = None,
    old_file: str = "<old>",
    new_file: str = "<new>",
) -> list[GraphOp]:
    """The ops that turn `old_text`'s workflow into `new_text`'s, in an order that applies:
    dependencies removed, nodes changed, added, removed, dependencies added.

    Raises:
        DefinitionError: either text does not load (its issues, with file and line).
    """
    old_wt, old_wf = read_workflow(old_text, old_file, workflow)
    new_wt, new_wf = read_workflow(new_text, new_file, workflow)
    old_nodes = _by_id(old_wt.nodes)
    new_nodes = _by_id(new_wt.nodes)
    removed = [i for i in old_nodes if i not in new_nodes]
    added = [i for i in new_nodes if i not in old_nodes]
    old_edges, new_edges = set(workflow_edges(old_wf)), set(workflow_edges(new_wf))
    lost = [e for e in _ordered(old_edges - new_edges, old_wf) if e.target in new_nodes]
    ops: list[GraphOp] = [_dependency(e, RemoveDependency) for e in lost]
    for node_id, node in new_nodes.items():
        if node_id in old_nodes:
            update = _update(node_id, old_nodes[node_id], node)
            if update is not None:
                ops.append(update)
    # Added before removed (a workflow is never without nodes), each right after the node
    # it follows in the new text, so the removals leave the new order.
    current, previous = list(old_nodes), None
    for node_id in new_nodes:
        if node_id in added:
            index = current.index(previous) + 1 if previous is not None else 0
            current.insert(index, node_id)
            fields = {k: v for k, v in new_nodes[node_id].items() if k != "needs"}
            ops.append(AddNode(node=fields, index=index))
        previous = node_id
    ops += [RemoveNode(id=i) for i in removed]
    ops += [_dependency(e, AddDependency) for e in _ordered(new_edges - old_edges, new_wf)]
    return ops


def read_workflow(
    text: str, file: str, workflow: str | None = None
) -> tuple[WorkflowText, Workflow]:
    """A workflow's text and model, checked as the loader checks it.

    Raises:
        DefinitionError: the text does not load (every issue, with file and line).
    """
    wt = WorkflowText.read(text, file, workflow)
    issues: list[DefinitionIssue] = []
    wf: Workflow | None = None
    try:
        wf = Workflow.model_validate(wt.data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, wt.data)
    if wf is not None:
        issues = check_workflow(wf)
    if issues or wf is None:
        lines = wt.lines_map()
        raise DefinitionError(
            [
                DefinitionIssue(i.message, file, line_of(parse_field(i.field), lines), i.field)
                for i in issues
            ]
        )
    return wt, wf


def _by_id(nodes: list[Any]) -> dict[str, dict[str, Any]]:
    return {str(n["id"]): n for n in nodes if isinstance(n, dict)}


def _update(node_id: str, old: dict[str, Any], new: dict[str, Any]) -> UpdateNode | None:
    keys = [k for k in {**old, **new} if k not in _NOT_FIELDS]
    values = {k: new[k] for k in keys if k in new and (k not in old or old[k] != new[k])}
    unset = [k for k in keys if k not in new]
    if not values and not unset:
        return None
    return UpdateNode(id=node_id, values=values, unset=unset)


def _ordered(edges: set[Edge], wf: Workflow) -> list[Edge]:
    """Edges in document order of their targets, then of their sources."""
    position = {n.id: i for i, n in enumerate(wf.spec.nodes)}
    return sorted(
        edges,
        key=lambda e: (position.get(e.target, -1), position.get(e.source, -1), e.via, e.on),
    )


def _dependency(
    edge: Edge, kind: type[AddDependency] | type[RemoveDependency]
) -> AddDependency | RemoveDependency:
    return kind(node=edge.target, needs=edge.source, on=edge.on, via=edge.via)
