"""Which node lifecycle events a change of run state calls for — pure, no NATS.

Node events (``af.events.node.…``) are published best effort after the deciding event is
durable. The run actor remembers what it announced; this module compares that with the
state and says what to publish next, so a replayed incarnation announces nothing twice
that the history already shows was announced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from actorflow.actors.run.state import NodeState, RunState
from actorflow.definitions import events as ev

_EVENT_OF: Mapping[ev.NodeStatus, ev.NodeEventStatus] = {
    ev.NodeStatus.RUNNING: "started",
    ev.NodeStatus.SUCCEEDED: "succeeded",
    ev.NodeStatus.FAILED: "failed",
    ev.NodeStatus.SKIPPED: "skipped",
}
_UNFINISHED = frozenset(
    {
        ev.NodeStatus.SCHEDULED,
        ev.NodeStatus.RUNNING,
        ev.NodeStatus.RETRYING,
        ev.NodeStatus.REMEDIATING,
        ev.NodeStatus.WAITING,
    }
)


def already_announced(state: RunState) -> dict[str, ev.NodeEventStatus]:
    """After a replay: what the history shows an earlier incarnation announced (a trigger
    dedupes on run, node and status, so a repeat would be harmless but noisy)."""
    return {
        node.id: status
        for node in state.nodes.values()
        if (status := _EVENT_OF.get(node.status)) is not None
    }


def due_events(
    state: RunState,
    announced: Mapping[str, ev.NodeEventStatus],
    touched: Iterable[str],
    stopping: ev.RunStatus | None = None,
) -> list[tuple[str, ev.NodeEventStatus]]:
    """The (node, status) events to publish, in order, for the `touched` nodes — or for
    every node when the run is `stopping` INTERRUPTED or TERMINATED, whose unfinished
    nodes are announced ``interrupted``. A node that finished so fast that it was never
    seen running is announced ``started`` first."""
    interrupted = stopping in (
        ev.RunStatus.INTERRUPTED,
        ev.RunStatus.TERMINATED,
        ev.RunStatus.COMPENSATED,
    )
    out: list[tuple[str, ev.NodeEventStatus]] = []
    for node_id in state.nodes if interrupted else touched:
        node = state.nodes.get(node_id)
        if node is None:
            continue
        status = _EVENT_OF.get(node.status)
        if interrupted and node.status in _UNFINISHED:
            status = "interrupted"
        if status is None or announced.get(node_id) == status:
            continue
        if status != "started" and node_id not in announced and node.tasks:
            out.append((node_id, "started"))
        out.append((node_id, status))
    return out


def lifecycle(
    state: RunState, node: NodeState, status: ev.NodeEventStatus, output_limit: int
) -> ev.NodeLifecycle:
    """The event itself: a succeeded node's output only when its JSON fits `output_limit`."""
    output = node.output if status == "succeeded" else None
    try:
        if output is not None and len(json.dumps(output)) > output_limit:
            output = None
    except (TypeError, ValueError):
        output = None
    started = state.started
    return ev.NodeLifecycle(
        run_id=started.run_id,
        workflow=started.workflow,
        version=started.version,
        node=node.id,
        status=status,
        attempt=node.attempts,
        output=output,
        error=node.error if status == "failed" else None,
    )
