"""Conditions, dependency kinds and error branches: the gate's truth table (written out and
as a Hypothesis property) and the run state machine taking branches. No Ray, no NATS."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_support import T0, complete, fail, only_stop, schedule, started

from actorflow.actors.run.gates import Gate, gate
from actorflow.actors.run.state import PlannedTask, RunState, StartWaits, Stop
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.graph import check_workflow
from actorflow.definitions.models import Need, NeedKind, Workflow

S = ev.NodeStatus
KINDS: list[NeedKind] = ["succeeded", "failed", "skipped", "finished"]
ENDED = [S.SUCCEEDED, S.SKIPPED, S.FAILED]

# --- the truth table, one need --------------------------------------------------------------
# (on, how the need ended) -> what the dependant does, with that need alone.
ONE_NEED = {
    ("succeeded", S.SUCCEEDED): Gate.RUN,
    ("succeeded", S.SKIPPED): Gate.SKIP,  # passed over, and nothing else was met
    ("succeeded", S.FAILED): Gate.SKIP,
    ("failed", S.SUCCEEDED): Gate.SKIP,
    ("failed", S.SKIPPED): Gate.SKIP,
    ("failed", S.FAILED): Gate.RUN,
    ("skipped", S.SUCCEEDED): Gate.SKIP,
    ("skipped", S.SKIPPED): Gate.RUN,
    ("skipped", S.FAILED): Gate.SKIP,
    ("finished", S.SUCCEEDED): Gate.RUN,
    ("finished", S.SKIPPED): Gate.RUN,
    ("finished", S.FAILED): Gate.RUN,
}


@pytest.mark.parametrize(("on", "ended"), sorted(ONE_NEED))
def test_one_need(on: NeedKind, ended: ev.NodeStatus) -> None:
    assert gate({"a": on}, {"a": ended}) is ONE_NEED[(on, ended)]


def test_no_needs_runs_and_an_unsettled_need_waits() -> None:
    assert gate({}, {}) is Gate.RUN
    for status in (S.PENDING, S.SCHEDULED, S.RUNNING, S.RETRYING, S.WAITING, S.REMEDIATING):
        assert gate({"a": "finished"}, {"a": status}) is Gate.WAIT


def test_continue_on_failed_counts_a_failure_as_met_for_success_needs_only() -> None:
    assert gate({"a": "succeeded"}, {"a": S.FAILED}, continues=frozenset({"a"})) is Gate.RUN
    assert gate({"a": "skipped"}, {"a": S.FAILED}, continues=frozenset({"a"})) is Gate.SKIP


def test_a_join_after_an_if_else_runs_and_a_chain_under_false_skips() -> None:
    join = {"then": "succeeded", "else": "succeeded"}
    assert gate(join, {"then": S.SKIPPED, "else": S.SUCCEEDED}) is Gate.RUN
    assert gate(join, {"then": S.SKIPPED, "else": S.SKIPPED}) is Gate.SKIP
    assert gate({"a": "succeeded"}, {"a": S.SKIPPED}) is Gate.SKIP


def _expected(needs: dict[str, NeedKind], ended: dict[str, ev.NodeStatus]) -> Gate:
    """The documented rule, spelt independently of the table in gates.py."""
    met = passed = unmet = 0
    for node, on in needs.items():
        status = ended[node]
        if (
            on == "finished"
            or (on == "failed" and status is S.FAILED)
            or (on == "skipped" and status is S.SKIPPED)
            or (on == "succeeded" and status is S.SUCCEEDED)
        ):
            met += 1
        elif on == "succeeded" and status is S.SKIPPED:
            passed += 1
        else:
            unmet += 1
    if unmet:
        return Gate.SKIP
    return Gate.RUN if met or not needs else Gate.SKIP


@given(
    st.dictionaries(
        st.sampled_from("abcdef"),
        st.tuples(st.sampled_from(KINDS), st.sampled_from(ENDED)),
        max_size=6,
    )
)
def test_the_gate_follows_the_documented_rule(needs: dict[str, tuple[NeedKind, Any]]) -> None:
    kinds = {n: on for n, (on, _) in needs.items()}
    ended = {n: status for n, (_, status) in needs.items()}
    assert gate(kinds, ended) is _expected(kinds, ended)


@given(
    st.dictionaries(
        st.sampled_from("abcdef"),
        st.tuples(st.sampled_from(KINDS), st.sampled_from([*ENDED, S.RUNNING])),
        min_size=1,
        max_size=6,
    )
)
def test_a_gate_waits_until_every_need_that_could_decide_it_has_ended(
    needs: dict[str, tuple[NeedKind, Any]],
) -> None:
    kinds = {n: on for n, (on, _) in needs.items()}
    ended = {n: status for n, (_, status) in needs.items()}
    verdict = gate(kinds, ended)
    running = [n for n, s in ended.items() if s is S.RUNNING]
    if not running:
        assert verdict is _expected(kinds, ended)
    else:  # whatever the running needs end with, the verdict already given holds
        for outcome in itertools.product(ENDED, repeat=len(running)):
            final = {**ended, **dict(zip(running, outcome, strict=True))}
            assert verdict is Gate.WAIT or verdict is gate(kinds, final)


# --- the state machine taking branches ------------------------------------------------------
def _state(b: WorkflowBuilder, **inputs: Any) -> RunState:
    wf = b.build()
    assert check_workflow(wf) == []
    return RunState(started(wf, **inputs))


def _names(tasks: list[PlannedTask]) -> list[str]:
    return [t.ref.node for t in tasks]


def _if_else() -> WorkflowBuilder:
    b = WorkflowBuilder("w")
    n = b.input("n", type="integer")
    check = b.node("check", "f@1", inputs={"n": n})
    big = b.node("big", "f@1", needs=[check], when="${{ nodes.check.output > 10 }}")
    small = b.node("small", "f@1", needs=[check], when="${{ nodes.check.output <= 10 }}")
    after_big = b.node("after_big", "f@1", needs=[big])
    b.node("join", "f@1", inputs={"b": big.output, "s": small.output}, needs=[after_big])
    b.output("join", "${{ nodes.join.output }}")
    b.output("branch", "${{ nodes.big.status }}")
    return b


def test_if_else_takes_one_branch_skips_the_chain_under_the_other_and_joins() -> None:
    state = _state(_if_else(), n=3)
    (check,) = schedule(state)
    complete(state, check, 3)
    (small,) = schedule(state)
    assert small.ref.node == "small"
    statuses = {n: s.status for n, s in state.nodes.items()}
    assert statuses["big"] is S.SKIPPED
    assert statuses["after_big"] is S.SKIPPED  # a chain under a false condition
    assert state.newly_settled == ["big", "after_big"]
    complete(state, small, "s")
    (join,) = schedule(state)
    assert join.inputs == {"b": None, "s": "s"}  # a skipped node's output is null
    complete(state, join, "joined")
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.SUCCEEDED
    assert stop.outputs == {"join": "joined", "branch": "SKIPPED"}
    assert not any(t.ref.node == "big" for t in state.in_flight())


def test_a_false_condition_on_a_root_skips_it_before_anything_runs() -> None:
    b = WorkflowBuilder("w")
    b.input("go", type="boolean")
    b.node("a", "f@1", when="${{ inputs.go }}")
    b.node("b", "f@1")
    state = _state(b, go=False)
    assert state.nodes["a"].status is S.SKIPPED
    assert _names(schedule(state)) == ["b"]


def _error_branch(**kw: Any) -> WorkflowBuilder:
    b = WorkflowBuilder("w")
    fetch = b.node("fetch", "f@1", retry={"max_attempts": 1}, **kw)
    b.node("use", "f@1", inputs={"x": fetch.output})
    handler = b.node(
        "handle", "f@1", needs=[fetch.on("failed")], inputs={"e": "${{ nodes.fetch.error.code }}"}
    )
    b.output("handled", handler.output)
    return b


def test_an_error_branch_runs_when_its_node_failed_for_good_and_the_run_succeeds() -> None:
    state = _state(_error_branch())
    (fetch,) = schedule(state)
    fail(state, fetch, code="DB_DOWN", retryable=False)
    assert state.nodes["fetch"].status is S.FAILED
    assert state.nodes["use"].status is S.SKIPPED  # needed fetch's success
    (handle,) = schedule(state)
    assert handle.inputs == {"e": "DB_DOWN"}
    complete(state, handle, "recovered")
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.SUCCEEDED
    assert stop.outputs == {"handled": "recovered"}


def test_an_error_branch_is_skipped_when_its_node_succeeds() -> None:
    state = _state(_error_branch())
    (fetch,) = schedule(state)
    complete(state, fetch, 1)
    (use,) = schedule(state)
    assert use.ref.node == "use"
    assert state.nodes["handle"].status is S.SKIPPED
    complete(state, use, 2)
    assert only_stop(state).status is ev.RunStatus.SUCCEEDED


def test_an_unhandled_failure_still_stops_the_run_and_leaves_dependants_pending() -> None:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1", retry={"max_attempts": 1})
    b.node("b", "f@1", needs=[a])
    state = _state(b)
    (task,) = schedule(state)
    fail(state, task, retryable=False)
    stop = only_stop(state)
    assert (stop.status, stop.node) == (ev.RunStatus.INTERRUPTED, "a")
    assert state.nodes["b"].status is S.PENDING  # resumable: nothing was skipped


def test_continue_on_failed_lets_dependants_run_with_the_error_in_view() -> None:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1", retry={"max_attempts": 1}, continue_on="failed")
    b.node("b", "f@1", needs=[a], inputs={"status": a.status, "out": a.output})
    state = _state(b)
    (task,) = schedule(state)
    fail(state, task, retryable=False)
    (after,) = schedule(state)
    assert after.inputs == {"status": "FAILED", "out": None}
    complete(state, after, 1)
    assert only_stop(state).status is ev.RunStatus.SUCCEEDED


def test_a_when_that_fails_to_evaluate_or_is_not_boolean_fails_its_node() -> None:
    b = WorkflowBuilder("w")
    x = b.input("x", type="any")
    b.node("a", "f@1", when="${{ inputs.x.missing > 1 }}", inputs={"x": x})
    state = _state(b, x={})
    assert state.nodes["a"].status is S.FAILED
    stop = only_stop(state)
    assert stop.error is not None
    assert stop.error.code == "EXPRESSION_ERROR"
    b2 = WorkflowBuilder("w")
    b2.node("a", "f@1", when="${{ 'yes' }}")
    state2 = _state(b2)
    assert state2.nodes["a"].error is not None
    assert "boolean" in state2.nodes["a"].error.message


def test_replaying_a_branching_history_settles_the_same_nodes() -> None:
    state = _state(_if_else(), n=30)
    history: list[ev.HistoryEvent] = [state.started]
    while True:
        decisions = state.decide(T0)
        if not decisions or isinstance(decisions[0], Stop):
            break
        tasks = decisions[0].tasks  # type: ignore[union-attr]
        scheduled = ev.TasksScheduled(run_id="r1", tasks=[t.ref for t in tasks], at=T0)
        state.apply(scheduled)
        history.append(scheduled)
        for task in tasks:
            done = ev.TaskCompleted(
                run_id="r1",
                task=task.ref,
                output=ev.Payload(inline=30),
                execution=ev.Execution(started_at=T0, finished_at=T0),
            )
            state.apply(done, 30)
            history.append(done)
    replayed = RunState.from_history(history)
    assert {n: s.status for n, s in replayed.nodes.items()} == {
        n: s.status for n, s in state.nodes.items()
    }
    assert replayed.nodes["small"].status is S.SKIPPED
    assert replayed.decide(T0) == state.decide(T0)


# --- bad definitions --------------------------------------------------------------------------
def _wf(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "actorflow/v1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"nodes": nodes},
    }


def test_bad_conditions_and_needs_are_refused_with_their_field() -> None:
    wf = Workflow.model_validate(
        _wf(
            [
                {"id": "a", "function": "f@1", "when": "${{ nodes.a.output"},
                {"id": "b", "function": "f@1", "needs": [{"node": "zz", "on": "failed"}]},
                {"id": "c", "function": "f@1", "when": "plain text"},
            ]
        )
    )
    fields = {i.field: i.message for i in check_workflow(wf)}
    assert "spec.nodes[0].when" in fields
    assert fields["spec.nodes[1].needs[0]"] == "needs unknown node 'zz'"
    assert "single ${{ expression }}" in fields["spec.nodes[2].when"]
    with pytest.raises(ValueError, match="on"):
        Workflow.model_validate(
            _wf([{"id": "a", "function": "f@1", "needs": [{"node": "b", "on": "sometimes"}]}])
        )
    assert Need(node="a").on == "succeeded"


def test_a_node_that_ends_without_a_task_frees_its_dependants() -> None:
    b = WorkflowBuilder("w")
    items = b.input("items", type="array")
    fan = b.node("fan", "f@1", for_each=items, inputs={"x": "${{ item }}"})
    b.node("sum", "f@1", inputs={"v": fan.output})
    b.sleep("nap", 5, needs=[fan])
    state = _state(b, items=[])
    (task,) = schedule(state)  # the empty fan-out ended at once: sum runs in this decision
    assert (task.ref.node, task.inputs) == ("sum", {"v": []})
    (waits,) = state.decide(T0)  # and the sleep starts in the next
    assert isinstance(waits, StartWaits)
    assert [w.node for w in waits.waits] == ["nap"]


def test_a_handled_render_error_runs_the_error_branch() -> None:
    b = WorkflowBuilder("w")
    x = b.input("x", type="any")
    bad = b.node("bad", "f@1", inputs={"v": "${{ inputs.x.missing }}"}, needs=[])
    b.node(
        "handler", "f@1", needs=[bad.on("failed")], inputs={"code": "${{ nodes.bad.error.code }}"}
    )
    b.output("x", x)
    state = _state(b, x={})
    (handler,) = schedule(state)
    assert handler.ref.node == "handler"
    assert handler.inputs == {"code": "EXPRESSION_ERROR"}
