"""The run state machine: a pure fold over a run's history, and the decisions it implies.

No Ray, no NATS, no clock reads: the run actor feeds events in (and the time, for timers)
and carries decisions out, so a fresh incarnation that replays the same history reaches
the same state and makes the same decisions. `apply` is idempotent: a result seen twice —
once live, once in replay — changes nothing the second time.

What happens when a step fails is decided here, when the failure is folded in, from the
workflow's error policies and the node's retry policy: retry after a backoff (the due time
is the failure's time plus the delay, so replay computes the same), skip, remediate, or
stop the run INTERRUPTED with a reason and the operator's guidance.
"""

from __future__ import annotations

import json
import traceback
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from actorflow.actors.run.gates import SETTLED, Gate, gate
from actorflow.definitions.errors import ErrorCode, ExpressionError
from actorflow.definitions.events import (
    BreakpointHit,
    ErrorInfo,
    Execution,
    HistoryEvent,
    HookCalled,
    NodeStatus,
    Progress,
    RunAdmitted,
    RunClaimed,
    RunControlled,
    RunSignalled,
    RunStarted,
    RunStatus,
    RunStopped,
    StepProgress,
    StepReport,
    StopReason,
    TaskCompleted,
    TaskFailed,
    TaskRef,
    TasksScheduled,
    TaskStarted,
    TimedOut,
    WaitEnded,
    WaitRef,
    WaitsStarted,
    queue_entry_id,
)
from actorflow.definitions.models import Connection, RetryPolicy, Workflow
from actorflow.definitions.plan import TASK_KINDS, Plan, PlannedNode, compile_plan
from actorflow.definitions.priorities import DEFAULT_PRIORITY, resolve_priority

# A run with nothing in flight whose next timer is further away than this lets go of its
# run actor (WAITING) and is woken by the controller's timer.
UNLOAD_AFTER = timedelta(seconds=5)

_ACTIVE = (NodeStatus.SCHEDULED, NodeStatus.RUNNING)
# Stops a `terminate` ends for good (a WAITING run is woken by its claim instead).
_TERMINABLE_STOPS = (RunStatus.PAUSED, RunStatus.INTERRUPTED)
_COMPUTED = ("value", "fail")  # nodes that end as their needs do, without a task
# A node's status is the first of these that any of its tasks has (else SUCCEEDED, or
# SKIPPED when its one task was skipped).
_NODE_PRIORITY = (
    NodeStatus.FAILED,
    NodeStatus.WAITING,
    NodeStatus.REMEDIATING,
    NodeStatus.RETRYING,
    NodeStatus.RUNNING,
    NodeStatus.SCHEDULED,
)


@dataclass
class TaskState:
    """The latest attempt of one node (or one for-each item)."""

    ref: TaskRef
    status: NodeStatus = NodeStatus.SCHEDULED
    budget_from: int = 0  # attempts made before the last resume do not count against retries
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replica: str = ""
    ray_node: str = ""
    execution: Execution | None = None  # where it ran and what it cost, once it finished
    output: Any = None
    error: ErrorInfo | None = None
    due_at: datetime | None = None  # RETRYING: the next attempt starts at this time
    reason: StopReason | None = None  # FAILED: why the run must stop
    guidance: str = ""
    remedy_scheduled: bool = False
    previous: list[TaskState] = field(default_factory=list)  # earlier attempts, oldest first
    percent: float | None = None  # reported by the step while it runs
    message: str = ""
    reused_from: str = ""  # a rerun: settled from this run's recorded output, not executed


@dataclass
class NodeState:
    id: str
    items: int | None = None  # for-each nodes: how many items were fanned out
    tasks: dict[int | None, TaskState] = field(default_factory=dict)
    expanded: bool = False
    render_error: ErrorInfo | None = None
    attempt_floor: int = 0  # after a resume from the start, attempts continue above this
    wait: WaitRef | None = None  # sleep / wait / approval nodes, once started
    # Settled by its needs and its `when` (see gates.py), in the fold: it may run / it never
    # runs. Sticky, like a decision: a node retried later does not reopen a branch.
    ready: bool = False
    skipped: bool = False
    skip_reason: str = ""  # "when false" or which needs were not met (for `runs show`)
    cursor: int = 0  # needs before this index had ended when last looked (a fan-in's 200)

    @property
    def status(self) -> NodeStatus:
        if self.render_error is not None:
            return NodeStatus.FAILED
        if self.skipped:
            return NodeStatus.SKIPPED
        if not self.expanded:
            return NodeStatus.PENDING
        if self.items is None and len(self.tasks) == 1:
            # The common case, asked for every node on every decision: one task.
            (task,) = self.tasks.values()
            if task.status in _NODE_PRIORITY or task.status is NodeStatus.SKIPPED:
                return task.status
            return NodeStatus.SUCCEEDED
        statuses = {t.status for t in self.tasks.values()}
        for status in _NODE_PRIORITY:
            if status in statuses:
                return status
        if self.items is None and statuses == {NodeStatus.SKIPPED}:
            return NodeStatus.SKIPPED
        return NodeStatus.SUCCEEDED

    @property
    def output(self) -> Any:
        if self.items is None:
            task = self.tasks.get(None)
            return task.output if task else None
        return [self.tasks[i].output if i in self.tasks else None for i in range(self.items)]

    @property
    def error(self) -> ErrorInfo | None:
        if self.render_error is not None:
            return self.render_error
        return next((t.error for t in self.tasks.values() if t.error is not None), None)

    @property
    def attempts(self) -> int:
        return max((t.ref.attempt for t in self.tasks.values()), default=0)

    def failed_task(self) -> TaskState | None:
        return next((t for t in self.tasks.values() if t.status is NodeStatus.FAILED), None)


@dataclass(frozen=True)
class PlannedTask:
    ref: TaskRef
    function: str
    version: str
    inputs: Any
    priority: int = DEFAULT_PRIORITY  # node > run > workflow (`RunState.priority_of`)


@dataclass(frozen=True)
class Schedule:
    """Publish these tasks."""

    tasks: list[PlannedTask]


@dataclass(frozen=True)
class Stop:
    """Let go of the run, recording why."""

    status: RunStatus
    reason: StopReason | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    node: str | None = None
    error: ErrorInfo | None = None
    guidance: str = ""
    wake_at: datetime | None = None
    breakpoints: list[BreakpointHit] = field(default_factory=list)


@dataclass(frozen=True)
class StartWaits:
    """Sleep, wait for a signal, or wait for an approval."""

    waits: list[WaitRef]


@dataclass(frozen=True)
class EndWait:
    node: str
    outcome: Literal["elapsed", "timeout"]  # a sleep succeeds; a wait that times out fails


@dataclass(frozen=True)
class Expire:
    """A deadline passed: record it (`TimedOut`) — a node's when `node` is set, else the
    run's. The clock decides, so the history must say it happened."""

    node: str | None = None


