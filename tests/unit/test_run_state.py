"""The run state machine, driven by hand-made events: no Ray, no NATS, no clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from run_support import T0, complete, fail, only_stop, schedule, started

from actorflow.actors.run.state import RunState, Stop
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev


def two_steps(**node_kw: Any) -> WorkflowBuilder:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1", inputs={"x": 1}, **node_kw)
    b.node("b", "g@1", inputs={"y": a.output})
    b.output("y", "${{ nodes.b.output }}")
    return b


def test_chain_schedules_in_order_and_succeeds() -> None:
    state = RunState(started(two_steps().build()))
    (a,) = schedule(state)
    assert a.ref == ev.TaskRef(node="a")
    assert a.inputs == {"x": 1}
    assert state.decide(T0) == []  # a in flight: nothing new
    complete(state, a, 41)
    (b,) = schedule(state)
    assert b.inputs == {"y": 41}
    complete(state, b, 42)
    assert only_stop(state) == Stop(ev.RunStatus.SUCCEEDED, outputs={"y": 42})


def test_apply_is_idempotent() -> None:
    state = RunState(started(two_steps().build()))
    (a,) = schedule(state)
    complete(state, a, 1)
    complete(state, a, 999)  # the same result again (replay + live): ignored
    (b,) = schedule(state)
    assert b.inputs == {"y": 1}


def test_retry_waits_for_backoff_then_schedules_next_attempt() -> None:
    policy = {"max_attempts": 3, "initial_delay": 10, "backoff": 2}
    state = RunState(started(two_steps(retry=policy).build()))
    (a1,) = schedule(state)
    fail(state, a1, at=T0)
    assert state.nodes["a"].status is ev.NodeStatus.RETRYING
    assert state.next_due() == T0 + timedelta(seconds=10)
    early = state.decide(T0 + timedelta(seconds=4))  # never early: at most, unload till due
    assert early == [Stop(ev.RunStatus.WAITING, wake_at=T0 + timedelta(seconds=10))]
    (a2,) = schedule(state, T0 + timedelta(seconds=10))
    assert a2.ref.attempt == 2
    fail(state, a2, at=T0 + timedelta(seconds=10))
    assert state.next_due() == T0 + timedelta(seconds=30)  # 10 * 2
    (a3,) = schedule(state, T0 + timedelta(seconds=30))
    fail(state, a3, at=T0 + timedelta(seconds=30))
    stop = only_stop(state, T0 + timedelta(days=1))
    assert stop.status is ev.RunStatus.INTERRUPTED
    assert stop.reason is ev.StopReason.FAILED
    assert stop.node == "a"
    assert stop.error is not None
    assert stop.error.code == "HANDLER_ERROR"


def test_long_backoff_unloads_the_run_until_due() -> None:
    state = RunState(
        started(
            two_steps(retry={"max_attempts": 2, "initial_delay": "1h", "max_delay": "2h"}).build()
        )
    )
    (a1,) = schedule(state)
    fail(state, a1)
    stop = only_stop(state, T0 + timedelta(seconds=1))
    assert stop.status is ev.RunStatus.WAITING
    assert stop.wake_at == T0 + timedelta(seconds=3600)


def test_non_retryable_errors_are_not_retried() -> None:
    policy = {"max_attempts": 5, "non_retryable": ["ValueError"]}
    state = RunState(started(two_steps(retry=policy).build()))
    (a1,) = schedule(state)
    fail(state, a1)
    assert only_stop(state).status is ev.RunStatus.INTERRUPTED
    state2 = RunState(started(two_steps(retry={"max_attempts": 5}).build()))
    (a,) = schedule(state2)
    fail(state2, a, retryable=False)
    assert only_stop(state2).status is ev.RunStatus.INTERRUPTED


def test_function_retry_policy_applies_unless_the_node_overrides_it() -> None:
    wf = two_steps().build()
    state = RunState(started(wf, retries={"a": {"max_attempts": 2, "initial_delay": 0}}))
    (a1,) = schedule(state)
    fail(state, a1)
    (a2,) = schedule(state)
    assert a2.ref.attempt == 2


@pytest.mark.parametrize(
    ("action", "status", "reason"),
    [
        ("fail", ev.RunStatus.INTERRUPTED, ev.StopReason.FAILED),
        ("manual", ev.RunStatus.INTERRUPTED, ev.StopReason.MANUAL),
    ],
)
def test_error_policies_that_stop(action: str, status: ev.RunStatus, reason: ev.StopReason) -> None:
    b = two_steps(retry={"max_attempts": 5})
    b.on_error("DB_DOWN", {"action": action, "guidance": "fail over to the replica"})
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    fail(state, a, code="DB_DOWN")
    stop = only_stop(state)
    assert (stop.status, stop.reason, stop.node) == (status, reason, "a")
    assert stop.guidance == "fail over to the replica"


def test_skip_policy_goes_on_with_null_output() -> None:
    b = two_steps()
    b.on_error("default", {"action": "skip"})
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    fail(state, a, code="ANYTHING")
    assert state.nodes["a"].status is ev.NodeStatus.SKIPPED
    (b_task,) = schedule(state)
    assert b_task.inputs == {"y": None}


def test_remediate_then_retry_and_then_continue() -> None:
    b = two_steps()
    b.on_error("STALE", {"action": "remediate", "function": "fix@1", "then": "retry"})
    b.on_error("GONE", {"action": "remediate", "function": "fix@1", "then": "continue"})
    state = RunState(started(b.build()))
    (a1,) = schedule(state)
    fail(state, a1, code="STALE")
    (fix,) = schedule(state)
    assert fix.ref.remedy
    assert fix.function == "fix"
    assert fix.inputs["error"]["code"] == "STALE"
    complete(state, fix, "fixed")
    (a2,) = schedule(state)
    assert a2.ref.attempt == 2
    assert not a2.ref.remedy
    fail(state, a2, code="GONE")
    (fix2,) = schedule(state)
    complete(state, fix2, {"replacement": True})
    (b_task,) = schedule(state)
    assert b_task.inputs == {"y": {"replacement": True}}


def test_pause_finishes_in_flight_then_resume_goes_on() -> None:
    state = RunState(started(two_steps().build()))
    (a,) = schedule(state)
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="pause"))
    assert state.decide(T0) == []  # a still running
    complete(state, a, 1)
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.PAUSED
    state.apply(ev.RunStopped(run_id="r1", status=stop.status))
    state.apply(ev.RunControlled(run_id="r1", id="c2", action="resume"))
    (b_task,) = schedule(state)
    assert b_task.ref.node == "b"


def test_resume_retries_the_failed_node_with_a_fresh_budget() -> None:
    state = RunState(started(two_steps().build()))
    (a1,) = schedule(state)
    fail(state, a1)
    stop = only_stop(state)
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, reason=stop.reason))
    assert state.decide(T0) == []
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="resume"))
    (a2,) = schedule(state)
    assert a2.ref.attempt == 2


def test_resume_from_start_runs_every_node_again_with_new_keys() -> None:
    state = RunState(started(two_steps().build()))
    (a1,) = schedule(state)
    complete(state, a1, 1)
    (b1,) = schedule(state)
    fail(state, b1)
    stop = only_stop(state)
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, reason=stop.reason))
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="resume", from_start=True))
    (a2,) = schedule(state)
    assert a2.ref == ev.TaskRef(node="a", attempt=2)


def test_cancel_and_terminate() -> None:
    state = RunState(started(two_steps().build()))
    schedule(state)
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="cancel"))
    stop = only_stop(state)
    assert (stop.status, stop.reason) == (ev.RunStatus.INTERRUPTED, ev.StopReason.CANCELLED)
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, reason=stop.reason))
    state.apply(ev.RunControlled(run_id="r1", id="c2", action="terminate"))
    # Interrupted is for now: terminating it ends it for good, in-flight task or not.
    final = only_stop(state)
    assert final.status is ev.RunStatus.TERMINATED
    state.apply(ev.RunStopped(run_id="r1", status=final.status, reason=final.reason))
    state.apply(ev.RunControlled(run_id="r1", id="c3", action="resume"))  # too late: final
    assert state.decide(T0) == []
    assert state.status is ev.RunStatus.TERMINATED


def test_a_paused_run_can_be_terminated() -> None:
    state = RunState(started(two_steps().build()))
    (a1,) = schedule(state)
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="pause"))
    complete(state, a1, 1)
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.PAUSED
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, reason=stop.reason))
    state.apply(ev.RunControlled(run_id="r1", id="c2", action="terminate"))
    assert only_stop(state).status is ev.RunStatus.TERMINATED


def test_same_control_twice_counts_once() -> None:
    state = RunState(started(two_steps().build()))
    (a1,) = schedule(state)
    fail(state, a1)
    stop = only_stop(state)
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, reason=stop.reason))
    retry = ev.RunControlled(run_id="r1", id="c1", action="retry", node="a")
    state.apply(retry)
    (a2,) = schedule(state)
    fail(state, a2)
    state.apply(retry)  # replayed again: must not reset a2's failure
    assert state.nodes["a"].status is ev.NodeStatus.FAILED


def test_for_each_retries_only_the_failed_item() -> None:
    b = WorkflowBuilder("fe")
    items = b.input("items", type="array")
    b.node(
        "each",
        "f@1",
        for_each=items,
        inputs={"v": "${{ item }}"},
        retry={"max_attempts": 2, "initial_delay": 0},
    )
    state = RunState(started(b.build(), items=[10, 20, 30]))
    tasks = schedule(state)
    assert [t.inputs for t in tasks] == [{"v": 10}, {"v": 20}, {"v": 30}]
    complete(state, tasks[0], 1)
    fail(state, tasks[1])
    complete(state, tasks[2], 3)
    (again,) = schedule(state)
    assert (again.ref.index, again.ref.attempt, again.inputs) == (1, 2, {"v": 20})
    complete(state, again, 2)
    assert state.nodes["each"].output == [1, 2, 3]
