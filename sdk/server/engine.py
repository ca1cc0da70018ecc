"""What the API asks of the engine, over the `AsyncClient`: the loader's checks on a
request body, definitions by version, and run pages.

Nothing here reaches into an actor: reads go where the client's go (the definitions and
runs buckets), writes through the client's controller calls.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from actorflow._client import AsyncClient
from actorflow.actors.controller.results import Applied
from actorflow.actors.store.registry import Registry
from actorflow.definitions import events as ev
from actorflow.definitions.errors import InputError
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import AnyDefinition, Definition

#: The most records one page of `GET /api/v1/runs` holds.
MAX_PAGE_SIZE = 500


async def validate(client: AsyncClient, text: str, file: str) -> list[AnyDefinition]:
    """The loader's checks, against what is registered — as `actorflow apply -f` makes
    them — so an error names the body's line and field (`DefinitionError`)."""
    known = {f.ref for f in await client.functions()}
    templates = await client._template_catalog()
    workflows = {w.ref for w in await client.workflows()}
    connections = {c.ref for c in await client.connections()}
    return load_text(
        text,
        file=file,
        known_functions=known,
        known_templates=templates,
        known_workflows=workflows,
        known_connections=connections,
    )


async def apply(client: AsyncClient, models: list[AnyDefinition]) -> list[Applied]:
    return await client.apply(models)


async def registry(client: AsyncClient) -> Registry:
    return await Registry.open(await client._jetstream())


async def versions(client: AsyncClient, kind: str, name: str) -> tuple[str, list[str]]:
    """(latest, every version oldest applied first); NotFoundError when none is."""
    reg = await registry(client)
    latest = await reg.latest_version(kind, name)
    return latest, await reg.versions(kind, name)


async def definition(client: AsyncClient, kind: str, name: str, version: str) -> Definition:
    """One version (or ``latest``) of a Workflow, Function or RuntimeEnv."""
    reg = await registry(client)
    if version == "latest":
        version = await reg.latest_version(kind, name)
    if kind == "Workflow":
        return await reg.workflow(name, version)
    if kind == "Function":
        return await reg.function(name, version)
    return await reg.runtime_env(name, version)


# --- pages of runs ----------------------------------------------------------------------
# Runs are listed newest first by (created_at, run_id); a page token is the position of the
# last run handed out, so runs started while a client pages (all newer) never shift the
# pages it has yet to read, and a run is never listed twice.


def page_token(record: ev.RunRecord) -> str:
    raw = json.dumps([record.created_at.isoformat(), record.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(token: str) -> tuple[datetime, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        at, run_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(at), str(run_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InputError(f"page_token {token[:40]!r} is not one this API handed out") from exc


def page(
    records: list[ev.RunRecord], page_size: int, token: str | None
) -> tuple[list[ev.RunRecord], str | None]:
    """One page of `records` (any order in, newest first out) after `token`."""
    ordered = sorted(records, key=lambda r: (r.created_at, r.run_id), reverse=True)
    if token:
        after = _position(token)
        ordered = [r for r in ordered if (r.created_at, r.run_id) < after]
    chunk = ordered[:page_size]
    more = len(ordered) > page_size
    return chunk, (page_token(chunk[-1]) if more and chunk else None)