@dataclass(frozen=True)
class AwaitTurn:
    """The run's workflow limits runs per key and the run has not had its turn (in this
    episode): hold `entry`'s place in the queue and wait until it is admitted — record
    `RunAdmitted` then. Nothing else is decided meanwhile, but a stop."""

    entry: str
    episode: int


Decision = Schedule | StartWaits | EndWait | Expire | Stop | AwaitTurn


class RunState:
    """State of one run, rebuilt from its `RunStarted` event and everything after it."""

    def __init__(self, started: RunStarted, plan: Plan | None = None) -> None:
        self.started = started
        self.plan = plan or plan_of(started)
        self.nodes = {node_id: NodeState(node_id) for node_id in self.plan.nodes}
        self.stopped: RunStopped | None = None
        self.incarnations: list[str] = []
        # A run with a concurrency key waits for its turn, once per episode: 0 from its
        # start, one more each time a resume or retry reopens it after it finished.
        self.episode = 0
        self.admitted_episode: int | None = None
        self.status = RunStatus.PENDING if self.queued else RunStatus.RUNNING
        self.started_at: datetime | None = None if self.queued else started.at
        self.paused = False
        self.cancelled = False
        self.terminated = False
        self.timed_out = False  # the workflow's `timeout` passed
        self.deadline_from: datetime = started.at  # its clock restarts on a resume
        self.controls: list[RunControlled] = []
        self.inbox: list[str] = []  # ids of control requests and signals, in order
        self.hooks_called: set[tuple[str, str | None, str]] = set()
        self.hook_failures: list[str] = []
        # Signal waits whose signal arrived: their registration in the waits bucket (an
        # index only) can go. The run actor drains this list; replay refills it harmlessly.
        self.signalled_waits: list[WaitRef] = []
        # Nodes skipped or computed (value nodes) since the run actor last looked: they
        # ended in the fold, with no event of their own, and it announces them.
        self.newly_settled: list[str] = []
        self.settled_count = 0  # nodes whose gate has opened or shut, ever
        # Sagas: completed steps in order of completion (latest attempt of each), and once
        # the run failed for good, the compensations that undo them, newest first.
        self.completions: list[_StepKey] = []
        self.cancel_compensate = False  # a cancel asked for compensation
        self.compensating = False
        self.compensation_queue: list[_StepKey] = []
        self.compensations: dict[_StepKey, TaskState] = {}
        self.compensation_cause: Stop | None = None  # how the run would have stopped
        # Debugging (see breakpoints below): where to stop, which stops a `continue` or a
        # `step` went past, where the run is paused now, and inputs a person replaced.
        self.breakpoints = {(b.node, b.position) for b in started.breakpoints}
        self.passed: set[tuple[str, str]] = set()
        self.held: list[BreakpointHit] = []
        self.stepping = False  # a `step`: stop before the next nodes that become ready
        self.overrides: dict[str, Any] = {}
        self._holding = False  # a breakpoint was hit: schedule only what was let past
        self._reuse()
        self._resolve(self.plan.nodes)

    def _reuse(self) -> None:
        """A rerun settles the nodes upstream of its start node as they ended in the
        earlier run — recorded in `RunStarted`, so replay settles them alike."""
        reuse = self.started.reuse
        if reuse is None:
            return
        if reuse.overrides:
            self.overrides[reuse.node] = dict(reuse.overrides)
        for node_id, output in reuse.outputs.items():
            node = self.nodes.get(node_id)
            if node is None:
                continue
            ref = TaskRef(node=node_id, attempt=1)
            task = TaskState(ref, status=NodeStatus.SUCCEEDED, output=output)
            task.reused_from = reuse.run_id
            node.tasks[None], node.ready, node.expanded = task, True, True
            self.newly_settled.append(node_id)
        for node_id in reuse.skipped:
            if node_id in self.nodes:
                node = self.nodes[node_id]
                node.skipped, node.skip_reason = True, f"skipped in run {reuse.run_id}"
                self.newly_settled.append(node_id)

    @classmethod
    def from_history(
        cls, history: Iterable[HistoryEvent], blobs: Mapping[str, Any] | None = None
    ) -> RunState:
        """The one replay: a run's state from its history, first event `RunStarted`.

        A completed task's output is its inline value, or `blobs[name]` for one stored in
        the object store (fetched by the caller: this fold does no I/O). Whoever reads a
        run — the run actor, the controller, the client — folds it here.
        """
        events = iter(history)
        started = next(events, None)
        if not isinstance(started, RunStarted):
            raise ValueError("a run's history starts with RunStarted")
        state = cls(started)
        for event in events:
            state.apply(event, _output_of(event, blobs or {}))
        return state

    # --- folding -------------------------------------------------------------------------
    def apply(self, event: HistoryEvent, output: Any = None) -> None:
        """Fold one event in. `output` is a TaskCompleted's value, already fetched if large."""
        self._fold(event, output)
        if isinstance(event, TaskCompleted | TaskFailed) and event.task.compensation:
            return
        if isinstance(event, TaskCompleted | TaskFailed):
            self._resolve(self.plan.dependants.get(event.task.node, ()))
        elif isinstance(event, WaitEnded | RunSignalled | TimedOut) and event.node:
            self._resolve(self.plan.dependants.get(event.node, ()))
        elif isinstance(event, RunControlled):
            self._resolve(self.plan.nodes)

    def _fold(self, event: HistoryEvent, output: Any) -> None:
        if isinstance(event, TasksScheduled):
            for ref in event.tasks:
                if ref.compensation:
                    self._compensation_scheduled(ref, event.at)
                else:
                    self._scheduled(ref, event.at)
        elif isinstance(event, TaskStarted):
            task = self._current(event.task)
            if task is not None and task.status is NodeStatus.SCHEDULED:
                task.status = NodeStatus.RUNNING
                task.started_at, task.replica, task.ray_node = (
                    event.at,
                    event.replica,
                    event.ray_node,
                )
        elif isinstance(event, TaskCompleted):
            self._completed(event, output)
        elif isinstance(event, TaskFailed):
            self._failed(event)
        elif isinstance(event, RunStopped):
            self.status, self.stopped = event.status, event
            if event.reason is StopReason.BREAKPOINT:
                self.held, self.stepping = list(event.breakpoints), False
        elif isinstance(event, RunAdmitted):
            self._admitted(event)
        elif isinstance(event, RunClaimed):
            self.incarnations.append(event.incarnation)
            if self.stopped is not None and self.stopped.status is RunStatus.WAITING:
                self.stopped, self.status = None, self._live_status  # woken by its timer
        elif isinstance(event, RunControlled):
            self._control(event)
        elif isinstance(event, StepProgress):
            node = self.nodes.get(event.node)
            task = node.tasks.get(event.index) if node else None
            if task is not None and task.status in (*_ACTIVE, NodeStatus.WAITING):
                task.percent, task.message = event.percent, event.message
        elif isinstance(event, HookCalled):
            key = (event.point, event.node, event.call)
            if key not in self.hooks_called:
                self.hooks_called.add(key)
                if event.error is not None:
                    where = f" {event.node}" if event.node else ""
                    self.hook_failures.append(
                        f"{event.point}{where} {event.call}: {event.error.message}"
                    )
        elif isinstance(event, WaitsStarted):
            for wait in event.waits:
                self._wait_started(wait, event.at)
        elif isinstance(event, RunSignalled):
            if event.id not in self.inbox:
                self.inbox.append(event.id)
            signalled = self.nodes[event.node].wait if event.node in self.nodes else None
            if signalled is not None and signalled.kind == "wait":
                self.signalled_waits.append(signalled)
            self._wait_done(event.node, event.payload, event.at)
        elif isinstance(event, WaitEnded):
            self._wait_ended(event)
        elif isinstance(event, TimedOut):
            self._timed_out(event)

    @property
    def queued(self) -> bool:
        """Waiting for its turn under its concurrency key (in this episode)."""
        return self.started.concurrency is not None and self.admitted_episode != self.episode

    @property
    def queue_entry(self) -> str:
        """The run's place in its queue in this episode."""
        return queue_entry_id(self.started.run_id, self.episode)

    def _admitted(self, event: RunAdmitted) -> None:
        if event.episode != self.episode or not self.queued:
            return  # an older episode's (replayed), or seen already
        self.admitted_episode = event.episode
        self.deadline_from = event.at  # the workflow's timeout counts from its turn
        if self.started_at is None:
            self.started_at = event.at
        if self.status is RunStatus.PENDING:
            self.status = RunStatus.RUNNING

    def _timed_out(self, event: TimedOut) -> None:
        if event.node is None:
            self.timed_out = True
            return
        node = self.nodes.get(event.node)
        planned = self.plan.nodes.get(event.node)
        if node is None or planned is None:
            return
        limit = planned.spec.timeout
        error = ErrorInfo(
            code=ErrorCode.TIMEOUT,
            message=f"node {event.node} ran past its {limit}s timeout (all attempts)",
            retryable=False,
        )
        for task in node.tasks.values():
            if task.status in (*_ACTIVE, NodeStatus.RETRYING, NodeStatus.REMEDIATING):
                task.error, task.finished_at = error, event.at
                self._on_failure(task, error, event.at, final=True)

    def _wait_started(self, wait: WaitRef, at: datetime) -> None:
        node = self.nodes[wait.node]
        task = node.tasks.get(None)
        attempt = (task.ref.attempt + 1) if task is not None else node.attempt_floor + 1
        if task is not None and task.status is NodeStatus.WAITING:
            return  # already waiting (replayed)
        previous = [*task.previous, task] if task is not None else []
        budget = task.budget_from if task is not None else node.attempt_floor
        node.expanded, node.wait = True, wait
        node.tasks[None] = TaskState(
            TaskRef(node=wait.node, attempt=attempt),
            status=NodeStatus.WAITING,
            scheduled_at=at,
            started_at=at,
            due_at=wait.due_at,
            budget_from=budget,
            previous=previous,
        )

    def _wait_done(self, node_id: str, output: Any, at: datetime) -> None:
        node = self.nodes.get(node_id)
        task = node.tasks.get(None) if node else None
        if task is not None and task.status is NodeStatus.WAITING:
            task.status, task.output, task.finished_at = NodeStatus.SUCCEEDED, output, at

    def _wait_ended(self, event: WaitEnded) -> None:
        task = self.nodes[event.node].tasks.get(None)
        if task is None or task.status is not NodeStatus.WAITING:
            return
        if event.outcome == "elapsed":
            task.status, task.output, task.finished_at = NodeStatus.SUCCEEDED, None, event.at
            return
        task.finished_at = event.at
        task.error = ErrorInfo(
            code=ErrorCode.WAIT_TIMEOUT,
            message=f"node {event.node!r} waited past its timeout",
            type="WaitTimeout",
        )
        self._on_failure(task, task.error, event.at)

    def _scheduled(self, ref: TaskRef, at: datetime) -> None:
        node = self.nodes[ref.node]
        node.expanded = True
        if ref.index is not None:
            node.items = max(node.items or 0, ref.index + 1)
        task = node.tasks.get(ref.index)
        if ref.remedy:
            if task is not None and task.ref.attempt == ref.attempt:
                task.remedy_scheduled = True
            return
        if task is None or task.ref.attempt < ref.attempt:
            budget = task.budget_from if task is not None else node.attempt_floor
            previous = [*task.previous, task] if task is not None else []
            node.tasks[ref.index] = TaskState(
                ref, scheduled_at=at, budget_from=budget, previous=previous
            )

    def _compensation_scheduled(self, ref: TaskRef, at: datetime) -> None:
        if not self.compensating:  # the first: the run turns to undoing what it did
            self.compensation_cause = self._cause()
            self.compensation_queue = self._compensable()
            self.compensating, self.status = True, RunStatus.COMPENSATING
        key = (ref.node, ref.index)
        task = self.compensations.get(key)
        if task is None or task.ref.attempt < ref.attempt:
            self.compensations[key] = TaskState(
                ref,
                scheduled_at=at,
                budget_from=task.budget_from if task is not None else 0,
                previous=[*task.previous, task] if task is not None else [],
            )

    @property
    def _live_status(self) -> RunStatus:
        return RunStatus.COMPENSATING if self.compensating else RunStatus.RUNNING

    def _current(self, ref: TaskRef) -> TaskState | None:
        """The task state `ref` speaks of, if it is still the latest attempt."""
        if ref.compensation:
            undo = self.compensations.get((ref.node, ref.index))
            return undo if undo is not None and undo.ref.attempt == ref.attempt else None
        task = self.nodes[ref.node].tasks.get(ref.index)
        return task if task is not None and task.ref.attempt == ref.attempt else None

    def _completed(self, event: TaskCompleted, output: Any) -> None:
        task = self._current(event.task)
        if task is None:
            return
        if event.task.compensation:
            if task.status in _ACTIVE:
                task.status, task.output = NodeStatus.SUCCEEDED, output
                _timed(task, event)
            return
        if event.task.remedy:
            if task.status is NodeStatus.REMEDIATING:
                policy = self.plan.policy_for(task.error.code if task.error else "")
                if policy is not None and policy.policy.then == "continue":
                    task.status, task.output = NodeStatus.SUCCEEDED, output
                    self._completion(task.ref)
                else:
                    task.status, task.due_at = NodeStatus.RETRYING, None
            return
        if task.status in _ACTIVE:
            task.status, task.output = NodeStatus.SUCCEEDED, output
            _timed(task, event)
            self._completion(task.ref)

    def _completion(self, ref: TaskRef) -> None:
        key = (ref.node, ref.index)
        if key in self.completions:
            self.completions.remove(key)
        self.completions.append(key)

    def _failed(self, event: TaskFailed) -> None:
        task = self._current(event.task)
        if task is None:
            return
        if event.task.compensation:
            if task.status in _ACTIVE:
                _timed(task, event)
                task.error = event.error
                self._compensation_failed(task, event.error, event.execution.finished_at)
            return
        if event.task.remedy:
            if task.status is NodeStatus.REMEDIATING:
                task.status, task.error, task.reason = (
                    NodeStatus.FAILED,
                    event.error,
                    StopReason.FAILED,
                )
            return
        if task.status not in _ACTIVE:
            return
        _timed(task, event)
        task.error = event.error
        self._on_failure(task, event.error, event.execution.finished_at)

    def _compensation_failed(self, task: TaskState, error: ErrorInfo, at: datetime) -> None:
        """A compensation is retried under its own policy; error policies do not apply."""
        planned = self.plan.nodes[task.ref.node].compensation
        policy = planned.retry if planned is not None else RetryPolicy()
        used = task.ref.attempt - task.budget_from
        if policy.allows(used, error.code, error.type, error.retryable):
            task.status = NodeStatus.RETRYING
            task.due_at = at + timedelta(seconds=policy.delay(used))
        else:
            task.status = NodeStatus.FAILED

    def _on_failure(
        self, task: TaskState, error: ErrorInfo, at: datetime, *, final: bool = False
    ) -> None:
        """Apply the error policy; `final`: no retry or remediation (a deadline passed)."""
        planned = self.plan.policy_for(error.code)
        action = planned.policy.action if planned else "retry"
        task.guidance = planned.policy.guidance if planned else ""
        if final and action in ("retry", "remediate"):
            action = "fail"
        if action == "retry":
            own = planned.policy.retry if planned else None
            policy: RetryPolicy = own or self.plan.nodes[task.ref.node].retry
            used = task.ref.attempt - task.budget_from
            if policy.allows(used, error.code, error.type, error.retryable):
                task.status = NodeStatus.RETRYING
                task.due_at = at + timedelta(seconds=policy.delay(used))
                return
            task.status, task.reason = NodeStatus.FAILED, StopReason.FAILED
        elif action == "skip":
            task.status, task.output = NodeStatus.SKIPPED, None
        elif action == "remediate":
            task.status = NodeStatus.REMEDIATING
        else:
            reason = StopReason.MANUAL if action == "manual" else StopReason.FAILED
            task.status, task.reason = NodeStatus.FAILED, reason

    def _control(self, event: RunControlled) -> None:
        if any(c.id == event.id for c in self.controls):
            return
        self.controls.append(event)
        self.inbox.append(event.id)
        if self.terminated or self.status in (RunStatus.SUCCEEDED, RunStatus.COMPENSATED):
            return
        if event.action in ("break", "unbreak", "override"):
            self._debug(event)
            return
        if event.action in ("resume", "step"):
            # Go past the breakpoints it is paused at, once; a step stops again before
            # the next nodes that become ready.
            self.passed.update((hit.node, hit.position) for hit in self.held)
            self.held, self.stepping = [], event.action == "step"
        if event.action == "pause":
            self.paused = True
        elif event.action == "cancel":
            self.cancelled = True
            self.cancel_compensate = self.cancel_compensate or event.compensate
        elif event.action == "terminate":
            self.terminated = True
            if self.stopped is not None and self.stopped.status in _TERMINABLE_STOPS:
                self.stopped = None  # stopped for now, not for good: it ends TERMINATED
        elif event.action in ("resume", "step") and self.compensating and not event.from_start:
            for undo in self.compensations.values():  # try the failed compensation again
                if undo.status is NodeStatus.FAILED:
                    undo.status, undo.due_at = NodeStatus.RETRYING, None
                    undo.budget_from = undo.ref.attempt
            self._reopen()
        elif event.action == "retry" and self.compensating:
            return  # refused by the control rules: the run is undoing its steps
        elif event.action in ("resume", "step"):
            if event.from_start:
                self.passed, self.overrides = set(), {}
                self.completions, self.compensations, self.compensation_queue = [], {}, []
                self.compensating, self.compensation_cause = False, None
                for node in self.nodes.values():
                    node.attempt_floor = max(node.attempt_floor, node.attempts)
                    node.tasks, node.items, node.expanded = {}, None, False
                    node.render_error = None
                    node.ready = node.skipped = False
                    node.skip_reason = ""
                    node.cursor = 0
            else:
                for node in self.nodes.values():
                    if node.id not in self.plan.handled:  # an error branch took care of it
                        self._retry_node(node)
            self._reopen()
        elif event.action == "approve" and event.node in self.nodes:
            self._wait_done(event.node, event.input, event.at)
        elif event.action == "retry" and event.node in self.nodes:
            self._retry_node(self.nodes[event.node])
            self._reopen()

    def _debug(self, event: RunControlled) -> None:
        node = event.node or ""
        if event.action == "break":
            self.breakpoints.add((node, event.position))
        elif event.action == "unbreak":
            self.breakpoints.discard((node, event.position))
        else:  # override: later keys win; a value that is not an object replaces them all
            known = self.overrides.get(node)
            self.overrides[node] = _merged(known, event.input) if known is not None else event.input

    @staticmethod
    def _retry_node(node: NodeState) -> None:
        node.render_error = None
        for task in node.tasks.values():
            if task.status is NodeStatus.FAILED:
                task.status, task.due_at, task.reason = NodeStatus.RETRYING, None, None
                task.budget_from = task.ref.attempt  # a fresh retry budget

    def _reopen(self) -> None:
        if self.stopped is not None and self.stopped.status.finished:
            self.episode += 1  # it gave its place back when it finished: it queues again
        self.paused = self.cancelled = self.timed_out = self.cancel_compensate = False
        self.deadline_from = self.controls[-1].at if self.controls else self.deadline_from
        self.stopped = None
        self.status = RunStatus.PENDING if self.queued else self._live_status

    # --- conditions ----------------------------------------------------------------------
    def _ended(self, node_id: str) -> NodeStatus:
        """A node's status as its dependants' gates see it (see gates.py)."""
        node = self.nodes[node_id]
        status = node.status
        if status is NodeStatus.SKIPPED and not node.skipped:
            return NodeStatus.SUCCEEDED  # skipped by an error policy: "go on without it"
        if status is NodeStatus.FAILED and node_id not in self.plan.handled:
            return NodeStatus.PENDING  # nobody handles it: the run stops instead
        return status

    def _resolve(self, candidates: Iterable[str]) -> None:
        """Settle whether `candidates` (and, through skips, their dependants) run or are
        skipped, now that their needs may have ended. Part of the fold: replaying the
        same history settles the same nodes at the same points."""
        todo = deque(candidates)
        context: dict[str, Any] | None = None
        while todo:
            node_id = todo.popleft()
            node = self.nodes[node_id]
            planned = self.plan.nodes[node_id]
            if node.ready and planned.kind in _COMPUTED and not node.expanded:
                context = context or self.context()  # reopened by a retry of its error
                self._compute(node, planned, context)
                todo.extend(self.plan.dependants.get(node_id, ()))
                continue
            if node.ready or node.skipped or node.expanded or node.render_error is not None:
                continue
            order = planned.need_order
            while node.cursor < len(order) and self._ended(order[node.cursor]) in SETTLED:
                node.cursor += 1  # needs end once (a retry's are re-checked below)
            if node.cursor < len(order):
                continue
            ended = {dep: self._ended(dep) for dep in order}
            verdict = gate(planned.needs, ended, continues=self.plan.continues)
            if verdict is Gate.WAIT:
                node.cursor = next(i for i, d in enumerate(order) if ended[d] not in SETTLED)
                continue
            reason = "" if verdict is Gate.RUN else _unmet(planned.needs, ended)
            if verdict is Gate.RUN and planned.when is not None:
                context = context or self.context()
                try:
                    chosen = planned.when.evaluate(context, field=f"{node_id}.when")
                    if not isinstance(chosen, bool):
                        raise ExpressionError(planned.when.source, "when must yield a boolean")
                except ExpressionError as exc:
                    node.render_error = _error(ErrorCode.EXPRESSION_ERROR, exc)
                    context["nodes"][node_id] = _seen(node)
                    todo.extend(self.plan.dependants.get(node_id, ()))
                    continue
                verdict, reason = (Gate.RUN, "") if chosen else (Gate.SKIP, "when was false")
            if verdict is not Gate.WAIT:
                self.settled_count += 1
            if verdict is Gate.RUN:
                node.ready = True
                if planned.kind in _COMPUTED:
                    context = context or self.context()
                    self._compute(node, planned, context)
                    todo.extend(self.plan.dependants.get(node_id, ()))
            elif verdict is Gate.SKIP:
                node.skipped, node.skip_reason = True, reason
                self.newly_settled.append(node_id)
                if context is not None:  # its (null) output and status are now visible
                    context["nodes"][node_id] = _seen(node)
                todo.extend(self.plan.dependants.get(node_id, ()))

    def _compute(self, node: NodeState, planned: PlannedNode, context: dict[str, Any]) -> None:
        """A value node ends as its needs do: its value rendered, or a render error."""
        try:
            output = planned.inputs.render(context)
        except ExpressionError as exc:
            node.render_error = _error(ErrorCode.EXPRESSION_ERROR, exc)
        else:
            if planned.kind == "fail":  # a dead end on purpose: fail with its message
                message = output if isinstance(output, str) else json.dumps(output)
                node.render_error = ErrorInfo(
                    code=ErrorCode.FAIL, message=message, type="Fail", retryable=False
                )
                return
            ref = TaskRef(node=node.id, attempt=node.attempt_floor + 1)
            node.tasks[None] = TaskState(ref, status=NodeStatus.SUCCEEDED, output=output)
            node.expanded = True
        self.newly_settled.append(node.id)
        context["nodes"][node.id] = _seen(node)

    # --- deciding ------------------------------------------------------------------------
    def decide(self, now: datetime) -> list[Decision]:
        """What to do next; deterministic for a given history and time."""
        if self.stopped is not None:
            return []
        if self.terminated:
            return [Stop(RunStatus.TERMINATED, reason=StopReason.CANCELLED)]
        if self.compensating:
            return self._compensate(now)
        in_flight = bool(self.in_flight())
        if self.cancelled or self.timed_out:
            compensate = self.timed_out or self.cancel_compensate
            if compensate and self._compensable():
                return [] if in_flight else self._begin_compensation()
            return [self._cause()]
        if self.queued:
            # Paused while it waits: it keeps its place (and its slot, once admitted).
            if self.paused:
                return [Stop(RunStatus.PAUSED)]
            return [AwaitTurn(self.queue_entry, self.episode)]
        expired = self._expired(now)
        if expired:
            return expired
        failed = self._failed_node()
        if failed is not None:
            return [] if in_flight else self._stop_failed(failed)
        if self.paused:
            # A child run is paused with its parent (see children.py), not waited for.
            steps = [t for t in self.in_flight() if self.plan.nodes[t.ref.node].kind != "workflow"]
            return [] if steps else [Stop(RunStatus.PAUSED)]
        ended = self._ended_waits(now)
        if ended:
            return ended
        self._holding = bool(self.breakpoint_hits())
        while True:
            settled = self.settled_count
            waits = self._ready_waits(now)
            tasks = self._due_retries(now) + self._remedies() + self._ready_tasks()
            if tasks or waits or self.settled_count == settled:
                break  # else a node ended without a task: look again at what it freed
        if tasks or waits:
            out: list[Decision] = [Schedule(tasks)] if tasks else []
            return out + ([StartWaits(waits)] if waits else [])
        failed = self._failed_node()  # rendering may have failed a node
        if failed is not None:
            return [] if in_flight else self._stop_failed(failed)
        hits = self.breakpoint_hits()
        if hits:  # stopped at a breakpoint: once what runs has finished, PAUSED
            first = hits[0].node
            return [] if in_flight else [self._stop_at(first, hits)]
        if all(self._settled(n) for n in self.nodes.values()):
            try:
                outputs = self.plan.outputs.render(self.context())
            except ExpressionError as exc:
                error = _error(ErrorCode.OUTPUT_ERROR, exc)
                return [Stop(RunStatus.INTERRUPTED, StopReason.FAILED, error=error)]
            return [Stop(RunStatus.SUCCEEDED, outputs=outputs)]
        due = self.next_due()
        if in_flight or (due is not None and due - now <= UNLOAD_AFTER):
            return []  # the driver waits for a result or the timer
        if due is not None or self._waiting():
            return [Stop(RunStatus.WAITING, wake_at=due)]
        return []

    @staticmethod
    def _stop_at(node: str, hits: list[BreakpointHit]) -> Stop:
        return Stop(RunStatus.PAUSED, StopReason.BREAKPOINT, node=node, breakpoints=hits)

    # --- breakpoints ---------------------------------------------------------------------
    def breakpoint_hits(self) -> list[BreakpointHit]:
        """The breakpoints the run stands at: task nodes ready to be scheduled that a
        breakpoint (or a `step`) holds before — with the inputs they would get — and
        nodes that succeeded with a breakpoint after them, with their output."""
        if not self.breakpoints and not self.stepping:
            return []
        hits: list[BreakpointHit] = []
        context: dict[str, Any] | None = None
        for node_id, planned in self.plan.nodes.items():
            node = self.nodes[node_id]
            if planned.kind not in TASK_KINDS:
                continue
            if self._holds_before(node_id) and node.ready and not node.expanded:
                if node.render_error is not None:
                    continue
                context = context or self.context()
                try:
                    rendered = self._inputs(planned, context, node.attempt_floor + 1)
                except ExpressionError:
                    continue  # scheduling records the error
                values = [inputs for _, inputs in rendered]
                inputs = values if planned.for_each is not None else values[0]
                hits.append(BreakpointHit(node=node_id, inputs=inputs))
            elif (
                (node_id, "after") in self.breakpoints
                and (node_id, "after") not in self.passed
                and node.expanded
                and node.status is NodeStatus.SUCCEEDED
            ):
                hits.append(BreakpointHit(node=node_id, position="after", output=node.output))
        return hits

    def _holds_before(self, node_id: str) -> bool:
        if (node_id, "before") in self.passed:
            return False
        return self.stepping or (node_id, "before") in self.breakpoints

    def _may_schedule(self, node_id: str) -> bool:
        """Not held by a breakpoint; while one holds the run, only what was let past."""
        if (node_id, "before") in self.passed:
            return True
        return not self._holding and not self._holds_before(node_id)

    def held_inputs(self, node_id: str) -> Any:
        """The inputs a node the run is paused before will be scheduled with — the
        recorded ones with any overrides since (what `actorflow debug` shows)."""
        planned = self.plan.nodes[node_id]
        rendered = self._inputs(planned, self.context(), self.nodes[node_id].attempt_floor + 1)
        values = [inputs for _, inputs in rendered]
        return values if planned.for_each is not None else values[0]

    def _waiting(self) -> bool:
        return any(n.status is NodeStatus.WAITING for n in self.nodes.values())

    def _ended_waits(self, now: datetime) -> list[Decision]:
        out: list[Decision] = []
        for node in self.nodes.values():
            task = node.tasks.get(None)
            if task is None or task.status is not NodeStatus.WAITING or task.due_at is None:
                continue
            if task.due_at <= now:
                kind = node.wait.kind if node.wait else "sleep"
                out.append(EndWait(node.id, "elapsed" if kind == "sleep" else "timeout"))
        return out

    def _ready_waits(self, now: datetime) -> list[WaitRef]:
        out: list[WaitRef] = []
        context: dict[str, Any] | None = None
        for node_id, planned in self.plan.nodes.items():
            if planned.kind in TASK_KINDS or planned.kind in _COMPUTED:
                continue
            node = self.nodes[node_id]
            task = node.tasks.get(None)
            again = task is not None and task.status is NodeStatus.RETRYING
            if (node.expanded and not again) or node.render_error is not None:
                continue
            if not node.ready or self._holding:
                continue
            spec = planned.spec
            if spec.sleep is not None:
                out.append(WaitRef(node=node_id, kind="sleep", due_at=now + _seconds(spec.sleep)))
                continue
            timeout = (
                spec.wait.timeout if spec.wait else spec.approval.timeout if spec.approval else None
            )
            due = now + _seconds(timeout) if timeout is not None else None
            if spec.wait is None:
                out.append(WaitRef(node=node_id, kind="approval", due_at=due))
                continue
            context = context or self.context()
            try:
                key = planned.wait_key.render(context) if planned.wait_key else ""
            except ExpressionError as exc:
                node.render_error = _error(ErrorCode.EXPRESSION_ERROR, exc)
                self._resolve(self.plan.dependants.get(node_id, ()))
                continue
            out.append(
                WaitRef(
                    node=node_id, kind="wait", signal=spec.wait.signal, key=str(key), due_at=due
                )
            )
        return out

    # --- compensation (sagas) -------------------------------------------------------------
    def _cause(self) -> Stop:
        """How the run stops (or, compensated, why it was): cancelled, past its timeout,
        or a node that failed for good."""
        if self.cancelled:
            return Stop(RunStatus.INTERRUPTED, reason=StopReason.CANCELLED)
        if self.timed_out:
            error = ErrorInfo(
                code=ErrorCode.RUN_TIMEOUT,
                message=f"the run ran past its workflow's {self.plan.timeout}s timeout",
                retryable=False,
            )
            return Stop(RunStatus.INTERRUPTED, reason=StopReason.FAILED, error=error)
        failed = self._failed_node()
        return self._interrupt(failed) if failed else Stop(RunStatus.INTERRUPTED)

    def _stop_failed(self, failed: NodeState) -> list[Decision]:
        """A failure for good compensates; one left to an operator (`manual`) does not —
        he may fix it, or cancel with compensation."""
        stop = self._interrupt(failed)
        if stop.reason is StopReason.FAILED and self._compensable():
            return self._begin_compensation()
        return [stop]

    def _compensable(self) -> list[_StepKey]:
        """The completed steps that have a compensation, newest first."""
        out: list[_StepKey] = []
        for node_id, index in reversed(self.completions):
            task = self.nodes[node_id].tasks.get(index)
            if self.plan.nodes[node_id].compensation is None or task is None:
                continue
            if task.status is NodeStatus.SUCCEEDED:
                out.append((node_id, index))
        return out

    def _begin_compensation(self) -> list[Decision]:
        return self._schedule_compensation(self._compensable()[0], 1)

    def _schedule_compensation(self, key: _StepKey, attempt: int) -> list[Decision]:
        try:
            return [Schedule([self._compensation_task(key, attempt, self.context())])]
        except ExpressionError as exc:
            error = _error(ErrorCode.EXPRESSION_ERROR, exc)
            if self.compensating:  # recorded where the fold keeps it: replay decides alike
                ref = TaskRef(node=key[0], index=key[1], attempt=attempt, compensation=True)
                self.compensations[key] = TaskState(ref, status=NodeStatus.FAILED, error=error)
            return [self._compensation_stuck(key, error)]

    def _compensation_task(
        self, key: _StepKey, attempt: int, context: dict[str, Any]
    ) -> PlannedTask:
        node_id, index = key
        planned = self.plan.nodes[node_id]
        undo = planned.compensation
        assert undo is not None
        task = self.nodes[node_id].tasks[index]
        step = {
            "inputs": self._render_one(planned, task.ref, context),
            "output": task.output,
            "index": index,
        }
        inputs = undo.inputs.render({**context, "step": step, "index": index})
        ref = TaskRef(node=node_id, index=index, attempt=attempt, compensation=True)
        return PlannedTask(ref, undo.function, undo.version, inputs)

    def _compensation_stuck(self, key: _StepKey, error: ErrorInfo | None) -> Stop:
        name = key[0] if key[1] is None else f"{key[0]}[{key[1]}]"
        return Stop(
            RunStatus.INTERRUPTED,
            reason=StopReason.FAILED,
            node=key[0],
            error=error,
            guidance=(
                f"the compensation of {name} failed for good; the run is half undone. "
                "Fix what it needs and resume the run to try it again (compensations "
                "already done are not repeated), or terminate it and undo the rest by hand"
            ),
        )

    def _compensate(self, now: datetime) -> list[Decision]:
        """One compensation at a time, newest completion first; then COMPENSATED."""
        if self.paused:
            return [] if self._compensations_in_flight() else [Stop(RunStatus.PAUSED)]
        for key in self.compensation_queue:
            undo = self.compensations.get(key)
            if undo is None:
                return self._schedule_compensation(key, 1)
            if undo.status in _ACTIVE:
                return []
            if undo.status is NodeStatus.RETRYING:
                if undo.due_at is None or undo.due_at <= now:
                    return self._schedule_compensation(key, undo.ref.attempt + 1)
                if undo.due_at - now <= UNLOAD_AFTER:
                    return []
                return [Stop(RunStatus.WAITING, wake_at=undo.due_at)]
            if undo.status is NodeStatus.FAILED:
                return [self._compensation_stuck(key, undo.error)]
        cause = self.compensation_cause or Stop(RunStatus.INTERRUPTED)
        return [
            Stop(RunStatus.COMPENSATED, reason=cause.reason, node=cause.node, error=cause.error)
        ]

    def _compensations_in_flight(self) -> list[TaskState]:
        return [t for t in self.compensations.values() if t.status in _ACTIVE]

    @staticmethod
    def _interrupt(node: NodeState) -> Stop:
        task = node.failed_task()
        return Stop(
            RunStatus.INTERRUPTED,
            reason=task.reason if task and task.reason else StopReason.FAILED,
            node=node.id,
            error=node.error,
            guidance=task.guidance if task else "",
        )

    def next_due(self) -> datetime | None:
        """When the earliest timer is due — a waiting retry, a sleep or wait, a deadline
        (None: none; a run waiting for its turn has no timer)."""
        if self.queued:
            return None
        tasks = [t for n in self.nodes.values() for t in n.tasks.values()]
        tasks += self.compensations.values()
        dues = [
            t.due_at
            for t in tasks
            if t.status in (NodeStatus.RETRYING, NodeStatus.WAITING) and t.due_at is not None
        ]
        dues.extend(self._deadlines().values())
        return min(dues, default=None)

    def _deadlines(self) -> dict[str | None, datetime]:
        """Each unsettled node's deadline (its `timeout` from its first attempt since the
        last resume or retry), and the run's under the key None."""
        out: dict[str | None, datetime] = {}
        if self.compensating:
            return out  # undoing: no deadline of the run's applies
        if self.plan.timeout is not None and self.stopped is None:
            out[None] = self.deadline_from + _seconds(self.plan.timeout)
        for node_id, planned in self.plan.nodes.items():
            limit = planned.spec.timeout
            node = self.nodes[node_id]
            if limit is None or not node.tasks or self._settled(node):
                continue
            firsts = [_first_attempt(t) for t in node.tasks.values()]
            begun = [f.scheduled_at for f in firsts if f.scheduled_at is not None]
            if begun:
                out[node_id] = min(begun) + _seconds(limit)
        return out

    def _expired(self, now: datetime) -> list[Decision]:
        out: list[Decision] = []
        for node_id, deadline in self._deadlines().items():
            if deadline > now:
                continue
            if node_id is None:
                return [Expire(None)]
            node = self.nodes[node_id]
            if any(
                t.status in (*_ACTIVE, NodeStatus.RETRYING, NodeStatus.REMEDIATING)
                for t in node.tasks.values()
            ):
                out.append(Expire(node_id))
        return out

    def _failed_node(self) -> NodeState | None:
        """The first node whose failure stops the run (nobody handles it)."""
        return next(
            (
                n
                for n in self.nodes.values()
                if n.status is NodeStatus.FAILED and n.id not in self.plan.handled
            ),
            None,
        )

    def _settled(self, node: NodeState) -> bool:
        status = node.status
        return status.done or (status is NodeStatus.FAILED and node.id in self.plan.handled)

    def _due_retries(self, now: datetime) -> list[PlannedTask]:
        out: list[PlannedTask] = []
        context: dict[str, Any] | None = None
        for node in self.nodes.values():
            planned = self.plan.nodes[node.id]
            if planned.kind not in TASK_KINDS:
                continue  # a wait retried starts waiting again (`_ready_waits`)
            for task in node.tasks.values():
                if task.status is not NodeStatus.RETRYING:
                    continue
                if task.due_at is not None and task.due_at > now:
                    continue
                context = context or self.context()
                ref = task.ref.model_copy(update={"attempt": task.ref.attempt + 1})
                try:
                    inputs = self._render_one(planned, ref, context)
                except ExpressionError as exc:
                    node.render_error = _error(ErrorCode.EXPRESSION_ERROR, exc)
                    self._resolve(self.plan.dependants.get(node.id, ()))
                    continue
                out.append(self._task(planned, ref, inputs))
        return out

    def _remedies(self) -> list[PlannedTask]:
        out: list[PlannedTask] = []
        for node in self.nodes.values():
            for task in node.tasks.values():
                if task.status is NodeStatus.REMEDIATING and not task.remedy_scheduled:
                    planned = self.plan.policy_for(task.error.code if task.error else "")
                    if planned is None or planned.function is None or planned.version is None:
                        continue
                    ref = task.ref.model_copy(update={"remedy": True})
                    out.append(
                        PlannedTask(
                            ref,
                            planned.function,
                            planned.version,
                            self._remedy_input(task),
                            self.priority_of(task.ref.node),
                        )
                    )
        return out

    def _remedy_input(self, task: TaskState) -> dict[str, Any]:
        return {
            "error": task.error.model_dump(mode="json") if task.error else None,
            "node": task.ref.node,
            "index": task.ref.index,
            "attempt": task.ref.attempt,
            "run_id": self.started.run_id,
        }

    def _ready_tasks(self) -> list[PlannedTask]:
        out: list[PlannedTask] = []
        taken: set[str] = set()  # nodes planned in this decision (not expanded until applied)
        while True:
            settled = self._ready_pass(out, taken)
            if not settled:
                return out
            # They ended without a task (an empty forEach, a render error an error branch
            # handles): their dependants may run, in this same decision.
            for node_id in settled:
                self._resolve(self.plan.dependants.get(node_id, ()))

    def _ready_pass(self, out: list[PlannedTask], taken: set[str]) -> list[str]:
        settled: list[str] = []
        context: dict[str, Any] | None = None
        for node_id, planned in self.plan.nodes.items():
            node = self.nodes[node_id]
            if planned.kind not in TASK_KINDS or node.expanded or node.render_error is not None:
                continue
            if not node.ready or node_id in taken or not self._may_schedule(node_id):
                continue
            context = context or self.context()
            attempt = node.attempt_floor + 1
            try:
                rendered = self._inputs(planned, context, attempt)
            except ExpressionError as exc:
                node.render_error = _error(ErrorCode.EXPRESSION_ERROR, exc)
                settled.append(node_id)
                continue
            if planned.for_each is not None and not rendered:
                node.items, node.expanded = 0, True  # nothing to fan out over: done
                context = None  # its (empty) output is now visible downstream
                settled.append(node_id)
                continue
            taken.add(node_id)
            out.extend(self._task(planned, ref, inputs) for ref, inputs in rendered)
        return settled

    @property
    def priority(self) -> int:
        """The run's priority: the one it was started at, else its workflow's."""
        return resolve_priority(None, self.started.priority, self.plan.priority)

    def priority_of(self, node_id: str) -> int:
        """What a node's tasks (and their remediations) are queued at: node > run > workflow."""
        planned = self.plan.nodes.get(node_id)
        return resolve_priority(planned.spec.priority if planned else None, self.priority, None)

    def _task(self, planned: PlannedNode, ref: TaskRef, inputs: Any) -> PlannedTask:
        return PlannedTask(
            ref, planned.function, planned.version, inputs, self.priority_of(planned.id)
        )

    @staticmethod
    def _render(
        planned: PlannedNode, context: dict[str, Any], attempt: int
    ) -> list[tuple[TaskRef, Any]]:
        if planned.for_each is None:
            return [(TaskRef(node=planned.id, attempt=attempt), planned.inputs.render(context))]
        items = planned.for_each.evaluate(context, field=f"{planned.id}.forEach")
        if not isinstance(items, list):
            raise ExpressionError(planned.for_each.source, "forEach must yield a list")
        return [
            (
                TaskRef(node=planned.id, index=i, attempt=attempt),
                planned.inputs.render({**context, "item": item, "index": i}),
            )
            for i, item in enumerate(items)
        ]

    def _inputs(
        self, planned: PlannedNode, context: dict[str, Any], attempt: int
    ) -> list[tuple[TaskRef, Any]]:
        """`_render`, with the inputs a person overrode (a debugger, a rerun) merged in."""
        rendered = self._render(planned, context, attempt)
        override = self.overrides.get(planned.id)
        if override is None:
            return rendered
        return [(ref, _merged(inputs, override)) for ref, inputs in rendered]

    def _render_one(self, planned: PlannedNode, ref: TaskRef, context: dict[str, Any]) -> Any:
        for task_ref, inputs in self._inputs(planned, context, ref.attempt):
            if task_ref.index == ref.index:
                return inputs
        raise ExpressionError(planned.id, f"item {ref.index} no longer exists")

    def context(self) -> dict[str, Any]:
        """What expressions can read: inputs, finished nodes' outputs, the run itself."""
        return {
            "inputs": self.started.inputs,
            "nodes": {
                n.id: _seen(n)
                for n in self.nodes.values()
                if n.status.done or n.status is NodeStatus.FAILED
            },
            "run": {
                "id": self.started.run_id,
                "workflow": self.started.workflow,
                "version": self.started.version,
                "depth": self.started.depth,
                "priority": self.priority,
            },
        }

    # --- views ---------------------------------------------------------------------------
    def in_flight(self) -> list[TaskState]:
        return [
            t
            for n in self.nodes.values()
            for t in n.tasks.values()
            if t.status in _ACTIVE or (t.status is NodeStatus.REMEDIATING and t.remedy_scheduled)
        ] + self._compensations_in_flight()

    def republish(self) -> list[PlannedTask]:
        """Tasks scheduled but without a result: published again on recovery (same ids)."""
        out: list[PlannedTask] = []
        context = self.context()
        for task in self.in_flight():
            if task.ref.compensation:
                key = (task.ref.node, task.ref.index)
                out.append(self._compensation_task(key, task.ref.attempt, context))
                continue
            if task.status is NodeStatus.REMEDIATING:
                planned_policy = self.plan.policy_for(task.error.code if task.error else "")
                if planned_policy and planned_policy.function and planned_policy.version:
                    ref = task.ref.model_copy(update={"remedy": True})
                    out.append(
                        PlannedTask(
                            ref,
                            planned_policy.function,
                            planned_policy.version,
                            self._remedy_input(task),
                            self.priority_of(task.ref.node),
                        )
                    )
                continue
            planned = self.plan.nodes[task.ref.node]
            inputs = self._render_one(planned, task.ref, context)
            out.append(self._task(planned, task.ref, inputs))
        return out

    def progress(self) -> Progress:
        statuses = [n.status for n in self.nodes.values()]
        reports = {
            _key(t.ref): StepReport(percent=t.percent, message=t.message)
            for n in self.nodes.values()
            for t in n.tasks.values()
            if t.percent is not None and t.status in (*_ACTIVE, NodeStatus.WAITING)
        }
        return Progress(
            steps=reports,
            total=len(statuses),
            succeeded=sum(s.done for s in statuses),
            failed=sum(s is NodeStatus.FAILED for s in statuses),
            running=sum(
                s
                in (
                    NodeStatus.SCHEDULED,
                    NodeStatus.RUNNING,
                    NodeStatus.RETRYING,
                    NodeStatus.REMEDIATING,
                    NodeStatus.WAITING,
                )
                for s in statuses
            ),
        )


