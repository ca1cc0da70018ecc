"""Read-side views of runs: per-node detail folded from history, for `Run.nodes()`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from actorflow.actors.run_state import RunState
from actorflow.definitions.events import ErrorInfo, NodeStatus


class AttemptInfo(BaseModel):
    """An earlier attempt of a node: how it failed and when."""

    model_config = ConfigDict(frozen=True)

    attempt: int
    status: NodeStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replica: str = ""
    error: ErrorInfo | None = None


class NodeInfo(BaseModel):
    """One node of a run (for-each nodes: one entry per item, `index` set): its latest
    attempt, with the earlier ones in `history`."""

    model_config = ConfigDict(frozen=True)

    node: str
    index: int | None = None
    status: NodeStatus
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
        if not node.tasks:
            out.append(NodeInfo(node=node.id, status=node.status, error=node.error))
            continue
        for task in sorted(node.tasks.values(), key=lambda t: t.ref.index or 0):
            out.append(
                NodeInfo(
                    node=node.id,
                    index=task.ref.index,
                    status=task.status,
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
                    history=[
                        AttemptInfo(
                            attempt=p.ref.attempt,
                            status=p.status,
                            started_at=p.started_at,
                            finished_at=p.finished_at,
                            replica=p.replica,
                            error=p.error,
                        )
                        for p in task.previous
                    ],
                )
            )
    return out
