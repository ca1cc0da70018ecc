"""Pure cores the controller and the run actor delegate to: control rules, the run-start
snapshot, and node lifecycle events — no Ray, no NATS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actorflow import function
from actorflow.actors.run import control
from actorflow.actors.run.dispatch import first_tasks
from actorflow.actors.run.node_events import already_announced, due_events, lifecycle
from actorflow.actors.run.state import RunState, Schedule
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ControlError, InputError
from actorflow.definitions.models import Function, Workflow
from actorflow.definitions.snapshot import run_started

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = ev.RunStatus


def _record(status: ev.RunStatus) -> ev.RunRecord:
    return ev.RunRecord(
        run_id="r1", workflow="w", version="1", status=status, created_at=T0, updated_at=T0
    )


# --- control rules --------------------------------------------------------------------------
# The whole table, written out: which action applies in which status.
TABLE: dict[str, set[ev.RunStatus]] = {
    "pause": {S.PENDING, S.RUNNING, S.WAITING, S.COMPENSATING},
    "resume": {S.INTERRUPTED, S.PAUSED},
    "cancel": {S.PENDING, S.RUNNING, S.WAITING, S.PAUSED},
    "terminate": {S.PENDING, S.RUNNING, S.WAITING, S.PAUSED, S.INTERRUPTED, S.COMPENSATING},
    "retry": {S.INTERRUPTED, S.PAUSED},
    "approve": {S.RUNNING, S.WAITING},
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("action", sorted(TABLE))
def test_control_table(action: ev.ControlAction, status: ev.RunStatus) -> None:
    request = ev.ControlRequest(action=action, node="a")
    if status in TABLE[action]:
        control.check_status(request, _record(status))
    else:
        with pytest.raises(ControlError, match=f"cannot {action} run r1: it is {status.value}"):
            control.check_status(request, _record(status))


def test_a_finished_run_takes_no_action() -> None:
    for action in TABLE:
        assert S.SUCCEEDED not in control.ALLOWED[action]  # type: ignore[index]


def test_retry_names_a_node_of_the_workflow() -> None:
    request = ev.ControlRequest(action="retry", node="nope")
    with pytest.raises(ControlError, match="no node 'nope'"):
        control.check_retry(request, _record(S.INTERRUPTED), frozenset({"a", "b"}))
    control.check_retry(request.model_copy(update={"node": "b"}), _record(S.PAUSED), {"b"})  # type: ignore[arg-type]


def test_resume_and_retry_reopen_the_record() -> None:
    failed = _record(S.INTERRUPTED).model_copy(
        update={"reason": ev.StopReason.FAILED, "node": "a", "guidance": "fix it"}
    )
    assert [a for a in TABLE if control.reopens(ev.ControlRequest(action=a))] == [  # type: ignore[arg-type]
        "resume",
        "retry",
    ]
    reopened = control.reopened(failed)
    assert (reopened.status, reopened.reason, reopened.node, reopened.guidance) == (
        S.RUNNING,
        None,
        None,
        "",
    )
    assert reopened.created_at == failed.created_at


def _approval_state(waiting: bool) -> RunState:
    b = WorkflowBuilder("w")
    b.approval("ok", "look", schema={"type": "object", "required": ["by"]})
    wf = b.build()
    state = RunState(_started(wf))
    if waiting:
        [decision] = state.decide(T0)
        state.apply(ev.WaitsStarted(run_id="r1", waits=decision.waits, at=T0))  # type: ignore[attr-defined]
    return state


def test_only_a_waiting_approval_node_can_be_approved_with_input_its_schema_allows() -> None:
    good = ev.ControlRequest(action="approve", node="ok", input={"by": "ada"})
    control.check_approval(_approval_state(waiting=True), good)
    with pytest.raises(ControlError, match="not waiting"):
        control.check_approval(_approval_state(waiting=False), good)
    with pytest.raises(ControlError, match="no approval node 'other'"):
        control.check_approval(
            _approval_state(waiting=True), good.model_copy(update={"node": "other"})
        )
    with pytest.raises(ControlError, match="'by' is a required property"):
        control.check_approval(_approval_state(waiting=True), good.model_copy(update={"input": {}}))


# --- the run-start snapshot -----------------------------------------------------------------
def _started(wf: Workflow) -> ev.RunStarted:
    return ev.RunStarted(
        run_id="r1",
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        plan=wf.model_dump(mode="json", by_alias=True),
        functions={},
        inputs={},
        at=T0,
    )


def _fn(name: str, version: str, **kw: object) -> Function:
    return function(name, "mod:handler", version=version, **kw)  # type: ignore[arg-type]


def test_the_snapshot_pins_versions_keeps_policies_and_binds_inputs() -> None:
    b = WorkflowBuilder("w", version="3")
    size = b.input("size", type="integer", default=2)
    a = b.node("a", "fetch@latest", inputs={"n": size})
    b.node("b", "store@1", needs=[a], retry={"max_attempts": 9})
    b.node("c", "store@1", needs=[a])
    b.hook("after_run", "notify@1")
    b.output("a", a.output)
    wf = b.build()
    flaky = _fn("fetch", "7", retry={"max_attempts": 4})
    store = _fn("store", "1", retry={"max_attempts": 2})
    notify = _fn("notify", "1")
    started = run_started(
        "r1", wf, {"fetch@latest": flaky, "store@1": store, "notify@1": notify}, {}
    )
    assert started.functions == {"fetch@latest": "7", "store@1": "1", "notify@1": "1"}
    # Only nodes without a policy of their own keep their function's policy, and only one
    # that differs from the default.
    assert set(started.retries) == {"a", "c"}
    assert started.retries["a"]["max_attempts"] == 4
    assert started.hooks == {"notify@1": {"handler": "mod:handler", "code_dir": None}}
    assert started.inputs == {"size": 2}
    assert (started.workflow, started.version, started.run_id) == ("w", "3", "r1")
    assert Workflow.model_validate(started.plan) == wf


def test_the_snapshot_refuses_bad_inputs_before_anything_is_recorded() -> None:
    b = WorkflowBuilder("w")
    b.input("size", type="integer")
    b.node("a", "f@1")
    with pytest.raises(InputError, match="unknown input"):
        run_started("r1", b.build(), {"f@1": _fn("f", "1")}, {"size": 1, "colour": "red"})


# --- node lifecycle events ------------------------------------------------------------------
def _chain_state() -> RunState:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1")
    b.node("b", "f@1", needs=[a])
    wf = b.build()
    started = _started(wf).model_copy(update={"functions": {"f@1": "1"}})
    return RunState(started)


def _run(state: RunState, node: str) -> ev.TaskRef:
    ref = ev.TaskRef(node=node)
    state.apply(ev.TasksScheduled(run_id="r1", tasks=[ref], at=T0))
    return ref


def _complete(state: RunState, ref: ev.TaskRef, value: object) -> None:
    done = ev.Execution(started_at=T0, finished_at=T0)
    state.apply(
        ev.TaskCompleted(
            run_id="r1", task=ref, output=ev.Payload(inline=value), execution=done, at=T0
        ),
        value,
    )


def test_a_node_too_fast_to_be_seen_running_is_announced_started_first() -> None:
    state = _chain_state()
    _complete(state, _run(state, "a"), 1)
    assert due_events(state, {}, {"a"}) == [("a", "started"), ("a", "succeeded")]
    assert due_events(state, {"a": "started"}, {"a"}) == [("a", "succeeded")]
    assert due_events(state, {"a": "succeeded"}, {"a"}) == []


def test_only_touched_nodes_are_looked_at_until_the_run_is_interrupted() -> None:
    state = _chain_state()
    ref = _run(state, "a")
    state.apply(ev.TaskStarted(run_id="r1", task=ref, at=T0))
    assert due_events(state, {}, set()) == []
    assert due_events(state, {}, {"a"}) == [("a", "started")]
    assert due_events(state, {"a": "started"}, set(), S.INTERRUPTED) == [("a", "interrupted")]
    assert due_events(state, {"a": "started"}, set(), S.PAUSED) == []


def test_after_a_replay_what_the_history_shows_counts_as_announced() -> None:
    state = _chain_state()
    _complete(state, _run(state, "a"), 1)
    ref = _run(state, "b")
    state.apply(ev.TaskStarted(run_id="r1", task=ref, at=T0))
    announced = already_announced(state)
    assert announced == {"a": "succeeded", "b": "started"}
    assert due_events(state, announced, {"a", "b"}) == []


def test_a_large_output_is_not_carried_by_the_event() -> None:
    state = _chain_state()
    _complete(state, _run(state, "a"), "x" * 100)
    small = lifecycle(state, state.nodes["a"], "succeeded", output_limit=1000)
    big = lifecycle(state, state.nodes["a"], "succeeded", output_limit=10)
    assert (small.output, big.output) == ("x" * 100, None)
    assert (small.run_id, small.workflow, small.node, small.attempt) == ("r1", "w", "a", 1)


# --- a new run's first decision, made by the controller ---------------------------------------
def _new_run(b: WorkflowBuilder) -> ev.RunStarted:
    fn = function("f", "mod:f", version="1")
    return run_started("r1", b.build(), {"f@1": fn}, {})


def test_the_controllers_first_tasks_are_the_drivers_first_decision() -> None:
    b = WorkflowBuilder("w", version="1")
    a = b.node("a", "f@1")
    b.node("b", "f@1")
    b.node("c", "f@1", needs=[a.id])
    started = _new_run(b)
    tasks = first_tasks(started, 30.0)
    assert tasks is not None
    assert [t.ref.node for t in tasks] == ["a", "b"]
    decided = RunState(started).decide(T0)
    assert len(decided) == 1
    assert isinstance(decided[0], Schedule)
    assert [(t.ref, t.inputs) for t in decided[0].tasks] == [(t.ref, t.inputs) for t in tasks]


def test_a_run_that_starts_with_a_hook_or_a_wait_is_left_to_its_driver() -> None:
    hooked = WorkflowBuilder("w", version="1")
    hooked.node("a", "f@1")
    hooked.hook("before_run", "f@1")
    assert first_tasks(_new_run(hooked), 30.0) is None
    per_node = WorkflowBuilder("w", version="1")
    per_node.node("a", "f@1")
    per_node.hook("before_node", "f@1")
    assert first_tasks(_new_run(per_node), 30.0) is None
    sleeping = WorkflowBuilder("w", version="1")
    nap = sleeping.sleep("nap", 5)
    sleeping.node("a", "f@1", needs=[nap.id])
    assert first_tasks(_new_run(sleeping), 30.0) is None
    after = WorkflowBuilder("w", version="1")
    after.node("a", "f@1")
    after.hook("after_run", "f@1")
    assert first_tasks(_new_run(after), 30.0) is not None
