"""The committed OpenAPI document is the one the routes make, and the API's pure parts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actorflow.definitions import events as ev
from actorflow.definitions.errors import InputError
from actorflow.server import engine
from actorflow.server.openapi import REGENERATE, render

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_committed_openapi_document_has_not_drifted() -> None:
    assert COMMITTED.read_text() == render(), f"docs/openapi.json is stale: run `{REGENERATE}`"


def test_every_route_answers_the_one_error_shape_in_the_document() -> None:
    paths = json.loads(render())["paths"]
    assert "/api/v1/runs/{run_id}/{action}" in paths
    assert all(p == "/healthz" or p.startswith("/api/v1/") for p in paths)


def _record(n: int, at: datetime) -> ev.RunRecord:
    return ev.RunRecord(
        run_id=f"r-{n}",
        workflow="w",
        version="1",
        status=ev.RunStatus.SUCCEEDED,
        created_at=at,
        updated_at=at,
    )


def test_pages_cover_every_record_once_and_new_ones_never_shift_them() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    records = [_record(n, t0 + timedelta(seconds=n // 2)) for n in range(7)]  # ties in time
    seen: list[str] = []
    token = None
    while True:
        chunk, token = engine.page(records, 3, token)
        seen += [r.run_id for r in chunk]
        records.append(_record(100 + len(seen), t0 + timedelta(days=1)))  # a newer run
        if token is None:
            break
    assert sorted(seen) == sorted(f"r-{n}" for n in range(7))
    with pytest.raises(InputError, match="page_token"):
        engine.page(records, 3, "not-a-token")
