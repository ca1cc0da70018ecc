"""All configuration, read from ``ACTORFLOW_*`` environment variables here and only here."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from actorflow.actors.config import EngineConfig, EngineTunables


class Settings(BaseSettings, EngineTunables):
    """Defaults give the embedded local cluster; set the addresses to join existing ones.

    Every engine tunable (`EngineTunables`) is a setting too, e.g. ``ACTORFLOW_RUN_ACTORS``.
    """

    model_config = SettingsConfigDict(env_prefix="ACTORFLOW_", frozen=True)

    #: Where the embedded nats-server keeps its store and `actorflow up` its state.
    home: Path = Field(default_factory=lambda: Path.home() / ".actorflow")
    #: An existing Ray cluster to join (else the one `actorflow up` started, else embedded).
    ray_address: str | None = None
    #: An existing NATS server or cluster (else the one `actorflow up` started, else embedded).
    nats_url: str | None = None
    #: CPUs and GPUs the embedded Ray declares (default: what the machine has).
    ray_num_cpus: int | None = None
    ray_num_gpus: int | None = None
    #: How long to wait for Ray or NATS to answer before saying it is unreachable.
    connect_timeout: float = Field(default=10.0, gt=0)
    #: The port `actorflow serve` answers the REST API on (on 127.0.0.1; 0: any free port).
    api_port: int = Field(default=8781, ge=0, le=65535)
    #: Requests a second one API token may make on average (0: no limit) …
    api_rate_limit: float = Field(default=50.0, ge=0)
    #: … and in a burst.
    api_rate_burst: int = Field(default=100, ge=1)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def jetstream_dir(self) -> Path:
        return self.home / "jetstream"

    def engine(self, nats_url: str) -> EngineConfig:
        tunables = self.model_dump(include=set(EngineTunables.model_fields))
        return EngineConfig(nats_url=nats_url, **tunables)
