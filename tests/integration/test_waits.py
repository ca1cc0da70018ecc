"""Sleeps, signals and approvals: durable waits that let go of the run actor."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import ray

import actorflow
from actorflow import ControlError, RunFailedError, RunStatus, WorkflowBuilder

TIMEOUT = 120
StartRun = Callable[..., actorflow.Run]  # the conftest fixtures
WaitStatus = Callable[..., actorflow.RunRecord]


def _driven(run_id: str, namespace: str) -> bool:
    """Is any run actor driving this run right now?"""
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace and a["name"].startswith("af-run-actor-")
    ]
    return any(
        run_id in ray.get(ray.get_actor(n, namespace=namespace).active.remote()) for n in names
    )


def test_short_sleep(client: actorflow.Client, start_run: StartRun) -> None:
    b = WorkflowBuilder("nap", version="1")
    s = b.sleep("nap", "1s")
    e = b.node("after", "echo@1", inputs={"value": "awake"}, needs=[s])
    b.output("v", e.output)
    run = start_run(b)
    assert run.result(timeout=TIMEOUT) == {"v": "awake"}
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["nap"].duration is not None
    assert nodes["nap"].duration >= 1.0


def test_long_sleep_unloads_the_run_and_wakes_on_time(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("long-nap", version="1")
    b.sleep("nap", "6s")
    run = start_run(b)
    record = wait_status(run, RunStatus.WAITING)
    assert record.wake_at is not None
    assert not _driven(run.run_id, client.settings.namespace)  # its memory is released
    run.result(timeout=TIMEOUT)
    (nap,) = run.nodes()
    assert nap.finished_at is not None
    assert nap.started_at is not None
    assert (nap.finished_at - nap.started_at).total_seconds() >= 6  # never early


def test_signal_with_schema_ends_the_wait(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("await-payment", version="1")
    order = b.input("order", type="string")
    paid = b.wait(
        "paid",
        "payment",
        key=order,
        schema={
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "number"}},
        },
    )
    b.output("paid", paid.output)
    run = start_run(b, {"order": "o-17"})
    wait_status(run, RunStatus.WAITING)
    assert not _driven(run.run_id, client.settings.namespace)
    client.signal("payment", "o-99", {"amount": 1})  # another order's: not ours
    client.signal("payment", "o-17", {"amount": "lots"})  # fails the schema: refused
    time.sleep(1.0)  # give a wrong delivery the chance to show (it must not)
    assert run.status().status is RunStatus.WAITING
    client.signal("payment", "o-17", {"amount": 12.5})
    assert run.result(timeout=TIMEOUT) == {"paid": {"amount": 12.5}}


def test_signal_published_before_the_wait_starts(client: actorflow.Client) -> None:
    b = WorkflowBuilder("early-signal", version="1")
    key = b.input("key", type="string")
    nap = b.sleep("nap", "1s")
    got = b.wait("got", "early", key=key, needs=[nap])
    b.output("got", got.output)
    client.apply(b.build())
    client.signal("early", "k-1", {"hello": "world"})
    run = client.run("early-signal", {"key": "k-1"})
    assert run.result(timeout=TIMEOUT) == {"got": {"hello": "world"}}


def test_approval_checks_its_input(
    client: actorflow.Client, start_run: StartRun, wait_status: WaitStatus
) -> None:
    b = WorkflowBuilder("deploy", version="1")
    ok = b.approval(
        "go",
        "check the canary dashboard first",
        schema={"type": "object", "required": ["approver"]},
    )
    b.output("approved_by", ok.out("approver"))
    run = start_run(b)
    wait_status(run, RunStatus.WAITING)
    with pytest.raises(ControlError, match="does not match its schema"):
        run.approve("go", {"who": "me"})
    with pytest.raises(ControlError, match="no approval node"):
        run.approve("nope", {"approver": "me"})
    assert run.status().status is RunStatus.WAITING
    run.approve("go", {"approver": "ada"})
    assert run.result(timeout=TIMEOUT) == {"approved_by": "ada"}
    with pytest.raises(ControlError):
        run.approve("go", {"approver": "again"})


def test_wait_timeout_interrupts_with_its_code(
    client: actorflow.Client, start_run: StartRun
) -> None:
    b = WorkflowBuilder("impatient", version="1")
    b.wait("w", "never", key="x", timeout="1s")
    run = start_run(b)
    with pytest.raises(RunFailedError) as info:
        run.result(timeout=TIMEOUT)
    assert info.value.error.code == "WAIT_TIMEOUT"
    assert info.value.node == "w"
