"""Concurrency keys without a cluster: the turn rule over a queue's log (Hypothesis), the
run state machine waiting for its turn, the key rendered at start, the model and graph
checks, and how a waiting run is listed."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from run_support import T0, complete, fail, only_stop, schedule, started

from actorflow._display import run_detail, runs_table
from actorflow.actors.run.dispatch import first_tasks
from actorflow.actors.run.state import AwaitTurn, RunState, Schedule, Stop
from actorflow.actors.run.turns import Line, QueueLog
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.errors import DefinitionError, InputError
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Workflow
from actorflow.definitions.snapshot import MAX_KEY_LENGTH, concurrency_of


# --- the turn rule ----------------------------------------------------------------------------
@dataclass
class _Log:
    """A queue's log as the server holds it: lines, a sequence counter, purges."""

    lines: list[Line] = field(default_factory=list)
    seq: int = 0

    def add(self, op: ev.QueueOp, run: int, limit: int = 1) -> Line:
        self.seq += 1
        line = Line(self.seq, op, f"r{run}.0", f"r{run}", limit)
        self.lines.append(line)
        return line

    def purge_before(self, cut: int) -> None:
        self.lines = [line for line in self.lines if line.seq >= cut]


def _fold(lines: list[Line]) -> QueueLog:
    folded = QueueLog()
    for line in lines:
        folded.apply(line)
    return folded


def _reference_admitted(lines: list[Line], limit: int) -> list[str]:
    """The rule, written the obvious way: the first `limit` places not yet released, in
    the order of their first enqueue, ignoring places released before they were enqueued."""
    order: list[str] = []
    released: set[str] = set()
    for line in lines:
        if line.op == "release":
            released.add(line.entry)
        elif line.entry not in order and line.entry not in released:
            order.append(line.entry)
    return [e for e in order if e not in released][:limit]


# A busy, shared machine must not fail a property on time.
_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# An operation on a queue of 8 runs: enqueue run i, release run i, or compact the log.
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, 7)),
        st.tuples(st.just("release"), st.integers(0, 7)),
        st.tuples(st.just("compact"), st.just(0)),
    ),
    max_size=60,
)


@_SETTINGS
@given(_OPS, st.integers(1, 3))
def test_at_most_limit_unfinished_runs_are_admitted_and_none_loses_its_turn(
    ops: list[tuple[str, int]], limit: int
) -> None:
    """Whatever the interleaving of enqueues, duplicate enqueues, releases (even one before
    its enqueue) and compactions, and whether a driver follows the log as it grows (and
    forgets what is purged) or reads it afresh: at most `limit` runs that have not finished
    are admitted, and a run once admitted stays admitted until it finishes.

    (The two readers may disagree on a place whose release was purged before a late
    duplicate enqueue: the fresh one counts it. Its run has finished, so that only holds the
    queue up until the repair releases it.)"""
    log = _Log()
    follower = QueueLog()
    finished: set[str] = set()
    ever_admitted: set[str] = set()
    for op, run in ops:
        if op == "compact":
            log.purge_before(_fold(log.lines).cut())
            follower.forget_before(log.lines[0].seq if log.lines else log.seq + 1)
            continue
        line = log.add("enqueue" if op == "enqueue" else "release", run, limit)
        if op == "release":
            finished.add(line.entry)
        follower.apply(line)
        fresh = _fold(log.lines)
        running = {
            line.entry
            for reader in (follower, fresh)
            for line in reader.admitted()
            if line.entry not in finished
        }
        assert len(running) <= limit
        admitted = {line.entry for line in follower.admitted()}
        assert ever_admitted - finished <= admitted, "a run lost its turn"
        ever_admitted |= admitted
        for entry in admitted:
            turn = follower.turn(entry)
            assert turn is not None
            assert turn.admitted
            assert turn.ahead < limit


