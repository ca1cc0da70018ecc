"""The run view (`actorflow._run_view`) built from hand-made histories: no Ray, no NATS."""

from __future__ import annotations

from datetime import timedelta

from run_support import T0, complete, fail, schedule, started

from actorflow._run_view import RunView, run_view
from actorflow.actors.run.state import RunState
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev


def _record(status: ev.RunStatus = ev.RunStatus.RUNNING) -> ev.RunRecord:
    return ev.RunRecord(
        run_id="r1", workflow="w", version="1", status=status, created_at=T0, updated_at=T0
    )


def _workflow() -> WorkflowBuilder:
    b = WorkflowBuilder("w")
    b.input("n", type="integer")
    a = b.node("a", "f@1", inputs={"x": "${{ inputs.n }}"}, retry={"max_attempts": 2})
    b.node("b", "g@1", inputs={"y": a.output})
    b.node("fan", "h@1", inputs={"v": "${{ item }}"}, for_each="${{ [1, 2] }}", needs=["a"])
    return b


def _line(node: str, text: str, index: int | None = None, attempt: int = 1) -> ev.LogLine:
    return ev.LogLine(
        run_id="r1", node=node, index=index, attempt=attempt, stream="stdout", text=text, at=T0
    )


def _state_after_retry() -> RunState:
    state = RunState(started(_workflow().build(), n=5))
    (a1,) = schedule(state)
    fail(state, a1, at=T0)
    (a2,) = schedule(state, T0 + timedelta(seconds=5))
    complete(state, a2, 41, at=T0 + timedelta(seconds=6))
    return state


def test_nodes_follow_the_layout_with_edges() -> None:
    view = run_view(_record(), _state_after_retry())
    assert [(n.id, n.layer) for n in view.nodes] == [("a", 0), ("b", 1), ("fan", 1)]
    assert {(e.source, e.target) for e in view.edges} == {("a", "b"), ("a", "fan")}
    assert (view.layers, view.width) == (2, 2)
    assert view.node("a").ref == "f@1"


def test_a_task_has_every_attempt_its_inputs_and_output() -> None:
    view = run_view(_record(), _state_after_retry())
    a = view.node("a")
    assert a.status is ev.NodeStatus.SUCCEEDED
    (task,) = a.tasks
    assert [(x.attempt, x.status) for x in task.attempts] == [
        (1, ev.NodeStatus.FAILED),
        (2, ev.NodeStatus.SUCCEEDED),
    ]
    assert task.attempts[0].error is not None
    assert task.attempts[0].error.code == "HANDLER_ERROR"
    assert task.inputs == {"x": 5}
    assert task.output == 41
    assert a.attempts == 2


def test_for_each_items_are_tasks_with_their_own_inputs() -> None:
    state = _state_after_retry()
    tasks = schedule(state)
    fan = next(t for t in tasks if t.ref.node == "fan")
    complete(state, fan, "one")
    view = run_view(_record(), state)
    node = view.node("fan")
    assert [(t.key, t.inputs) for t in node.tasks] == [("fan[0]", {"v": 1}), ("fan[1]", {"v": 2})]
    assert node.tasks[0].output == "one"
    assert node.tasks[1].status is ev.NodeStatus.SCHEDULED


def test_log_lines_go_to_their_task_in_attempt_order() -> None:
    logs = [_line("a", "second", attempt=2), _line("a", "first"), _line("b", "other")]
    view = run_view(_record(), _state_after_retry(), logs)
    assert [line.text for line in view.node("a").tasks[0].logs] == ["first", "second"]
    (b,) = view.node("b").tasks  # not started: one task with no attempt, and its lines
    assert (b.status, b.attempts, [line.text for line in b.logs]) == (
        ev.NodeStatus.PENDING,
        [],
        ["other"],
    )


def test_a_failed_node_keeps_its_code_and_a_node_not_reached_has_no_attempt() -> None:
    state = RunState(started(_workflow().build(), n=1))
    (a1,) = schedule(state)
    fail(state, a1, code="BAD_INPUT", retryable=False)
    view = run_view(_record(ev.RunStatus.INTERRUPTED), state)
    a = view.node("a")
    assert a.status is ev.NodeStatus.FAILED
    assert a.error is not None
    assert a.error.code == "BAD_INPUT"
    (fan,) = view.node("fan").tasks
    assert (fan.key, fan.attempts, fan.inputs) == ("fan", [], None)


def test_child_views_are_attached_by_run_id() -> None:
    b = WorkflowBuilder("parent")
    b.workflow("sub", "child@1", inputs={})
    state = RunState(started(b.build()).model_copy(update={"workflows": {"child@1": "1"}}))
    schedule(state)
    bare = run_view(_record(), state)
    (task,) = bare.node("sub").tasks
    assert task.child_run_id is not None
    assert task.child is None
    child = RunView(record=_record(), nodes=[], edges=[], layers=0, width=0)
    nested = run_view(_record(), state, children={task.child_run_id: child})
    assert nested.node("sub").tasks[0].child == child


def test_the_view_round_trips_through_json() -> None:
    view = run_view(_record(), _state_after_retry(), [_line("a", "hi")])
    again = RunView.model_validate_json(view.model_dump_json())
    assert again == view
