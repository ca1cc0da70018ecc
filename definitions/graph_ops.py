"""Graph operations on a workflow and the edges they change, as JSON a front end can read.

The same models are what `edit` applies to a workflow's text and what `graph_diff` finds
between two texts, so a front end that shows a diff can send the ops back as edits.

An edge runs from a node to a node that waits for it (execution order). It comes from
``needs`` (``via: needs``, with what it waits for in ``on``) or from an expression that reads
the node (``via: data``, e.g. ``${{ nodes.a.output }}`` in an input). A data edge is written
in the reading node's fields, so the op that writes those fields (`AddNode`, `UpdateNode`)
makes it; a dependency op with ``via: data`` only reports it, and applying one changes
nothing.

Example::

    ops = TypeAdapter(list[GraphOp]).validate_json(body)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from actorflow.definitions.graph import dependencies
from actorflow.definitions.models import NeedKind, Workflow

#: The version of the op models' JSON; a front end checks it before reading.
SCHEMA_VERSION = 1

EdgeVia = Literal["needs", "data"]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION


class AddNode(_Op):
    """Add `node` (its YAML fields, camelCase) at `index` of ``spec.nodes`` (default: last).

    `source`, when given, is the exact text to insert (what `inverse` of a `RemoveNode`
    carries, so undoing a removal gives the text back byte for byte)."""

    type: Literal["add_node"] = "add_node"
    node: dict[str, JsonValue]
    index: int | None = None
    source: str | None = None


class RemoveNode(_Op):
    """Remove the node `id` with its lines and the blank lines and comments above it."""

    type: Literal["remove_node"] = "remove_node"
    id: str


class UpdateNode(_Op):
    """Set fields of node `id` (`values`, camelCase) and drop others (`unset`); ``id`` itself
    cannot change. `source`, when given, replaces the node's lines as they are (undo)."""

    type: Literal["update_node"] = "update_node"
    id: str
    values: dict[str, JsonValue] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)
    source: str | None = None


class AddDependency(_Op):
    """`node` waits for `needs` (an entry in its ``needs``; ``on`` as in ``{node, on}``)."""

    type: Literal["add_dependency"] = "add_dependency"
    node: str
    needs: str
    on: NeedKind = "succeeded"
    via: EdgeVia = "needs"


class RemoveDependency(_Op):
    """`node` no longer waits for `needs` (every entry of ``needs`` naming it goes)."""

    type: Literal["remove_dependency"] = "remove_dependency"
    node: str
    needs: str
    on: NeedKind = "succeeded"
    via: EdgeVia = "needs"


GraphOp = Annotated[
    AddNode | RemoveNode | UpdateNode | AddDependency | RemoveDependency,
    Field(discriminator="type"),
]


class Edge(BaseModel):
    """`source` runs before `target`: `target` needs it, or reads it (``via: data``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str
    via: EdgeVia = "needs"
    on: NeedKind = "succeeded"


def workflow_edges(wf: Workflow) -> list[Edge]:
    """Every edge of `wf`, in document order of the targets: first each node's ``needs``,
    then the nodes its expressions read that it does not also name in ``needs``.

    Uses `graph.dependencies`, so edges are exactly what the run engine waits for."""
    deps = dependencies(wf)
    out: list[Edge] = []
    for node in wf.spec.nodes:
        named = node.need_kinds
        out += [Edge(source=dep, target=node.id, on=on) for dep, on in named.items()]
        data = sorted(deps.get(node.id, set()) - named.keys() - {node.id})
        out += [Edge(source=dep, target=node.id, via="data") for dep in data]
    return out