@_SETTINGS
@given(_OPS, st.integers(1, 3))
def test_when_runs_release_only_what_they_enqueued_every_reader_agrees(
    ops: list[tuple[str, int]], limit: int
) -> None:
    """The normal case — a run enqueues (perhaps twice: a retry), then finishes and never
    enqueues that place again: a follower and a fresh reader give the same turns, with
    compactions in between."""
    log = _Log()
    follower = QueueLog()
    placed: set[int] = set()
    gone: set[int] = set()
    for op, run in ops:
        if op == "compact":
            log.purge_before(_fold(log.lines).cut())
            follower.forget_before(log.lines[0].seq if log.lines else log.seq + 1)
            continue
        if run in gone or (op == "release" and run not in placed):
            continue
        (placed if op == "enqueue" else gone).add(run)
        follower.apply(log.add("enqueue" if op == "enqueue" else "release", run, limit))
        fresh = _fold(log.lines)
        assert follower.live() == fresh.live()
        assert follower.admitted() == fresh.admitted()


@_SETTINGS
@given(_OPS, st.integers(1, 3))
def test_without_compaction_the_fold_is_the_reference_rule(
    ops: list[tuple[str, int]], limit: int
) -> None:
    log = _Log()
    for op, run in ops:
        if op != "compact":
            log.add("enqueue" if op == "enqueue" else "release", run, limit)
    folded = _fold(log.lines)
    assert [line.entry for line in folded.admitted()] == _reference_admitted(log.lines, limit)


@_SETTINGS
@given(_OPS, st.integers(1, 3))
def test_compaction_never_drops_a_place_and_never_frees_a_slot(
    ops: list[tuple[str, int]], limit: int
) -> None:
    """Purging before `cut` keeps every unreleased place, in order; the only thing it can
    change is to bring back a place released before it was enqueued — which makes the
    queue stricter (its run has finished, so the repair releases it), never looser."""
    log = _Log()
    for op, run in ops:
        if op != "compact":
            log.add("enqueue" if op == "enqueue" else "release", run, limit)
    full = _fold(log.lines)
    log.purge_before(full.cut())
    compacted = _fold(log.lines)
    live = [line.entry for line in compacted.live()]
    kept = [line.entry for line in full.live()]
    assert [e for e in live if e in kept] == kept
    for entry in kept:
        before, after = full.turn(entry), compacted.turn(entry)
        assert before is not None
        assert after is not None
        assert after.ahead >= before.ahead


@_SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=12))
def test_each_place_counts_against_its_own_limit(limits: list[int]) -> None:
    """Runs of one group may disagree on the limit: each is admitted when fewer places
    than its own limit are ahead of it."""
    log = _Log()
    for run, limit in enumerate(limits):
        log.add("enqueue", run, limit)
    folded = _fold(log.lines)
    for ahead, line in enumerate(folded.live()):
        turn = folded.turn(line.entry)
        assert turn is not None
        assert turn.ahead == ahead
        assert turn.admitted is (ahead < line.limit)
        assert all(h.entry in {x.entry for x in folded.admitted()} for h in turn.holders)


def test_a_duplicate_enqueue_keeps_the_first_place_and_a_release_sticks() -> None:
    log = _Log()
    log.add("enqueue", 0)
    log.add("enqueue", 1)
    log.add("enqueue", 0)  # a retried start: no second place
    folded = _fold(log.lines)
    assert [line.entry for line in folded.live()] == ["r0.0", "r1.0"]
    log.add("release", 0)
    log.add("enqueue", 0)  # a late duplicate: the place stays released
    folded = _fold(log.lines)
    assert [line.entry for line in folded.live()] == ["r1.0"]
    assert folded.released("r0.0")
    assert folded.turn("r0.0") is None
    turn = folded.turn("r1.0")
    assert turn is not None
    assert (turn.admitted, turn.ahead, turn.seq) == (True, 0, 2)


def test_a_waiting_place_names_the_places_it_waits_for() -> None:
    log = _Log()
    for run in range(4):
        log.add("enqueue", run, limit=2)
    turn = _fold(log.lines).turn("r3.0")
    assert turn is not None
    assert (turn.admitted, turn.ahead) == (False, 3)
    assert [h.run_id for h in turn.holders] == ["r0", "r1"]


