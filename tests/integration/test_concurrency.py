"""Concurrency keys on the real engine: one run at a time per key (or `limit`), in start
order; other keys in parallel; a cancelled waiting run lets the next go; a paused run keeps
its slot; a key that does not render refuses the start.

Every step appends ``start``/``done`` lines (with its idempotency key, so its run) to a
ledger file; lines of concurrent processes never interleave, so the file's order is the
order things happened in, and "no overlap" and "start order" are read from it — no clock.
Steps that must stay running while the test looks are held on a gate file.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import faults_support as fs
import pytest

import actorflow
from actorflow import RunStatus, WorkflowBuilder
from actorflow.definitions import events as ev

STEPS_DIR = Path(__file__).parent / "steps"
TIMEOUT = 120


def _fn(name: str, handler: str, concurrency: int) -> actorflow.Function:
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": name, "version": "1"},
            "spec": {
                "handler": f"af_fault_steps:{handler}",
                "codeDir": str(STEPS_DIR),
                "resources": {"cpus": 0.1},
                "nodeLabels": {"af-role": "head"},
                "maxConcurrency": concurrency,
            },
        }
    )


LEDGER_STEP = _fn("cc-ledger", "ledger_step", 32)
HELD_STEP = _fn("cc-held", "held_step", 32)


def _two_steps(name: str, limit: int = 1) -> actorflow.Workflow:
    """Two ledger steps in a row, so a run's slot spans more than one step."""
    b = WorkflowBuilder(name, version="1")
    ledger = b.input("ledger", type="string")
    b.input("cluster", type="string")
    b.concurrency("${{ inputs.cluster }}", limit=limit)
    step = {"path": ledger, "values": [], "add": 1, "delay": 0.02}
    a = b.node("a", "cc-ledger@1", inputs=step)
    b.node("b", "cc-ledger@1", inputs=step, needs=[a])
    return b.build()


def _held(name: str, limit: int = 1) -> actorflow.Workflow:
    """One step held until the test touches ``<gate>.hold``."""
    b = WorkflowBuilder(name, version="1")
    ledger = b.input("ledger", type="string")
    gate = b.input("gate", type="string")
    b.input("cluster", type="string")
    b.concurrency("cluster-${{ inputs.cluster }}", limit=limit)
    b.node("hold", "cc-held@1", inputs={"path": ledger, "gate": gate})
    return b.build()


@pytest.fixture(scope="module")
def applied(client: actorflow.Client) -> actorflow.Client:
    client.apply(
        [
            LEDGER_STEP,
            HELD_STEP,
            _two_steps("cc-serial"),
            _two_steps("cc-pair", limit=2),
            _held("cc-held-one"),
            _held("cc-held-two", limit=2),
        ]
    )
    return client


def _run_of(key: str) -> str:
    """The run id in a ledger key (``<run_id>.<node>.<attempt>``)."""
    return key.split(".", 1)[0]


