"""Retries, error-code policies, control and durable timers on the real engine."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

import actorflow
from actorflow import ControlError, NotFoundError, RunFailedError, RunStatus, WorkflowBuilder

Cli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture

TIMEOUT = 120
StartRun = Callable[..., actorflow.Run]  # the conftest fixtures
WaitStatus = Callable[..., actorflow.RunRecord]


def test_poison_step_runs_exactly_max_attempts_with_backoff(
    client: actorflow.Client, tmp_path: Path, start_run: StartRun
) -> None:
    ledger = tmp_path / "ledger"
    b = WorkflowBuilder("poisoned", version="1")
    b.node(
        "p",
        "poison@1",
        inputs={"ledger": str(ledger)},
        retry={"max_attempts": 3, "initial_delay": "200ms", "backoff": 2},
    )
    run = start_run(b)
    with pytest.raises(RunFailedError) as info:
        run.result(timeout=TIMEOUT)
    lines = ledger.read_text().split()
    keys, stamps = lines[0::2], [float(t) for t in lines[1::2]]
    assert keys == [f"{run.run_id}.p.1", f"{run.run_id}.p.2", f"{run.run_id}.p.3"]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] >= 0.2
    assert gaps[1] >= 0.4  # backoff doubled: no hot loop
    assert info.value.error.code == "HANDLER_ERROR"
    assert "poisoned attempt 3" in info.value.error.message
    record = run.status()
    assert record.status is RunStatus.INTERRUPTED
    assert record.reason == "failed"
    (node,) = run.nodes()
    assert node.attempt == 3
    assert [a.attempt for a in node.history] == [1, 2]
    assert all(a.error is not None for a in node.history)


def test_retry_after_a_long_backoff_unloads_and_wakes_on_time(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("sleepy-retry", version="1")
    f = b.node("f", "flaky@1", retry={"max_attempts": 2, "initial_delay": "6s"})
    b.output("f", f.output)
    run = start_run(b)
    record = wait_status(run, RunStatus.WAITING)
    assert record.wake_at is not None
    Path("/tmp/actorflow-test-markers").mkdir(exist_ok=True)
    Path(f"/tmp/actorflow-test-markers/{run.run_id}.f").write_text("ok")
    assert run.result(timeout=TIMEOUT) == {"f": "ok on attempt 2"}
    (node,) = run.nodes()
    failed_at = node.history[0].finished_at
    assert failed_at is not None
    assert node.started_at is not None
    assert (node.started_at - failed_at).total_seconds() >= 6  # never early


def test_skip_policy_goes_on_without_the_node(
    client: actorflow.Client, start_run: StartRun
) -> None:
    b = WorkflowBuilder("skipping", version="1")
    f = b.node("f", "coded-fail@1", inputs={"code": "OPTIONAL", "message": "no data"})
    g = b.node("g", "echo@1", inputs={"value": f.output})
    b.output("g", g.output)
    b.on_error("OPTIONAL", {"action": "skip"})
    run = start_run(b)
    assert run.result(timeout=TIMEOUT) == {"g": None}
    assert {n.node: n.status for n in run.nodes()} == {"f": "SKIPPED", "g": "SUCCEEDED"}


def test_manual_policy_interrupts_with_guidance_then_retry_node(
    client: actorflow.Client, start_run: StartRun
) -> None:
    b = WorkflowBuilder("manual", version="1")
    f = b.node("f", "flaky@1", inputs={"code": "PRIMARY_DOWN"})
    b.output("f", f.output)
    b.on_error(
        "PRIMARY_DOWN", {"action": "manual", "guidance": "promote the replica, then retry f"}
    )
    run = start_run(b)
    with pytest.raises(RunFailedError):
        run.result(timeout=TIMEOUT)
    record = run.status()
    assert record.reason == "manual"
    assert record.guidance == "promote the replica, then retry f"
    assert record.error is not None
    assert record.error.code == "PRIMARY_DOWN"
    Path("/tmp/actorflow-test-markers").mkdir(exist_ok=True)
    Path(f"/tmp/actorflow-test-markers/{run.run_id}.f").write_text("ok")
    run.retry("f", reason="replica promoted")
    assert run.result(timeout=TIMEOUT) == {"f": "ok on attempt 2"}


def test_remediate_then_retry_runs_the_fix_and_the_step_again(
    client: actorflow.Client, start_run: StartRun
) -> None:
    b = WorkflowBuilder("remedied", version="1")
    f = b.node("f", "flaky@1", inputs={"code": "STALE"})
    b.output("f", f.output)
    b.on_error("STALE", {"action": "remediate", "function": "fix@1", "then": "retry"})
    run = start_run(b)
    assert run.result(timeout=TIMEOUT) == {"f": "ok on attempt 2"}


def test_pause_then_resume(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("pausable", version="1")
    first = b.node("first", "sleep@1", inputs={"seconds": 1.0})
    second = b.node("second", "echo@1", inputs={"value": first.output})
    b.output("v", second.output)
    run = start_run(b)
    wait_status(run, RunStatus.RUNNING)
    run.pause(reason="maintenance")
    record = wait_status(run, RunStatus.PAUSED)
    nodes = {n.node: n.status for n in run.nodes()}
    assert nodes == {"first": "SUCCEEDED", "second": "PENDING"}  # running one finished, no new
    assert record.progress.succeeded == 1
    run.resume()
    assert run.result(timeout=TIMEOUT) == {"v": 1.0}


def test_cancel_is_resumable_and_terminate_is_final(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("cancellable", version="1")
    s = b.node("s", "sleep@1", inputs={"seconds": 0.5})
    b.output("s", s.output)
    run = start_run(b)
    run.cancel(reason="wrong inputs")
    record = wait_status(run, RunStatus.INTERRUPTED)
    assert record.reason == "cancelled"
    run.resume()
    assert run.result(timeout=TIMEOUT) == {"s": 0.5}
    with pytest.raises(ControlError, match="cannot resume"):
        run.resume()  # SUCCEEDED: nothing to resume
    other = client.run("cancellable")
    other.terminate()
    wait_status(other, RunStatus.TERMINATED)
    with pytest.raises(ControlError, match="cannot resume"):
        other.resume()
    assert other.status().status is RunStatus.TERMINATED


def test_an_interrupted_or_paused_run_can_be_terminated(
    start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("terminable", version="1")
    b.output("s", b.node("s", "sleep@1", inputs={"seconds": 3}).output)
    cancelled = start_run(b)
    cancelled.cancel(reason="wrong inputs")
    wait_status(cancelled, RunStatus.INTERRUPTED)
    cancelled.terminate()
    assert wait_status(cancelled, RunStatus.TERMINATED).status is RunStatus.TERMINATED
    paused = start_run(b)
    paused.pause()
    wait_status(paused, RunStatus.PAUSED)
    paused.terminate()
    wait_status(paused, RunStatus.TERMINATED)
    with pytest.raises(ControlError, match="cannot resume"):
        paused.resume()


def test_bad_control_requests_change_nothing(client: actorflow.Client, start_run: StartRun) -> None:
    with pytest.raises(NotFoundError, match="run 'no-such-run' not found"):
        client.control("no-such-run", "pause")
    b = WorkflowBuilder("controlled", version="1")
    b.node("x", "echo@1", inputs={"value": 1})
    run = start_run(b)
    run.result(timeout=TIMEOUT)
    with pytest.raises(ControlError, match="cannot retry"):
        run.retry("x")
    with pytest.raises(ControlError, match="cannot pause"):
        run.pause()
    assert run.status().status is RunStatus.SUCCEEDED
    assert len(run.nodes()) == 1


def test_control_from_outside_over_nats(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("external", version="1")
    s = b.node("s", "sleep@1", inputs={"seconds": 0.5})
    b.output("s", s.output)
    run = start_run(b)
    url = client.nats_url

    async def request(payload: bytes, run_id: str) -> dict:
        nc = await nats.connect(url)
        try:
            msg = await nc.request(f"af.control.{run_id}", payload, timeout=10)
            return json.loads(msg.data)
        finally:
            await nc.close()

    bad = asyncio.run(request(b'{"action": "explode"}', run.run_id))
    assert bad["ok"] is False
    assert "action" in bad["error"]
    not_json = asyncio.run(request(b"not json", run.run_id))
    assert not_json["ok"] is False
    unknown = asyncio.run(request(b'{"action": "pause"}', "no-such-run"))
    assert (unknown["type"], unknown["ok"]) == ("ControlReply", False)
    assert unknown["error"] == "run 'no-such-run' not found"
    ok = asyncio.run(request(b'{"action": "cancel", "reason": "primary is down"}', run.run_id))
    assert (ok["ok"], ok["run_id"], ok["action"]) == (True, run.run_id, "cancel")
    record = wait_status(run, RunStatus.INTERRUPTED)
    assert record.reason == "cancelled"
    ok = asyncio.run(request(b'{"action": "resume", "reason": "fixed"}', run.run_id))
    assert ok["ok"] is True
    assert run.result(timeout=TIMEOUT) == {"s": 0.5}


def test_cli_controls_and_shows_guidance(
    client: actorflow.Client, cli: Cli, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("cli-manual", version="1")
    b.node("f", "flaky@1", inputs={"code": "NEEDS_HUMAN"})
    b.on_error("default", {"action": "manual", "guidance": "call the on-call DBA"})
    run = start_run(b)
    wait_status(run, RunStatus.INTERRUPTED)

    shown = cli("runs", "show", run.run_id)
    assert shown.returncode == 0
    assert "call the on-call DBA" in shown.stdout
    assert "NEEDS_HUMAN" in shown.stdout
    bad = cli("runs", "resume", "no-such-run")
    assert bad.returncode == 1
    assert "not found" in bad.stderr
    assert "Traceback" not in bad.stderr
    os.makedirs("/tmp/actorflow-test-markers", exist_ok=True)
    Path(f"/tmp/actorflow-test-markers/{run.run_id}.f").write_text("ok")
    done = cli("runs", "retry", run.run_id, "--node", "f")
    assert done.returncode == 0, done.stderr
    run.result(timeout=TIMEOUT)


def test_progress_of_a_long_step_shows_in_the_record(
    client: actorflow.Client, start_run: StartRun
) -> None:
    b = WorkflowBuilder("reporting", version="1")
    s = b.node("long", "slow-report@1", inputs={"steps": 4, "pause": 0.5})
    b.output("n", s.output)
    run = start_run(b)
    deadline = time.monotonic() + 30
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < 2:
        report = run.status().progress.steps.get("long")
        if report is not None:
            seen.add(report.message)
        time.sleep(0.05)
    assert len(seen) >= 2  # the record followed the step as it went
    assert run.result(timeout=TIMEOUT) == {"n": 4}
    assert run.status().progress.steps == {}  # nothing running: nothing reported


def test_progress_from_outside_over_nats(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("outside-progress", version="1")
    a = b.approval("gate")
    b.output("a", a.output)
    run = start_run(b)
    wait_status(run, RunStatus.WAITING)

    async def report() -> None:
        nc = await nats.connect(client.nats_url)
        js = nc.jetstream()
        event = {
            "type": "StepProgress",
            "run_id": run.run_id,
            "node": "gate",
            "percent": 50,
            "message": "half the reviewers agreed",
        }
        await js.publish(f"af.run.{run.run_id}.p", json.dumps(event).encode())
        await nc.close()

    asyncio.run(report())
    run.approve("gate", {"ok": True})  # wakes the run; it folds the report on the way
    run.result(timeout=TIMEOUT)
    (gate,) = run.nodes()
    assert gate.status == "SUCCEEDED"
    assert gate.percent == 50
    assert gate.message == "half the reviewers agreed"