def test_the_cut_is_the_first_unreleased_place() -> None:
    log = _Log()
    for run in range(3):
        log.add("enqueue", run)
    log.add("release", 1)
    log.add("release", 0)
    assert _fold(log.lines).cut() == 3
    log.add("release", 2)
    assert _fold(log.lines).cut() == log.seq + 1
    assert QueueLog().cut() == 1
    reread = QueueLog()
    reread.apply(log.lines[0])
    reread.apply(log.lines[0])  # a line read twice is folded once
    reread.advance(10)  # an unreadable line still moves the reader on
    assert reread.last_seq == 10


# --- the run state machine --------------------------------------------------------------------
def _keyed(limit: int = 1, timeout: str | None = None) -> Workflow:
    b = WorkflowBuilder("deploy", version="1", timeout=timeout)
    b.input("cluster", type="string")
    b.concurrency("${{ inputs.cluster }}", limit=limit)
    a = b.node("a", "f@1")
    b.node("b", "f@1", needs=[a])
    return b.build()


def _started(wf: Workflow, cluster: str = "prod") -> ev.RunStarted:
    base = started(wf, cluster=cluster)
    return base.model_copy(
        update={"concurrency": concurrency_of(wf, {"cluster": cluster}, base.run_id)}
    )


def _admit(state: RunState, episode: int = 0, at: Any = T0) -> None:
    state.apply(ev.RunAdmitted(run_id="r1", episode=episode, seq=1, at=at))


def _control(state: RunState, action: ev.ControlAction, n: int) -> None:
    state.apply(ev.RunControlled(run_id="r1", id=f"c{n}", action=action, at=T0))


def test_a_keyed_run_waits_pending_for_its_turn_and_does_nothing_else() -> None:
    state = RunState(_started(_keyed()))
    assert state.status is ev.RunStatus.PENDING
    assert state.started_at is None
    assert state.decide(T0) == [AwaitTurn("r1.0", 0)]
    assert state.next_due() is None  # no timer: the queue wakes it
    assert first_tasks(state.started, 30.0) is None  # the controller schedules nothing
    _admit(state, at=T0 + timedelta(minutes=5))
    assert state.status is ev.RunStatus.RUNNING
    assert state.started_at == T0 + timedelta(minutes=5)
    assert not state.queued
    [task] = schedule(state)
    assert task.ref.node == "a"


def test_a_run_without_a_key_never_waits() -> None:
    b = WorkflowBuilder("free", version="1")
    b.node("a", "f@1")
    state = RunState(started(b.build()))
    assert state.status is ev.RunStatus.RUNNING
    assert isinstance(state.decide(T0)[0], Schedule)


@pytest.mark.parametrize(
    ("action", "status", "reason"),
    [
        ("cancel", ev.RunStatus.INTERRUPTED, ev.StopReason.CANCELLED),
        ("terminate", ev.RunStatus.TERMINATED, ev.StopReason.CANCELLED),
    ],
)
def test_stopping_a_waiting_run_stops_it_without_its_turn(
    action: ev.ControlAction, status: ev.RunStatus, reason: ev.StopReason
) -> None:
    state = RunState(_started(_keyed()))
    _control(state, action, 1)
    stop = only_stop(state)
    assert (stop.status, stop.reason) == (status, reason)
    assert stop.status.finished  # the driver gives the place back


def test_a_run_paused_while_it_waits_keeps_its_place() -> None:
    state = RunState(_started(_keyed()))
    _control(state, "pause", 1)
    assert only_stop(state).status is ev.RunStatus.PAUSED
    state.apply(ev.RunStopped(run_id="r1", status=ev.RunStatus.PAUSED, at=T0))
    _control(state, "resume", 2)
    assert state.status is ev.RunStatus.PENDING
    assert state.decide(T0) == [AwaitTurn("r1.0", 0)]  # the same place, not a new one


