"""All configuration, read from ``ACTORFLOW_*`` environment variables here and only here."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actorflow.actors.config import EngineConfig, EngineTunables

# What Go's time.ParseDuration reads (nats-server parses the value), positive only.
_GO_DURATION = re.compile(r"(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+")


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
    #: How often the nats-server that actorflow starts (embedded or `actorflow up`) fsyncs
    #: its store: a Go duration (nats-server's default `2m`) or `always`, an fsync per
    #: write — for those who cannot lose an acknowledged write on power loss or a kernel
    #: crash, at a cost per step (docs/benchmarks.md). A killed nats-server loses nothing
    #: either way: written data is in the OS's page cache.
    nats_sync_interval: str = "2m"

    @field_validator("nats_sync_interval")
    @classmethod
    def _go_duration_or_always(cls, value: str) -> str:
        value = value.strip()
        if value != "always" and not _GO_DURATION.fullmatch(value):
            raise ValueError(f"{value!r} is neither `always` nor a duration such as 2m, 30s, 500ms")
        return value

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def jetstream_dir(self) -> Path:
        return self.home / "jetstream"

    def engine(self, nats_url: str) -> EngineConfig:
        tunables = self.model_dump(include=set(EngineTunables.model_fields))
        return EngineConfig(nats_url=nats_url, **tunables)
