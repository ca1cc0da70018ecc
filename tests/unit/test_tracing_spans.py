"""The tracing helpers without a cluster: derived span ids, headers, chosen-id spans, and
an unreachable collector said once."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actorflow.actors.config import Sampler, TracingConfig
from actorflow.actors.store import tracing
from actorflow.definitions import events as ev

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
START = "00f067aa0ba902b7"


def _started(run_id: str = "wf-1") -> ev.RunStarted:
    return ev.RunStarted(
        run_id=run_id,
        workflow="wf",
        version="1",
        plan={},
        functions={},
        inputs={},
        trace=ev.TraceContext(traceparent=f"00-{TRACE}-{START}-01", tracestate="k=v"),
    )


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """This process traced, into memory (as `start_process` would, without the exporter)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=tracing._Ids())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    return exporter


def test_without_tracing_nothing_is_added_or_derived() -> None:
    assert tracing.inject({ev.MSG_ID: "x"}) == {ev.MSG_ID: "x"}
    assert tracing.inject() is None
    assert tracing.RunSpans.of(_started()) is None
    assert tracing.run_trace() is None


def test_every_process_derives_the_same_ids(recorded: InMemorySpanExporter) -> None:
    driver = tracing.RunSpans.of(_started())
    assert driver is not None
    ref = ev.TaskRef(node="a", attempt=2)
    headers = driver.attempt_headers(ref, {ev.MSG_ID: "m"})
    assert headers[ev.MSG_ID] == "m"
    assert headers[ev.TRACEPARENT] == f"00-{TRACE}-{driver.attempt_id(ref):016x}-01"
    assert headers[ev.TRACESTATE] == "k=v"
    task = ev.TaskScheduled(
        run_id="wf-1",
        workflow="wf",
        task=ref,
        function="f",
        version="1",
        inputs=ev.Payload(inline=None),
    )
    replica = tracing.RunSpans.of_task(task, headers)
    assert replica is not None
    assert (replica.span_id, replica.attempt_id(ref)) == (driver.span_id, driver.attempt_id(ref))
    # Another run, another attempt, another remedy: other ids.
    other = tracing.RunSpans.of(_started("wf-2"))
    assert other is not None
    ids = {
        driver.span_id,
        other.span_id,
        driver.attempt_id(ref),
        driver.attempt_id(ev.TaskRef(node="a", attempt=1)),
        driver.attempt_id(ev.TaskRef(node="a", attempt=2, remedy=True)),
    }
    assert len(ids) == 5


def test_spans_written_after_the_fact_take_the_derived_ids(
    recorded: InMemorySpanExporter,
) -> None:
    started = _started()
    spans = tracing.RunSpans.of(started)
    assert spans is not None
    stopped = ev.RunStopped(
        run_id="wf-1",
        status=ev.RunStatus.INTERRUPTED,
        at=started.at + timedelta(seconds=3),
        error=ev.ErrorInfo(code="HANDLER_ERROR", message="boom"),
    )
    spans.emit_run(started, stopped)
    spans.emit_run(started, stopped, episode=1, since=started.at + timedelta(seconds=2))
    (first, again) = recorded.get_finished_spans()
    assert first.context is not None
    assert first.parent is not None
    assert first.context.span_id == spans.span_id
    assert f"{first.context.trace_id:032x}" == TRACE
    assert f"{first.parent.span_id:016x}" == START
    assert first.end_time is not None
    assert first.start_time is not None
    assert first.end_time - first.start_time == 3_000_000_000
    assert first.status.status_code is trace.StatusCode.ERROR
    assert first.attributes is not None
    assert first.attributes["error.type"] == "HANDLER_ERROR"
    # A reopened run's second end: its own span, under the first.
    assert again.context is not None
    assert again.parent is not None
    assert again.parent.span_id == spans.span_id
    assert again.context.span_id != spans.span_id
    # A span made meanwhile gets a fresh id: the chosen one was set for one call only.
    with recorded_span() as fresh:
        assert fresh not in (spans.span_id, again.context.span_id)


@pytest.mark.parametrize(
    ("sampler", "ratio", "flags", "kept"),
    [
        ("parentbased_always_off", 1.0, "01", 1),  # the trace's own decision wins
        ("parentbased_always_on", 1.0, "00", 0),  # … either way
        ("always_off", 1.0, "01", 0),
        ("traceidratio", 0.0, "01", 0),
        ("traceidratio", 1.0, "00", 1),
    ],
)
def test_the_sampler_decides_which_derived_spans_are_kept(
    sampler: Sampler, ratio: float, flags: str, kept: int
) -> None:
    exporter = InMemorySpanExporter()
    config = TracingConfig(sampler=sampler, sample_ratio=ratio)
    provider = TracerProvider(id_generator=tracing._Ids(), sampler=tracing._sampler(config))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    started = _started().model_copy(
        update={"trace": ev.TraceContext(traceparent=f"00-{TRACE}-{START}-{flags}")}
    )
    stopped = ev.RunStopped(run_id="wf-1", status=ev.RunStatus.SUCCEEDED, at=started.at)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracing, "_tracer", provider.get_tracer("test"))
        spans = tracing.RunSpans.of(started)
        assert spans is not None
        spans.emit_run(started, stopped)
    assert len(exporter.get_finished_spans()) == kept


class recorded_span:  # noqa: N801 - reads as a context manager
    def __enter__(self) -> int:
        assert tracing._tracer is not None
        self._span = tracing._tracer.start_span("fresh")
        return int(self._span.get_span_context().span_id)

    def __exit__(self, *_: object) -> None:
        self._span.end()


def test_a_malformed_recorded_traceparent_traces_nothing(recorded: InMemorySpanExporter) -> None:
    started = _started().model_copy(update={"trace": ev.TraceContext(traceparent="00-nope")})
    assert tracing.RunSpans.of(started) is None
    assert tracing.extract({ev.TRACEPARENT: "garbage"}) is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_collector_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}/v1/traces"
    exporter = tracing._WarnOnce(OTLPSpanExporter(endpoint=endpoint, timeout=0.5), endpoint)
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("s")
    span.end()
    with caplog.at_level(logging.WARNING):
        results = [exporter.export([span]) for _ in range(3)]  # type: ignore[list-item]
    assert results == [SpanExportResult.FAILURE] * 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert endpoint in warnings[0].getMessage()
    assert "dropped" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("config", "inner"),
    [
        (TracingConfig(endpoint="http://127.0.0.1:4318/v1/traces"), "proto.http"),
        (TracingConfig(protocol="grpc", endpoint="127.0.0.1:4317"), "proto.grpc"),
    ],
)
def test_each_protocol_gets_its_exporter(config: TracingConfig, inner: str) -> None:
    exporter = tracing._exporter(config)
    assert isinstance(exporter, tracing._WarnOnce)
    assert inner in type(exporter._inner).__module__
    exporter.shutdown()


def test_the_console_exporter_needs_no_collector() -> None:
    exporter = tracing._exporter(TracingConfig(exporter="console"))
    assert type(exporter).__name__ == "ConsoleSpanExporter"
