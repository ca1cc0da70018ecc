"""Compensation end to end on the real Ray and nats-server: shell steps write a ledger (the
witness outside the engine), a failing last step makes the run undo the others newest first,
each once; a failing compensation interrupts and a resume finishes the job; a cancel with
compensation waits for the running step, then undoes it too."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import pytest

import actorflow
from actorflow import NodeStatus, RunStatus, WorkflowBuilder
from actorflow.actors.store.streams import read_stream
from actorflow.definitions import events as ev

TIMEOUT = 120


def _write(ledger: Path, line: str) -> list[str]:
    """argv that appends `line` to the ledger: `line` and the path are arguments, never code."""
    return ["sh", "-c", 'printf "%s\\n" "$1" >> "$2"', "sh", line, str(ledger)]


def _lines(ledger: Path) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


def _saga(name: str, ledger: Path, undo_charge: list[str] | None = None) -> WorkflowBuilder:
    b = WorkflowBuilder(name, version="1")
    b.shell(
        "reserve",
        _write(ledger, "reserve"),
        compensate={"shell": {"argv": _write(ledger, "undo-reserve")}},
    )
    b.shell(
        "charge",
        _write(ledger, "charge"),
        needs=["reserve"],
        compensate={
            "shell": {"argv": undo_charge or _write(ledger, "undo-charge")},
            "retry": {"max_attempts": 1},
        },
    )
    b.shell("ship", ["sh", "-c", "echo no courier >&2; exit 3"], needs=["charge"])
    b.output("never", "${{ nodes.ship.output }}")
    return b


async def _run_events(url: str, run_id: str, wanted: set[str]) -> list[str]:
    """The run's lifecycle statuses, once `wanted` are all stored (they trail the record)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 30
        while True:
            statuses = [
                msg.subject.rsplit(".", 1)[1]
                async for msg in read_stream(
                    js, ev.STREAM_EVENTS, ev.run_events_filter(run_id=run_id)
                )
            ]
            if wanted <= set(statuses) or time.monotonic() > deadline:
                return statuses
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def test_a_failed_run_undoes_its_completed_steps_newest_first_once_each(
    client: actorflow.Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    wf = _saga("saga-basic", ledger).build()
    client.apply(wf)
    run = client.run("saga-basic", version="1")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.COMPENSATED, record
    assert record.node == "ship"
    assert record.error is not None
    assert record.error.code == "EXIT_3"
    assert _lines(ledger) == ["reserve", "charge", "undo-charge", "undo-reserve"]
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["charge"].compensation is not None
    assert nodes["charge"].compensation.status is NodeStatus.SUCCEEDED
    assert nodes["ship"].compensation is None  # it never completed: nothing to undo
    with pytest.raises(actorflow.RunFailedError, match="compensated at node 'ship'"):
        run.result(timeout=5)
    statuses = asyncio.run(
        _run_events(client.nats_url, run.run_id, {"compensating", "compensated"})
    )
    assert statuses.index("compensating") < statuses.index("compensated")


def test_a_failing_compensation_interrupts_with_guidance_and_a_resume_finishes(
    client: actorflow.Client, tmp_path: Path
) -> None:
    ledger, fixed = tmp_path / "ledger", tmp_path / "bank-is-back"
    undo = [
        "sh",
        "-c",
        'test -f "$1" || { echo bank down >&2; exit 4; }; printf "undo-charge\\n" >> "$2"',
        "sh",
        str(fixed),
        str(ledger),
    ]
    client.apply(_saga("saga-stuck", ledger, undo_charge=undo).build())
    run = client.run("saga-stuck", version="1")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.INTERRUPTED, record
    assert record.node == "charge"
    assert record.error is not None
    assert record.error.code == "EXIT_4"
    assert "compensation of charge failed" in record.guidance
    assert _lines(ledger) == ["reserve", "charge"]  # reserve is not undone before charge
    with pytest.raises(actorflow.ControlError, match="compensating"):
        run.retry("ship")
    fixed.touch()
    run.resume()
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.COMPENSATED, record
    assert _lines(ledger) == ["reserve", "charge", "undo-charge", "undo-reserve"]


def test_cancel_with_compensation_lets_the_running_step_finish_then_undoes_it(
    client: actorflow.Client, tmp_path: Path, wait_status: Any
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    held = [
        "sh",
        "-c",
        'printf "b-start\\n" >> "$2"; while [ ! -f "$1" ]; do sleep 0.05; done; '
        'printf "b\\n" >> "$2"',
        "sh",
        str(gate),
        str(ledger),
    ]
    b = WorkflowBuilder("saga-cancel", version="1")
    b.shell("a", _write(ledger, "a"), compensate={"shell": {"argv": _write(ledger, "undo-a")}})
    b.shell("b", held, needs=["a"], compensate={"shell": {"argv": _write(ledger, "undo-b")}})
    b.shell("c", _write(ledger, "c"), needs=["b"])
    client.apply(b.build())
    run = client.run("saga-cancel", version="1")
    deadline = time.monotonic() + 60
    while "b-start" not in _lines(ledger):
        assert time.monotonic() < deadline, "b never started"
        time.sleep(0.05)
    run.cancel("change of plan", compensate=True)
    assert run.status().status is RunStatus.RUNNING  # b still runs: it is waited for
    gate.touch()
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.COMPENSATED, record
    assert record.reason is ev.StopReason.CANCELLED
    assert _lines(ledger) == ["a", "b-start", "b", "undo-b", "undo-a"]  # c never ran
