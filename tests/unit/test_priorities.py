"""Task priorities without a cluster: the 0-9 scale in definitions and requests, resolution
node > run > workflow, the per-priority subjects, and the band policy's ordering and
starvation bound (Hypothesis drives adversarial arrivals)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actorflow.actors.functions.bands import STARVATION_LIMIT, BandPicker
from actorflow.actors.run.state import RunState
from actorflow.definitions import events as ev
from actorflow.definitions.errors import DefinitionError, InputError
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Function, NodeSpec, Workflow
from actorflow.definitions.priorities import (
    DEFAULT_PRIORITY,
    PRIORITIES,
    check_priority,
    resolve_priority,
)
from actorflow.definitions.snapshot import run_started

priorities = st.sampled_from(PRIORITIES)


# --- the scale ---------------------------------------------------------------------------
def _wf(priority: object = None, node_priority: object = None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": "a", "function": "f@1"}
    if node_priority is not None:
        node["priority"] = node_priority
    spec: dict[str, Any] = {"nodes": [node]}
    if priority is not None:
        spec["priority"] = priority
    return {"metadata": {"name": "w"}, "spec": spec}


@given(priorities, priorities)
def test_every_priority_0_to_9_is_accepted(workflow: int, node: int) -> None:
    wf = Workflow.model_validate(_wf(workflow, node))
    assert wf.spec.priority == workflow
    assert wf.spec.nodes[0].priority == node


def test_a_workflow_that_says_nothing_runs_at_the_default() -> None:
    wf = Workflow.model_validate(_wf())
    assert wf.spec.priority == DEFAULT_PRIORITY == 5
    assert wf.spec.nodes[0].priority is None


@pytest.mark.parametrize("bad", [-1, 10, 99, "5", 5.0, True, None.__class__])
def test_a_priority_outside_0_to_9_or_not_an_integer_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="priority"):
        Workflow.model_validate(_wf(bad))
    with pytest.raises(ValidationError, match="priority"):
        Workflow.model_validate(_wf(node_priority=bad))


def test_the_loader_names_file_line_and_field_of_a_bad_priority() -> None:
    text = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: w}
spec:
  nodes:
    - id: a
      function: f@1
      priority: 12
"""
    with pytest.raises(DefinitionError) as info:
        load_text(text, file="wf.yaml")
    (issue,) = info.value.issues
    assert issue.file == "wf.yaml"
    assert issue.line == 8
    assert issue.field is not None
    assert "priority" in issue.field


@pytest.mark.parametrize("kind", [{"sleep": "1s"}, {"wait": {"signal": "s", "key": "k"}}])
def test_only_nodes_that_queue_tasks_take_a_priority(kind: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="take a priority"):
        NodeSpec.model_validate({"id": "a", "priority": 7, **kind})


@given(priorities)
def test_a_run_priority_is_checked_before_anything_starts(value: int) -> None:
    assert check_priority(value) == value
    assert check_priority(None) is None


@pytest.mark.parametrize("bad", [-1, 10, "9", 9.0, True])
def test_a_bad_run_priority_is_an_input_error_naming_the_field(bad: object) -> None:
    with pytest.raises(InputError, match="priority"):
        check_priority(bad)
    with pytest.raises(ValidationError):
        ev.StartRunRequest(run_id="r", workflow="w", priority=bad)  # type: ignore[arg-type]


# --- resolution: node > run > workflow ------------------------------------------------------
@given(st.none() | priorities, st.none() | priorities, st.none() | priorities)
def test_the_most_specific_priority_wins(
    node: int | None, run: int | None, workflow: int | None
) -> None:
    expected = next((p for p in (node, run, workflow) if p is not None), DEFAULT_PRIORITY)
    assert resolve_priority(node, run, workflow) == expected


def _state(workflow: int | None, run: int | None, node: int | None) -> RunState:
    spec: dict[str, Any] = {
        "nodes": [
            {"id": "a", "function": "f@1", **({"priority": node} if node is not None else {})},
            {"id": "b", "function": "f@1", "needs": ["a"]},
        ]
    }
    if workflow is not None:
        spec["priority"] = workflow
    wf = Workflow.model_validate({"metadata": {"name": "w"}, "spec": spec})
    fn = Function.model_validate({"metadata": {"name": "f"}, "spec": {"handler": "m:f"}})
    return RunState(run_started("w-1", wf, {"f@1": fn}, {}, priority=run))


