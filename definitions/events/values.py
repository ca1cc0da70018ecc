"""The value types that messages carry, and the two bases every message is built on.

`Wire` is a frozen model that ignores fields it does not know (a newer writer's additions);
`Message` adds the envelope every payload on NATS has: a schema version ``v``. Each concrete
message adds its ``type`` discriminator (a `Literal` of its class name). Value types nested
in messages (`TaskRef`, `ErrorInfo` …) have neither: the message around them is versioned.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from actorflow.definitions.errors import ErrorCode
from actorflow.definitions.events.names import OBJECT_STORE

SCHEMA_VERSION = 1
"""The version every message is written with. A field added later has a default, so a
message written before it (``v`` = 1, or no ``v`` at all) still decodes."""


def now() -> datetime:
    return datetime.now(UTC)


class Wire(BaseModel):
    """Base of everything on the wire: immutable; unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Message(Wire):
    """Base of every payload on NATS: ``v`` here, ``type`` on each concrete message."""

    v: int = SCHEMA_VERSION


# --- statuses ---------------------------------------------------------------------------------
class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    PAUSED = "PAUSED"
    COMPENSATING = "COMPENSATING"  # it failed for good: its compensations run
    INTERRUPTED = "INTERRUPTED"
    SUCCEEDED = "SUCCEEDED"
    COMPENSATED = "COMPENSATED"  # failed (or cancelled), every completed step undone
    TERMINATED = "TERMINATED"

    @property
    def finished(self) -> bool:
        """A run in one of these states does nothing until someone acts on it."""
        return self in (
            RunStatus.INTERRUPTED,
            RunStatus.SUCCEEDED,
            RunStatus.COMPENSATED,
            RunStatus.TERMINATED,
        )


class NodeStatus(StrEnum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"  # failed; the next attempt waits for its backoff
    WAITING = "WAITING"  # a sleep, a signal or an approval
    REMEDIATING = "REMEDIATING"  # failed; its error policy's remediation runs
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"  # its `when` was false or its needs passed it over; or an error policy
    # said go on without it
    FAILED = "FAILED"  # failed for good (until someone resumes or retries it)

    @property
    def done(self) -> bool:
        return self in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED)


class StopReason(StrEnum):
    FAILED = "failed"
    CANCELLED = "cancelled"
    MANUAL = "manual"
    BREAKPOINT = "breakpoint"  # PAUSED at a breakpoint (or after a debugger's `step`)


# --- values -------------------------------------------------------------------------------------
class BlobRef(Wire):
    """A value too large to travel inline: stored in the object store under `name`."""

    bucket: str = OBJECT_STORE
    name: str
    size: int


class Payload(Wire):
    """Either an inline JSON value or the address of one in the object store."""

    inline: JsonValue = None
    blob: BlobRef | None = None


class ErrorInfo(Wire):
    """How a step failed, as shown to operators: code, message, type and traceback.

    `code` is a free string: a handler's own `StepError` code, or one of the engine's
    (`actorflow.ErrorCode`). `type` is the exception's type, not a message discriminator.
    """

    code: str
    message: str
    type: str = ""
    traceback: str = ""
    retryable: bool = True
    details: dict[str, JsonValue] = Field(default_factory=dict)


class TaskRef(Wire):
    """One execution of a node (or of one item of a for-each node), of the remediation
    that an error policy runs for a failed attempt (`remedy`), or of the compensation that
    undoes a completed step (`compensation`: `attempt` counts the compensation's tries)."""

    node: str
    index: int | None = None
    attempt: int = 1
    remedy: bool = False
    compensation: bool = False

    @property
    def key(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"

    def idempotency_key(self, run_id: str) -> str:
        suffix = ".remedy" if self.remedy else ".undo" if self.compensation else ""
        return f"{run_id}.{self.key}.{self.attempt}{suffix}"


OnParentStop = Literal["cancel", "terminate", "abandon"]


class ParentRef(Wire):
    """Where a child run comes from: the parent run and the task of its `workflow:` node
    that started it, and what the child does when the parent is paused, cancelled or
    terminated (`on_parent_stop`: the same, or nothing — ``abandon``)."""

    run_id: str
    task: TaskRef
    on_parent_stop: OnParentStop = "cancel"


class TraceContext(Wire):
    """The trace a run belongs to, recorded when it starts: the W3C context of the span
    that started it, which every span of the run descends from."""

    traceparent: str = Field(max_length=55)
    tracestate: str = Field(default="", max_length=512)


class ConcurrencyRef(Wire):
    """A run's place in a concurrency queue, decided when it starts: the `group` (the
    workflow's name unless its definition names one), the rendered `key`, the run's own
    `limit`, and `queue` — the hash of group and key that names the queue's subject."""

    group: str
    key: str
    limit: int = Field(ge=1)
    queue: str


def child_run_id(parent_run_id: str, task: TaskRef, workflow: str) -> str:
    """The id of the child run one attempt of a `workflow:` node starts: derived from the
    parent and the attempt, so a start repeated after any crash starts the same run —
    bounded in length however deep the nesting."""
    digest = hashlib.sha256(task.idempotency_key(parent_run_id).encode()).hexdigest()[:16]
    return f"{workflow}-{digest}"


def child_failure(child: str, status: RunStatus, error: ErrorInfo | None) -> ErrorInfo:
    """How a `workflow:` node fails when its child run ends other than SUCCEEDED: with the
    child's own error code (else CHILD_FAILED), never retried as such (its retry is a new
    child), the child's id in the details. One definition for both who may say it — the
    child's driver, reporting its end to the parent, and the node's handler."""
    detail = f": [{error.code}] {error.message}" if error else ""
    return ErrorInfo(
        code=error.code if error else ErrorCode.CHILD_FAILED,
        message=f"child run {child} ended {status.value}{detail}",
        type="actorflow.StepError",
        retryable=False,
        details={"child_run_id": child, "status": status.value},
    )


class Execution(Wire):
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


ControlAction = Literal[
    "pause",
    "resume",
    "cancel",
    "terminate",
    "retry",
    "approve",
    "break",  # set a breakpoint (`node`, `position`)
    "unbreak",  # clear one
    "step",  # resume, stopping again before the next nodes that become ready
    "override",  # replace inputs of the node a paused run stopped before (`input`)
]

BreakPosition = Literal["before", "after"]


class Breakpoint(Wire):
    """Stop the run PAUSED before `node` is scheduled, or after it succeeded."""

    node: str
    position: BreakPosition = "before"


class BreakpointHit(Wire):
    """Where a run stopped at a breakpoint: before a node, with the inputs it was about to
    be scheduled with (a forEach node: one per item), or after one, with its output."""

    node: str
    position: BreakPosition = "before"
    inputs: JsonValue = None
    output: JsonValue = None


WaitKind = Literal["sleep", "wait", "approval"]


class WaitRef(Wire):
    node: str
    kind: WaitKind
    signal: str = ""
    key: str = ""
    due_at: datetime | None = None  # sleep: when it ends; wait / approval: its timeout


LogStream = Literal["stdout", "stderr", "log"]


class LogLine(Wire):
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


class StepReport(Wire):
    percent: float
    message: str = ""


class Progress(Wire):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    steps: dict[str, StepReport] = Field(default_factory=dict)  # running steps that report
