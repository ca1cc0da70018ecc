"""The wire contract: every subject, stream and bucket name, and every message on them.

Durable state lives in JetStream (see DESIGN.md). A run's history is two subjects:

- ``af.run.<run_id>.d`` — *decisions*, written only by the run's current run-actor
  incarnation. Each append carries ``Nats-Expected-Last-Subject-Sequence``, so a stale
  incarnation's write is refused by the server: that is the fence.
- ``af.run.<run_id>.r`` — *results*, written by function replicas (``Nats-Msg-Id`` dedupes a
  result published twice).

Every payload is a frozen pydantic model with a ``type`` discriminator and a schema version
``v``; `encode` / `decode` are the only codec.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter
from pydantic import ValidationError as _PydanticValidationError

from actorflow.definitions.errors import ActorflowError

SCHEMA_VERSION = 1

# --- names --------------------------------------------------------------------------------
STREAM_HISTORY = "AF_HISTORY"
HISTORY_SUBJECTS = "af.run.>"
STREAM_TASKS = "AF_TASKS"
TASK_SUBJECTS = "af.task.>"
STREAM_EVENTS = "AF_EVENTS"
EVENT_SUBJECTS = "af.events.>"
KV_DEFINITIONS = "AF_DEFINITIONS"
KV_RUNS = "AF_RUNS"
KV_WAITS = "AF_WAITS"
STREAM_SIGNALS = "AF_SIGNALS"
SIGNAL_SUBJECTS = "af.signal.>"
STREAM_LOGS = "AF_LOGS"
LOG_SUBJECTS = "af.log.>"
OBJECT_STORE = "AF_BLOBS"

DECISIONS = "d"
RESULTS = "r"
CONTROL = "c"
PROGRESS = "p"
CONTROL_PREFIX = "af.control"

# Header names the server acts on.
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"

_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _token(value: str) -> str:
    """Subject tokens cannot hold '.', '*', '>' or spaces: map anything else to '_'."""
    return _TOKEN_UNSAFE.sub("_", value)


def run_subject(run_id: str, part: str) -> str:
    return f"af.run.{run_id}.{part}"


def result_subject(run_id: str, task: TaskRef, *, started: bool = False) -> str:
    """Each attempt's result has a subject of its own, so "is it done?" is one direct get:
    ``af.run.<run_id>.r.<node>.<index|->.<attempt>[.remedy]`` (``.started`` for TaskStarted)."""
    index = "-" if task.index is None else str(task.index)
    tail = (".remedy" if task.remedy else "") + (".started" if started else "")
    return f"af.run.{run_id}.{RESULTS}.{task.node}.{index}.{task.attempt}{tail}"


def results_filter(run_id: str) -> str:
    return f"af.run.{run_id}.{RESULTS}.>"


def run_history_filter(run_id: str) -> str:
    return f"af.run.{run_id}.>"


def control_subject(run_id: str) -> str:
    return f"{CONTROL_PREFIX}.{run_id}"


def signal_subject(signal: str, key: str) -> str:
    """Where a signal for the waits on (`signal`, `key`) is published."""
    return f"af.signal.{_token(signal)}.{_token(key) or '_'}"


def wait_key(signal: str, key: str, run_id: str, node: str) -> str:
    """A wait's registration in the waits bucket (prefix-searchable by signal and key)."""
    return f"{_token(signal)}.{_token(key) or '_'}.{run_id}.{node}"


def log_subject(run_id: str, node: str) -> str:
    """Captured output of one node of a run: ``af.log.<run_id>.<node>`` (every attempt and
    for-each item of the node shares it; the lines say which)."""
    return f"af.log.{run_id}.{_token(node)}"


def logs_filter(run_id: str, node: str | None = None) -> str:
    """Every node's output of a run, or one node's."""
    return log_subject(run_id, node) if node else f"af.log.{run_id}.>"


def task_subject(function: str, version: str) -> str:
    return f"af.task.{_token(function)}.{_token(version)}"


def pool_consumer(function: str, version: str) -> str:
    return f"pool-{_token(function)}-{_token(version)}"


def run_event_subject(workflow: str, run_id: str, status: str) -> str:
    """Lifecycle events of runs: ``af.events.run.<workflow>.<run_id>.<status>``."""
    return f"af.events.run.{_token(workflow)}.{run_id}.{status.lower()}"


def definition_key(kind: str, name: str, version: str) -> str:
    return f"{kind.lower()}.{name}.{_token(version)}"


def latest_key(kind: str, name: str) -> str:
    return f"latest.{kind.lower()}.{name}"


def now() -> datetime:
    return datetime.now(UTC)


