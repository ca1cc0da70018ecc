"""What a rerun takes from an earlier run — pure, no Ray, no NATS.

`actorflow runs rerun RUN --from NODE` starts a new run of the same workflow version with
the same inputs, in which every node upstream of NODE is settled from RUN's recorded
outputs instead of being executed (its recorded `reused_from` says so), and NODE itself —
with any input overrides — and everything after it run again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actorflow.actors.run.state import RunState
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ControlError


def upstream(state: RunState, node: str) -> set[str]:
    """Every node `node` depends on, directly or not."""
    seen: set[str] = set()
    todo = list(state.plan.nodes[node].deps)
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(state.plan.nodes[dep].deps)
    return seen


def reuse_of(state: RunState, node: str, overrides: Mapping[str, Any] | None = None) -> ev.Reuse:
    """The `Reuse` a rerun of `state`'s run from `node` starts with; ControlError for a
    node the run does not have, or an upstream node that did not end SUCCEEDED or SKIPPED
    there (there is no output to reuse)."""
    run_id = state.started.run_id
    if node not in state.plan.nodes:
        raise ControlError(f"run {run_id} has no node {node!r} to rerun from")
    outputs: dict[str, Any] = {}
    skipped: list[str] = []
    for dep in sorted(upstream(state, node)):
        status = state.nodes[dep].status
        if status is ev.NodeStatus.SUCCEEDED:
            outputs[dep] = state.nodes[dep].output
        elif status is ev.NodeStatus.SKIPPED:
            skipped.append(dep)
        else:
            raise ControlError(
                f"cannot rerun run {run_id} from {node!r}: upstream node {dep!r} is "
                f"{status.value} there, so there is no output to reuse (rerun from {dep!r})"
            )
    return ev.Reuse(
        run_id=run_id, node=node, outputs=outputs, skipped=skipped, overrides=dict(overrides or {})
    )
