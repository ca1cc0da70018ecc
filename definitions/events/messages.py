"""The messages on NATS that are not a run's history: tasks, logs, records, lifecycle
events, trigger state, control requests and replies, wait registrations, concurrency
queues.

Each is a `Message`: a ``type`` discriminator (its class name) and a schema version ``v``.
Both have defaults, so a message written before they existed still decodes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from actorflow.definitions.events.names import RUN_ID_PATTERN
from actorflow.definitions.events.values import (
    Breakpoint,
    BreakPosition,
    ConcurrencyRef,
    ControlAction,
    ErrorInfo,
    LogLine,
    Message,
    ParentRef,
    Payload,
    Progress,
    RunStatus,
    StopReason,
    TaskRef,
    now,
)
from actorflow.definitions.priorities import DEFAULT_PRIORITY as _DEFAULT_PRIORITY
from actorflow.definitions.priorities import Priority


# --- the task queue -------------------------------------------------------------------------
class TaskScheduled(Message):
    """A unit of work on ``af.task.<function>.<version>[.p<N>]``, pulled by a replica of the
    pool; `priority` (node > run > workflow, resolved when it is scheduled) names the
    subject it waits on."""

    type: Literal["TaskScheduled"] = "TaskScheduled"
    run_id: str
    workflow: str
    task: TaskRef
    function: str
    version: str
    inputs: Payload
    at: datetime = Field(default_factory=now)
    priority: Priority = _DEFAULT_PRIORITY

    @property
    def idempotency_key(self) -> str:
        return self.task.idempotency_key(self.run_id)


# --- captured output (stream AF_LOGS) ---------------------------------------------------------
class LogBatch(Message):
    """What is stored on ``af.log.<run_id>.<node>``: the lines one execution wrote since its
    last flush (one message per flush keeps the stream small and the replica cheap)."""

    type: Literal["LogBatch"] = "LogBatch"
    lines: list[LogLine]


# --- records (KV, for listing) --------------------------------------------------------------
class RunRecord(Message):
    """The listing view of a run, kept in the runs KV bucket; history stays the truth."""

    type: Literal["RunRecord"] = "RunRecord"
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
    parent_run_id: str | None = None  # a child run: the run whose `workflow:` node started it
    concurrency: ConcurrencyRef | None = None  # its group, key and limit, if its workflow has one
    queue_ahead: int | None = None  # PENDING for its turn: unfinished runs ahead of it
    priority: int = _DEFAULT_PRIORITY  # the run's (its nodes may set their own)


# --- lifecycle events (stream AF_EVENTS) --------------------------------------------------------
class RunLifecycle(Message):
    """Published on ``af.events.run.…`` whenever a run changes status."""

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


NodeEventStatus = Literal["started", "succeeded", "failed", "skipped", "interrupted"]


class NodeLifecycle(Message):
    """Published (best effort, after the deciding event is durable) on
    ``af.events.node.…`` when a node starts, succeeds, fails for good, is skipped, or is
    left unfinished by an interrupted run."""

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


# --- triggers ---------------------------------------------------------------------------------
class ScheduleTick(Message):
    """A schedule's instant, appended once (``Nats-Msg-Id`` = trigger + instant)."""

    type: Literal["ScheduleTick"] = "ScheduleTick"
    trigger: str
    instant: datetime
    at: datetime = Field(default_factory=now)


class TriggerStats(Message):
    """A trigger's counts (kept in ``AF_TRIGGERS`` under ``stats.<name>``, written every
    second or so by the trigger host): events seen, matched by the filter, runs started,
    errors (mapping, start), rejected (not JSON, schema, size, signature)."""

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


# --- control (request/reply on af.control.<run_id>) -------------------------------------------
class ControlRequest(Message):
    """What anyone may publish (request/reply) on ``af.control.<run_id>``; the controller
    answers with a `ControlReply`."""

    type: Literal["ControlRequest"] = "ControlRequest"
    action: ControlAction
    node: str | None = None
    from_start: bool = False
    compensate: bool = False  # a cancel: undo the completed steps first
    reason: str = ""
    input: JsonValue = None
    position: BreakPosition = "before"  # a break / unbreak: before or after `node`


class ControlReply(Message):
    """The controller's answer to a `ControlRequest`: accepted (`ok`, with the recorded
    `RunControlled`'s `id`) or refused (not `ok`, with the `error` that says why; the run
    is unchanged)."""

    type: Literal["ControlReply"] = "ControlReply"
    ok: bool
    error: str | None = None
    run_id: str | None = None
    action: ControlAction | None = None
    id: str | None = None

    @classmethod
    def accepted(cls, run_id: str, action: ControlAction, id: str) -> ControlReply:
        return cls(ok=True, run_id=run_id, action=action, id=id)

    @classmethod
    def refused(cls, error: str) -> ControlReply:
        return cls(ok=False, error=error)


# --- concurrency queues (stream AF_QUEUES) ----------------------------------------------------
QueueOp = Literal["enqueue", "release"]


class QueueEntry(Message):
    """One line of a concurrency queue, ``af.queue.<queue>``: a run takes a place
    (``enqueue``, with its limit) or gives it back (``release``). `entry` names the place
    (`queue_entry_id`: the run and its episode); the queue is the order of the enqueues."""

    type: Literal["QueueEntry"] = "QueueEntry"
    op: QueueOp
    entry: str
    run_id: str
    limit: int = Field(default=1, ge=1)
    key: str = ""  # the rendered key, for whoever reads the queue by hand
    at: datetime = Field(default_factory=now)


# --- waits (KV AF_WAITS) ----------------------------------------------------------------------
class StartRunRequest(Message):
    """What the SDK publishes (request/reply) on `START_SUBJECT` to start a run. The caller
    names the run, so repeating a request whose reply was lost starts one run."""

    type: Literal["StartRunRequest"] = "StartRunRequest"
    run_id: Annotated[str, Field(pattern=RUN_ID_PATTERN)]
    workflow: str
    version: str | None = None
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    parent: ParentRef | None = None
    depth: int = 0
    priority: Priority | None = None  # None: the workflow's
    breakpoints: list[Breakpoint] = Field(default_factory=list)


class StartRunReply(Message):
    """The controller's answer to a `StartRunRequest`: started (`ok`) or refused, with the
    error's class name (`error_type`), message and — a `StepError` — code; a refused start
    changed nothing."""

    type: Literal["StartRunReply"] = "StartRunReply"
    ok: bool
    run_id: str
    error_type: str | None = None
    error: str | None = None
    code: str | None = None


class WaitRegistration(Message):
    """A wait's entry in the waits bucket under `wait_key`: which run and node a signal
    wakes, and the JSON schema its payload must match (none: anything goes)."""

    type: Literal["WaitRegistration"] = "WaitRegistration"
    run_id: str
    node: str
    # "schema" on the wire (the name it always had), which a pydantic field cannot be named.
    json_schema: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("schema", "json_schema")
    )

    @model_serializer(mode="wrap")
    def _schema_on_the_wire(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data["schema"] = data.pop("json_schema", None)
        return data