@settings(max_examples=60)
@given(st.none() | priorities, st.none() | priorities, st.none() | priorities)
def test_tasks_are_scheduled_at_node_then_run_then_workflow_priority(
    workflow: int | None, run: int | None, node: int | None
) -> None:
    state = _state(workflow, run, node)
    run_priority = resolve_priority(None, run, workflow)
    assert state.started.priority == run_priority
    assert state.priority == run_priority
    assert state.context()["run"]["priority"] == run_priority
    (decision,) = state.decide(ev.now())
    (task,) = decision.tasks  # type: ignore[attr-defined]
    assert task.ref.node == "a"
    assert task.priority == resolve_priority(node, run, workflow)
    assert state.priority_of("b") == run_priority  # b says nothing: the run's


def test_a_run_started_before_priorities_runs_at_its_workflows() -> None:
    state = _state(8, None, None)
    old = state.started.model_copy(update={"priority": None})
    assert RunState(old).priority == 8
    raw = ev.encode(old).replace(b',"priority":null', b"")
    assert b"priority" not in raw.split(b'"plan"')[0]
    assert RunState(ev.decode(ev.RunStarted, raw)).priority == 8


def test_a_task_queued_before_priorities_decodes_at_the_default() -> None:
    task = ev.TaskScheduled(
        run_id="r",
        workflow="w",
        task=ev.TaskRef(node="a", attempt=1),
        function="f",
        version="1",
        inputs=ev.Payload(value=None),
    )
    raw = ev.encode(task).replace(b',"priority":5', b"")
    assert b"priority" not in raw
    assert ev.decode(ev.TaskScheduled, raw).priority == DEFAULT_PRIORITY


# --- subjects and consumers ---------------------------------------------------------------
def test_the_default_priority_keeps_the_original_subject_and_consumer() -> None:
    assert ev.task_subject("etl", "1.2") == "af.task.etl.1_2"
    assert ev.task_subject("etl", "1.2", DEFAULT_PRIORITY) == "af.task.etl.1_2"
    assert ev.pool_consumer("etl", "1.2", DEFAULT_PRIORITY) == "pool-etl-1_2"
    assert ev.task_subject("etl", "1.2", 9) == "af.task.etl.1_2.p9"
    assert ev.pool_consumer("etl", "1.2", 0) == "pool-etl-1_2~p0"


