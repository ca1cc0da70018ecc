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
from actorflow.server.access import (
    DEFAULT_NAMESPACE,
    UNOWNED,
    Ownership,
    Verb,
    Visibility,
    allowed,
)
from actorflow.server.deps import caller, engine_client
from actorflow.server.errors import ApiError
from actorflow.server.guard import Guard, Guarded
from actorflow.server.models import AppliedList, VersionList, Versions, dumped

router = APIRouter(prefix="/api/v1", dependencies=[Depends(caller)])
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


async def _definitions(
    request: Request, client: AsyncClient
) -> tuple[list[AnyDefinition], str | None]:
    """The body's definitions, validated: YAML (one or more documents) or JSON (one); and
    the YAML text (what later graph edits edit, keeping its lines)."""
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
    models = await engine.validate(client, text, "<request body>")
    return models, (text if ctype in _YAML_TYPES else None)


def _written(models: list[AnyDefinition] | AnyDefinition, fmt: str) -> Response:
    if fmt == "yaml":
        items = models if isinstance(models, list) else [models]
        return Response(dump(items), media_type="application/yaml")
    body: Any = [dumped(m) for m in models] if isinstance(models, list) else dumped(models)
    return Response(json.dumps(body), media_type="application/json")


Namespace = Annotated[
    str,
    Query(
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The namespace a new workflow is created in.",
    ),
]
VisibilityQuery = Annotated[
    Visibility | None,
    Query(description="private (owner and namespace) or public; default: kept, new private"),
]


async def apply_checked(
    guard: Guard,
    models: list[AnyDefinition],
    namespace: str,
    visibility: Visibility | None,
    *,
    source: str | None = None,
    action: str = "apply",
) -> AppliedList:
    """Check every definition of the batch before any is applied (all or nothing), then
    record who owns the new workflows and audit each change."""
    owned: dict[str, Ownership | None] = {}
    for model in models:
        name = model.metadata.name
        if model.kind != "Workflow":
            guard.has_role("editor")
        elif (existing := await guard.store.ownership("workflow", name)) is not None:
            owned[name] = await guard.workflow(name, "change")
        else:
            guard.may_create(namespace)
            owned[name] = None
    applied = await engine.apply(guard.client, models)
    if source is not None:
        for model in models:
            if model.kind == "Workflow":
                meta = model.metadata
                await guard.store.put_source(meta.name, meta.version, source)
    for name, existing in owned.items():
        own = existing or Ownership(owner=guard.user, namespace=namespace)
        if visibility is not None or existing is None:
            own = own.model_copy(update={"visibility": visibility or own.visibility})
            await guard.store.set_ownership("workflow", name, own)
    for a in applied:
        ns = (owned.get(a.name) or Ownership(namespace=namespace)).namespace
        await guard.audit(action, f"{a.kind}/{a.name}@{a.version}", ns)
    return AppliedList(applied=applied)


@router.post("/definitions", response_model=AppliedList, openapi_extra=_BODY_DOC)
async def apply_definitions(
    request: Request,
    client: Client,
    guard: Guarded,
    namespace: Namespace = DEFAULT_NAMESPACE,
    visibility: VisibilityQuery = None,
) -> AppliedList:
    """Register definitions of any kind; a batch with a bad one changes nothing."""
    models, source = await _definitions(request, client)
    return await apply_checked(guard, models, namespace, visibility, source=source)


@router.post("/workflows", response_model=AppliedList, openapi_extra=_BODY_DOC)
async def apply_workflows(
    request: Request,
    client: Client,
    guard: Guarded,
    namespace: Namespace = DEFAULT_NAMESPACE,
    visibility: VisibilityQuery = None,
) -> AppliedList:
    """Create a workflow or a new version of one (only `Workflow` documents)."""
    models, source = await _definitions(request, client)
    others = sorted({m.kind for m in models} - {"Workflow"})
    if others:
        raise ApiError(
            422,
            "request_invalid",
            f"only Workflow documents here, not {', '.join(others)} (POST /api/v1/definitions)",
        )
    return await apply_checked(guard, models, namespace, visibility, source=source)


async def _versions(guard: Guard, kind: str, name: str, own: Ownership | None) -> Versions:
    latest, versions = await engine.versions(guard.client, kind, name)
    return Versions(name=name, latest=latest, versions=versions, ownership=own)


async def _listing(guard: Guard, kind: str) -> VersionList:
    listed: list[Any]
    client = guard.client
    if kind == "Workflow":
        listed = await client.workflows()
        owned = await guard.store.owned("workflow")
    else:
        guard.has_role("viewer")
        listed = await (client.functions() if kind == "Function" else client.runtime_envs())
        owned = {}
    items = []
    for name in sorted({d.metadata.name for d in listed}):
        own = owned.get(name, UNOWNED) if kind == "Workflow" else None
        if own is None or allowed(guard.caller.user, "see", own):
            items.append(await _versions(guard, kind, name, own))
    return VersionList(items=items)


async def _may(guard: Guard, kind: str, name: str, verb: Verb) -> Ownership | None:
    """A workflow by its ownership; functions and environments by the caller's roles."""
    if kind == "Workflow":
        return await guard.workflow(name, verb)
    guard.has_role("viewer" if verb == "see" else "editor")
    return None


def _register_kind(path: str, kind: str) -> None:
    """list / versions / get / delete for one kind, under ``/api/v1/{path}``."""

    async def list_kind(guard: Guarded) -> VersionList:
        return await _listing(guard, kind)

    async def kind_versions(name: str, guard: Guarded) -> Versions:
        own = await _may(guard, kind, name, "see")
        return await _versions(guard, kind, name, own)

    async def get_version(
        name: str, version: str, guard: Guarded, format: Format = "json"
    ) -> Response:
        await _may(guard, kind, name, "see")
        return _written(await engine.definition(guard.client, kind, name, version), format)

    async def delete_version(name: str, version: str, guard: Guarded) -> Response:
        own = await _may(guard, kind, name, "change")
        await guard.client.delete(kind, f"{name}@{version}")
        namespace = own.namespace if own else DEFAULT_NAMESPACE
        await guard.audit("delete", f"{kind}/{name}@{version}", namespace)
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
async def list_triggers(guard: Guarded) -> list[TriggerInfo]:
    guard.has_role("viewer")
    return await guard.client.triggers()


@router.get("/triggers/{name}", response_model=TriggerInfo)
async def get_trigger(name: str, guard: Guarded) -> TriggerInfo:
    guard.has_role("viewer")
    return await guard.client.trigger(name)


@router.get("/event-types", response_model=list[EventType])
async def list_event_types(guard: Guarded) -> list[EventType]:
    guard.has_role("viewer")
    return await guard.client.event_types()
