"""Node and run timeouts in the run state machine: deadlines, the recorded expiry, policies,
error branches, replay. No Ray, no NATS, a hand-held clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from run_support import T0, complete, fail, only_stop, schedule, started

from actorflow.actors.run.state import Expire, RunState
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.models import Workflow

S = ev.NodeStatus


def _at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def _expire(state: RunState, now: Any) -> None:
    decisions = state.decide(now)
    assert decisions
    for d in decisions:
        assert isinstance(d, Expire)
        state.apply(ev.TimedOut(run_id="r1", node=d.node, at=now))


def test_a_node_past_its_timeout_fails_with_timeout_and_its_late_result_is_ignored() -> None:
    b = WorkflowBuilder("w")
    b.node("a", "f@1", timeout=5)
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    assert state.next_due() == _at(5)
    assert state.decide(_at(2)) == []  # in flight, before the deadline
    _expire(state, _at(5))
    assert state.nodes["a"].status is S.FAILED
    error = state.nodes["a"].error
    assert error is not None
    assert error.code == "TIMEOUT"
    complete(state, a, "too late", at=_at(6))
    assert state.nodes["a"].status is S.FAILED
    stop = only_stop(state, _at(6))
    assert (stop.status, stop.node) == (ev.RunStatus.INTERRUPTED, "a")


def test_a_node_timeout_counts_every_attempt() -> None:
    b = WorkflowBuilder("w")
    b.node("a", "f@1", timeout="5s", retry={"max_attempts": 5, "initial_delay": 1})
    state = RunState(started(b.build()))
    (first,) = schedule(state)
    fail(state, first, at=_at(1))
    assert state.nodes["a"].status is S.RETRYING
    (second,) = schedule(state, _at(2))
    assert second.ref.attempt == 2
    assert state.next_due() == _at(5)  # from the first attempt, not the second
    _expire(state, _at(5.5))
    assert state.nodes["a"].status is S.FAILED


def test_a_timeout_honours_the_error_policy_and_feeds_an_error_branch() -> None:
    b = WorkflowBuilder("w")
    slow = b.node("slow", "f@1", timeout=1)
    b.node("after", "f@1", needs=[slow])
    b.on_error("TIMEOUT", {"action": "skip"})
    state = RunState(started(b.build()))
    schedule(state)
    _expire(state, _at(1))
    assert state.nodes["slow"].status is S.SKIPPED  # the policy: go on without it
    (after,) = schedule(state, _at(1))
    assert after.ref.node == "after"

    b2 = WorkflowBuilder("w")
    slow2 = b2.node("slow", "f@1", timeout=1)
    b2.node(
        "alert", "f@1", needs=[slow2.on("failed")], inputs={"why": "${{ nodes.slow.error.code }}"}
    )
    state2 = RunState(started(b2.build()))
    schedule(state2)
    _expire(state2, _at(1))
    (alert,) = schedule(state2, _at(1))
    assert alert.inputs == {"why": "TIMEOUT"}
    complete(state2, alert, "paged", at=_at(1))
    assert only_stop(state2, _at(1)).status is ev.RunStatus.SUCCEEDED


def test_a_run_past_its_timeout_stops_with_run_timeout_and_a_resume_restarts_the_clock() -> None:
    b = WorkflowBuilder("w", timeout="10s")
    b.node("a", "f@1")
    state = RunState(started(b.build()))
    schedule(state)
    assert state.next_due() == _at(10)
    _expire(state, _at(10))
    stop = only_stop(state, _at(10))
    assert stop.status is ev.RunStatus.INTERRUPTED
    assert stop.error is not None
    assert stop.error.code == "RUN_TIMEOUT"
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, error=stop.error, at=_at(10)))
    resume = ev.RunControlled(run_id="r1", id="c1", action="resume", at=_at(60))
    state.apply(resume)
    assert state.next_due() == _at(70)
    assert not [d for d in state.decide(_at(61)) if isinstance(d, Expire)]


def test_replaying_a_timed_out_history_gives_the_same_state() -> None:
    b = WorkflowBuilder("w")
    b.node("a", "f@1", timeout=1)
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    history: list[ev.HistoryEvent] = [
        state.started,
        ev.TasksScheduled(run_id="r1", tasks=[a.ref], at=T0),
    ]
    _expire(state, _at(1))
    history.append(ev.TimedOut(run_id="r1", node="a", at=_at(1)))
    replayed = RunState.from_history(history)
    assert replayed.nodes["a"].status is S.FAILED
    assert replayed.decide(_at(2)) == state.decide(_at(2))


def test_a_timeout_on_a_waiting_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        Workflow.model_validate(
            {
                "apiVersion": "actorflow/v1",
                "kind": "Workflow",
                "metadata": {"name": "w"},
                "spec": {"nodes": [{"id": "nap", "sleep": 5, "timeout": 1}]},
            }
        )
