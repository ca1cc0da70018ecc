"""Graph edits of a registered workflow: add, change or remove a node or a dependency on
its latest version's text (the line-preserving edits of `definitions.edit`), checked as
the loader checks, and registered as a new version; and the graph's layout to draw."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, JsonValue

from actorflow.actors.controller.results import Applied
from actorflow.definitions.edit import apply_ops
from actorflow.definitions.graph_ops import (
    AddDependency,
    AddNode,
    GraphOp,
    RemoveDependency,
    RemoveNode,
    UpdateNode,
)
from actorflow.definitions.layout import Layout, layout
from actorflow.definitions.loader import dump
from actorflow.definitions.models import NeedKind, Workflow
from actorflow.server import engine
from actorflow.server.deps import caller
from actorflow.server.errors import ApiError
from actorflow.server.guard import Guarded
from actorflow.server.models import _Request
from actorflow.server.routes_definitions import apply_checked

router = APIRouter(prefix="/api/v1", dependencies=[Depends(caller)])
NewVersion = Annotated[
    str | None,
    Query(max_length=128, description="The version the edit registers (default: next number)."),
]


class NewNode(_Request):
    node: dict[str, JsonValue] = Field(description="The node's YAML fields (camelCase).")
    index: int | None = Field(default=None, ge=0)


class NodeChange(_Request):
    values: dict[str, JsonValue] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)


class NewEdge(_Request):
    """`node` waits for `needs`."""

    node: str = Field(max_length=256)
    needs: str = Field(max_length=256)
    on: NeedKind = "succeeded"


class Edits(_Request):
    ops: list[GraphOp] = Field(max_length=500)


class Edited(BaseModel):
    """The version an edit registered, the ops that undo it, and the new graph's layout."""

    applied: Applied
    inverse: list[GraphOp]
    layout: Layout


def _next_version(versions: list[str]) -> str:
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


async def _edit(guard: Guarded, name: str, ops: list[GraphOp], version: str | None) -> Edited:
    own = await guard.workflow(name, "change")
    latest, versions = await engine.versions(guard.client, "Workflow", name)
    version = version or _next_version(versions)
    if version in versions:
        raise ApiError(409, "conflict", f"workflow {name}@{version} exists: pick a new_version")
    current = await engine.definition(guard.client, "Workflow", name, latest)
    text = await guard.store.source(name, latest) or dump([current])
    where = f"{name}@{latest}"
    edit = apply_ops(text, ops, workflow=name, file=where)  # DefinitionError: refused
    edited = next(
        m
        for m in await engine.validate(guard.client, edit.text, where)
        if isinstance(m, Workflow) and m.metadata.name == name
    )
    model = edited.model_copy(
        update={"metadata": edited.metadata.model_copy(update={"version": version})}
    )
    result = await apply_checked(
        guard, [model], own.namespace, None, source=edit.text, action="edit"
    )
    return Edited(applied=result.applied[0], inverse=edit.inverse, layout=layout(model))


@router.get("/workflows/{name}/graph", response_model=Layout)
async def workflow_graph(name: str, guard: Guarded, version: str = "latest") -> Layout:
    """Every node's position and every edge's path, layered (what a front end draws)."""
    await guard.workflow(name, "see")
    wf = await engine.definition(guard.client, "Workflow", name, version)
    assert isinstance(wf, Workflow)
    return layout(wf)


@router.post("/workflows/{name}/nodes", response_model=Edited, status_code=201)
async def add_node(
    name: str, body: NewNode, guard: Guarded, new_version: NewVersion = None
) -> Edited:
    op = AddNode(node=dict(body.node), index=body.index)
    return await _edit(guard, name, [op], new_version)


@router.patch("/workflows/{name}/nodes/{node}", response_model=Edited)
async def change_node(
    name: str, node: str, body: NodeChange, guard: Guarded, new_version: NewVersion = None
) -> Edited:
    op = UpdateNode(id=node, values=dict(body.values), unset=list(body.unset))
    return await _edit(guard, name, [op], new_version)


@router.delete("/workflows/{name}/nodes/{node}", response_model=Edited)
async def remove_node(
    name: str, node: str, guard: Guarded, new_version: NewVersion = None
) -> Edited:
    """Refused (422, with the field) while another node needs or reads it."""
    return await _edit(guard, name, [RemoveNode(id=node)], new_version)


@router.post("/workflows/{name}/edges", response_model=Edited, status_code=201)
async def add_edge(
    name: str, body: NewEdge, guard: Guarded, new_version: NewVersion = None
) -> Edited:
    """Refused (422, with the path) when it would close a cycle."""
    op = AddDependency(node=body.node, needs=body.needs, on=body.on)
    return await _edit(guard, name, [op], new_version)


@router.delete("/workflows/{name}/edges/{node}/{needs}", response_model=Edited)
async def remove_edge(
    name: str, node: str, needs: str, guard: Guarded, new_version: NewVersion = None
) -> Edited:
    return await _edit(guard, name, [RemoveDependency(node=node, needs=needs)], new_version)


@router.post("/workflows/{name}/edits", response_model=Edited, status_code=201)
async def edit_graph(
    name: str, body: Edits, guard: Guarded, new_version: NewVersion = None
) -> Edited:
    """Several ops in order, checked once at the end (e.g. an `inverse` to undo an edit)."""
    return await _edit(guard, name, list(body.ops), new_version)
