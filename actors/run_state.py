"""The run state machine: a pure fold over a run's history, and the decisions it implies.

No Ray, no NATS, no clock reads: the run actor feeds events in and carries decisions out,
so a fresh incarnation that replays the same history reaches the same state and makes the
same decisions. `apply` is idempotent (a result seen twice — once live, once in replay —
changes nothing the second time).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from actorflow.definitions.errors import ExpressionError
from actorflow.definitions.events import (
    ErrorInfo,
    HistoryEvent,
    NodeStatus,
    Progress,
    RunClaimed,
    RunFinished,
    RunStarted,
    RunStatus,
    TaskCompleted,
    TaskFailed,
    TaskRef,
    TasksScheduled,
    TaskStarted,
)
from actorflow.definitions.models import Workflow
from actorflow.definitions.plan import Plan, PlannedNode, compile_plan


@dataclass
class TaskState:
    ref: TaskRef
    status: NodeStatus = NodeStatus.SCHEDULED
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replica: str = ""
    ray_node: str = ""
    error: ErrorInfo | None = None


@dataclass
class NodeState:
    id: str
    status: NodeStatus = NodeStatus.PENDING
    items: int | None = None  # for-each nodes: how many items were fanned out
    outputs: dict[int | None, Any] = field(default_factory=dict)
    tasks: dict[int | None, TaskState] = field(default_factory=dict)
    error: ErrorInfo | None = None

    @property
    def output(self) -> Any:
        if self.items is None:
            return self.outputs.get(None)
        return [self.outputs.get(i) for i in range(self.items)]

    @property
    def attempts(self) -> int:
        return max((t.ref.attempt for t in self.tasks.values()), default=0)


@dataclass(frozen=True)
class Schedule:
    """Publish these tasks: each with the inputs rendered for it."""

    tasks: list[tuple[TaskRef, PlannedNode, Any]]


@dataclass(frozen=True)
class Finish:
    status: RunStatus
    outputs: dict[str, Any]
    node: str | None = None
    error: ErrorInfo | None = None


Decision = Schedule | Finish


class RunState:
    """State of one run, rebuilt from its `RunStarted` event and everything after it."""

    def __init__(self, started: RunStarted, plan: Plan | None = None) -> None:
        self.started = started
        self.plan = plan or plan_of(started)
        self.nodes = {node_id: NodeState(node_id) for node_id in self.plan.nodes}
        self.status = RunStatus.RUNNING
        self.finished: RunFinished | None = None
        self.incarnations: list[str] = []
        self.started_at: datetime = started.at

    # --- folding -------------------------------------------------------------------------
    def apply(self, event: HistoryEvent, output: Any = None) -> None:
        """Fold one event in. `output` is a TaskCompleted's value, already fetched if large."""
        if isinstance(event, TasksScheduled):
            for ref in event.tasks:
                self._task(ref, at=event.at)
        elif isinstance(event, TaskStarted):
            task = self._task(event.task)
            if task.status is NodeStatus.SCHEDULED:
                task.status = NodeStatus.RUNNING
                task.started_at, task.replica, task.ray_node = (
                    event.at,
                    event.replica,
                    event.ray_node,
                )
        elif isinstance(event, TaskCompleted):
            task = self._task(event.task)
            if task.status not in (NodeStatus.SUCCEEDED, NodeStatus.FAILED):
                self._finish_task(task, event, NodeStatus.SUCCEEDED)
                self.nodes[event.task.node].outputs[event.task.index] = output
                self._settle(self.nodes[event.task.node])
        elif isinstance(event, TaskFailed):
            task = self._task(event.task)
            if task.status not in (NodeStatus.SUCCEEDED, NodeStatus.FAILED):
                self._finish_task(task, event, NodeStatus.FAILED)
                task.error = event.error
                node = self.nodes[event.task.node]
                node.status, node.error = NodeStatus.FAILED, event.error
        elif isinstance(event, RunFinished):
            self.status, self.finished = event.status, event
        elif isinstance(event, RunClaimed):
            self.incarnations.append(event.incarnation)

    def _task(self, ref: TaskRef, at: datetime | None = None) -> TaskState:
        node = self.nodes[ref.node]
        task = node.tasks.get(ref.index)
        if task is None or task.ref.attempt < ref.attempt:
            task = node.tasks[ref.index] = TaskState(ref, scheduled_at=at)
            if node.status is NodeStatus.PENDING:
                node.status = NodeStatus.SCHEDULED
            if ref.index is not None:
                node.items = max(node.items or 0, ref.index + 1)
        return task

    @staticmethod
    def _finish_task(
        task: TaskState, event: TaskCompleted | TaskFailed, status: NodeStatus
    ) -> None:
        task.status = status
        task.started_at = task.started_at or event.execution.started_at
        task.finished_at = event.execution.finished_at
        task.replica = event.execution.replica or task.replica
        task.ray_node = event.execution.ray_node or task.ray_node

    def _settle(self, node: NodeState) -> None:
        if node.status is NodeStatus.FAILED:
            return
        if all(t.status is NodeStatus.SUCCEEDED for t in node.tasks.values()):
            node.status = NodeStatus.SUCCEEDED
        else:
            node.status = NodeStatus.RUNNING

    # --- deciding ------------------------------------------------------------------------
    def decide(self) -> list[Decision]:
        """What to do next; deterministic for a given history."""
        if self.finished is not None:
            return []
        decisions: list[Decision] = []
        failed = self._failed_node()
        if failed is None:
            tasks = self._ready_tasks()
            if tasks:
                decisions.append(Schedule(tasks))
            failed = self._failed_node()  # rendering may have failed a node
        if failed is not None:
            if not self.in_flight():
                decisions.append(Finish(RunStatus.INTERRUPTED, {}, failed.id, failed.error))
            return decisions
        if all(n.status is NodeStatus.SUCCEEDED for n in self.nodes.values()):
            try:
                outputs = self.plan.outputs.render(self.context())
            except ExpressionError as exc:
                return [Finish(RunStatus.INTERRUPTED, {}, None, _error("OUTPUT_ERROR", exc))]
            return [Finish(RunStatus.SUCCEEDED, outputs)]
        return decisions

    def _failed_node(self) -> NodeState | None:
        return next((n for n in self.nodes.values() if n.status is NodeStatus.FAILED), None)

    def _ready_tasks(self) -> list[tuple[TaskRef, PlannedNode, Any]]:
        out: list[tuple[TaskRef, PlannedNode, Any]] = []
        context: dict[str, Any] | None = None
        for node_id, planned in self.plan.nodes.items():
            node = self.nodes[node_id]
            if node.status is not NodeStatus.PENDING:
                continue
            if any(self.nodes[d].status is not NodeStatus.SUCCEEDED for d in planned.deps):
                continue
            context = context or self.context()
            try:
                rendered = self._render(planned, context)
            except ExpressionError as exc:
                node.status, node.error = NodeStatus.FAILED, _error("EXPRESSION_ERROR", exc)
                continue
            if planned.for_each is not None and not rendered:
                node.items, node.status = 0, NodeStatus.SUCCEEDED  # nothing to fan out over
                context = None  # its (empty) output is now visible downstream
                continue
            out.extend((ref, planned, inputs) for ref, inputs in rendered)
        return out

    @staticmethod
    def _render(planned: PlannedNode, context: dict[str, Any]) -> list[tuple[TaskRef, Any]]:
        if planned.for_each is None:
            return [(TaskRef(node=planned.id), planned.inputs.render(context))]
        items = planned.for_each.evaluate(context, field=f"{planned.id}.forEach")
        if not isinstance(items, list):
            raise ExpressionError(planned.for_each.source, "forEach must yield a list")
        return [
            (
                TaskRef(node=planned.id, index=i),
                planned.inputs.render({**context, "item": item, "index": i}),
            )
            for i, item in enumerate(items)
        ]

    def context(self) -> dict[str, Any]:
        """What expressions can read: inputs, finished nodes' outputs, the run itself."""
        return {
            "inputs": self.started.inputs,
            "nodes": {
                n.id: {"output": n.output}
                for n in self.nodes.values()
                if n.status is NodeStatus.SUCCEEDED
            },
            "run": {
                "id": self.started.run_id,
                "workflow": self.started.workflow,
                "version": self.started.version,
            },
        }

    # --- views ---------------------------------------------------------------------------
    def in_flight(self) -> list[TaskState]:
        return [
            t
            for n in self.nodes.values()
            for t in n.tasks.values()
            if t.status in (NodeStatus.SCHEDULED, NodeStatus.RUNNING)
        ]

    def render_task(self, ref: TaskRef) -> Any:
        """Inputs of an already scheduled task, rendered again (for re-publishing on recovery)."""
        planned = self.plan.nodes[ref.node]
        for task_ref, inputs in self._render(planned, self.context()):
            if task_ref.index == ref.index:
                return inputs
        raise KeyError(ref.key)

    def progress(self) -> Progress:
        nodes = self.nodes.values()
        return Progress(
            total=len(self.nodes),
            succeeded=sum(n.status is NodeStatus.SUCCEEDED for n in nodes),
            failed=sum(n.status is NodeStatus.FAILED for n in nodes),
            running=sum(n.status in (NodeStatus.SCHEDULED, NodeStatus.RUNNING) for n in nodes),
        )


def plan_of(started: RunStarted) -> Plan:
    return compile_plan(Workflow.model_validate(started.plan), started.functions)


def _error(code: str, exc: Exception) -> ErrorInfo:
    return ErrorInfo(
        code=code,
        message=str(exc),
        type=type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
        retryable=False,
    )
