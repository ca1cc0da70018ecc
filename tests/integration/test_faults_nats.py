"""nats-server SIGKILLed and restarted (same port, same store dir) under load: no run is
lost, no step completes twice, and a step whose result was durable is not run again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import faults_support as fs
import pytest

from actorflow.cluster import nats_process
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ActorflowError


def test_nats_process_start_honours_port(tmp_path: Path) -> None:
    port = fs.free_port()
    proc = nats_process.start(tmp_path / "js", tmp_path / "run", detached=False, port=port)
    try:
        assert proc.url == f"nats://127.0.0.1:{port}"
    finally:
        nats_process.stop(proc.pid)


def test_nats_process_start_passes_the_sync_interval(tmp_path: Path) -> None:
    """The server reads `sync_interval` from the config file it is started with: `always`
    serves, and a value it cannot parse makes it refuse to start, naming the field."""
    proc = nats_process.start(
        tmp_path / "js", tmp_path / "run", detached=False, sync_interval="always"
    )
    try:
        args = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        config = Path(args[args.index(b"-c") + 1].decode())
        assert 'sync_interval: "always"' in config.read_text()
    finally:
        nats_process.stop(proc.pid)
    with pytest.raises(ActorflowError, match="sync_interval"):
        nats_process.start(tmp_path / "js", tmp_path / "run", detached=False, sync_interval="x")


@pytest.mark.timeout(90)
def test_nats_server_killed_and_restarted(engine: fs.Engine, tmp_path: Path) -> None:
    """SIGKILL nats-server four times while 60 runs are in flight, restarting it each time on
    the same port with the same store dir: every run completes, once per step."""
    c = engine.client
    url = engine.url
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    restarts = 0
    for wave in range(4):
        fs.submit_dags(c, ledger, range(wave * 1000, wave * 1000 + 15), 0.05, expected)
        mark = sum(fs.starts(ledger).values())
        fs.wait_for(
            lambda: sum(fs.starts(ledger).values()) >= mark + 20,  # noqa: B023
            30,
            "steps to run since the last restart",
        )
        engine.kill_nats()
        engine.start_nats()
        restarts += 1
    done = fs.wait_finished(url, set(expected), 50)
    seconds = time.monotonic() - t0

    common, keys, notes, starts = fs.dag_audit(c, url, ledger, expected, done)
    completed_step_reruns = fs.completed_step_reruns(notes, keys)
    figures = {
        "test": "kill_nats_server",
        **common,
        "kills": restarts,
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "completed_step_reruns": completed_step_reruns,
        "seconds": round(seconds, 1),
    }
    fs.report(figures)
    fs.invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert figures["missing_side_effects"] == 0
    # Steps whose result publish met a dead server run again (at least once, same key); a
    # step whose result was already durable never does.
    assert figures["completed_step_reruns"] == 0


def _completed_step_reruns(url: str, ledger: Path, run_ids: set[str]) -> tuple[int, int]:
    """(executions that began after their step's result was in the history, completions)."""
    history = fs.history(url)
    completed: dict[str, float] = {}
    for run_id in run_ids:
        for rec in history.get(run_id, []):
            if isinstance(rec.event, ev.TaskCompleted):
                completed.setdefault(rec.event.task.idempotency_key(run_id), rec.stored_at)
    reruns = sum(
        1
        for n in fs.ledger(ledger)
        if n.what == "start" and n.key in completed and n.at > completed[n.key]
    )
    return reruns, len(completed)


@pytest.mark.timeout(60)
def test_completed_step_is_not_run_again_after_nats_server_crash(
    engine: fs.Engine, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    expected = fs.submit_dags(engine.client, ledger, range(20), 0.02)
    fs.wait_for(
        lambda: sum(n.what == "done" for n in fs.ledger(ledger)) >= 60, 30, "steps to finish", 0.005
    )
    engine.kill_nats()  # while results are being published and tasks acked
    engine.start_nats()
    restarted = time.monotonic()
    fs.wait_for(lambda: len(fs.finished(engine.url, set(expected))) == 20, 40, "the runs")
    # A redelivery comes at once (forgotten delivery) or after the ack wait (forgotten ack).
    fs.wait_for(lambda: time.monotonic() - restarted > 4.0, 10, "the ack wait to pass")
    reruns, completions = _completed_step_reruns(engine.url, ledger, set(expected))
    fs.report({"test": "nats_crash_reruns", "completions": completions, "reruns": reruns})
    assert completions == 20 * len(fs.DAG)
    assert reruns == 0
