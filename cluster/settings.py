"""All configuration, read from ``ACTORFLOW_*`` environment variables here and only here."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from actorflow.actors.config import EngineConfig


class Settings(BaseSettings):
    """Defaults give the embedded local cluster; set the addresses to join existing ones."""

    model_config = SettingsConfigDict(env_prefix="ACTORFLOW_", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".actorflow")
    ray_address: str | None = None
    nats_url: str | None = None
    namespace: str = "actorflow"
    inline_limit: int = Field(default=256 * 1024, ge=1024, le=900 * 1024)
    run_actors: int = Field(default=2, ge=1, le=256)
    stream_replicas: int = Field(default=1, ge=1, le=5)
    task_ack_wait: float = Field(default=15.0, ge=1.0)
    ray_num_cpus: int | None = None
    ray_num_gpus: int | None = None
    connect_timeout: float = Field(default=10.0, gt=0)
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8780, ge=0, le=65535)
    trigger_concurrency: int = Field(default=1000, ge=1)
    trigger_ack_wait: float = Field(default=10.0, ge=1.0)
    drain_timeout: float = Field(default=120.0, ge=0)
    level_ready_timeout: float = Field(default=60.0, gt=0)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def jetstream_dir(self) -> Path:
        return self.home / "jetstream"

    def engine(self, nats_url: str) -> EngineConfig:
        return EngineConfig(
            nats_url=nats_url,
            namespace=self.namespace,
            inline_limit=self.inline_limit,
            run_actors=self.run_actors,
            stream_replicas=self.stream_replicas,
            task_ack_wait=self.task_ack_wait,
            webhook_host=self.webhook_host,
            webhook_port=self.webhook_port,
            trigger_concurrency=self.trigger_concurrency,
            trigger_ack_wait=self.trigger_ack_wait,
            drain_timeout=self.drain_timeout,
            level_ready_timeout=self.level_ready_timeout,
        )
