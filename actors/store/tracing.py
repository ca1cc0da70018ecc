"""OpenTelemetry traces across the engine's processes, carried in NATS message headers.

Off unless a process calls `start_process` with a `TracingConfig`: until then every helper
here is a no-op that costs a function call, and no message gains a header.

A run's trace outlives every process that works on it — its run actor may die, its
replicas are others — so the spans that stand for durable things (the run, each node
attempt) are not held open anywhere. They are written once, when the thing ends, by the
one process that records the end (the incarnation whose ``RunStopped`` the fence accepted;
the replica whose result JetStream did not deduplicate), with the start time from the
history and a span id derived from the run, so every process computes the same parent
without asking, and a replay after a crash writes nothing again. Only the start of a run
and a handler's execution are live spans.

Headers follow W3C Trace Context (``traceparent`` / ``tracestate``); spans over messages
carry the OpenTelemetry messaging attributes (``messaging.system=nats``, the subject as
``messaging.destination.name``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actorflow.actors.config import TracingConfig
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)

_W3C = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
# The id `start_span` gives the next span: set only around `_emit`'s one call.
_fixed_span_id: ContextVar[int | None] = ContextVar("actorflow_fixed_span_id", default=None)

MESSAGING = {"messaging.system": "nats"}


class _Ids(RandomIdGenerator):
    def generate_span_id(self) -> int:
        fixed = _fixed_span_id.get()
        return fixed if fixed is not None else super().generate_span_id()


class _WarnOnce(SpanExporter):
    """The exporter, saying once (not once per batch, with a traceback) that the collector
    cannot be reached — and once more when it can again. Spans meanwhile are dropped; no
    run waits for a collector."""

    def __init__(self, inner: SpanExporter, endpoint: str) -> None:
        self._inner, self._endpoint, self._failing = inner, endpoint, False
        # The exporters log every failed batch, with its retries: said once here instead.
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)

    def export(self, spans: Any) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:
            result, reason = SpanExportResult.FAILURE, str(exc)
        else:
            reason = "the collector refused or did not answer"
        if result is SpanExportResult.FAILURE and not self._failing:
            self._failing = True
            log.warning(
                "traces are not reaching %s (%s): spans are dropped until it answers",
                self._endpoint,
                reason,
            )
        elif result is SpanExportResult.SUCCESS and self._failing:
            self._failing = False
            log.warning("traces reach %s again", self._endpoint)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _exporter(config: TracingConfig) -> SpanExporter:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        insecure = not config.endpoint.startswith("https://")
        inner: SpanExporter = GrpcExporter(
            endpoint=config.endpoint,
            insecure=insecure,
            headers=config.headers,
            timeout=config.timeout,
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        inner = HttpExporter(
            endpoint=config.endpoint, headers=config.headers, timeout=config.timeout
        )
    return _WarnOnce(inner, config.endpoint)


def start_process(config: TracingConfig | None, component: str) -> None:
    """Send this process's spans where `config` says (None: tracing stays off). Once per
    process: a second call (another actor in the same worker) changes nothing. The
    provider becomes the global one too, so spans a step's own code opens (through the
    OpenTelemetry API) nest under its execution and go to the same collector."""
    global _provider, _tracer
    if config is None or _provider is not None:
        return
    resource = Resource.create(
        {
            "service.name": config.service_name,
            "service.namespace": "actorflow",
            "actorflow.component": component,
        }
    )
    provider = TracerProvider(resource=resource, id_generator=_Ids(), sampler=_sampler(config))
    provider.add_span_processor(
        BatchSpanProcessor(_exporter(config), schedule_delay_millis=config.export_interval * 1000)
    )
    trace.set_tracer_provider(provider)  # refused (logged) if the process has one already
    _provider, _tracer = provider, provider.get_tracer("actorflow")


def _sampler(config: TracingConfig) -> sampling.Sampler:
    """`config.sampler` as the SDK's; a trace's decision rides in its `traceparent` flags,
    so every process (and every span written after the fact) follows the one made where
    the trace began."""
    kind = config.sampler.removeprefix("parentbased_")
    own: sampling.Sampler = (
        sampling.ALWAYS_ON
        if kind == "always_on"
        else sampling.ALWAYS_OFF
        if kind == "always_off"
        else sampling.TraceIdRatioBased(config.sample_ratio)
    )
    return sampling.ParentBased(own) if config.sampler.startswith("parentbased_") else own


def flush(timeout: float = 5.0) -> None:
    """Send what is buffered (an actor about to stop; a CLI about to exit)."""
    if _provider is not None:
        _provider.force_flush(int(timeout * 1000))


def enabled() -> bool:
    return _tracer is not None


# --- context in headers -----------------------------------------------------------------------
def inject(headers: dict[str, str] | None = None) -> dict[str, str] | None:
    """`headers` plus the current trace context, if there is one — whoever made it: this
    process's tracing, or a caller's own OpenTelemetry setup (the SDK in a traced app)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return headers
    out = dict(headers or {})
    _W3C.inject(out)
    return out


