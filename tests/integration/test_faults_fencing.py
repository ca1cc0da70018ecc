"""A stale run-actor incarnation (frozen with SIGSTOP while another claims the run) is
fenced: its appends are refused and it cannot set back the run record."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faults_support as fs
import pytest
import ray

from actorflow.actors.run.actor import RunActor
from actorflow.definitions import events as ev


@dataclass
class FenceScenario:
    run_id: str
    s_inc: str
    result_s: dict[str, Any]
    result_b: dict[str, Any]
    record_before: ev.RunRecord  # when B, the live incarnation, returned
    record_after: ev.RunRecord  # when S, the zombie, returned
    frozen: float
    seconds: float


def _get(ref: Any, timeout: float, what: str) -> Any:
    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def _fence_scenario(engine: fs.Engine, ledger: Path) -> FenceScenario:
    """Three incarnations drive one run in turn: A (the controller's choice); S, a run actor
    of ours that claims the run by replay while A waits for w1; then, while S is frozen with
    SIGSTOP during w2, B — another run actor of the engine — claims it and finishes it. Then
    S is let go on (SIGCONT). w1 and w2 finish only when the test releases them (a file per
    node), so every step of this order is forced."""
    url = engine.url
    t0 = time.monotonic()
    gate = ledger.with_suffix(".gate")
    inputs = {"ledger": str(ledger), "gate": str(gate)}
    run = engine.client.run("ffence", inputs, version="1")
    rid = run.run_id
    a_name = fs.wait_for(
        lambda: next((n for n in fs.named("af-run-actor-") if rid in (fs.active(n) or [])), None),
        10,
        "the controller's driver of the run",
    )
    fs.wait_for(lambda: fs.starts(ledger)[f"{rid}.w1.1"] == 1, 20, "w1 to start")

    remote: Any = ray.remote(RunActor)
    zombie = remote.options(
        name="af-test-zombie", namespace=fs.NS, num_cpus=0, max_concurrency=1000
    ).remote(engine.settings.engine(url), "af-test-zombie")
    zombie_pid = 0
    try:
        _get(zombie.start.remote(), 60, "our run actor S to start")
        zombie_pid = fs.pid(zombie)
        ref_s = zombie.drive.remote(rid)  # recovery mode: replay, claim, carry on
        s_inc = fs.wait_for(
            lambda: next(
                (e.incarnation for e in fs.replayed(url, rid) if isinstance(e, ev.RunClaimed)), None
            ),
            20,
            "S to claim the run",
        )
        # S claimed while w1 still ran, so A was idle: its next append meets the fence.
        assert f"{rid}.w1.1" not in {n.key for n in fs.ledger(ledger) if n.what == "done"}
        Path(f"{gate}.w1").touch()
        fs.wait_for(lambda: fs.lets_go(a_name, rid), 20, "A to let go of the run")
        fs.wait_for(lambda: fs.starts(ledger)[f"{rid}.w2.1"] == 1, 20, "w2 to start", 0.005)

        os.kill(zombie_pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        Path(f"{gate}.w2").touch()  # w2's result reaches only B: S is frozen
        try:
            b_name = next(n for n in fs.named("af-run-actor-") if n != a_name)
            result_b = _get(fs.run_actor(b_name).drive.remote(rid), 40, "B to drive the run")
            record_before = fs.records(url)[rid]
        finally:
            os.kill(zombie_pid, signal.SIGCONT)
        frozen = time.monotonic() - stopped_at
        result_s = _get(ref_s, 30, "S, unfrozen, to return")
        record_after = fs.records(url)[rid]
    finally:
        if zombie_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(zombie_pid, signal.SIGCONT)
        ray.kill(zombie, no_restart=True)
    return FenceScenario(
        rid,
        s_inc,
        result_s,
        result_b,
        record_before,
        record_after,
        frozen,
        time.monotonic() - t0,
    )


_FENCE_OUTPUTS = {"w0": 1, "w1": "slept:w1", "w2": "slept:w2", "w3": 3}


@pytest.mark.timeout(90)
def test_stale_incarnation_is_fenced(engine: fs.Engine, tmp_path: Path) -> None:
    """Unfrozen, the zombie S finds its append refused (FENCED); no decision of A after S's
    claim, or of S after B's, is in the history; nothing ran twice."""
    ledger = tmp_path / "ledger"
    sc = _fence_scenario(engine, ledger)
    rid = sc.run_id
    history = fs.history(engine.url)
    audit = fs.audit(history, {rid: _FENCE_OUTPUTS}, 4)
    claims = [r for r in history[rid] if isinstance(r.event, ev.RunClaimed)]
    b_inc = claims[-1].event.incarnation
    after_b = [r for r in history[rid] if r.decision and r.seq > claims[-1].seq]
    starts = fs.starts(ledger)
    keys = [f"{rid}.{n}.1" for n in _FENCE_OUTPUTS]
    figures = {
        "test": "fence_stale_incarnation",
        "runs": 1,
        "incarnations": 3,
        "claims": audit["claims"],
        "stale_result": sc.result_s["status"],
        "new_result": sc.result_b["status"],
        "frozen_s": round(sc.frozen, 1),
        "stale_decisions": audit["stale_decisions"],
        "decisions_after_new_claim_by_others": sum(fs.incarnation(r) != b_inc for r in after_b),
        "duplicate_schedules": audit["duplicate_schedules"],
        "duplicate_completions": audit["duplicate_completions"],
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "record_when_new_one_returned": sc.record_before.status.value,
        "record_after_stale_one_returned": sc.record_after.status.value,
        "seconds": round(sc.seconds, 1),
    }
    fs.report(figures)
    assert sc.result_b["status"] == "SUCCEEDED"
    assert sc.result_s["status"] == "FENCED"
    assert [c.event.incarnation for c in claims] == [sc.s_inc, b_inc]
    assert all(fs.incarnation(c) == c.event.incarnation for c in claims)
    assert sc.s_inc != b_inc
    assert figures["decisions_after_new_claim_by_others"] == 0
    assert audit["completed"] == 1
    assert audit["stale_decisions"] == audit["decisions_after_finish"] == 0
    assert audit["duplicate_schedules"] == audit["duplicate_completions"] == 0
    assert audit["extra_finishes"] == 0
    assert all(starts[k] == 1 for k in keys), starts  # a claim re-publishes; the server dedupes
    assert sc.record_before.status is ev.RunStatus.SUCCEEDED
    assert sc.record_before.outputs == _FENCE_OUTPUTS


@pytest.mark.timeout(90)
def test_stale_incarnation_cannot_set_back_the_run_record(
    engine: fs.Engine, tmp_path: Path
) -> None:
    sc = _fence_scenario(engine, tmp_path / "ledger")
    assert sc.result_s["status"] == "FENCED"
    assert sc.record_before.status is ev.RunStatus.SUCCEEDED
    assert sc.record_after.status is ev.RunStatus.SUCCEEDED
    assert sc.record_after.outputs == _FENCE_OUTPUTS


@pytest.mark.timeout(120)
def test_engine_takes_over_from_a_frozen_run_actor_and_fences_it(
    engine: fs.Engine, tmp_path: Path
) -> None:
    """The engine's own run actor driving a run is frozen (SIGSTOP by pid) while w1 is held:
    Ray still sees it alive, so the controller must find it unresponsive itself, replace
    it and re-drive the run, whose new incarnation's claim fences the frozen one. Thawed
    (SIGCONT) with w1's and w2's results waiting, the stale one's appends are refused: no
    decision of its incarnation follows the claim, and the record stays SUCCEEDED."""
    ledger = tmp_path / "ledger"
    gate = ledger.with_suffix(".gate")
    run = engine.client.run("ffence", {"ledger": str(ledger), "gate": str(gate)}, version="1")
    rid = run.run_id
    a_name = fs.wait_for(
        lambda: next((n for n in fs.named("af-run-actor-") if rid in (fs.active(n) or [])), None),
        10,
        "the run's driver",
    )
    fs.wait_for(lambda: fs.starts(ledger)[f"{rid}.w1.1"] == 1, 20, "w1 to start")
    a_pid = fs.pid(fs.run_actor(a_name))
    first_inc = fs.incarnation(next(r for r in fs.history(engine.url)[rid] if r.decision))
    os.kill(a_pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        claim = fs.wait_for(
            lambda: next(
                (e for e in fs.replayed(engine.url, rid) if isinstance(e, ev.RunClaimed)), None
            ),
            60,
            "the engine to re-drive the run elsewhere",
            0.2,
        )
        taken_over = time.monotonic() - stopped_at
        Path(f"{gate}.w1").touch()
        fs.wait_for(lambda: fs.starts(ledger)[f"{rid}.w2.1"] == 1, 30, "w2 to start")
        Path(f"{gate}.w2").touch()
        record = run.wait(timeout=60)
    finally:
        os.kill(a_pid, signal.SIGCONT)
    # Thawed, the stale driver folds the results it was sent and tries to go on; the
    # controller, hearing from it again, retires it.
    fs.wait_for(lambda: a_name not in fs.named("af-run-actor-"), 60, "the stale actor to go")
    history = fs.history(engine.url)[rid]
    audit = fs.audit({rid: history}, {rid: _FENCE_OUTPUTS}, 4)
    claims = [r for r in history if isinstance(r.event, ev.RunClaimed)]
    starts = fs.starts(ledger)
    figures = {
        "test": "fence_frozen_run_actor",
        "taken_over_s": round(taken_over, 1),
        "claims": len(claims),
        "stale_decisions": audit["stale_decisions"],
        "reexecuted_steps": sum(max(0, n - 1) for n in starts.values()),
    }
    fs.report(figures)
    assert record.status is ev.RunStatus.SUCCEEDED
    assert record.outputs == _FENCE_OUTPUTS
    assert [c.event.incarnation for c in claims] == [claim.incarnation]
    assert claim.incarnation != first_inc
    after = [r for r in history if r.decision and r.seq > claims[0].seq]
    assert after
    assert all(fs.incarnation(r) == claim.incarnation for r in after)
    assert audit["completed"] == 1
    assert audit["stale_decisions"] == audit["decisions_after_finish"] == 0
    assert audit["duplicate_schedules"] == audit["duplicate_completions"] == 0
    assert audit["extra_finishes"] == 0
    assert sorted(starts.values()) == [1, 1, 1, 1]  # every step ran once
    final = fs.records(engine.url)[rid]
    assert final.status is ev.RunStatus.SUCCEEDED
    assert final.outputs == _FENCE_OUTPUTS
