"""Read-side views of runs: per-node detail folded from history, for `Run.nodes()`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from actorflow.actors.run.state import RunState, TaskState
from actorflow.definitions.events import ErrorInfo, NodeStatus, TaskRef, child_run_id
from actorflow.definitions.models import split_ref


class AttemptInfo(BaseModel):
    """One attempt of a node: how it ended, where it ran and what it cost.

    `cpu_seconds`, `peak_rss_bytes` and `gpu_ids` are what the replica measured (see
    `Execution`: the handler thread's CPU time; the replica process's peak RSS while the
    request ran); None / empty for an attempt that has not finished or was recorded by an
    older replica.
    """

    model_config = ConfigDict(frozen=True)

    attempt: int
    status: NodeStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replica: str = ""
    ray_node: str = ""
    error: ErrorInfo | None = None
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    gpu_ids: list[str] = []

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class NodeInfo(BaseModel):
    """One node of a run (for-each nodes: one entry per item, `index` set): its latest
    attempt, with the earlier ones in `history`."""

    model_config = ConfigDict(frozen=True)

    node: str
    index: int | None = None
    status: NodeStatus
    kind: str = ""  # function, shell, http, sleep, wait, approval, value
    note: str = ""  # a skipped node: why (its `when` was false, or which needs were unmet)
    child_run_id: str | None = None  # a `workflow:` node: the child run of this attempt
    compensation: AttemptInfo | None = None  # the latest try of the step's compensation
    attempt: int = 0
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replica: str = ""
    ray_node: str = ""
    error: ErrorInfo | None = None
    guidance: str = ""
    percent: float | None = None
    message: str = ""
    history: list[AttemptInfo] = []
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    gpu_ids: list[str] = []

    @property
    def attempts(self) -> list[AttemptInfo]:
        """Every attempt, oldest first, the latest included (for accounting)."""
        if not self.attempt:
            return list(self.history)
        latest = AttemptInfo(
            attempt=self.attempt,
            status=self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            replica=self.replica,
            ray_node=self.ray_node,
            error=self.error,
            cpu_seconds=self.cpu_seconds,
            peak_rss_bytes=self.peak_rss_bytes,
            gpu_ids=self.gpu_ids,
        )
        return [*self.history, latest]

    @property
    def key(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


def node_infos(state: RunState) -> list[NodeInfo]:
    out: list[NodeInfo] = []
    for node in state.nodes.values():
        kind = state.plan.nodes[node.id].kind
        if not node.tasks:
            out.append(
                NodeInfo(
                    node=node.id,
                    status=node.status,
                    kind=kind,
                    note=node.skip_reason,
                    error=node.error,
                )
            )
            continue
        for task in sorted(node.tasks.values(), key=lambda t: t.ref.index or 0):
            out.append(
                NodeInfo(
                    node=node.id,
                    index=task.ref.index,
                    status=task.status,
                    kind=kind,
                    child_run_id=_child(state, task.ref),
                    attempt=task.ref.attempt,
                    scheduled_at=task.scheduled_at,
                    started_at=task.started_at,
                    finished_at=task.finished_at,
                    replica=task.replica,
                    ray_node=task.ray_node,
                    error=task.error,
                    guidance=task.guidance,
                    percent=task.percent,
                    message=task.message,
                    history=[_attempt(p) for p in task.previous],
                    cpu_seconds=task.execution.cpu_seconds if task.execution else None,
                    peak_rss_bytes=task.execution.peak_rss_bytes if task.execution else None,
                    gpu_ids=list(task.execution.gpu_ids) if task.execution else [],
                    compensation=_compensation(state, task.ref),
                )
            )
    return out


def _compensation(state: RunState, ref: TaskRef) -> AttemptInfo | None:
    undo = state.compensations.get((ref.node, ref.index))
    return _attempt(undo) if undo is not None else None


def _child(state: RunState, ref: TaskRef) -> str | None:
    workflow = state.plan.nodes[ref.node].spec.workflow
    if workflow is None:
        return None
    return child_run_id(state.started.run_id, ref, split_ref(workflow)[0])


def _attempt(task: TaskState) -> AttemptInfo:
    execution = task.execution
    return AttemptInfo(
        attempt=task.ref.attempt,
        status=task.status,
        started_at=task.started_at,
        finished_at=task.finished_at,
        replica=task.replica,
        ray_node=task.ray_node,
        error=task.error,
        cpu_seconds=execution.cpu_seconds if execution else None,
        peak_rss_bytes=execution.peak_rss_bytes if execution else None,
        gpu_ids=list(execution.gpu_ids) if execution else [],
    )