def extract(headers: Mapping[str, str] | None) -> otel_context.Context | None:
    """The trace context a message's headers carry; None without one."""
    if not headers or ev.TRACEPARENT not in headers:
        return None
    ctx = _W3C.extract(dict(headers))
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def carrier() -> dict[str, str]:
    """The current trace context as headers ({} without one)."""
    return inject({}) or {}


@contextlib.contextmanager
def continued(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Make the context `headers` carry current (what is published inside continues it)."""
    ctx = extract(headers)
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def handling(
    name: str,
    headers: Mapping[str, str] | None,
    subject: str | None = None,
    *,
    root: bool = True,
    **attributes: Any,
) -> Iterator[trace.Span | None]:
    """A live span for handling one request or message (a CONSUMER of `subject`, or a
    SERVER of a Ray call), continuing the trace its headers carry — without one, a new
    trace (`root`) or no span at all. Keyword attributes spell ``.`` as ``__``."""
    if _tracer is None:
        yield None
        return
    ctx = extract(headers)
    if ctx is None and not root:
        yield None
        return
    attrs = _clean({k.replace("__", "."): v for k, v in attributes.items()})
    kind = SpanKind.SERVER
    if subject is not None:
        kind = SpanKind.CONSUMER
        attrs |= {
            **MESSAGING,
            "messaging.destination.name": subject,
            "messaging.operation.type": "process",
        }
    with _tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attrs) as span:
        yield span


@contextlib.contextmanager
def sending(name: str, subject: str, **attributes: Any) -> Iterator[None]:
    """A PRODUCER span around sending a request, through the *global* tracer: a span of
    the caller's own OpenTelemetry setup (or of `start_process`'s), a no-op without one —
    which still passes the caller's current context on."""
    attrs = _clean({k.replace("__", "."): v for k, v in attributes.items()})
    attrs |= {
        **MESSAGING,
        "messaging.destination.name": subject,
        "messaging.operation.type": "send",
    }
    tracer = trace.get_tracer("actorflow.sdk")
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attrs):
        yield


def fail(span: trace.Span | None, code: str, message: str) -> None:
    if span is not None:
        span.set_attribute("error.type", code)
        span.set_status(Status(StatusCode.ERROR, f"[{code}] {message}"))


# --- a run's trace ----------------------------------------------------------------------------
def run_trace() -> ev.TraceContext | None:
    """What a new run records in `RunStarted.trace`: the current span (its start), the
    parent of the run's span."""
    if _tracer is None:
        return None
    headers = carrier()
    if ev.TRACEPARENT not in headers:
        return None
    return ev.TraceContext(
        traceparent=headers[ev.TRACEPARENT], tracestate=headers.get(ev.TRACESTATE, "")
    )


