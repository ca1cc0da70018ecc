"""Sub-workflows' pure parts: the child id, what a parent's stop sends its children, the
recursion check, and the plan of a `workflow:` node. No Ray, no NATS."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_support import schedule, started

from actorflow.actors.run import children
from actorflow.actors.run.state import RunState, Stop
from actorflow.definitions import events as ev
from actorflow.definitions.graph import check_workflow, unconditional_cycles
from actorflow.definitions.models import Workflow


def _wf(name: str, nodes: list[dict[str, Any]]) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": name}, "spec": {"nodes": nodes}})


def _state(policy: str) -> RunState:
    wf = _wf(
        "parent",
        [
            {"id": "call", "workflow": "kid@2", "inputs": {"x": 1}, "onParentStop": policy},
            {"id": "step", "function": "echo@1"},
        ],
    )
    s = started(wf)
    s = s.model_copy(update={"workflows": {"kid@2": "2"}})
    state = RunState(s)
    schedule(state)
    return state


@given(st.text(min_size=1, max_size=40), st.integers(1, 50), st.none() | st.integers(0, 99))
def test_child_ids_are_stable_distinct_per_attempt_and_bounded(
    parent: str, attempt: int, index: int | None
) -> None:
    ref = ev.TaskRef(node="call", index=index, attempt=attempt)
    again = ev.TaskRef(node="call", index=index, attempt=attempt + 1)
    child = ev.child_run_id(parent, ref, "kid")
    assert child == ev.child_run_id(parent, ref, "kid")
    assert child != ev.child_run_id(parent, again, "kid")
    assert len(child) == len("kid-") + 16


def test_the_plan_carries_what_the_child_needs() -> None:
    state = _state("cancel")
    (task,) = [t for t in schedule_inputs(state) if t[0] == "call"]
    assert task[1] == {
        "workflow": "kid",
        "version": "2",
        "inputs": {"x": 1},
        "depth": 1,
        "on_parent_stop": "cancel",
        "priority": 5,  # the run's: the child runs at its parent node's priority
    }


def schedule_inputs(state: RunState) -> list[tuple[str, Any]]:
    return [(t.ref.node, t.inputs) for t in state.republish()]


@pytest.mark.parametrize(
    ("policy", "stop", "sent"),
    [
        ("cancel", Stop(ev.RunStatus.PAUSED), "pause"),
        ("cancel", Stop(ev.RunStatus.INTERRUPTED, ev.StopReason.CANCELLED), "cancel"),
        ("cancel", Stop(ev.RunStatus.TERMINATED, ev.StopReason.CANCELLED), "terminate"),
        ("terminate", Stop(ev.RunStatus.PAUSED), "pause"),
        ("terminate", Stop(ev.RunStatus.INTERRUPTED, ev.StopReason.CANCELLED), "terminate"),
        ("terminate", Stop(ev.RunStatus.TERMINATED, ev.StopReason.CANCELLED), "terminate"),
        ("abandon", Stop(ev.RunStatus.TERMINATED, ev.StopReason.CANCELLED), None),
        ("cancel", Stop(ev.RunStatus.INTERRUPTED, ev.StopReason.FAILED), None),
    ],
)
def test_a_parents_stop_reaches_its_running_child_by_policy(
    policy: str, stop: Stop, sent: str | None
) -> None:
    state = _state(policy)
    child = ev.child_run_id("r1", ev.TaskRef(node="call"), "kid")
    assert children.on_stop(state, stop) == ([(child, sent)] if sent else [])
    assert children.on_resume(state) == ([] if policy == "abandon" else [(child, "resume")])


def test_a_paused_parent_does_not_wait_for_its_children() -> None:
    state = _state("cancel")
    state.apply(
        ev.TaskCompleted(
            run_id="r1",
            task=ev.TaskRef(node="step"),
            output=ev.Payload(inline=1),
            execution=ev.Execution(started_at=ev.now(), finished_at=ev.now()),
        ),
        1,
    )
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="pause"))
    (decision,) = state.decide(ev.now())
    assert isinstance(decision, Stop)
    assert decision.status is ev.RunStatus.PAUSED


def test_only_unconditional_cycles_are_refused_with_their_path() -> None:
    ping = _wf("ping", [{"id": "go", "workflow": "pong"}])
    pong = _wf("pong", [{"id": "back", "workflow": "ping@1"}])
    guarded = _wf("self", [{"id": "again", "workflow": "self", "when": "${{ false }}"}])
    (found,) = unconditional_cycles([ping, pong, guarded])
    wf, index, path = found
    assert (wf.metadata.name, index, path) == ("ping", 0, "ping -> pong -> ping")
    assert unconditional_cycles([_wf("me", [{"id": "x", "workflow": "me"}])])[0][2] == "me -> me"


def test_an_unknown_sub_workflow_is_named_with_its_field() -> None:
    wf = _wf("p", [{"id": "call", "workflow": "nope@3"}])
    (issue,) = check_workflow(wf, known_workflows={"other@1"})
    assert (issue.field, issue.message) == ("spec.nodes[0].workflow", "unknown workflow 'nope@3'")
