"""The triage example, as a user would run it from its folder: both branches and the
error branch; triage-many runs it as a sub-workflow per module."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import actorflow
from actorflow import NodeStatus

TIMEOUT = 120
_T = TypeVar("_T")
TRIAGE = Path(__file__).parents[2] / "examples" / "triage" / "workflow.yaml"


@pytest.fixture(scope="module")
def triage(client: actorflow.Client) -> None:
    client.apply(TRIAGE)


@pytest.mark.usefixtures("triage")
@pytest.mark.parametrize(
    ("module", "taken"),
    [("json", "summary"), ("colorsys", "note"), ("no_such_module_here", "explain")],
)
def test_triage_takes_the_branch_its_module_calls_for(
    client: actorflow.Client, module: str, taken: str
) -> None:
    run = client.run("triage", {"module": module})
    result = run.result(timeout=TIMEOUT)
    statuses = {n.node: n.status for n in run.nodes()}
    assert statuses[taken] is NodeStatus.SUCCEEDED
    others = {"summary", "note", "explain"} - {taken}
    assert all(statuses[n] is NodeStatus.SKIPPED for n in others)
    if taken == "summary":
        assert result["long"].startswith("json: a long read")
        assert result["short"] is None
    elif taken == "note":
        assert result["short"].startswith("colorsys: short (")
        assert result["long"] is None
    else:
        assert statuses["measure"] is NodeStatus.FAILED
        assert result["problem"].startswith("could not measure: [NO_SUCH_MODULE]")


@pytest.mark.usefixtures("triage")
def test_triage_many_runs_one_child_per_module_and_reports_the_problems(
    client: actorflow.Client,
) -> None:
    run = client.run("triage-many", {"modules": ["colorsys", "no_such_module_here"]})
    result = run.result(timeout=TIMEOUT)
    assert result["report"]["triaged"] == 2
    (problem,) = result["report"]["problems"]
    assert problem.startswith("could not measure: [NO_SUCH_MODULE]")
    assert result["results"][0]["short"].startswith("colorsys: short (")
    children = [r for r in client.runs() if r.parent_run_id == run.run_id]
    assert sorted(r.workflow for r in children) == ["triage", "triage"]
    assert all(r.status is actorflow.RunStatus.SUCCEEDED for r in children)


ORDERS = Path(__file__).parents[2] / "examples" / "orders" / "workflow.yaml"


def _started_by(client: actorflow.Client, trigger: str) -> list[actorflow.RunRecord]:
    ours = re.compile(rf"{re.escape(trigger)}-[0-9a-f]{{20}}")
    return [r for r in client.runs() if ours.fullmatch(r.run_id)]


def _until(cond: Callable[[], _T], what: str, timeout: float = 60.0) -> _T:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_orders_example_turns_events_into_runs_and_runs_into_receipts(
    client: actorflow.Client,
) -> None:
    client.apply(ORDERS)
    try:
        _orders(client)
    finally:  # the module's cleanup removes workflows and functions, not triggers or types
        for trigger in ("big-orders", "receipts"):
            client.delete_trigger(trigger)
        client.delete_event_type("order-created")


def _orders(client: actorflow.Client) -> None:
    with pytest.raises(actorflow.EventRejectedError, match="amount"):
        client.publish("shop.orders.eu", {"id": "o-0"})  # the event type wants an amount
    client.publish("shop.orders.us", {"id": "o-small", "amount": 20})  # filtered out
    client.publish("shop.orders.eu", {"id": "o-1", "amount": 250, "items": 3})
    [order] = _until(lambda: _started_by(client, "big-orders"), "the big order's run")
    assert client.get_run(order.run_id).result(timeout=TIMEOUT) == {"order": "o-1", "total": 300.0}
    [receipt] = _until(lambda: _started_by(client, "receipts"), "the receipt run")
    assert client.get_run(receipt.run_id).result(timeout=TIMEOUT) == {
        "receipt": "receipt for o-1: 300.00"
    }
    stats = _until(
        lambda: (s := client.trigger("big-orders").stats).seen == 2 and s, "big-orders' counts"
    )
    assert (stats.matched, stats.started, stats.rejected) == (1, 1, 0)
