"""What every picture of a run needs, in one model: `runs show --graph`, `runs watch`,
`runs report` and `-o json|yaml` all render a `RunView`, never the history itself.

Built by `run_view` from the one replay (`RunState.from_history`), the run's record, its
captured log lines and the views of its child runs — a pure function, so it is unit tested
without a cluster. The DAG's coordinates come from the workflow layout
(`actorflow.definitions.layout`) of the plan the run started with (templates expanded), so a
run is drawn like `actorflow graph` draws its workflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from actorflow._views import AttemptInfo, NodeInfo, node_infos
from actorflow.actors.run.state import RunState
from actorflow.definitions.events import ErrorInfo, LogLine, NodeStatus, RunRecord
from actorflow.definitions.layout import EdgePath, layout
from actorflow.definitions.models import Workflow

__all__ = ["NodeView", "RunView", "TaskView", "run_view"]


class TaskView(BaseModel):
    """One execution unit of a node (a for-each node has one per item): every attempt,
    what it was given and what it gave back, how it failed, what it printed, and for a
    `workflow:` node the child run."""

    model_config = ConfigDict(frozen=True)

    key: str  # node, or node[index]
    index: int | None = None
    status: NodeStatus
    attempts: list[AttemptInfo] = []
    scheduled_at: datetime | None = None
    inputs: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    guidance: str = ""
    note: str = ""
    child_run_id: str | None = None
    child: RunView | None = None
    logs: list[LogLine] = []

    @property
    def duration(self) -> float | None:
        """From the first attempt's start to the last one's end (retry delays included)."""
        starts = [a.started_at for a in self.attempts if a.started_at]
        ends = [a.finished_at for a in self.attempts if a.finished_at]
        if not starts or not ends or len(ends) < len(self.attempts):
            return None
        return (max(ends) - min(starts)).total_seconds()


class NodeView(BaseModel):
    """One node of the plan where the layout puts it (`layer`, `x`), with how it ended as a
    whole and its tasks."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    ref: str | None = None  # the function, sub-workflow or template it names
    status: NodeStatus
    layer: int = 0
    x: float = 0.0
    tasks: list[TaskView] = []

    @property
    def attempts(self) -> int:
        return sum(len(t.attempts) for t in self.tasks)

    @property
    def error(self) -> ErrorInfo | None:
        return next((t.error for t in self.tasks if t.error is not None), None)

    @property
    def duration(self) -> float | None:
        spans = [t.duration for t in self.tasks]
        if not spans or any(s is None for s in spans):
            return None
        return max(s for s in spans if s is not None)


class RunView(BaseModel):
    """A run as a picture: its record, its nodes in layout order, the edges between them
    (each with the points the layout routes it through) and the layout's size."""

    model_config = ConfigDict(frozen=True)

    record: RunRecord
    nodes: list[NodeView]
    edges: list[EdgePath]
    layers: int
    width: int

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def node(self, node_id: str) -> NodeView:
        return next(n for n in self.nodes if n.id == node_id)


def run_view(
    record: RunRecord,
    state: RunState,
    logs: Iterable[LogLine] = (),
    children: Mapping[str, RunView] | None = None,
) -> RunView:
    """The view of one run. `children`: views of child runs by run id (those missing —
    not started yet, or deeper than the caller looked — are left as ids)."""
    children = children or {}
    by_task: dict[tuple[str, int | None], list[LogLine]] = {}
    for line in logs:
        by_task.setdefault((line.node, line.index), []).append(line)
    infos: dict[str, list[NodeInfo]] = {}
    for info in node_infos(state):
        infos.setdefault(info.node, []).append(info)
    drawn = layout(Workflow.model_validate(state.started.plan))
    nodes = [
        NodeView(
            id=pos.id,
            kind=pos.kind,
            ref=pos.ref,
            status=state.nodes[pos.id].status,
            layer=pos.layer,
            x=pos.x,
            tasks=[
                _task(state, info, by_task.get((info.node, info.index), []), children)
                for info in infos.get(pos.id, [])
            ],
        )
        for pos in sorted(drawn.nodes, key=lambda p: (p.layer, p.order))
    ]
    return RunView(
        record=record, nodes=nodes, edges=drawn.edges, layers=drawn.layers, width=drawn.width
    )


def _task(
    state: RunState, info: NodeInfo, logs: list[LogLine], children: Mapping[str, RunView]
) -> TaskView:
    task = state.nodes[info.node].tasks.get(info.index)
    return TaskView(
        key=info.key,
        index=info.index,
        status=info.status,
        attempts=_attempts(info),
        scheduled_at=info.scheduled_at,
        inputs=_inputs(state, info) if task is not None else None,
        output=task.output if task is not None else None,
        error=info.error,
        guidance=info.guidance,
        note=info.note,
        child_run_id=info.child_run_id,
        child=children.get(info.child_run_id) if info.child_run_id else None,
        logs=sorted(logs, key=lambda line: (line.attempt, line.at, line.seq)),
    )


def _attempts(info: NodeInfo) -> list[AttemptInfo]:
    """Every attempt; one that a later attempt followed failed (the fold leaves it as it was
    when the retry was decided, RETRYING)."""
    attempts = info.attempts
    return [
        a.model_copy(update={"status": NodeStatus.FAILED})
        if a.status is NodeStatus.RETRYING and i < len(attempts) - 1
        else a
        for i, a in enumerate(attempts)
    ]


def _inputs(state: RunState, info: NodeInfo) -> Any:
    """The node's inputs rendered as its task got them: a node starts only once what it
    reads has finished, so the run's context now renders the same values (None where the
    expressions no longer render, e.g. after an upstream node failed)."""
    planned = state.plan.nodes[info.node]
    context = state.context()
    try:
        if planned.for_each is None or info.index is None:
            return planned.inputs.render(context)
        items = planned.for_each.evaluate(context, field=f"{planned.id}.forEach")
        item = items[info.index] if isinstance(items, list) else None
        return planned.inputs.render({**context, "item": item, "index": info.index})
    except Exception:  # an expression error here must not hide the rest of the run
        return None


TaskView.model_rebuild()