# --- shared value types ---------------------------------------------------------------------
class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    PAUSED = "PAUSED"
    INTERRUPTED = "INTERRUPTED"
    SUCCEEDED = "SUCCEEDED"
    TERMINATED = "TERMINATED"

    @property
    def finished(self) -> bool:
        """A run in one of these states does nothing until someone acts on it."""
        return self in (RunStatus.INTERRUPTED, RunStatus.SUCCEEDED, RunStatus.TERMINATED)


class NodeStatus(StrEnum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"  # failed; the next attempt waits for its backoff
    WAITING = "WAITING"  # a sleep, a signal or an approval
    REMEDIATING = "REMEDIATING"  # failed; its error policy's remediation runs
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"  # failed, and its error policy said go on without it
    FAILED = "FAILED"  # failed for good (until someone resumes or retries it)

    @property
    def done(self) -> bool:
        return self in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED)


class StopReason(StrEnum):
    FAILED = "failed"
    CANCELLED = "cancelled"
    MANUAL = "manual"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class BlobRef(_Wire):
    """A value too large to travel inline: stored in the object store under `name`."""

    bucket: str = OBJECT_STORE
    name: str
    size: int


class Payload(_Wire):
    """Either an inline JSON value or the address of one in the object store."""

    inline: JsonValue = None
    blob: BlobRef | None = None


class ErrorInfo(_Wire):
    """How a step failed, as shown to operators: code, message, type and traceback."""

    code: str
    message: str
    type: str = ""
    traceback: str = ""
    retryable: bool = True
    details: dict[str, JsonValue] = Field(default_factory=dict)


