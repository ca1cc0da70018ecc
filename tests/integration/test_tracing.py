"""OpenTelemetry traces of real runs: every engine process of the session exports to the
in-process collector (`otlp_support`), and the caller's own spans go to an in-memory
exporter — so each test reads one trace across the test process, the controller, the run
actors and the replicas, carried by NATS headers."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_support import KIND_CONSUMER, KIND_PRODUCER, Collector, Span

import actorflow
from actorflow.definitions import events as ev
from actorflow.triggers.evaluate import run_id_for

STEPS_DIR = Path(__file__).parent / "steps"


@pytest.fixture(scope="module")
def caller() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    """The test process as a traced application: its spans (and the SDK's) in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the SDK's `start` span uses the global one
    yield provider.get_tracer("test"), exporter
    exporter.clear()


def _hex(value: int, width: int) -> str:
    return f"{value:0{width}x}"


def _by_name(spans: list[Span], prefix: str) -> list[Span]:
    return [s for s in spans if s.name.startswith(prefix)]


def _chain(client: actorflow.Client, name: str) -> None:
    b = actorflow.WorkflowBuilder(name, version="1")
    x = b.input("x", type="integer")
    a = b.node("a", "add@1", inputs={"a": x, "b": 1})
    b2 = b.node("b", "add@1", inputs={"a": a.output, "b": 2})
    c = b.node("c", "add@1", inputs={"a": b2.output, "b": 3})
    b.output("sum", c.output)
    client.apply(b.build())


def _complete(otlp: Collector, run_id: str, nodes: int, executions: int) -> list[Span]:
    """The run's spans once its start, run, node and execution spans have all arrived."""

    def ready() -> list[Span] | None:
        spans = otlp.of_run(run_id)
        names = Counter(s.name.split(" ")[0] for s in spans)
        want = {"start": 1, "run": 1, "node": nodes, "execute": executions}
        return spans if all(names[k] >= v for k, v in want.items()) else None

    try:
        spans: list[Span] = otlp.wait(ready, 30, f"the spans of {run_id}")
    except AssertionError as exc:
        got = sorted(f"{s.name}@{s.component}" for s in otlp.of_run(run_id))
        raise AssertionError(f"{exc}: got {got}") from None
    return spans


def _within(inner: Span, outer: Span) -> bool:
    return outer.start_ns <= inner.start_ns and inner.end_ns <= outer.end_ns


def test_a_three_node_run_is_one_trace_nested_across_processes(
    client: actorflow.Client,
    otlp: Collector,
    caller: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, memory = caller
    _chain(client, "tr-chain")
    with tracer.start_as_current_span("checkout") as app_span:
        run = client.run("tr-chain", {"x": 1})
    assert run.result(timeout=60) == {"sum": 7}
    spans = _complete(otlp, run.run_id, nodes=3, executions=3)

    trace_id = _hex(app_span.get_span_context().trace_id, 32)
    assert {s.trace_id for s in spans} == {trace_id}, "one trace, from the caller's span on"
    # The caller's side: the SDK's PRODUCER span under the application's own span.
    sdk = [s for s in memory.get_finished_spans() if s.name == "start tr-chain"]
    assert len(sdk) == 1
    assert sdk[0].kind is trace.SpanKind.PRODUCER
    assert sdk[0].parent is not None
    assert sdk[0].parent.span_id == app_span.get_span_context().span_id
    assert sdk[0].attributes is not None
    assert sdk[0].attributes["messaging.destination.name"] == ev.START_SUBJECT

    (start,) = _by_name(spans, "start ")
    (run_span,) = _by_name(spans, "run ")
    nodes = {s.attributes["actorflow.node"]: s for s in _by_name(spans, "node ")}
    execs = {s.attributes["actorflow.node"]: s for s in _by_name(spans, "execute ")}
    # The controller consumed the start request, continuing the SDK's span.
    assert start.component == "controller"
    assert start.kind == KIND_CONSUMER
    assert start.parent_id == _hex(sdk[0].context.span_id, 16)
    assert start.attributes["messaging.system"] == "nats"
    assert start.attributes["messaging.destination.name"] == ev.START_SUBJECT
    # The run, written by the run actor that recorded its end, under the start.
    assert run_span.component == "run-actor"
    assert run_span.parent_id == start.span_id
    assert run_span.attributes["actorflow.run.status"] == "SUCCEEDED"
    assert run_span.status != 2
    assert sorted(nodes) == sorted(execs) == ["a", "b", "c"]
    for node, span in nodes.items():
        execution = execs[node]
        assert span.parent_id == run_span.span_id
        assert span.kind == KIND_PRODUCER
        assert span.attributes["actorflow.attempt"] == 1
        assert span.attributes["actorflow.function"] == "add@1"
        assert span.attributes["actorflow.run_id"] == run.run_id
        assert str(span.attributes["messaging.destination.name"]).startswith("af.task.add.")
        # The handler's execution, in the replica, under its attempt.
        assert execution.component == "replica"
        assert execution.kind == KIND_CONSUMER
        assert execution.parent_id == span.span_id
        assert (
            execution.attributes["messaging.destination.name"]
            == (span.attributes["messaging.destination.name"])
        )
        assert _within(execution, span), (node, execution, span)
        assert _within(span, run_span), (node, span, run_span)
    assert nodes["a"].end_ns <= nodes["b"].start_ns, "b was queued once a had finished"
    assert len({s.span_id for s in spans}) == len(spans)


def test_a_child_run_continues_its_parent_nodes_trace(
    client: actorflow.Client, otlp: Collector
) -> None:
    _chain(client, "tr-chain")
    b = actorflow.WorkflowBuilder("tr-parent", version="1")
    call = b.workflow("call", "tr-chain@1", inputs={"x": 10})
    b.output("sum", "${{ nodes.call.output.sum }}")
    del call
    client.apply(b.build())
    run = client.run("tr-parent", {})
    assert run.result(timeout=60) == {"sum": 16}
    parent = _complete(otlp, run.run_id, nodes=1, executions=1)
    child_id = ev.child_run_id(run.run_id, ev.TaskRef(node="call"), "tr-chain")
    child = _complete(otlp, child_id, nodes=3, executions=3)
    (execution,) = [
        s for s in _by_name(parent, "execute ") if s.attributes["actorflow.node"] == "call"
    ]
    (child_start,) = _by_name(child, "start ")
    assert child_start.trace_id == execution.trace_id
    assert child_start.parent_id == execution.span_id, "the child starts inside its node"
    (child_run,) = _by_name(child, "run ")
    assert child_run.attributes["actorflow.parent_run_id"] == run.run_id


def test_failed_attempts_carry_their_error_code(client: actorflow.Client, otlp: Collector) -> None:
    b = actorflow.WorkflowBuilder("tr-fail", version="1")
    b.node(
        "f",
        "fail@1",  # a ValueError: HANDLER_ERROR, retried
        inputs={"message": "no funds"},
        retry={"max_attempts": 2, "initial_delay": "100ms"},
    )
    client.apply(b.build())
    run = client.run("tr-fail", {})
    record = run.wait(timeout=60)
    assert record.status is actorflow.RunStatus.INTERRUPTED
    spans = _complete(otlp, run.run_id, nodes=2, executions=2)
    attempts = sorted(_by_name(spans, "node "), key=lambda s: s.attributes["actorflow.attempt"])
    assert [s.attributes["actorflow.attempt"] for s in attempts] == [1, 2]
    for span in attempts + _by_name(spans, "execute "):
        assert span.status == 2, span
        assert span.attributes["error.type"] == "HANDLER_ERROR"
    assert {s.attributes["actorflow.error_code"] for s in attempts} == {"HANDLER_ERROR"}
    (run_span,) = _by_name(spans, "run ")
    assert run_span.attributes["actorflow.run.status"] == "INTERRUPTED"
    assert run_span.status == 2


def test_an_event_with_a_traceparent_continues_the_callers_trace(
    client: actorflow.Client, otlp: Collector
) -> None:
    b = actorflow.WorkflowBuilder("tr-event", version="1")
    value = b.input("value", type="any", default=None)
    b.output("value", b.node("e", "echo@1", inputs={"value": value}).output)
    client.apply(b.build())
    client.apply(
        actorflow.Trigger.model_validate(
            {
                "metadata": {"name": "tr-orders"},
                "spec": {
                    "source": {"subject": "tr.orders.new"},
                    "workflow": "tr-event",
                    "inputs": {"value": "${{ event.id }}"},
                },
            }
        )
    )
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    headers = {
        ev.TRACEPARENT: f"00-{trace_id}-{parent}-01",
        ev.TRACESTATE: "vendor=abc",
        ev.MSG_ID: "tr-order-1",
    }
    body = json.dumps({"id": "o-1"}).encode()
    client._call(client._async.js.publish("tr.orders.new", body, headers=headers))
    run_id = run_id_for("tr-orders", "tr-order-1")
    assert client.get_run(run_id).result(timeout=60) == {"value": "o-1"}

    spans = _complete(otlp, run_id, nodes=1, executions=1)
    assert {s.trace_id for s in spans} == {trace_id}
    # The hop ends after the start it wraps, so it may come in the trigger host's next batch.
    (hop,) = otlp.wait(
        lambda: [s for s in otlp.in_trace(trace_id) if s.name == "trigger tr-orders"] or None,
        30,
        "the trigger host's span",
    )
    assert hop.parent_id == parent, "the trigger host continued the event's context"
    assert hop.component == "trigger-host"
    assert hop.attributes["messaging.destination.name"] == "tr.orders.new"
    (start,) = _by_name(spans, "start ")
    assert start.parent_id == hop.span_id


def _run_actors() -> list[str]:
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "actorflow" and a["name"].startswith("af-run-actor-")
    )


def _pid(name: str) -> int:
    actor = ray.get_actor(name, namespace="actorflow")
    return int(ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=30))


