"""The engine's tunables: one model, with each default and its reason where it is defined.

`cluster.settings.Settings` inherits `EngineTunables`, so every tunable is also an
``ACTORFLOW_<NAME>`` environment variable with the same default and bounds; the engine
itself never reads the environment — it is handed an `EngineConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineTunables(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: Ray namespace of every engine actor.
    namespace: str = "actorflow"
    #: Values up to this many bytes travel inline in events; larger ones via the object store.
    inline_limit: int = Field(default=256 * 1024, ge=1024, le=900 * 1024)
    #: Warm run actors; each hosts the drivers of many runs.
    run_actors: int = Field(default=2, ge=1, le=256)
    #: Replicas of every stream and bucket (3 on a three-server JetStream cluster).
    stream_replicas: int = Field(default=1, ge=1, le=5)
    #: How long a replica may hold a task without acknowledging it before it is redelivered.
    task_ack_wait: float = Field(default=15.0, ge=1.0)
    #: A step still running after this long is announced started (TaskStarted); a shorter
    #: one is seen started and finished at once, which saves a stored message per step.
    task_started_after: float = Field(default=0.05, ge=0)
    #: Run records are rewritten at most this often while a run progresses (seconds).
    record_interval: float = Field(default=0.25, gt=0)
    #: A driver that heard nothing for this long re-reads its history (live delivery is
    #: best effort across a NATS restart; the stream is not).
    catch_up_after: float = Field(default=5.0, gt=0)
    #: Name each run's driving Ray task ``run:<run_id>`` (the dashboard's task list then shows
    #: every active run). Off by default: Ray keeps a metrics series per task name for the
    #: life of each process — measured ~40 KB per run in the controller, in every run actor
    #: and in Ray's dashboard agent (10,000 runs: +390 MB) — so unique names leak.
    run_task_names: bool = False
    #: How deep sub-workflows may nest (a child of a child …): a deeper start fails its
    #: node with SUBWORKFLOW_DEPTH — recursion ends there if nothing else stops it.
    max_run_depth: int = Field(default=32, ge=1, le=1000)
    #: Longest a workflow hook may run before it is recorded as failed (seconds).
    hook_timeout: float = Field(default=30.0, gt=0)
    #: Largest node output (as JSON, bytes) carried by a node lifecycle event; else null.
    node_event_output_limit: int = Field(default=64 * 1024, ge=0)
    #: How often the autoscaler observes every pool's queue (seconds).
    autoscale_interval: float = Field(default=0.5, gt=0)
    #: Longest a replica being scaled down or replaced may finish its in-flight tasks.
    drain_timeout: float = Field(default=120.0, ge=0)
    #: `apply` waits this long for a new pool's first replicas; the pool goes on starting.
    start_wait: float = Field(default=60.0, gt=0)
    #: Longest a replica's creation may take (pip installs included) before it is failed.
    replica_start_timeout: float = Field(default=300.0, gt=0)
    #: Longest a resource level's placement group may take to be reserved.
    level_ready_timeout: float = Field(default=60.0, gt=0)
    #: Replicas ship captured step output at least this often (seconds).
    log_flush_interval: float = Field(default=0.25, gt=0)
    #: Captured output is kept this long (AF_LOGS max age, days) …
    logs_max_age_days: float = Field(default=7.0, gt=0)
    #: … and at most this many bytes (the oldest batches go first).
    logs_max_bytes: int = Field(default=1024**3, ge=1024**2)
    #: The controller's Prometheus ``/metrics``, whose figures also go to Ray's own metrics
    #: through `ray.util.metrics` (port 0: metrics off).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    #: The webhook server's address (port 0: any free port).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8780, ge=0, le=65535)
    #: Runs started by triggers that may be active at once, all triggers together.
    trigger_concurrency: int = Field(default=1000, ge=1)
    #: How long a trigger's held event may go without a heartbeat before redelivery.
    trigger_ack_wait: float = Field(default=10.0, ge=1.0)


Sampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TracingConfig(BaseModel):
    """Where every engine process sends its OpenTelemetry spans (read from the standard
    ``OTEL_*`` variables by `cluster.settings`; None on `EngineConfig`: tracing off)."""

    model_config = ConfigDict(frozen=True)

    #: ``otlp`` to a collector, or ``console`` (each process's stdout: Ray's worker logs).
    exporter: Literal["otlp", "console"] = "otlp"
    #: The traces endpoint: a URL ending in ``/v1/traces`` (HTTP) or ``host:port`` (gRPC).
    endpoint: str = "http://localhost:4318/v1/traces"
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    headers: dict[str, str] = Field(default_factory=dict)
    #: Longest one export may take (seconds); a slow collector delays no run.
    timeout: float = Field(default=10.0, gt=0)
    #: How often finished spans are sent (seconds; ``OTEL_BSP_SCHEDULE_DELAY``).
    export_interval: float = Field(default=5.0, gt=0)
    service_name: str = "actorflow"
    #: Which traces are recorded (``OTEL_TRACES_SAMPLER``): a ``parentbased_*`` sampler
    #: follows the caller's decision and applies its own to traces that start here.
    sampler: Sampler = "parentbased_always_on"
    #: The share of traces a ``*traceidratio`` sampler records (``OTEL_TRACES_SAMPLER_ARG``).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class EngineConfig(EngineTunables):
    """What the actors are handed: the tunables, where NATS is, where traces go."""

    nats_url: str
    tracing: TracingConfig | None = None