class TaskRef(_Wire):
    """One execution of a node (or of one item of a for-each node), or of the remediation
    that an error policy runs for a failed attempt (`remedy`)."""

    node: str
    index: int | None = None
    attempt: int = 1
    remedy: bool = False

    @property
    def key(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"

    def idempotency_key(self, run_id: str) -> str:
        suffix = ".remedy" if self.remedy else ""
        return f"{run_id}.{self.key}.{self.attempt}{suffix}"


class Execution(_Wire):
    """Where a task ran and what it cost: for accounting and `runs show`.

    What is measured, exactly (the fields added after schema v1 default to "unknown", so
    older events still decode):

    - `cpu_seconds`: CPU time of the thread that ran the handler, while it ran it. A sync
      handler runs alone on a pool thread (`time.thread_time()` around the call); an async
      handler shares the event-loop thread with other requests, so only the steps of its
      own coroutine are timed. Threads or processes the handler starts are not counted.
      For a timed-out sync handler the figure stops at the timeout (the thread may go on).
    - `peak_rss_bytes`: the *replica process's* largest resident set size seen while the
      request ran (sampled at its start, its end and every 50 ms between). Concurrent
      requests of one replica share the process and Python rarely returns freed memory, so
      this is an upper bound of what the request needed, not its own use.
    - `gpu_ids`: the accelerator ids Ray assigned to the replica (empty without GPUs).
    """

    replica: str = ""
    ray_node: str = ""
    workflow: str = ""
    started_at: datetime
    finished_at: datetime
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    gpu_ids: list[str] = Field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


# --- history: decisions (written by the run actor) -------------------------------------------
class _Event(_Wire):
    v: int = SCHEMA_VERSION
    run_id: str
    at: datetime = Field(default_factory=now)


class RunStarted(_Event):
    """First event of every run: the plan is embedded so replay never re-reads a registry."""

    type: Literal["RunStarted"] = "RunStarted"
    workflow: str
    version: str
    plan: dict[str, Any]
    functions: dict[str, str]
    retries: dict[str, dict[str, Any]] = Field(default_factory=dict)
    hooks: dict[str, dict[str, Any]] = Field(default_factory=dict)  # function-ref hooks
    inputs: dict[str, JsonValue]


class RunClaimed(_Event):
    """A new run-actor incarnation took the run over (recovery); older ones are fenced."""

    type: Literal["RunClaimed"] = "RunClaimed"
    incarnation: str


class TasksScheduled(_Event):
    type: Literal["TasksScheduled"] = "TasksScheduled"
    tasks: list[TaskRef]


class HookCalled(_Event):
    """A workflow hook ran (once per point, node and hook; replay does not call it again)."""

    type: Literal["HookCalled"] = "HookCalled"
    point: str
    node: str | None = None
    call: str
    error: ErrorInfo | None = None


class RunStopped(_Event):
    """The driver let go of the run: SUCCEEDED (with outputs), INTERRUPTED (with a reason,
    the node, its error and any guidance), PAUSED, TERMINATED, or WAITING until `wake_at`."""

    type: Literal["RunStopped"] = "RunStopped"
    status: RunStatus
    reason: StopReason | None = None
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    node: str | None = None
    error: ErrorInfo | None = None
    guidance: str = ""
    wake_at: datetime | None = None


ControlAction = Literal["pause", "resume", "cancel", "terminate", "retry", "approve"]


class ControlRequest(_Wire):
    """What anyone may publish (request/reply) on ``af.control.<run_id>``."""

    action: ControlAction
    node: str | None = None
    from_start: bool = False
    reason: str = ""
    input: JsonValue = None


class RunControlled(_Event):
    """A control request, accepted and recorded on ``af.run.<run_id>.c``."""

    type: Literal["RunControlled"] = "RunControlled"
    id: str
    action: ControlAction
    node: str | None = None
    from_start: bool = False
    reason: str = ""
    input: JsonValue = None


class RunSignalled(_Event):
    """A signal delivered to a waiting node (on ``af.run.<run_id>.c``); `id` dedupes."""

    type: Literal["RunSignalled"] = "RunSignalled"
    id: str
    node: str
    payload: JsonValue = None


class StepProgress(_Event):
    """How far a long step has come, published by its handler (``ctx.progress``) or by
    anything outside on ``af.run.<run_id>.p``; shown on the node and in the run record."""

    type: Literal["StepProgress"] = "StepProgress"
    node: str
    index: int | None = None
    percent: float = Field(ge=0, le=100)
    message: str = ""


WaitKind = Literal["sleep", "wait", "approval"]


class WaitRef(_Wire):
    node: str
    kind: WaitKind
    signal: str = ""
    key: str = ""
    due_at: datetime | None = None  # sleep: when it ends; wait / approval: its timeout


class WaitsStarted(_Event):
    type: Literal["WaitsStarted"] = "WaitsStarted"
    waits: list[WaitRef]


class WaitEnded(_Event):
    """A sleep elapsed (the node succeeds) or a wait timed out (it fails: WAIT_TIMEOUT)."""

    type: Literal["WaitEnded"] = "WaitEnded"
    node: str
    outcome: Literal["elapsed", "timeout"]


# --- history: results (written by function replicas) -----------------------------------------
class TaskStarted(_Event):
    type: Literal["TaskStarted"] = "TaskStarted"
    task: TaskRef
    replica: str = ""
    ray_node: str = ""


class TaskCompleted(_Event):
    type: Literal["TaskCompleted"] = "TaskCompleted"
    task: TaskRef
    output: Payload
    execution: Execution


class TaskFailed(_Event):
    type: Literal["TaskFailed"] = "TaskFailed"
    task: TaskRef
    error: ErrorInfo
    execution: Execution


HistoryEvent = Annotated[
    RunStarted
    | RunClaimed
    | TasksScheduled
    | RunStopped
    | RunControlled
    | RunSignalled
    | StepProgress
    | WaitsStarted
    | WaitEnded
    | HookCalled
    | TaskStarted
    | TaskCompleted
    | TaskFailed,
    Field(discriminator="type"),
]


# --- the task queue -------------------------------------------------------------------------
class TaskScheduled(_Wire):
    """A unit of work on ``af.task.<function>.<version>``, pulled by a replica of the pool."""

    v: int = SCHEMA_VERSION
    type: Literal["TaskScheduled"] = "TaskScheduled"
    run_id: str
    workflow: str
    task: TaskRef
    function: str
    version: str
    inputs: Payload
    at: datetime = Field(default_factory=now)

    @property
    def idempotency_key(self) -> str:
        return self.task.idempotency_key(self.run_id)


# --- captured output (stream AF_LOGS) ---------------------------------------------------------
LogStream = Literal["stdout", "stderr", "log"]


class LogLine(_Wire):
    """One line a step wrote to stdout / stderr, or one `logging` record it emitted.

    Tagged with everything needed to tell requests apart when many workflows share one
    function pool: the run, workflow, node (and for-each index), attempt and replica.
    `seq` numbers the lines of one execution in the order they were written.
    """

    run_id: str
    workflow: str = ""
    node: str
    index: int | None = None
    attempt: int = 1
    replica: str = ""
    stream: LogStream
    level: str = ""  # `logging` records only: INFO, WARNING, …
    logger: str = ""  # `logging` records only: the logger's name
    text: str
    seq: int = 0
    at: datetime = Field(default_factory=now)

    @property
    def key(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"


class LogBatch(_Wire):
    """What is stored on ``af.log.<run_id>.<node>``: the lines one execution wrote since its
    last flush (one message per flush keeps the stream small and the replica cheap)."""

    v: int = SCHEMA_VERSION
    type: Literal["LogBatch"] = "LogBatch"
    lines: list[LogLine]


# --- records (KV, for listing) --------------------------------------------------------------
class StepReport(_Wire):
    percent: float
    message: str = ""


class Progress(_Wire):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    steps: dict[str, StepReport] = Field(default_factory=dict)  # running steps that report


class RunRecord(_Wire):
    """The listing view of a run, kept in the runs KV bucket; history stays the truth."""

    v: int = SCHEMA_VERSION
    run_id: str
    workflow: str
    version: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress = Field(default_factory=Progress)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    reason: StopReason | None = None
    node: str | None = None
    error: ErrorInfo | None = None
    guidance: str = ""
    wake_at: datetime | None = None
    hook_failures: list[str] = Field(default_factory=list)


class RunLifecycle(_Wire):
    """Published on ``af.events.run.…`` whenever a run changes status."""

    v: int = SCHEMA_VERSION
    type: Literal["RunLifecycle"] = "RunLifecycle"
    run_id: str
    workflow: str
    version: str
    status: RunStatus
    at: datetime = Field(default_factory=now)
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    reason: StopReason | None = None
    node: str | None = None
    error: ErrorInfo | None = None


# --- triggers and lifecycle events -----------------------------------------------------------
STREAM_TRIGGERS = "AF_TRIGGER_EVENTS"
TRIGGER_SUBJECTS = "af.trigger.>"
"""Schedule ticks and webhook deliveries, appended before a trigger consumes them."""
STREAM_INGRESS = "AF_INGRESS"
"""Captures the (non-internal) subjects that triggers listen on; its subject list is the
union of the trigger subjects, updated when triggers are applied or deleted."""
KV_TRIGGERS = "AF_TRIGGERS"
"""``trigger.<name>`` (the applied Trigger, with its enabled flag), ``eventtype.<name>``,
``stats.<name>`` (`TriggerStats`) and ``webhook`` (the HTTP server's address)."""
WEBHOOK_KEY = "webhook"

NodeEventStatus = Literal["started", "succeeded", "failed", "skipped", "interrupted"]


def trigger_event_subject(trigger: str, kind: Literal["tick", "hook", "rejected"]) -> str:
    """Where a trigger's schedule ticks (``tick``), webhook deliveries (``hook``) and refused
    webhook deliveries (``rejected``, counted, never run) are appended."""
    return f"af.trigger.{_token(trigger)}.{kind}"


def trigger_consumer(trigger: str) -> str:
    return f"trigger-{_token(trigger)}"


def node_event_subject(workflow: str, run_id: str, node: str, status: str) -> str:
    """Lifecycle events of nodes: ``af.events.node.<workflow>.<run_id>.<node>.<status>``."""
    return f"af.events.node.{_token(workflow)}.{run_id}.{_token(node)}.{status.lower()}"


class NodeLifecycle(_Wire):
    """Published (best effort, after the deciding event is durable) on
    ``af.events.node.…`` when a node starts, succeeds, fails for good, is skipped, or is
    left unfinished by an interrupted run."""

    v: int = SCHEMA_VERSION
    type: Literal["NodeLifecycle"] = "NodeLifecycle"
    run_id: str
    workflow: str
    version: str
    node: str
    status: NodeEventStatus
    attempt: int = 0
    at: datetime = Field(default_factory=now)
    output: JsonValue = None  # succeeded: the node's output when it is small (else null)
    error: ErrorInfo | None = None


class ScheduleTick(_Wire):
    """A schedule's instant, appended once (``Nats-Msg-Id`` = trigger + instant)."""

    v: int = SCHEMA_VERSION
    type: Literal["ScheduleTick"] = "ScheduleTick"
    trigger: str
    instant: datetime
    at: datetime = Field(default_factory=now)


class TriggerStats(_Wire):
    """A trigger's counts (kept in ``AF_TRIGGERS`` under ``stats.<name>``, written every
    second or so by the trigger host): events seen, matched by the filter, runs started,
    errors (mapping, start), rejected (not JSON, schema, size, signature)."""

    v: int = SCHEMA_VERSION
    type: Literal["TriggerStats"] = "TriggerStats"
    name: str
    seen: int = 0
    matched: int = 0
    started: int = 0
    errors: int = 0
    rejected: int = 0
    active: int = 0
    last_event_at: datetime | None = None
    last_error: str = ""
    updated_at: datetime = Field(default_factory=now)


# --- codec ------------------------------------------------------------------------------------
class DecodeError(ActorflowError):
    """Bytes on a subject do not form a known message of the wire contract."""


_HISTORY: TypeAdapter[HistoryEvent] = TypeAdapter(HistoryEvent)
_M = TypeVar("_M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=False).encode()


def decode_history(data: bytes) -> HistoryEvent:
    try:
        return _HISTORY.validate_json(data)
    except _PydanticValidationError as exc:
        raise DecodeError(f"not a history event: {exc.errors()[0]['msg']}") from exc


def decode(model: type[_M], data: bytes) -> _M:
    try:
        return model.model_validate_json(data)
    except _PydanticValidationError as exc:
        raise DecodeError(f"not a {model.__name__}: {exc.errors()[0]['msg']}") from exc
