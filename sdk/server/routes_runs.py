"""Runs: start (idempotent with ``Idempotency-Key``), list in pages, get, control, logs;
signals and published events."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse

from actorflow._client import AsyncClient, PublishResult
from actorflow.actors.controller.results import ControlAccepted
from actorflow.definitions import events as ev
from actorflow.server import engine
from actorflow.server.access import RANK
from actorflow.server.deps import caller, engine_client
from actorflow.server.errors import ApiError
from actorflow.server.guard import Guarded
from actorflow.server.models import (
    Action,
    AuditLog,
    Control,
    LogLines,
    Publish,
    RunDetail,
    RunPage,
    Signal,
    Started,
    StartRun,
)

router = APIRouter(prefix="/api/v1", dependencies=[Depends(caller)])
Client = Annotated[AsyncClient, Depends(engine_client)]
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def idempotent_run_id(workflow: str, key: str, scope: str = "") -> str:
    """The run id a start with `key` gets: the same key (from the same caller, for the
    same workflow) names the same run, which the engine starts once."""
    if not _KEY.fullmatch(key):
        raise ApiError(
            422,
            "request_invalid",
            "Idempotency-Key must be 1-128 letters, digits or any of '_.:-'",
        )
    digest = hashlib.sha256(f"{scope}\0{workflow}\0{key}".encode()).hexdigest()[:24]
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", workflow)[:100]
    return f"{prefix}-{digest}"


@router.post("/workflows/{name}/runs", status_code=201, response_model=Started)
async def start_run(
    name: str,
    guard: Guarded,
    response: Response,
    body: Annotated[StartRun | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Started:
    """Start a run of a workflow (its latest version unless `version`); with an
    ``Idempotency-Key`` header, repeating the request (the same caller's) starts no second
    run. The run is the caller's, in the workflow's namespace, as visible as it."""
    body = body or StartRun()
    own = await guard.workflow(name, "run")
    run_id = (
        idempotent_run_id(name, idempotency_key, guard.user)
        if idempotency_key
        else ev.new_run_id(name)
    )
    run = await guard.client.run(
        name, dict(body.inputs), version=body.version, run_id=run_id, priority=body.priority
    )
    # Until this is written the run is its workflow's (same namespace and visibility).
    await asyncio.gather(
        guard.store.set_ownership("run", run.run_id, own.model_copy(update={"owner": guard.user})),
        guard.audit("start", f"run/{run.run_id}", own.namespace, 201),
    )
    response.headers["Location"] = f"/api/v1/runs/{run.run_id}"
    return Started(run_id=run.run_id, workflow=name)


PageSize = Annotated[int, Query(ge=1, le=engine.MAX_PAGE_SIZE)]


@router.get("/runs", response_model=RunPage)
async def list_runs(
    guard: Guarded,
    status: Annotated[ev.RunStatus | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=256)] = None,
    page_size: PageSize = 100,
    page_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> RunPage:
    """Runs newest first, `page_size` at a time; pass `next_page_token` back for the next
    page (runs started meanwhile never shift it)."""
    records = await guard.visible_runs(await guard.client.runs(status=status, workflow=workflow))
    runs, token = engine.page(records, page_size, page_token)
    return RunPage(runs=runs, next_page_token=token)


@router.get("/runs/{run_id}", response_model=RunDetail)
async def get_run(run_id: str, client: Client, guard: Guarded) -> RunDetail:
    """The run's record and every node's status, attempts and error."""
    # Read while the policy is looked up; nothing is answered unless it allows.
    _, record, nodes = await asyncio.gather(
        guard.run(run_id, "see"), client.record(run_id), client.get_run(run_id).nodes()
    )
    return RunDetail(record=record, nodes=nodes)


@router.post("/runs/{run_id}/{action}", status_code=202, response_model=ControlAccepted)
async def control_run(
    run_id: str,
    action: Action,
    client: Client,
    guard: Guarded,
    body: Annotated[Control | None, Body()] = None,
) -> ControlAccepted:
    """Pause, resume, cancel, terminate, retry a node or approve an approval node; 409
    with the reason when the action does not apply to the run as it is."""
    body = body or Control()
    own = await guard.run(run_id, "control")  # 404 for an unknown run, before anything
    accepted = await client.control(
        run_id,
        action,
        node=body.node,
        from_start=body.from_start,
        reason=body.reason,
        input=body.input,
        compensate=body.compensate,
    )
    await guard.audit(action, f"run/{run_id}", own.namespace, 202)
    return accepted


@router.get(
    "/runs/{run_id}/logs",
    response_model=LogLines,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def run_logs(
    run_id: str,
    client: Client,
    guard: Guarded,
    node: Annotated[str | None, Query(max_length=256)] = None,
    follow: bool = False,
) -> LogLines | StreamingResponse:
    """What the steps printed and logged; with ``follow=true``, newline-delimited JSON
    that goes on until the run has finished."""
    await guard.run(run_id, "see")
    run = client.get_run(run_id)
    if not follow:
        return LogLines(lines=await run.logs(node))
    await client.record(run_id)

    async def lines() -> AsyncIterator[bytes]:
        async for line in run.follow_logs(node):
            yield line.model_dump_json().encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/signals/{signal}/{key}", status_code=202)
async def send_signal(
    signal: str,
    key: str,
    client: Client,
    guard: Guarded,
    body: Annotated[Signal | None, Body()] = None,
) -> Response:
    """End the waits registered for (signal, key) with the payload (operators only)."""
    guard.has_role("operator")
    await client.signal(signal, key, (body or Signal()).payload)
    await guard.audit("signal", f"signal/{signal}/{key}", status=202)
    return Response(status_code=202)


@router.post("/events", response_model=PublishResult)
async def publish_event(body: Publish, client: Client, guard: Guarded) -> PublishResult:
    """Publish a JSON event (checked against its event type) for triggers to see
    (operators only)."""
    guard.has_role("operator")
    published = await client.publish(
        body.subject, body.data, event_type=body.event_type, msg_id=body.msg_id
    )
    await guard.audit("publish", f"subject/{body.subject}")
    return published


@router.get("/audit", response_model=AuditLog)
async def audit_log(
    guard: Guarded,
    namespace: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=engine.MAX_PAGE_SIZE)] = 100,
) -> AuditLog:
    """Who changed or controlled what, and when, newest first: the entries of the
    namespaces the caller is an admin of."""
    entries = [
        e
        for e in await guard.store.audit_log()
        if guard.caller.user.role_in(e.namespace) >= RANK["admin"]
        and (namespace is None or e.namespace == namespace)
    ]
    return AuditLog(entries=entries[::-1][:limit])