_StepKey = tuple[str, int | None]  # a node, and its forEach item


def _seen(node: NodeState) -> dict[str, Any]:
    """What expressions see of a node that ended."""
    error = node.error
    return {
        "output": node.output,
        "status": node.status.value,
        "error": error.model_dump(mode="json") if error else None,
    }


def _unmet(needs: Mapping[str, str], ended: Mapping[str, NodeStatus]) -> str:
    """Why a gate shut: the needs that did not end the way they were waited for."""
    unmet = [
        f"{dep} {ended[dep].value.lower()}"
        for dep, on in needs.items()
        if on != "finished" and ended[dep].value.lower() != on
    ]
    return "needs not met: " + ", ".join(unmet) if unmet else "every need was skipped"


def _merged(inputs: Any, override: Any) -> Any:
    """An override's keys over the rendered inputs; a non-object override replaces them."""
    if isinstance(inputs, dict) and isinstance(override, dict):
        return {**inputs, **override}
    return override


def _first_attempt(task: TaskState) -> TaskState:
    """The earliest attempt that counts against the node's budget (since a resume)."""
    counted = [p for p in task.previous if p.ref.attempt > task.budget_from]
    return counted[0] if counted else task


def _output_of(event: HistoryEvent, blobs: Mapping[str, Any]) -> Any:
    if not isinstance(event, TaskCompleted):
        return None
    blob = event.output.blob
    return event.output.inline if blob is None else blobs.get(blob.name)


def plan_of(started: RunStarted) -> Plan:
    retries = {k: RetryPolicy.model_validate(v) for k, v in started.retries.items()}
    connections = {k: Connection.model_validate(v) for k, v in started.connections.items()}
    return compile_plan(
        Workflow.model_validate(started.plan),
        started.functions,
        retries,
        started.workflows,
        connections=connections,
    )


def _key(ref: TaskRef) -> str:
    return ref.key


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _timed(task: TaskState, event: TaskCompleted | TaskFailed) -> None:
    task.started_at = task.started_at or event.execution.started_at
    task.finished_at = event.execution.finished_at
    task.replica = event.execution.replica or task.replica
    task.ray_node = event.execution.ray_node or task.ray_node
    task.execution = event.execution


def _error(code: ErrorCode, exc: Exception) -> ErrorInfo:
    return ErrorInfo(
        code=code,
        message=str(exc),
        type=type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
        retryable=False,
    )