def _wait(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


@pytest.mark.timeout(180)
def test_replays_after_run_actors_die_write_no_span_twice(
    client: actorflow.Client, otlp: Collector, tmp_path: Path
) -> None:
    """Both run actors SIGKILLed (by pid) twice while the run's held steps run: the
    replacement incarnations replay the history — and the collector, a witness outside
    the engine, still holds one span per node attempt and one for the run."""
    client.apply(
        actorflow.Function.model_validate(
            {
                "metadata": {"name": "tr-held", "version": "1"},
                "spec": {
                    "handler": "af_test_steps:ordered",
                    "codeDir": str(STEPS_DIR),
                    "resources": {"cpus": 0.1},
                    "nodeLabels": {"af-role": "head"},
                    "maxConcurrency": 4,
                },
            }
        )
    )
    b = actorflow.WorkflowBuilder("tr-held", version="1")
    ledger = b.input("ledger", type="string")
    gates = {step: b.input(f"gate_{step}", type="string") for step in ("h1", "h2")}
    first = b.node("first", "echo@1", inputs={"value": 1})
    h1 = b.node(
        "h1",
        "tr-held@1",
        inputs={"ledger": ledger, "label": "h1", "gate": gates["h1"]},
        needs=[first],
    )
    h2 = b.node(
        "h2", "tr-held@1", inputs={"ledger": ledger, "label": "h2", "gate": gates["h2"]}, needs=[h1]
    )
    last = b.node("last", "echo@1", inputs={"value": h2.output})
    b.output("last", last.output)
    client.apply(b.build())

    book = tmp_path / "ledger"
    paths = {step: tmp_path / f"gate-{step}" for step in ("h1", "h2")}
    run = client.run(
        "tr-held", {"ledger": str(book), **{f"gate_{k}": str(v) for k, v in paths.items()}}
    )
    for step, path in paths.items():
        _wait(lambda: book.exists() and step in book.read_text().split(), 60, step)  # noqa: B023
        before = set(_run_actors())
        for name in before:
            os.kill(_pid(name), signal.SIGKILL)
        _wait(lambda: set(_run_actors()) - before, 60, "a replacement run actor")  # noqa: B023
        path.touch()  # let the held step finish: its result reaches the replacement
    assert run.result(timeout=90) == {"last": "h2"}
    assert book.read_text().split() == ["h1", "h2"], "each held step ran once"

    _complete(otlp, run.run_id, nodes=4, executions=4)
    # Not needed to pass: a duplicate written late would surface in the next few rounds.
    time.sleep(3 * otlp.config.export_interval)
    spans = otlp.of_run(run.run_id)
    names = Counter(s.name for s in spans)
    assert names == {
        "start tr-held": 1,
        "run tr-held": 1,
        "node first": 1,
        "node h1": 1,
        "node h2": 1,
        "node last": 1,
        "execute echo": 2,
        "execute tr-held": 2,
    }, names
    assert len({s.span_id for s in spans}) == len(spans)
    (run_span,) = _by_name(spans, "run ")
    assert {s.parent_id for s in _by_name(spans, "node ")} == {run_span.span_id}
