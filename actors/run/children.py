"""What a parent's stop does to its running child runs (`onParentStop`) — pure.

A `workflow:` node's child is a run of its own; when the parent is paused, cancelled or
terminated, its driver forwards a control request to every child still running, by this
table (and a resumed parent resumes them):

| parent      | cancel (default) | terminate | abandon |
|-------------|------------------|-----------|---------|
| paused      | pause            | pause     | —       |
| cancelled   | cancel           | terminate | —       |
| terminated  | terminate        | terminate | —       |
"""

from __future__ import annotations

from actorflow.actors.run.state import RunState, Stop
from actorflow.definitions import events as ev
from actorflow.definitions.models import split_ref


def children(state: RunState) -> list[tuple[str, ev.OnParentStop]]:
    """The child runs of the parent's `workflow:` tasks in flight, with their policy."""
    out: list[tuple[str, ev.OnParentStop]] = []
    for task in state.in_flight():
        spec = state.plan.nodes[task.ref.node].spec
        if spec.workflow is None or task.ref.remedy or task.ref.compensation:
            continue
        name = split_ref(spec.workflow)[0]
        out.append((ev.child_run_id(state.started.run_id, task.ref, name), spec.on_parent_stop))
    return out


def on_stop(state: RunState, stop: Stop) -> list[tuple[str, ev.ControlAction]]:
    """The (child, action) requests a parent stopping with `stop` sends."""
    parent: ev.ControlAction
    if stop.status is ev.RunStatus.PAUSED:
        parent = "pause"
    elif stop.status is ev.RunStatus.TERMINATED:
        parent = "terminate"
    elif stop.status is ev.RunStatus.INTERRUPTED and stop.reason is ev.StopReason.CANCELLED:
        parent = "cancel"
    else:
        return []
    out: list[tuple[str, ev.ControlAction]] = []
    for child, policy in children(state):
        if policy == "abandon":
            continue
        out.append((child, "terminate" if policy == "terminate" and parent == "cancel" else parent))
    return out


def on_resume(state: RunState) -> list[tuple[str, ev.ControlAction]]:
    """A parent running again resumes its children (a running child refuses; harmless)."""
    return [(child, "resume") for child, policy in children(state) if policy != "abandon"]
