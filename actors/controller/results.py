"""What the controller's operations return: typed, frozen, and the same models the SDK
hands to its callers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from actorflow.definitions import events as ev


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class Applied(_Result):
    """One definition of an `apply`: whether its stored version changed, and why its
    function pool cannot serve (`error`) when it cannot."""

    kind: str
    name: str
    version: str
    changed: bool
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.name, self.version)


class Deleted(_Result):
    kind: str
    name: str
    version: str


class ControlAccepted(_Result):
    """A control request that was checked and recorded (`id` is its `RunControlled` id)."""

    run_id: str
    action: ev.ControlAction
    id: str


class EngineInfo(_Result):
    """Where the engine is and what it serves (`actorflow status`, `Client.engine_info`)."""

    nats_url: str
    run_actors: int
    active_runs: int
    autoscale_rounds: int = 0
    metrics_url: str = ""  # empty: no endpoint (port 0, or taken: see metrics_error)
    metrics_error: str = ""
    dashboard_url: str = ""  # the Ray dashboard, when this program knows it