@given(
    st.from_regex(r"[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True),
)
def test_each_priority_has_its_own_subject_and_consumer(function: str, version: str) -> None:
    subjects = {ev.task_subject(function, version, p) for p in PRIORITIES}
    consumers = {ev.pool_consumer(function, version, p) for p in PRIORITIES}
    assert len(subjects) == len(consumers) == len(PRIORITIES)
    for p in PRIORITIES:
        subject = ev.task_subject(function, version, p)
        assert ev.task_subject_priority(subject, function, version) == p
        assert "." not in ev.pool_consumer(function, version, p)
    band = ev.task_bands_filter(function, version)
    assert band.endswith(".*")
    assert ev.task_subject(function, version) == band[:-2]
    other = ev.task_subject(function + "x", version, 3)
    assert ev.task_subject_priority(other, function, version) is None


# --- the band policy ------------------------------------------------------------------------
def test_the_highest_waiting_priority_goes_first() -> None:
    picker = BandPicker()
    assert picker.choose({}) is None
    assert picker.choose({9: 0, 1: 0}) is None
    assert picker.choose({1: 3, 9: 1, 5: 2}) == 9
    takes, _ = picker.plan({1: 2, 9: 1, 5: 1}, 10)
    assert takes == [9, 5, 1, 1]
    takes, _ = picker.plan({1: 2, 9: 1, 5: 1}, 2)
    assert takes == [9, 5]


def test_a_low_priority_is_served_after_the_limit_of_higher_ones() -> None:
    takes, picker = BandPicker(limit=3).plan({9: 100, 0: 2}, 12)
    assert takes == [9, 9, 9, 0, 9, 9, 9, 0, 9, 9, 9, 9]
    assert picker.passed == {}  # nothing of priority 0 waits any more


def test_the_default_limit_is_documented() -> None:
    takes, _ = BandPicker().plan({9: 100, 1: 1}, 20)
    assert takes.index(1) == STARVATION_LIMIT


@settings(max_examples=300)
@given(
    limit=st.integers(1, 12),
    steps=st.lists(
        st.tuples(st.dictionaries(priorities, st.integers(0, 3), max_size=4), st.integers(1, 4)),
        min_size=1,
        max_size=80,
    ),
)
def test_no_waiting_priority_is_passed_over_beyond_the_bound(
    limit: int, steps: list[tuple[dict[int, int], int]]
) -> None:
    """Adversarial arrivals between takes: whatever arrives, a priority that keeps tasks
    waiting is passed over at most `limit + m - 1` times in a row (m: the other priorities
    that waited meanwhile),
    and every take is of a priority that has a task waiting."""
    picker = BandPicker(limit=limit)
    waiting: dict[int, int] = {}
    streak: dict[int, int] = {}  # consecutive takes that passed a waiting priority over
    rivals: dict[int, set[int]] = {}  # the others that waited during that streak
    for arrivals, slots in steps:
        for p, n in arrivals.items():
            waiting[p] = waiting.get(p, 0) + n
        for _ in range(slots):
            chosen = picker.choose(waiting)
            if chosen is None:
                assert not any(waiting.values())
                break
            assert waiting[chosen] > 0
            if all(picker.passed.get(p, 0) < limit for p, n in waiting.items() if n > 0):
                assert chosen == max(p for p, n in waiting.items() if n > 0)  # strict order
            for p, n in waiting.items():
                if n > 0 and p != chosen:
                    streak[p] = streak.get(p, 0) + 1
                    rivals.setdefault(p, set()).update(
                        q for q, m in waiting.items() if m > 0 and q != p
                    )
                    assert streak[p] <= limit + len(rivals[p]) - 1, (p, streak, waiting)
            streak.pop(chosen, None)
            rivals.pop(chosen, None)
            picker = picker.took(chosen, waiting)
            waiting[chosen] -= 1
            for p in [p for p, n in waiting.items() if n == 0]:
                streak.pop(p, None)
                rivals.pop(p, None)


@given(st.dictionaries(priorities, st.integers(0, 20), max_size=10), st.integers(0, 40))
def test_a_plan_takes_what_waits_and_no_more(pending: dict[int, int], slots: int) -> None:
    takes, _ = BandPicker().plan(pending, slots)
    assert len(takes) == min(slots, sum(pending.values()))
    for p in set(takes):
        assert takes.count(p) <= pending[p]
    if takes:
        assert takes[0] == max(p for p, n in pending.items() if n > 0)


# --- what a person sees ---------------------------------------------------------------------
def test_runs_list_and_show_carry_the_run_priority() -> None:
    from rich.console import Console

    from actorflow._display import run_detail, runs_table

    at = ev.now()
    record = ev.RunRecord(
        run_id="w-1", workflow="w", version="1", status=ev.RunStatus.RUNNING,
        created_at=at, updated_at=at, priority=8,
    )  # fmt: skip
    table = runs_table([record])
    assert [c.header for c in table.columns][:4] == ["run", "workflow", "status", "priority"]
    assert list(table.columns[3].cells) == ["8"]
    console = Console(width=200, record=True)
    console.print(run_detail(record, []))
    assert "priority  8" in console.export_text()
    assert ev.RunRecord.model_validate({**record.model_dump(), "priority": 5}).priority == 5
    legacy = ev.encode(record).replace(b',"priority":8', b"")
    assert ev.decode(ev.RunRecord, legacy).priority == DEFAULT_PRIORITY


def test_functions_list_breaks_the_backlog_down_by_priority() -> None:
    from actorflow._display import pending_text
    from actorflow.actors.functions.pools import PoolStatus

    def pool(**kw: Any) -> PoolStatus:
        return PoolStatus.model_validate({
            "function": "f", "version": "1", "handler": "m:f", "replicas": 1, "desired": 1,
            "min": 1, "max": 1, "max_concurrency": 1, **kw,
        })  # fmt: skip

    assert pending_text(pool(pending=4, pending_by_priority={5: 4})) == "4"
    assert pending_text(pool(pending=12, pending_by_priority={1: 9, 9: 3})) == "12 (p9:3 p1:9)"


@pytest.mark.parametrize("bad", ["10", "-1", "high"])
def test_the_cli_refuses_a_bad_priority_before_connecting(bad: str) -> None:
    from typer.testing import CliRunner

    from actorflow.cli import app

    result = CliRunner().invoke(app, ["run", "some-workflow", "--priority", bad])
    assert result.exit_code == 2  # a usage error: nothing was started, nothing connected
    assert "priority" in result.output