def test_a_paused_run_that_had_its_turn_keeps_it() -> None:
    state = RunState(_started(_keyed()))
    _admit(state)
    [task] = schedule(state)
    _control(state, "pause", 1)
    complete(state, task, 1)
    assert only_stop(state).status is ev.RunStatus.PAUSED
    state.apply(ev.RunStopped(run_id="r1", status=ev.RunStatus.PAUSED, at=T0))
    _control(state, "resume", 2)
    assert state.status is ev.RunStatus.RUNNING
    assert isinstance(state.decide(T0)[0], Schedule)


def test_a_run_reopened_after_it_failed_queues_again_in_a_new_episode() -> None:
    state = RunState(_started(_keyed()))
    _admit(state)
    [task] = schedule(state)
    fail(state, task, retryable=False)
    stop = only_stop(state)
    assert stop.status is ev.RunStatus.INTERRUPTED
    state.apply(ev.RunStopped(run_id="r1", status=stop.status, node="a", at=T0))
    _control(state, "resume", 1)
    assert state.status is ev.RunStatus.PENDING
    assert state.decide(T0) == [AwaitTurn("r1.1", 1)]
    _admit(state, episode=0)  # the first episode's admission, replayed: not this one's
    assert state.queued
    _admit(state, episode=1)
    assert state.status is ev.RunStatus.RUNNING
    [again] = schedule(state)
    assert (again.ref.node, again.ref.attempt) == ("a", 2)


def test_replaying_a_history_gives_the_same_turns() -> None:
    run = _started(_keyed())
    events: list[ev.HistoryEvent] = [
        run,
        ev.RunAdmitted(run_id="r1", episode=0, seq=4, at=T0),
        ev.RunControlled(run_id="r1", id="c1", action="cancel", at=T0),
        ev.RunStopped(run_id="r1", status=ev.RunStatus.INTERRUPTED, at=T0),
        ev.RunControlled(run_id="r1", id="c2", action="resume", at=T0),
    ]
    state = RunState.from_history(events)
    assert (state.episode, state.queued, state.queue_entry) == (1, True, "r1.1")


def test_the_workflow_timeout_counts_from_the_runs_turn() -> None:
    state = RunState(_started(_keyed(timeout="10s")))
    later = T0 + timedelta(hours=1)
    assert state.decide(later) == [AwaitTurn("r1.0", 0)]  # an hour in the queue: no timeout
    _admit(state, at=later)
    assert isinstance(state.decide(later + timedelta(seconds=5))[0], Schedule)
    assert state.next_due() == later + timedelta(seconds=10)


# --- the key, rendered at start ---------------------------------------------------------------
def _wf(key: str, group: str | None = None, **inputs: dict[str, Any]) -> Workflow:
    b = WorkflowBuilder("deploy", version="3")
    for name, spec in inputs.items():
        b.input(name, **spec)
    b.concurrency(key, group=group)
    b.node("a", "f@1")
    return b.build()


def test_the_key_is_rendered_from_inputs_and_run() -> None:
    wf = _wf("${{ inputs.cluster }}-${{ run.workflow }}", cluster={"type": "string"})
    ref = concurrency_of(wf, {"cluster": "prod"}, "deploy-1")
    assert ref == ev.ConcurrencyRef(
        group="deploy", key="prod-deploy", limit=1, queue=ev.queue_name("deploy", "prod-deploy")
    )
    shared = concurrency_of(
        _wf("${{ inputs.n }}", group="clusters", n={"type": "integer"}), {"n": 7}, "x"
    )
    assert shared is not None
    assert (shared.group, shared.key) == ("clusters", "7")  # an integer key is its digits
    literal = concurrency_of(_wf("all"), {}, "x")
    assert literal is not None
    assert literal.key == "all"  # one run of the workflow at a time
    b = WorkflowBuilder("free", version="1")
    b.node("a", "f@1")
    assert concurrency_of(b.build(), {}, "x") is None


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"cluster": None}, "must render to a non-empty string or an integer, got None"),
        ({"cluster": ""}, "got ''"),
        ({"cluster": ["a"]}, r"got \['a'\]"),
        ({"cluster": True}, "got True"),
        ({"cluster": "x" * (MAX_KEY_LENGTH + 1)}, f"at most {MAX_KEY_LENGTH}"),
        ({}, "does not render"),
    ],
)
def test_a_key_that_does_not_render_is_an_input_error_naming_the_field(
    inputs: dict[str, Any], message: str
) -> None:
    wf = _wf("${{ inputs.cluster }}", cluster={"type": "any", "default": None})
    bound = inputs or {"other": 1}  # {}: not bound, so `inputs.cluster` is absent
    with pytest.raises(InputError, match=r"deploy@3 spec\.concurrency\.key: .*" + message):
        concurrency_of(wf, bound, "x")


