"""Breakpoints, step, continue and input overrides in the pure run state machine."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from run_support import T0, complete, only_stop, schedule, started

from actorflow.actors.run.state import RunState, Schedule, Stop
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.models import Workflow

_ids = itertools.count()


def chain() -> Workflow:
    """a -> b -> c, each adding one to what it gets."""
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1", inputs={"x": 1})
    bb = b.node("b", "f@1", inputs={"x": a.output})
    c = b.node("c", "f@1", inputs={"x": bb.output})
    b.output("out", c.output)
    return b.build()


def run(wf: Workflow, *breaks: tuple[str, ev.BreakPosition]) -> RunState:
    s = started(wf)
    points = [ev.Breakpoint(node=n, position=p) for n, p in breaks]
    return RunState(s.model_copy(update={"breakpoints": points}))


def control(state: RunState, action: ev.ControlAction, **kw: Any) -> None:
    state.apply(ev.RunControlled(run_id="r1", id=f"c{next(_ids)}", action=action, **kw))


def stop_at(state: RunState) -> Stop:
    """Expect the run to stop at a breakpoint now; record the stop as the actor would."""
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.PAUSED
    assert stop.reason is ev.StopReason.BREAKPOINT
    state.apply(
        ev.RunStopped(
            run_id="r1",
            status=stop.status,
            reason=stop.reason,
            node=stop.node,
            breakpoints=stop.breakpoints,
        )
    )
    return stop


def test_break_before_stops_with_the_inputs_and_schedules_nothing() -> None:
    state = run(chain(), ("b", "before"))
    (a,) = schedule(state)
    complete(state, a, 2)
    stop = stop_at(state)
    assert stop.node == "b"
    assert stop.breakpoints == [ev.BreakpointHit(node="b", inputs={"x": 2})]
    assert state.nodes["b"].status is ev.NodeStatus.PENDING  # no task for it
    assert state.next_due() is None  # no timer runs while it is paused
    control(state, "resume")
    (b,) = schedule(state)
    assert b.ref.node == "b"
    assert b.inputs == {"x": 2}


def test_break_before_the_first_node_stops_before_anything_runs() -> None:
    state = run(chain(), ("a", "before"))
    assert stop_at(state).breakpoints == [ev.BreakpointHit(node="a", inputs={"x": 1})]
    assert state.in_flight() == []


def test_break_after_stops_with_the_output_before_the_dependants_run() -> None:
    state = run(chain(), ("a", "after"))
    (a,) = schedule(state)
    complete(state, a, 7)
    stop = stop_at(state)
    assert stop.breakpoints == [ev.BreakpointHit(node="a", position="after", output=7)]
    control(state, "resume")
    (b,) = schedule(state)
    assert b.inputs == {"x": 7}


def test_override_then_step_runs_the_node_with_it_and_stops_at_the_next() -> None:
    state = run(chain(), ("b", "before"))
    (a,) = schedule(state)
    complete(state, a, 2)
    stop_at(state)
    control(state, "override", node="b", input={"x": 100})
    assert state.held_inputs("b") == {"x": 100}
    control(state, "step")
    (b,) = schedule(state)
    assert b.inputs == {"x": 100}
    complete(state, b, 101)
    stop = stop_at(state)
    assert stop.breakpoints == [ev.BreakpointHit(node="c", inputs={"x": 101})]
    control(state, "resume")  # continue: no breakpoint left on the way
    (c,) = schedule(state)
    complete(state, c, 102)
    assert only_stop(state) == Stop(ev.RunStatus.SUCCEEDED, outputs={"out": 102})


def test_a_breakpoint_holds_the_other_ready_nodes_too() -> None:
    b = WorkflowBuilder("w")
    b.node("left", "f@1", inputs={"x": 1})
    b.node("right", "f@1", inputs={"x": 2})
    state = run(b.build(), ("right", "before"))
    stop = stop_at(state)
    assert [h.node for h in stop.breakpoints] == ["right"]
    control(state, "resume")
    tasks = schedule(state)
    assert sorted(t.ref.node for t in tasks) == ["left", "right"]


def test_a_sibling_scheduled_before_the_hit_finishes_and_then_the_run_pauses() -> None:
    """root -> (held, side): `side` went out before `held` became ready behind `gate`;
    the hit does not recall it, and the run pauses only once it has finished."""
    b = WorkflowBuilder("w")
    root = b.node("root", "f@1", inputs={"x": 1})
    gate = b.node("gate", "f@1", inputs={"x": root.output})
    b.node("side", "f@1", inputs={"x": root.output})
    b.node("held", "f@1", inputs={"x": gate.output})
    state = run(b.build(), ("held", "before"))
    (r,) = schedule(state)
    complete(state, r, 1)
    gate_task, side = sorted(schedule(state), key=lambda t: t.ref.node)
    complete(state, gate_task, 2)
    assert state.decide(T0) == []  # held, but `side` is still running
    complete(state, side, 3)
    assert [h.node for h in stop_at(state).breakpoints] == ["held"]


def test_breakpoints_set_and_cleared_by_control_events() -> None:
    state = run(chain())
    control(state, "break", node="c")
    control(state, "break", node="b")
    control(state, "unbreak", node="b")
    (a,) = schedule(state)
    complete(state, a, 1)
    (b,) = schedule(state)
    complete(state, b, 2)
    assert stop_at(state).node == "c"


def test_replay_reaches_the_same_stop() -> None:
    state = run(chain(), ("b", "before"))
    history: list[ev.HistoryEvent] = [state.started]
    decision = state.decide(T0)[0]
    assert isinstance(decision, Schedule)
    scheduled = ev.TasksScheduled(run_id="r1", tasks=[t.ref for t in decision.tasks], at=T0)
    done = ev.TaskCompleted(
        run_id="r1",
        task=decision.tasks[0].ref,
        output=ev.Payload(inline=5),
        execution=ev.Execution(started_at=T0, finished_at=T0),
    )
    history += [scheduled, done]
    replayed = RunState.from_history(history)
    stop = only_stop(replayed)
    assert stop.breakpoints == [ev.BreakpointHit(node="b", inputs={"x": 5})]


def test_resume_from_start_breaks_again() -> None:
    state = run(chain(), ("a", "before"), ("b", "before"))
    stop_at(state)
    control(state, "resume")
    (a,) = schedule(state)
    complete(state, a, 1)
    assert stop_at(state).node == "b"
    control(state, "resume", from_start=True)
    assert stop_at(state).node == "a"


def test_a_rerun_settles_upstream_nodes_and_runs_the_rest() -> None:
    s = started(chain())
    reuse = ev.Reuse(run_id="old", node="b", outputs={"a": 40}, overrides={"x": 41})
    state = RunState(s.model_copy(update={"reuse": reuse}))
    assert state.nodes["a"].status is ev.NodeStatus.SUCCEEDED
    assert state.nodes["a"].tasks[None].reused_from == "old"
    (b,) = schedule(state)
    assert b.ref.node == "b"
    assert b.inputs == {"x": 41}


def _finish(state: RunState, values: dict[str, int]) -> dict[str, Any]:
    """Drive the run to its end, answering each task, `continue` at every breakpoint."""
    for _ in range(50):
        decisions = state.decide(T0)
        if not decisions:
            raise AssertionError("stuck")
        decision = decisions[0]
        if isinstance(decision, Stop):
            if decision.status is ev.RunStatus.SUCCEEDED:
                return decision.outputs
            stop_at(state)  # (stop_at decides again: same stop)
            control(state, "resume")
            continue
        assert isinstance(decision, Schedule)
        state.apply(ev.TasksScheduled(run_id="r1", tasks=[t.ref for t in decision.tasks]))
        for task in decision.tasks:
            got = task.inputs["x"]
            complete(state, task, got + values[task.ref.node])
    raise AssertionError("no end")


@settings(max_examples=60, deadline=None)
@given(
    breaks=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["before", "after"])),
        max_size=6,
    ),
    values=st.fixed_dictionaries({n: st.integers(0, 9) for n in "abcd"}),
)
def test_breakpoints_and_continue_end_with_the_same_outputs(
    breaks: list[tuple[str, ev.BreakPosition]], values: dict[str, int]
) -> None:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1", inputs={"x": 1})
    bb = b.node("b", "f@1", inputs={"x": a.output})
    c = b.node("c", "f@1", inputs={"x": a.output})
    d = b.node("d", "f@1", inputs={"x": "${{ nodes.b.output + nodes.c.output }}"}, needs=[bb, c])
    b.output("out", d.output)
    wf = b.build()
    plain = _finish(run(wf), values)
    assert _finish(run(wf, *breaks), values) == plain


def test_reuse_of_takes_every_upstream_output_and_refuses_a_failed_one() -> None:
    from run_support import fail

    from actorflow.actors.run.rerun import reuse_of, upstream
    from actorflow.definitions.errors import ControlError

    state = run(chain())
    (a,) = schedule(state)
    complete(state, a, 2)
    (b,) = schedule(state)
    complete(state, b, 3)
    assert upstream(state, "c") == {"a", "b"}
    reuse = reuse_of(state, "c", {"x": 9})
    assert (reuse.run_id, reuse.node, reuse.outputs) == ("r1", "c", {"a": 2, "b": 3})
    assert reuse.overrides == {"x": 9}
    assert reuse_of(state, "a").outputs == {}  # nothing upstream of the first node

    broken = run(chain())
    (a,) = schedule(broken)
    fail(broken, a, retryable=False)
    with pytest.raises(ControlError, match="upstream node 'a' is FAILED"):
        reuse_of(broken, "c")
    with pytest.raises(ControlError, match="no node 'zz'"):
        reuse_of(broken, "zz")
