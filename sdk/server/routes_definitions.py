"""Definitions: apply (YAML or JSON, checked by the loader), list, get, delete — workflows
with their versions, functions, runtime environments, triggers and event types."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from actorflow._client import AsyncClient, TriggerInfo
from actorflow.definitions.loader import dump
from actorflow.definitions.models import AnyDefinition, EventType
from actorflow.server import engine
from actorflow.server.deps import engine_client
from actorflow.server.errors import ApiError
from actorflow.server.models import AppliedList, VersionList, Versions, dumped

router = APIRouter(prefix="/api/v1")
Client = Annotated[AsyncClient, Depends(engine_client)]
Format = Annotated[Literal["json", "yaml"], Query(description="How the definition is written.")]

_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_KINDS = {"workflows": "Workflow", "functions": "Function", "runtime-envs": "RuntimeEnv"}


async def _definitions(request: Request, client: AsyncClient) -> list[AnyDefinition]:
    """The body's definitions, validated: YAML (one or more documents) or JSON (one)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the body is not UTF-8 text") from None
    if ctype == "application/json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(
                422,
                "request_invalid",
                "a JSON body is one definition (an object); send several as YAML documents",
            )
    elif ctype not in _YAML_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the definition as application/yaml or application/json, not {ctype!r}",
        )
    # JSON is YAML: the loader reads both, and its issues name the body's lines.
    return await engine.validate(client, text, "<request body>")


def _written(models: list[AnyDefinition] | AnyDefinition, fmt: str) -> Response:
    if fmt == "yaml":
        items = models if isinstance(models, list) else [models]
        return Response(dump(items), media_type="application/yaml")
    body: Any = [dumped(m) for m in models] if isinstance(models, list) else dumped(models)
    return Response(json.dumps(body), media_type="application/json")


@router.post("/definitions", response_model=AppliedList, openapi_extra=_BODY_DOC)
async def apply_definitions(request: Request, client: Client) -> AppliedList:
    """Register definitions of any kind; a batch with a bad one changes nothing."""
    models = await _definitions(request, client)
    return AppliedList(applied=await engine.apply(client, models))


@router.post("/workflows", response_model=AppliedList, openapi_extra=_BODY_DOC)
async def apply_workflows(request: Request, client: Client) -> AppliedList:
    """Create a workflow or a new version of one (only `Workflow` documents)."""
    models = await _definitions(request, client)
    others = sorted({m.kind for m in models} - {"Workflow"})
    if others:
        raise ApiError(
            422,
            "request_invalid",
            f"only Workflow documents here, not {', '.join(others)} (POST /api/v1/definitions)",
        )
    return AppliedList(applied=await engine.apply(client, models))


async def _listing(client: AsyncClient, kind: str) -> VersionList:
    listed: list[Any]
    if kind == "Workflow":
        listed = await client.workflows()
    elif kind == "Function":
        listed = await client.functions()
    else:
        listed = await client.runtime_envs()
    names = sorted({d.metadata.name for d in listed})
    items = []
    for name in names:
        latest, versions = await engine.versions(client, kind, name)
        items.append(Versions(name=name, latest=latest, versions=versions))
    return VersionList(items=items)


def _register_kind(path: str, kind: str) -> None:
    """list / versions / get / delete for one kind, under ``/api/v1/{path}``."""

    async def list_kind(client: Client) -> VersionList:
        return await _listing(client, kind)

    async def kind_versions(name: str, client: Client) -> Versions:
        latest, versions = await engine.versions(client, kind, name)
        return Versions(name=name, latest=latest, versions=versions)

    async def get_version(
        name: str, version: str, client: Client, format: Format = "json"
    ) -> Response:
        return _written(await engine.definition(client, kind, name, version), format)

    async def delete_version(name: str, version: str, client: Client) -> Response:
        await client.delete(kind, f"{name}@{version}")
        return Response(status_code=204)

    label = path.replace("-", " ")
    router.add_api_route(f"/{path}", list_kind, methods=["GET"], summary=f"List {label}")
    router.add_api_route(
        f"/{path}/{{name}}", kind_versions, methods=["GET"], summary=f"Versions of one of {label}"
    )
    router.add_api_route(
        f"/{path}/{{name}}/versions/{{version}}",
        get_version,
        methods=["GET"],
        summary=f"One version of one of {label} ('latest' for the newest)",
        responses={200: {"content": {"application/json": {}, "application/yaml": {}}}},
    )
    router.add_api_route(
        f"/{path}/{{name}}/versions/{{version}}",
        delete_version,
        methods=["DELETE"],
        status_code=204,
        summary=f"Delete one version of one of {label}",
    )


for _path, _kind in _KINDS.items():
    _register_kind(_path, _kind)


@router.get("/triggers", response_model=list[TriggerInfo])
async def list_triggers(client: Client) -> list[TriggerInfo]:
    return await client.triggers()


@router.get("/triggers/{name}", response_model=TriggerInfo)
async def get_trigger(name: str, client: Client) -> TriggerInfo:
    return await client.trigger(name)


@router.get("/event-types", response_model=list[EventType])
async def list_event_types(client: Client) -> list[EventType]:
    return await client.event_types()