def _intervals(path: Path) -> list[tuple[str, int, int]]:
    """(run, first line, last line) per run, in the order the runs first appear."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, note in enumerate(fs.ledger(path)):
        run = _run_of(note.key)
        first.setdefault(run, i)
        last[run] = i
    return [(run, first[run], last[run]) for run in first]


def _assert_one_at_a_time(path: Path) -> list[str]:
    """No run's steps interleave with another's; the runs in the order they ran."""
    spans = _intervals(path)
    for (run, _, end), (after, start, _) in pairwise(spans):
        assert end < start, f"{after} started before {run} had finished"
    return [run for run, _, _ in spans]


def _admitted_seq(client: actorflow.Client, run_id: str) -> int:
    [admitted] = [e for e in fs.replayed(client.nats_url, run_id) if isinstance(e, ev.RunAdmitted)]
    return admitted.seq


def _wait_record(run: actorflow.Run, check: str, ok: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = run.status()
        if getattr(record, check) == ok:
            return
        time.sleep(0.05)
    raise AssertionError(f"{run.run_id}: {check} never became {ok!r}: {run.status()}")


def _release(gate: Path) -> None:
    (gate.parent / f"{gate.name}.hold").touch()


def test_twenty_concurrent_starts_on_one_key_run_one_at_a_time_in_queue_order(
    applied: actorflow.Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    inputs = {"ledger": str(ledger), "cluster": "prod"}
    with ThreadPoolExecutor(20) as pool:
        runs = list(pool.map(lambda _: applied.run("cc-serial", inputs), range(20)))
    records = [r.wait(timeout=TIMEOUT) for r in runs]
    assert all(r.status is RunStatus.SUCCEEDED for r in records), records
    order = _assert_one_at_a_time(ledger)
    assert sorted(order) == sorted(r.run_id for r in runs)
    # The queue's order is the order the starts were recorded in: each run's place.
    by_place = sorted(runs, key=lambda r: _admitted_seq(applied, r.run_id))
    assert order == [r.run_id for r in by_place]
    assert all(r.concurrency is not None and r.concurrency.key == "prod" for r in records)
    listed = applied.runs(workflow="cc-serial", key="prod")
    assert {r.run_id for r in runs} <= {r.run_id for r in listed}


def test_runs_started_one_after_another_run_in_that_order(
    applied: actorflow.Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    runs = [
        applied.run("cc-serial", {"ledger": str(ledger), "cluster": "staging"}) for _ in range(5)
    ]
    for run in runs:
        assert run.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    assert _assert_one_at_a_time(ledger) == [r.run_id for r in runs]


def test_a_different_key_runs_in_parallel(applied: actorflow.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ledger = tmp_path / "ledger"
    held = applied.run("cc-held-one", {"ledger": str(ledger), "gate": str(gate), "cluster": "east"})
    fs.wait_for(lambda: fs.starts(ledger), 60, "the held step to start")
    other = tmp_path / "other"
    # While east's run holds its slot, west's runs: it finishes before east is let go.
    free = applied.run("cc-serial", {"ledger": str(other), "cluster": "west"})
    assert free.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    assert held.status().status is RunStatus.RUNNING
    _release(gate)
    assert held.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED


def test_a_limit_of_two_runs_two_and_queues_the_third(
    applied: actorflow.Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    gates = [tmp_path / f"gate{i}" for i in range(3)]
    runs = [
        applied.run("cc-held-two", {"ledger": str(ledger), "gate": str(gate), "cluster": "pair"})
        for gate in gates
    ]
    fs.wait_for(lambda: len(fs.starts(ledger)) == 2, 60, "two held steps to start")
    _wait_record(runs[2], "queue_ahead", 2)
    third = runs[2].status()
    assert third.status is RunStatus.PENDING
    assert {_run_of(k) for k in fs.starts(ledger)} == {runs[0].run_id, runs[1].run_id}
    _release(gates[1])  # the second finishes first: the third takes its slot
    assert runs[1].wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    fs.wait_for(lambda: len(fs.starts(ledger)) == 3, 60, "the third held step to start")
    assert runs[0].status().status is RunStatus.RUNNING
    for gate in (gates[0], gates[2]):
        _release(gate)
    assert all(r.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED for r in runs)


def test_cancelling_a_waiting_run_lets_the_next_one_go(
    applied: actorflow.Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    gates = [tmp_path / f"gate{i}" for i in range(3)]
    runs = [
        applied.run("cc-held-one", {"ledger": str(ledger), "gate": str(gate), "cluster": "cancel"})
        for gate in gates
    ]
    fs.wait_for(lambda: fs.starts(ledger), 60, "the first held step to start")
    _wait_record(runs[2], "queue_ahead", 2)
    runs[1].cancel(reason="not needed")
    cancelled = runs[1].wait(timeout=TIMEOUT)
    assert cancelled.status is RunStatus.INTERRUPTED
    assert cancelled.reason is ev.StopReason.CANCELLED
    _wait_record(runs[2], "queue_ahead", 1)  # the cancelled run gave its place back
    _release(gates[0])
    _release(gates[2])
    assert runs[2].wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    assert runs[0].wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    ran = [_run_of(n.key) for n in fs.ledger(ledger) if n.what == "start"]
    assert ran == [runs[0].run_id, runs[2].run_id]  # the cancelled run never ran a step


def test_a_paused_run_keeps_its_slot_until_it_finishes(
    applied: actorflow.Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    gates = [tmp_path / f"gate{i}" for i in range(2)]
    first, second = (
        applied.run("cc-held-one", {"ledger": str(ledger), "gate": str(g), "cluster": "pause"})
        for g in gates
    )
    fs.wait_for(lambda: fs.starts(ledger), 60, "the first held step to start")
    first.pause()
    _release(gates[0])  # its step ends; the run stops PAUSED, still holding the slot
    _wait_record(first, "status", RunStatus.PAUSED)
    _release(gates[1])
    assert second.status().status is RunStatus.PENDING
    first.resume()
    assert first.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    assert second.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    notes = [(n.what, _run_of(n.key)) for n in fs.ledger(ledger)]
    assert notes == [
        ("start", first.run_id),
        ("done", first.run_id),
        ("start", second.run_id),
        ("done", second.run_id),
    ]


def test_a_failed_run_gives_its_slot_back(applied: actorflow.Client, tmp_path: Path) -> None:
    b = WorkflowBuilder("cc-fails", version="1")
    b.input("cluster", type="string")
    b.concurrency("${{ inputs.cluster }}", group="cc-shared")
    b.node("boom", "fail@1", inputs={"message": "no"}, retry={"max_attempts": 1})
    applied.apply(b.build())
    ledger = tmp_path / "ledger"
    failing = applied.run("cc-fails", {"cluster": "shared"})
    # Another workflow of the same group and key: it waits for the failing run.
    c = WorkflowBuilder("cc-after", version="1")
    path = c.input("ledger", type="string")
    c.input("cluster", type="string")
    c.concurrency("${{ inputs.cluster }}", group="cc-shared")
    c.node("a", "cc-ledger@1", inputs={"path": path, "values": [], "add": 1, "delay": 0})
    applied.apply(c.build())
    after = applied.run("cc-after", {"ledger": str(ledger), "cluster": "shared"})
    assert failing.wait(timeout=TIMEOUT).status is RunStatus.INTERRUPTED
    assert after.wait(timeout=TIMEOUT).status is RunStatus.SUCCEEDED
    assert _admitted_seq(applied, after.run_id) > _admitted_seq(applied, failing.run_id)


def test_a_key_that_does_not_render_refuses_the_start(applied: actorflow.Client) -> None:
    b = WorkflowBuilder("cc-no-key", version="1")
    b.input("cluster", type="string", default=None)
    b.concurrency("${{ inputs.cluster }}")
    b.node("a", "noop@1")
    applied.apply(b.build())
    with pytest.raises(actorflow.InputError, match=r"spec\.concurrency\.key"):
        applied.run("cc-no-key", {})
    assert applied.runs(workflow="cc-no-key") == []
