"""Compensation (sagas) in the run state machine: which steps are undone, in which order,
once each, what a failing compensation does, cancel with compensation, replay. No Ray,
no NATS, a hand-held clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from run_support import T0, complete, fail, only_stop, schedule, started

from actorflow.actors.run.state import PlannedTask, RunState, Schedule, Stop
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.graph import check_workflow
from actorflow.definitions.models import Workflow

S = ev.NodeStatus
R = ev.RunStatus
UNDO = {"function": "undo@1"}


def _at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def _saga(last_retry: int = 1) -> Workflow:
    """reserve -> charge -> ship; the first two can be undone, ship fails."""
    b = WorkflowBuilder("saga")
    b.input("order", type="string")
    b.node("reserve", "f@1", inputs={"order": "${{ inputs.order }}"}, compensate=UNDO)
    b.node(
        "charge",
        "f@1",
        inputs={"amount": 5},
        needs=["reserve"],
        compensate={
            "function": "refund@1",
            "inputs": {"amount": "${{ step.inputs.amount }}", "id": "${{ step.output.id }}"},
            "retry": {"max_attempts": 2, "initial_delay": 1},
        },
    )
    b.node("ship", "f@1", needs=["charge"], retry={"max_attempts": last_retry})
    return b.build()


def _run_to_failure(state: RunState) -> None:
    (reserve,) = schedule(state)
    complete(state, reserve, {"held": True})
    (charge,) = schedule(state)
    complete(state, charge, {"id": "ch_1"})
    (ship,) = schedule(state)
    fail(state, ship, code="NO_COURIER", retryable=False)


def _undo(state: RunState, now: Any = T0) -> PlannedTask:
    (task,) = schedule(state, now)
    assert task.ref.compensation
    return task


def test_a_run_that_fails_for_good_undoes_its_completed_steps_newest_first() -> None:
    state = RunState(started(_saga(), order="o-1"))
    _run_to_failure(state)
    refund = _undo(state)
    assert (refund.ref.node, refund.function) == ("charge", "refund")
    assert refund.inputs == {"amount": 5, "id": "ch_1"}  # the step's inputs and output
    assert state.status is R.COMPENSATING
    complete(state, refund, None)
    release = _undo(state)
    assert (release.ref.node, release.function) == ("reserve", "undo")
    assert release.inputs == {"inputs": {"order": "o-1"}, "output": {"held": True}}  # default
    complete(state, release, None)
    stop = only_stop(state)
    assert stop.status is R.COMPENSATED
    assert stop.node == "ship"  # why it was compensated
    assert stop.error is not None
    assert stop.error.code == "NO_COURIER"


def test_the_order_is_that_of_completion_not_of_the_graph() -> None:
    b = WorkflowBuilder("par")
    b.node("left", "f@1", compensate=UNDO)
    b.node("right", "f@1", compensate=UNDO)
    b.node("end", "f@1", needs=["left", "right"])
    state = RunState(started(b.build()))
    left, right = sorted(schedule(state), key=lambda t: t.ref.node)
    complete(state, right, 1)  # right finished first
    complete(state, left, 2)
    (end,) = schedule(state)
    fail(state, end, retryable=False)
    first = _undo(state)
    assert first.ref.node == "left"
    complete(state, first, None)
    assert _undo(state).ref.node == "right"


def test_a_failing_compensation_is_retried_then_interrupts_and_a_resume_goes_on() -> None:
    state = RunState(started(_saga(), order="o-1"))
    _run_to_failure(state)
    refund = _undo(state)
    fail(state, refund, code="BANK_DOWN", at=_at(1))
    assert state.compensations[("charge", None)].status is S.RETRYING
    assert state.next_due() == _at(2)
    assert state.decide(_at(1.5)) == []  # its backoff
    again = _undo(state, _at(2))
    assert again.ref.attempt == 2
    fail(state, again, code="BANK_DOWN", at=_at(3))
    stop = only_stop(state, _at(3))
    assert (stop.status, stop.reason, stop.node) == (R.INTERRUPTED, ev.StopReason.FAILED, "charge")
    assert "compensation of charge failed" in stop.guidance
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, node=stop.node, at=_at(3)))
    state.apply(ev.RunControlled(run_id="r1", id="c1", action="resume", at=_at(10)))
    assert state.status is R.COMPENSATING
    third = _undo(state, _at(10))
    assert (third.ref.node, third.ref.attempt) == ("charge", 3)  # not ship, not reserve
    complete(state, third, None)
    release = _undo(state, _at(11))
    assert release.ref.node == "reserve"
    complete(state, release, None)
    assert only_stop(state, _at(11)).status is R.COMPENSATED


def test_replay_reaches_the_same_compensation_and_decides_the_same() -> None:
    state = RunState(started(_saga(), order="o-1"))
    events: list[Any] = [state.started]
    original_apply = state.apply

    def recording(event: Any, output: Any = None) -> None:
        events.append(event)
        original_apply(event, output)

    state.apply = recording  # type: ignore[method-assign]
    _run_to_failure(state)
    refund = _undo(state)
    complete(state, refund, None)
    replayed = RunState.from_history(events)
    assert replayed.compensating
    assert replayed.compensation_queue == [("charge", None), ("reserve", None)]
    (decision,) = replayed.decide(T0)
    assert isinstance(decision, Schedule)
    assert [(t.ref, t.inputs) for t in decision.tasks] == [
        (t.ref, t.inputs) for t in _decided(state)
    ]
    # a result delivered twice changes nothing the second time
    complete(replayed, refund, None)
    assert replayed.compensations[("charge", None)].status is S.SUCCEEDED


def _decided(state: RunState) -> list[PlannedTask]:
    (decision,) = state.decide(T0)
    assert isinstance(decision, Schedule)
    return decision.tasks


def test_cancel_with_compensation_waits_for_running_steps_then_undoes_them() -> None:
    b = WorkflowBuilder("c")
    b.node("a", "f@1", compensate=UNDO)
    b.node("b", "f@1", compensate=UNDO)
    b.node("c", "f@1", needs=["a", "b"])
    state = RunState(started(b.build()))
    a, b_task = sorted(schedule(state), key=lambda t: t.ref.node)
    complete(state, a, 1)
    state.apply(ev.RunControlled(run_id="r1", id="x", action="cancel", compensate=True, at=T0))
    assert state.decide(T0) == []  # b still runs: its effect must be undone too
    complete(state, b_task, 2)
    assert _undo(state).ref.node == "b"


def test_a_plain_cancel_and_a_manual_failure_do_not_compensate() -> None:
    state = RunState(started(_saga(), order="o"))
    (reserve,) = schedule(state)
    complete(state, reserve, 1)
    state.apply(ev.RunControlled(run_id="r1", id="x", action="cancel", at=T0))
    stop = only_stop(state)
    assert (stop.status, stop.reason) == (R.INTERRUPTED, ev.StopReason.CANCELLED)

    b = WorkflowBuilder("m")
    b.node("a", "f@1", compensate=UNDO)
    b.node("b", "f@1", needs=["a"])
    b.on_error("BAD", {"action": "manual", "guidance": "call Bob"})
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    complete(state, a, 1)
    (b_task,) = schedule(state)
    fail(state, b_task, code="BAD")
    stop = only_stop(state)
    assert (stop.status, stop.reason) == (R.INTERRUPTED, ev.StopReason.MANUAL)


def test_nothing_to_undo_stops_interrupted_as_before() -> None:
    b = WorkflowBuilder("n")
    b.node("a", "f@1")
    b.node("b", "f@1", needs=["a"], compensate=UNDO, retry={"max_attempts": 1})
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    complete(state, a, 1)
    (b_task,) = schedule(state)
    fail(state, b_task)  # the only compensable node never completed
    assert only_stop(state).status is R.INTERRUPTED


def test_a_run_past_its_timeout_compensates() -> None:
    b = WorkflowBuilder("t", timeout=10)
    b.node("a", "f@1", compensate=UNDO)
    b.node("b", "f@1", needs=["a"])
    state = RunState(started(b.build()))
    (a,) = schedule(state)
    complete(state, a, 1)
    schedule(state)
    state.apply(ev.TimedOut(run_id="r1", node=None, at=_at(10)))
    assert state.decide(_at(10)) == []  # b is still running
    fail(state, PlannedTask(ev.TaskRef(node="b"), "f", "1", {}), at=_at(11))
    undo = _undo(state, _at(11))
    complete(state, undo, None)
    stop = only_stop(state, _at(11))
    assert stop.status is R.COMPENSATED
    assert stop.error is not None
    assert stop.error.code == "RUN_TIMEOUT"


def test_for_each_items_are_undone_one_by_one_with_their_index() -> None:
    b = WorkflowBuilder("fe")
    b.node(
        "book",
        "f@1",
        for_each="${{ [10, 20] }}",
        inputs={"seat": "${{ item }}"},
        compensate={"function": "undo@1", "inputs": {"seat": "${{ step.inputs.seat }}"}},
    )
    b.node("pay", "f@1", needs=["book"], retry={"max_attempts": 1})
    state = RunState(started(b.build()))
    first, second = schedule(state)
    complete(state, first, "s10")
    complete(state, second, "s20")
    (pay,) = schedule(state)
    fail(state, pay)
    undo = _undo(state)
    assert (undo.ref.index, undo.inputs) == (1, {"seat": 20})
    complete(state, undo, None)
    undo = _undo(state)
    assert (undo.ref.index, undo.inputs) == (0, {"seat": 10})


def test_a_compensating_run_can_be_paused_and_terminated() -> None:
    state = RunState(started(_saga(), order="o"))
    _run_to_failure(state)
    refund = _undo(state)
    state.apply(ev.RunControlled(run_id="r1", id="p", action="pause", at=T0))
    assert state.decide(T0) == []  # the compensation in flight finishes first
    complete(state, refund, None)
    assert only_stop(state).status is R.PAUSED
    state.apply(ev.RunStopped(run_id="r1", status=R.PAUSED, at=T0))
    state.apply(ev.RunControlled(run_id="r1", id="r", action="resume", at=T0))
    assert _undo(state).ref.node == "reserve"
    state.apply(ev.RunControlled(run_id="r1", id="t", action="terminate", at=T0))
    assert only_stop(state).status is R.TERMINATED


def test_results_ids_and_subjects_of_a_compensation_are_its_own() -> None:
    step = ev.TaskRef(node="charge")
    undo = ev.TaskRef(node="charge", compensation=True)
    assert step.idempotency_key("r") != undo.idempotency_key("r")
    assert ev.result_subject("r", step) != ev.result_subject("r", undo)
    assert ev.result_subject("r", undo).endswith(".undo")


# --- definitions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"id": "s", "sleep": 5, "compensate": UNDO}, "no effect to compensate"),
        (
            {
                "id": "a",
                "function": "f@1",
                "compensate": {"function": "u@1", "shell": {"argv": ["x"]}},
            },
            "exactly one of function, shell, http",
        ),
        (
            {
                "id": "a",
                "function": "f@1",
                "compensate": {"shell": {"argv": ["x"]}, "inputs": {"a": 1}},
            },
            "takes its values in shell",
        ),
    ],
)
def test_bad_compensations_are_refused(node: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Workflow.model_validate({"metadata": {"name": "w"}, "spec": {"nodes": [node]}})


def test_a_compensations_references_are_checked_but_add_no_dependency() -> None:
    wf = Workflow.model_validate(
        {
            "metadata": {"name": "w"},
            "spec": {
                "inputs": {"x": {}},
                "nodes": [
                    {
                        "id": "a",
                        "function": "f@1",
                        "compensate": {
                            "function": "u@9",
                            "inputs": {
                                "later": "${{ nodes.b.output }}",  # b runs after a: no cycle
                                "own": "${{ step.inputs.y }}",  # not a workflow input
                                "bad": "${{ inputs.nope }} ${{ nodes.ghost.output }}",
                            },
                        },
                    },
                    {"id": "b", "function": "f@1", "needs": ["a"]},
                ],
            },
        }
    )
    issues = [(i.field, i.message) for i in check_workflow(wf, known_functions={"f@1"})]
    assert ("spec.nodes[0].compensate.function", "unknown function 'u@9'") in issues
    fields = {f for f, _ in issues}
    assert "spec.nodes[0].compensate.inputs.bad" in fields
    assert not any("cycle" in m for _, m in issues)
    assert not any("'y'" in m for _, m in issues)
    assert len(issues) == 3


def test_the_builder_writes_compensate_and_it_round_trips() -> None:
    wf = _saga()
    charge = next(n for n in wf.spec.nodes if n.id == "charge")
    assert charge.compensate is not None
    assert charge.compensate.function == "refund@1"
    b = WorkflowBuilder("w")
    b.node("a", "f@1", compensate={"function": "u@1", "http": {"url": "http://x"}})
    with pytest.raises(DefinitionError, match="exactly one of function, shell, http"):
        b.build()


def test_stop_decision_type() -> None:
    assert Stop(R.COMPENSATED).status.finished
    assert not R.COMPENSATING.finished