def _derived_id(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def _parse(traceparent: str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C ``traceparent``; None if it is not one."""
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        return int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None


def _span_context(trace_id: int, span_id: int, flags: int, tracestate: str) -> trace.SpanContext:
    state = trace.TraceState.from_header([tracestate]) if tracestate else None
    return trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags), trace_state=state
    )


class RunSpans:
    """The derived spans of one run: its own and one per node attempt (see the module)."""

    def __init__(
        self, run_id: str, trace_id: int, start_span: int, flags: int, tracestate: str
    ) -> None:
        self.run_id, self.trace_id = run_id, trace_id
        self._start_span, self._flags, self._state = start_span, flags, tracestate
        self.span_id = _derived_id(f"{trace_id:032x}", run_id)

    @classmethod
    def of(cls, started: ev.RunStarted) -> RunSpans | None:
        """The driver's view; None when the run has no trace, or this process does not
        trace."""
        if _tracer is None or started.trace is None:
            return None
        parsed = _parse(started.trace.traceparent)
        if parsed is None:
            return None
        trace_id, start_span, flags = parsed
        return cls(started.run_id, trace_id, start_span, flags, started.trace.tracestate)

    @classmethod
    def of_task(cls, task: ev.TaskScheduled, headers: Mapping[str, str] | None) -> RunSpans | None:
        """A replica's view: the task's headers name the trace (its parent is the
        attempt's span, whose own parent — the run's — is derived)."""
        if _tracer is None or not headers or ev.TRACEPARENT not in headers:
            return None
        parsed = _parse(headers[ev.TRACEPARENT])
        if parsed is None:
            return None
        trace_id, _, flags = parsed
        return cls(task.run_id, trace_id, 0, flags, headers.get(ev.TRACESTATE, ""))

    def attempt_id(self, task: ev.TaskRef) -> int:
        return _derived_id(f"{self.trace_id:032x}", task.idempotency_key(self.run_id))

    def _context(self, span_id: int) -> otel_context.Context:
        ctx = _span_context(self.trace_id, span_id, self._flags, self._state)
        return trace.set_span_in_context(trace.NonRecordingSpan(ctx))

    def run_context(self) -> otel_context.Context:
        """Current while a driver works on the run: what it publishes carries the run."""
        return self._context(self.span_id)

    def attempt_headers(self, task: ev.TaskRef, headers: dict[str, str]) -> dict[str, str]:
        """A task message's headers: the attempt's span is the parent of its execution
        (formatted here, not by the propagator: this is on every task's path)."""
        span = self.attempt_id(task)
        out = {**headers, ev.TRACEPARENT: f"00-{self.trace_id:032x}-{span:016x}-{self._flags:02x}"}
        if self._state:
            out[ev.TRACESTATE] = self._state
        return out

    def attempt_context(self, task: ev.TaskRef) -> otel_context.Context:
        return self._context(self.attempt_id(task))

    def emit_run(
        self,
        started: ev.RunStarted,
        stopped: ev.RunStopped,
        episode: int = 0,
        since: datetime | None = None,
    ) -> None:
        """The run's span, from its start to its end (written by the driver that recorded
        the end). A run that ends, is reopened (resumed, retried) and ends again writes one
        more span per reopening (`episode`, from `since`), under the first: each end once."""
        attrs = {
            "actorflow.run_id": self.run_id,
            "actorflow.workflow": started.workflow,
            "actorflow.workflow.version": started.version,
            "actorflow.run.status": stopped.status.value,
            "actorflow.run.episode": episode,
            "actorflow.parent_run_id": started.parent.run_id if started.parent else None,
        }
        if episode == 0:
            span_id, parent, start = self.span_id, self._context(self._start_span), started.at
        else:
            span_id = _derived_id(f"{self.trace_id:032x}", self.run_id, str(episode))
            parent, start = self.run_context(), since or started.at
        _emit(
            f"run {started.workflow}",
            span_id,
            parent,
            start=start,
            end=stopped.at,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            error=stopped.error if stopped.status is not ev.RunStatus.SUCCEEDED else None,
        )

    def emit_attempt(
        self,
        task: ev.TaskScheduled,
        result: ev.TaskCompleted | ev.TaskFailed,
        subject: str,
        end: datetime,
    ) -> None:
        """A node attempt's span, from when it was queued to `end` (its execution over,
        its result about to be stored)."""
        ref, execution = task.task, result.execution
        attrs: dict[str, Any] = {
            "actorflow.run_id": self.run_id,
            "actorflow.workflow": task.workflow,
            "actorflow.node": ref.node,
            "actorflow.attempt": ref.attempt,
            "actorflow.function": f"{task.function}@{task.version}",
            "messaging.destination.name": subject,
        }
        if ref.index is not None:
            attrs["actorflow.index"] = ref.index
        if ref.remedy or ref.compensation:
            attrs["actorflow.task_kind"] = "remedy" if ref.remedy else "compensation"
        if execution is not None:
            attrs["actorflow.replica"] = execution.replica
            attrs["actorflow.queue_wait_s"] = max(
                (execution.started_at - task.at).total_seconds(), 0.0
            )
        error = result.error if isinstance(result, ev.TaskFailed) else None
        if error is not None:
            attrs["actorflow.error_code"] = error.code
        _emit(
            f"node {ref.key}",
            self.attempt_id(ref),
            self.run_context(),
            start=task.at,
            end=end,
            kind=SpanKind.PRODUCER,
            attributes=attrs,
            error=error,
        )


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


def _emit(
    name: str,
    span_id: int,
    parent: otel_context.Context,
    *,
    start: datetime,
    end: datetime,
    kind: SpanKind,
    attributes: dict[str, Any],
    error: ev.ErrorInfo | None,
) -> None:
    """Write a finished span with a chosen id (see the module docstring)."""
    if _tracer is None:
        return
    token = _fixed_span_id.set(span_id)
    try:
        span = _tracer.start_span(
            name, context=parent, kind=kind, attributes=_clean(attributes), start_time=_ns(start)
        )
    finally:
        _fixed_span_id.reset(token)
    if error is not None:
        fail(span, error.code, error.message)
    span.end(end_time=max(_ns(end), _ns(start)))


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}
