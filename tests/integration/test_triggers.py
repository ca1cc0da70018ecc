"""Triggers on the real engine: subjects, schedules, webhooks, lifecycle events, node
events, the event library, bad input, exactly one run per event, and backpressure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

import actorflow
from actorflow._client import _call
from actorflow.definitions import events as ev
from actorflow.triggers.evaluate import run_id_for, sign

pytestmark = pytest.mark.integration


def _until(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _trigger(name: str, **spec: Any) -> actorflow.Trigger:
    return actorflow.Trigger.model_validate({"metadata": {"name": name}, "spec": spec})


def _echo_workflow(client: actorflow.Client, name: str, function: str = "echo@1") -> None:
    b = actorflow.WorkflowBuilder(name, version="1")
    value = b.input("value", type="any", default=None)
    node = b.node("e", function, inputs={"value": value})
    b.output("value", node.output)
    client.apply(b.build())


def _sleep_workflow(client: actorflow.Client, name: str) -> None:
    b = actorflow.WorkflowBuilder(name, version="1")
    seconds = b.input("seconds", type="number")
    b.node("s", "sleep@1", inputs={"seconds": seconds})
    client.apply(b.build())


def _runs_of(client: actorflow.Client, trigger: str) -> list[actorflow.RunRecord]:
    """The runs `trigger` started (their ids: trigger name + 20 hex digits)."""
    ours = re.compile(rf"{re.escape(trigger)}-[0-9a-f]{{20}}")
    return [r for r in client.runs() if ours.fullmatch(r.run_id)]


def _stats(client: actorflow.Client, name: str) -> ev.TriggerStats:
    return client.trigger(name).stats


def test_subject_trigger_filters_maps_and_counts(client: actorflow.Client) -> None:
    _echo_workflow(client, "t-orders")
    client.apply(
        _trigger(
            "orders",
            source={"subject": "shop.orders.*"},
            workflow="t-orders",
            filter="event.amount > 10 && 'Tier' in headers && headers['Tier'] == 'gold'",
            inputs={"value": {"order": "${{ event.id }}", "on": "${{ subject }}"}},
        )
    )
    nc = client.publish  # the SDK's publish (JetStream-captured)
    gold = {"Tier": "gold"}
    for i, amount in enumerate([50, 5, 70]):
        body = json.dumps({"id": f"o{i}", "amount": amount}).encode()
        client._call(client._async.js.publish("shop.orders.new", body, headers=gold))
    nc("shop.orders.new", {"id": "o9", "amount": 99})  # no Tier header: filtered out
    runs = _until(lambda: len(_runs_of(client, "orders")) >= 2 and _runs_of(client, "orders"))
    outputs = sorted(
        json.dumps(client.get_run(r.run_id).result(timeout=60)["value"], sort_keys=True)
        for r in runs
    )
    assert outputs == [
        json.dumps({"on": "shop.orders.new", "order": "o0"}),
        json.dumps({"on": "shop.orders.new", "order": "o2"}),
    ]
    stats = _until(lambda: (s := _stats(client, "orders")).seen == 4 and s.started == 2 and s)
    assert (stats.matched, stats.errors, stats.rejected) == (2, 0, 0)
    assert stats.last_event_at is not None
    time.sleep(1.0)  # nothing else may start
    assert len(_runs_of(client, "orders")) == 2


def test_same_event_id_starts_one_run(client: actorflow.Client) -> None:
    """A producer's retry (same Nats-Msg-Id) and a duplicated lifecycle event (two stream
    messages, one logical event) each start exactly one run."""
    _echo_workflow(client, "t-dup")
    client.apply(_trigger("redo", source={"subject": "dup.in"}, workflow="t-dup"))
    for _ in range(3):
        client.publish("dup.in", {"n": 1}, msg_id="event-42")
    run_id = run_id_for("redo", "event-42")
    client.get_run(run_id).result(timeout=60)

    client.apply(
        _trigger(
            "dup-life",
            source={"lifecycle": {"workflow": "t-upstream", "on": ["succeeded"]}},
            workflow="t-dup",
        )
    )
    event = ev.RunLifecycle(
        run_id="up-1", workflow="t-upstream", version="1", status=ev.RunStatus.SUCCEEDED
    )
    subject = ev.run_event_subject("t-upstream", "up-1", "SUCCEEDED")
    for _ in range(3):
        client._call(client._async.js.publish(subject, ev.encode(event)))
    _until(lambda: _stats(client, "dup-life").seen == 3, what="three deliveries")
    _until(lambda: _runs_of(client, "dup-life"), what="the run")
    time.sleep(1.0)
    assert len(_runs_of(client, "dup-life")) == 1
    assert len(_runs_of(client, "redo")) == 1
    assert _stats(client, "dup-life").started == 1


def test_lifecycle_trigger_passes_outputs(client: actorflow.Client) -> None:
    """Start `report` when `etl` succeeds, with its outputs; a node trigger too."""
    _echo_workflow(client, "t-etl")
    _echo_workflow(client, "t-report")
    client.apply(
        [
            _trigger(
                "report-after-etl",
                source={"lifecycle": {"workflow": "t-etl"}},
                workflow="t-report@1",
                inputs={"value": "${{ event.outputs.value }}"},
            ),
            _trigger(
                "after-node",
                source={"lifecycle": {"workflow": "t-etl", "node": "e", "on": ["succeeded"]}},
                workflow="t-report",
                inputs={"value": "${{ event.output }}"},
            ),
        ]
    )
    upstream = client.run("t-etl", {"value": {"rows": 12}})
    upstream.result(timeout=60)
    run = client.get_run(run_id_for("report-after-etl", f"{upstream.run_id}::SUCCEEDED"))
    _until(lambda: _runs_of(client, "report-after-etl"), what="report run")
    assert run.result(timeout=60) == {"value": {"rows": 12}}
    node_run = _until(lambda: _runs_of(client, "after-node"), what="node-triggered run")[0]
    assert client.get_run(node_run.run_id).result(timeout=60) == {"value": {"rows": 12}}


def test_node_lifecycle_events_are_published(client: actorflow.Client) -> None:
    """Anyone can follow nodes with a plain NATS subscription."""
    seen: list[ev.NodeLifecycle] = []

    async def subscribe() -> Any:
        async def on(msg: Any) -> None:
            seen.append(ev.decode(ev.NodeLifecycle, msg.data))

        return await client._async.nc.subscribe("af.events.node.t-nodes.>", cb=on)

    sub = client._call(subscribe())
    b = actorflow.WorkflowBuilder("t-nodes", version="1")
    a = b.node("a", "echo@1", inputs={"value": 3})
    b.node("f", "fail@1", needs=[a.id])
    client.apply(b.build())
    run = client.run("t-nodes", {})
    run.wait(timeout=60)
    _until(lambda: {(e.node, e.status) for e in seen} >= {("a", "succeeded"), ("f", "failed")})
    client._call(sub.unsubscribe())
    statuses = [(e.node, e.status) for e in seen if e.run_id == run.run_id]
    assert statuses.index(("a", "started")) < statuses.index(("a", "succeeded"))
    assert ("f", "started") in statuses
    done = next(e for e in seen if (e.node, e.status) == ("a", "succeeded"))
    assert done.output == 3
    failed = next(e for e in seen if (e.node, e.status) == ("f", "failed"))
    assert failed.error is not None
    assert failed.error.code == "HANDLER_ERROR"


def test_schedule_fires_each_instant_once_and_stops_when_disabled(
    client: actorflow.Client,
) -> None:
    _echo_workflow(client, "t-tick")
    client.apply(
        _trigger(
            "ticker",
            source={"schedule": {"every": "1s"}},
            workflow="t-tick",
            inputs={"value": "${{ event.instant }}"},
        )
    )
    runs = _until(lambda: len(r := _runs_of(client, "ticker")) >= 3 and r, what="3 ticks")
    instants = [client.get_run(r.run_id).result(timeout=60)["value"] for r in runs[:3]]
    assert len(set(instants)) == 3
    client.disable_trigger("ticker")
    time.sleep(1.5)  # a tick already in flight may still land
    count = len(_runs_of(client, "ticker"))
    time.sleep(2.5)
    assert len(_runs_of(client, "ticker")) == count
    assert not client.trigger("ticker").enabled
    client.delete_trigger("ticker")
    assert "ticker" not in {t.name for t in client.triggers()}


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_webhook_signature_size_json_and_delivery_id(client: actorflow.Client) -> None:
    _echo_workflow(client, "t-hook")
    client.apply(
        _trigger(
            "hook",
            source={"webhook": {"secret": "s3cr3t"}},
            workflow="t-hook",
            inputs={"value": "${{ event.ref }}"},
            maxPayload=1000,
        )
    )
    url = client.webhook_url("hook")
    body = json.dumps({"ref": "main"}).encode()
    good = {"X-Actorflow-Signature": sign("s3cr3t", body), "X-Delivery-Id": "d-1"}
    assert _post(url, body, good)[0] == 202
    status, answer = _post(url, body, good)  # the sender retries the same delivery
    assert status == 202
    assert answer["duplicate"] is True
    assert _post(url, body, {"X-Actorflow-Signature": sign("wrong", body)})[0] == 401
    assert _post(url, body, {})[0] == 401
    big = json.dumps({"ref": "x" * 2000}).encode()
    assert _post(url, big, {"X-Actorflow-Signature": sign("s3cr3t", big)})[0] == 413
    assert _post(url, b"{nope", {"X-Actorflow-Signature": sign("s3cr3t", b"{nope")})[0] == 400
    assert _post(url.rsplit("/", 1)[0] + "/nobody", body, good)[0] == 404
    run = client.get_run(run_id_for("hook", "hook:d-1"))
    _until(lambda: _runs_of(client, "hook"), what="the webhook's run")
    assert run.result(timeout=60) == {"value": "main"}
    stats = _until(lambda: (s := _stats(client, "hook")).rejected == 4 and s, what="rejects")
    assert stats.started == 1
    assert "not_json" in stats.last_error
    time.sleep(1.0)
    assert len(_runs_of(client, "hook")) == 1


def test_event_library_validates_and_counts_rejects(client: actorflow.Client) -> None:
    _echo_workflow(client, "t-typed")
    event_type = actorflow.EventType.model_validate(
        {
            "metadata": {"name": "invoice-paid"},
            "spec": {
                "subject": "billing.invoice.paid",
                "schema": {
                    "type": "object",
                    "required": ["invoice"],
                    "properties": {"invoice": {"type": "string"}},
                },
            },
        }
    )
    client.apply(
        [
            event_type,
            _trigger(
                "typed",
                source={"subject": "billing.invoice.*"},
                workflow="t-typed",
                eventType="invoice-paid",
                inputs={"value": "${{ event.invoice }}"},
                maxPayload=200,
            ),
        ]
    )
    with pytest.raises(actorflow.EventRejectedError, match="invoice"):
        client.publish("billing.invoice.paid", {"nope": 1})  # checked before publishing
    js = client._async.js
    for raw in [b"not json", b'{"invoice": 7}', json.dumps({"invoice": "x" * 500}).encode()]:
        client._call(js.publish("billing.invoice.paid", raw))
    client.publish("billing.invoice.paid", {"invoice": "inv-1"})
    run = _until(lambda: _runs_of(client, "typed"), what="the valid event's run")[0]
    assert client.get_run(run.run_id).result(timeout=60) == {"value": "inv-1"}
    stats = _until(lambda: (s := _stats(client, "typed")).seen == 4 and s, what="counts")
    assert (stats.rejected, stats.started, stats.errors) == (3, 1, 0)
    assert [t.metadata.name for t in client.event_types()] == ["invoice-paid"]
    with pytest.raises(actorflow.TriggerError, match="used by"):
        client.delete_event_type("invoice-paid")


def test_bad_definitions_are_refused_at_apply(client: actorflow.Client) -> None:
    _echo_workflow(client, "t-bad")
    _refused(
        client,
        "bad-filter",
        "expression 'event.x >'",
        source={"subject": "x.y"},
        filter="event.x >",
    )
    _refused(client, "bad-subject", "internal subjects", source={"subject": "af.run.>"})
    with pytest.raises(actorflow.DefinitionError, match="unknown workflow"):
        client.apply(_trigger("no-wf", source={"subject": "x.z"}, workflow="ghost"))
    with pytest.raises(actorflow.DefinitionError, match="unknown event type"):
        client.apply(
            _trigger("no-type", source={"subject": "x.w"}, workflow="t-bad", eventType="ghost")
        )
    names = {t.name for t in client.triggers()}
    assert not names & {"bad-filter", "bad-subject", "no-wf", "no-type"}


def _refused(client: actorflow.Client, name: str, match: str, **spec: Any) -> None:
    """A bad trigger document is refused when its file is loaded, and by the controller
    when it is sent as is (what a YAML apply sends), with the problem named."""
    doc = {
        "apiVersion": "actorflow/v1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"workflow": "t-bad", **spec},
    }
    with pytest.raises(actorflow.DefinitionError, match=match):
        actorflow.load_text(json.dumps(doc))
    with pytest.raises(actorflow.DefinitionError, match=match):
        client._call(_call(client._async._controller.apply.remote([doc])))


def test_mapping_errors_are_counted_and_start_nothing(client: actorflow.Client) -> None:
    b = actorflow.WorkflowBuilder("t-typed-input", version="1")
    n = b.input("n", type="integer")
    b.node("e", "echo@1", inputs={"value": n})
    client.apply(b.build())
    client.apply(
        _trigger(
            "mistyped",
            source={"subject": "mistyped.in"},
            workflow="t-typed-input",
            inputs={"n": "${{ event.n }}"},
        )
    )
    client.publish("mistyped.in", {"n": "not a number"})
    client.publish("mistyped.in", {"m": 1})  # no such key: the mapping fails
    client.publish("mistyped.in", {"n": 4})
    stats = _until(lambda: (s := _stats(client, "mistyped")).seen == 3 and s.errors == 2 and s)
    assert stats.started == 1
    assert len(_runs_of(client, "mistyped")) == 1


def test_backpressure_bounds_active_runs(client: actorflow.Client) -> None:
    """30 events, maxConcurrency 3: never more than 3 of its runs active at once."""
    _sleep_workflow(client, "t-slow")
    client.apply(
        _trigger(
            "slow",
            source={"subject": "slow.in"},
            workflow="t-slow",
            inputs={"seconds": 0.2},
            maxConcurrency=3,
        )
    )
    for i in range(30):
        client.publish("slow.in", {"i": i})
    records = _until(
        lambda: (
            len(r := _runs_of(client, "slow")) == 30
            and all(x.status is actorflow.RunStatus.SUCCEEDED for x in r)
            and r
        ),
        timeout=180,
        what="30 runs done",
    )
    spans = sorted(
        [(r.created_at, 1) for r in records] + [(r.finished_at, -1) for r in records],
        key=lambda p: (p[0], p[1]),
    )
    active = peak = 0
    for _, delta in spans:
        active += delta
        peak = max(peak, active)
    assert 1 < peak <= 3, peak
    assert _until(lambda: _stats(client, "slow").started == 30)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_cli_publish_and_triggers_list(client: actorflow.Client, cli_env: dict[str, str]) -> None:
    _echo_workflow(client, "t-cli")
    client.apply(
        _trigger("cli-sub", source={"subject": "cli.in"}, workflow="t-cli", inputs={"value": 1})
    )
    done = _cli(cli_env, "publish", "cli.in", "--data", '{"k": 1}', "--id", "cli-event-1")
    assert done.returncode == 0, done.stderr
    assert "AF_INGRESS" in done.stdout
    client.get_run(run_id_for("cli-sub", "cli-event-1")).result(timeout=60)
    _until(lambda: _stats(client, "cli-sub").started == 1, what="counts flushed")
    listed = _cli(cli_env, "triggers", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "cli-sub" in line)
    assert "subject cli.in" in row
    assert "yes" in row
    bad = _cli(cli_env, "publish", "cli.in", "--data", "{nope")
    assert bad.returncode == 2
    assert "Usage" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = _cli(cli_env, "triggers", "disable", "ghost")
    assert missing.returncode == 1
    assert "trigger 'ghost' not found" in missing.stderr
