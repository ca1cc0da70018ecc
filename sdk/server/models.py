"""The API's request and response bodies: strict (an unknown field is refused), so a typo
is a 422 naming the field instead of an option silently ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from actorflow._views import NodeInfo
from actorflow.actors.controller.results import Applied
from actorflow.definitions import events as ev
from actorflow.server.access import AuditEntry, Ownership


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRun(_Request):
    """``POST /api/v1/workflows/{name}/runs``."""

    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    version: str | None = Field(default=None, max_length=128)
    priority: int | None = Field(default=None, ge=0, le=9)


class Control(_Request):
    """``POST /api/v1/runs/{id}/{action}``: what the action needs (a node for retry and
    approve, an input for approve)."""

    reason: str = Field(default="", max_length=1000)
    node: str | None = Field(default=None, max_length=256)
    input: JsonValue = None
    from_start: bool = False
    compensate: bool = False


class Signal(_Request):
    payload: JsonValue = None


class Publish(_Request):
    subject: str = Field(max_length=256)
    data: JsonValue = None
    event_type: str | None = Field(default=None, max_length=256)
    msg_id: str | None = Field(default=None, max_length=256)


Action = Literal["pause", "resume", "cancel", "terminate", "retry", "approve"]


class Started(BaseModel):
    run_id: str
    workflow: str


class RunPage(BaseModel):
    runs: list[ev.RunRecord]
    next_page_token: str | None = None


class RunDetail(BaseModel):
    record: ev.RunRecord
    nodes: list[NodeInfo]


class AppliedList(BaseModel):
    applied: list[Applied]


class Versions(BaseModel):
    """One definition's name and its registered versions (oldest applied first)."""

    name: str
    latest: str
    versions: list[str]
    ownership: Ownership | None = None  # workflows: owner, namespace, visibility


class VersionList(BaseModel):
    items: list[Versions]


class LogLines(BaseModel):
    lines: list[ev.LogLine]


class AuditLog(BaseModel):
    entries: list[AuditEntry]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


def dumped(model: BaseModel) -> dict[str, Any]:
    """A definition as stored: camelCase, JSON types."""
    return model.model_dump(mode="json", by_alias=True)