# --- the model and the graph check ------------------------------------------------------------
WORKFLOW = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: deploy}
spec:
  inputs:
    cluster: {type: string}
  concurrency:
    key: "${{ inputs.cluster }}"
    limit: 1
  nodes:
    - id: a
      function: f@1
"""


def test_a_workflow_with_a_concurrency_key_loads() -> None:
    (wf,) = load_text(WORKFLOW)
    assert isinstance(wf, Workflow)
    assert wf.spec.concurrency is not None
    assert (wf.spec.concurrency.key, wf.spec.concurrency.limit) == ("${{ inputs.cluster }}", 1)
    assert wf.spec.concurrency.group is None


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("limit: 1", "limit: 0", "spec.concurrency.limit", "greater than or equal to 1"),
        ("limit: 1", "limit: 10001", "spec.concurrency.limit", "less than or equal to 10000"),
        ("inputs.cluster }}", "inputs.cluster + }}", "spec.concurrency.key", "expression"),
        ("inputs.cluster }}", "nodes.a.output }}", "spec.concurrency.key", "reads only inputs"),
        ("inputs.cluster }}", "inputs.region }}", "spec.concurrency.key", "undeclared input"),
        ("limit: 1", "limit: 1\n    group: No Name", "spec.concurrency.group", "not a valid"),
        ("limit: 1", "limit: 1\n    size: 3", "spec.concurrency.size", "unknown field"),
    ],
)
def test_a_bad_concurrency_is_refused_at_its_line_and_field(
    old: str, new: str, field: str, message: str
) -> None:
    text = WORKFLOW.replace(old, new)
    with pytest.raises(DefinitionError) as info:
        load_text(text, file="deploy.yaml")
    [issue] = info.value.issues
    assert issue.file == "deploy.yaml"
    assert issue.field == field
    assert message in issue.message
    assert issue.line is not None
    where = text.splitlines()[issue.line - 1]
    assert "concurrency" in where or field.rpartition(".")[2] in where


# --- how a waiting run is listed --------------------------------------------------------------
def _text(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def test_runs_list_and_show_say_which_key_a_run_waits_for() -> None:
    ref = ev.ConcurrencyRef(group="deploy", key="prod", limit=1, queue="q")
    waiting = ev.RunRecord(
        run_id="deploy-2",
        workflow="deploy",
        version="1",
        status=ev.RunStatus.PENDING,
        created_at=T0,
        updated_at=T0,
        concurrency=ref,
        queue_ahead=2,
    )
    running = waiting.model_copy(
        update={"run_id": "deploy-1", "status": ev.RunStatus.RUNNING, "queue_ahead": None}
    )
    listing = _text(runs_table([waiting, running]))
    assert "key" in listing
    assert "prod (2 ahead)" in listing
    shown = _text(run_detail(waiting, []))
    assert "waiting for concurrency key 'prod' (group deploy, 1 run at a time): 2 ahead" in shown
    assert "waiting for" not in _text(run_detail(running, []))
    plain = waiting.model_copy(update={"concurrency": None, "queue_ahead": None})
    assert "key" not in _text(runs_table([plain])).splitlines()[1]


def test_a_stop_of_a_waiting_run_is_a_plain_stop() -> None:
    state = RunState(_started(_keyed()))
    _control(state, "cancel", 1)
    [decision] = state.decide(T0)
    assert isinstance(decision, Stop)
