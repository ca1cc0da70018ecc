"""A run's history: the typed events on ``af.run.<run_id>.…`` that replay folds into state.

Two writers, two subjects (see DESIGN.md):

- ``af.run.<run_id>.d`` — *decisions*, written only by the run's current run-actor
  incarnation. Each append carries ``Nats-Expected-Last-Subject-Sequence``, so a stale
  incarnation's write is refused by the server: that is the fence.
- ``af.run.<run_id>.r`` — *results*, written by function replicas (``Nats-Msg-Id`` dedupes a
  result published twice).

Control requests and signals, once accepted, are recorded on ``af.run.<run_id>.c``;
progress reports on ``af.run.<run_id>.p``. `HistoryEvent` is the union `decode_history`
reads, discriminated by ``type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, JsonValue

from actorflow.definitions.events.values import (
    Breakpoint,
    BreakpointHit,
    BreakPosition,
    ConcurrencyRef,
    ControlAction,
    ErrorInfo,
    Execution,
    Message,
    ParentRef,
    Payload,
    RunStatus,
    StopReason,
    TaskRef,
    TraceContext,
    WaitRef,
    Wire,
    now,
)

if TYPE_CHECKING:
    from actorflow.definitions.events.messages import ControlRequest


class Reuse(Wire):
    """What a rerun (`runs rerun RUN --from NODE`) takes from run `run_id`: the outputs of
    every node upstream of `node`, settled as they ended there, and `node`'s input
    overrides (merged into its rendered inputs)."""

    run_id: str
    node: str
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list)
    overrides: dict[str, JsonValue] = Field(default_factory=dict)


# --- history: decisions (written by the run actor) -------------------------------------------
class _Event(Message):
    """A history event: every one belongs to a run and says when it happened."""

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
    templates: dict[str, str] = Field(default_factory=dict)
    """Each template reference (as written) → the version expanded into `plan`."""
    workflows: dict[str, str] = Field(default_factory=dict)
    """Each sub-workflow reference (as written) → the version its child runs start."""
    connections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Each SQL node's connection reference (as written) → the `Connection` it resolved
    to (its URL and password reference; a password is never part of one)."""
    parent: ParentRef | None = None
    """A child run: the run and node that started it."""
    depth: int = 0  # how many parents it has
    concurrency: ConcurrencyRef | None = None
    """Its workflow limits runs per key: the run waits for its turn (`RunAdmitted`)."""
    priority: int | None = None
    """The run's priority: the one it was started at, else its workflow's (None: a run
    started before priorities existed — its workflow's, from `plan`)."""
    breakpoints: list[Breakpoint] = Field(default_factory=list)
    """Breakpoints set when the run started (`actorflow run --break-before`)."""
    reuse: Reuse | None = None
    """A rerun: the nodes settled from an earlier run's recorded outputs, not executed."""
    trace: TraceContext | None = None
    """Its OpenTelemetry trace (tracing on when it started)."""


class RunClaimed(_Event):
    """A new run-actor incarnation took the run over (recovery); older ones are fenced."""

    type: Literal["RunClaimed"] = "RunClaimed"
    incarnation: str


class RunAdmitted(_Event):
    """A run with a concurrency key got its turn (in `episode`: 0 from its start, one more
    each time a resume or retry reopens it after it finished): its entry at `seq` of the
    key's queue had fewer than its limit of unfinished runs ahead. Until then it waits,
    PENDING, having done nothing."""

    type: Literal["RunAdmitted"] = "RunAdmitted"
    episode: int = Field(ge=0)
    seq: int = 0


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
    breakpoints: list[BreakpointHit] = Field(default_factory=list)
    """PAUSED at breakpoints (`reason` breakpoint): each node held, with its inputs."""


class RunControlled(_Event):
    """A control request, accepted and recorded on ``af.run.<run_id>.c``."""

    type: Literal["RunControlled"] = "RunControlled"
    id: str
    action: ControlAction
    node: str | None = None
    from_start: bool = False
    compensate: bool = False  # a cancel: undo the completed steps first
    reason: str = ""
    input: JsonValue = None
    position: BreakPosition = "before"  # a break / unbreak: before or after `node`

    @classmethod
    def of(cls, request: ControlRequest, *, run_id: str, id: str) -> RunControlled:
        """The event that records an accepted `request` under `id`."""
        return cls(run_id=run_id, id=id, **request.model_dump(exclude={"type", "v"}))


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


class WaitsStarted(_Event):
    type: Literal["WaitsStarted"] = "WaitsStarted"
    waits: list[WaitRef]


class WaitEnded(_Event):
    """A sleep elapsed (the node succeeds) or a wait timed out (it fails: WAIT_TIMEOUT)."""

    type: Literal["WaitEnded"] = "WaitEnded"
    node: str
    outcome: Literal["elapsed", "timeout"]


class TimedOut(_Event):
    """A deadline passed: a node's `timeout` (`node` set; it fails with TIMEOUT, subject to
    its error policy) or the workflow's (`node` None; the run stops with RUN_TIMEOUT)."""

    type: Literal["TimedOut"] = "TimedOut"
    node: str | None = None


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
    | RunAdmitted
    | TasksScheduled
    | RunStopped
    | RunControlled
    | RunSignalled
    | StepProgress
    | WaitsStarted
    | WaitEnded
    | TimedOut
    | HookCalled
    | TaskStarted
    | TaskCompleted
    | TaskFailed,
    Field(discriminator="type"),
]
