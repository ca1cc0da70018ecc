"""From one delivered event to "start this run with these inputs" — pure, no Ray, no NATS.

A `CompiledTrigger` is built once per trigger definition (expressions compiled, the event
type's schema checked) and then asked, per event: is the payload acceptable (JSON, within
the size limit, valid against the declared event type), does the filter match, what are
the inputs, and which run id does the event map to. The run id is derived from the
trigger name and the event id, so a redelivered event maps to the same run and the
controller's idempotent start turns it into no second run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from actorflow.definitions import events as ev
from actorflow.definitions.errors import EventRejectedError, ExpressionError
from actorflow.definitions.expressions import Expression, Template, strip_braces
from actorflow.definitions.models import EventType, LifecycleSource, Trigger, split_ref

SIGNATURE_HEADERS = ("X-Actorflow-Signature", "X-Hub-Signature-256")
DELIVERY_HEADERS = ("X-Delivery-Id", "X-GitHub-Delivery", "X-Request-Id")

_RUN_TOKENS = {
    "started": ("running",),
    "succeeded": ("succeeded",),
    "failed": ("interrupted", "compensated"),  # a compensated run failed, then undid
    "interrupted": ("interrupted",),
    "terminated": ("terminated",),
    "compensated": ("compensated",),
}
_NODE_TOKENS = {
    "started": ("started",),
    "succeeded": ("succeeded",),
    "failed": ("failed",),
    "interrupted": ("interrupted",),
    "terminated": ("interrupted",),
    "compensated": ("interrupted",),
}


@dataclass(frozen=True)
class Event:
    """One delivery as the trigger sees it: id, subject, headers and raw bytes."""

    event_id: str
    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def run_id_for(trigger: str, event_id: str) -> str:
    """The run an event starts: stable across redeliveries and trigger-host restarts."""
    digest = hashlib.sha256(f"{trigger}\x00{event_id}".encode()).hexdigest()[:20]
    return f"{trigger}-{digest}"


def sign(secret: str, body: bytes) -> str:
    """The signature header value a sender computes: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a webhook signature (``sha256=<hex>``, prefix optional)."""
    if not header:
        return False
    given = header.strip()
    expected = sign(secret, body)
    if not given.startswith("sha256="):
        given = "sha256=" + given
    return hmac.compare_digest(given.lower(), expected)


def lifecycle_subjects(source: LifecycleSource) -> list[str]:
    """The ``af.events.…`` filter subjects a lifecycle trigger's consumer reads."""
    if source.node is None:
        tokens = sorted({t for on in source.on for t in _RUN_TOKENS[on]})
        return [ev.run_events_filter(source.workflow, status=t) for t in tokens]
    tokens = sorted({t for on in source.on for t in _NODE_TOKENS[on]})
    return [ev.node_events_filter(source.workflow, node=source.node, status=t) for t in tokens]


def lifecycle_event_id(payload: Mapping[str, Any]) -> str:
    """One event per (run, node, status): a re-announced status starts no second run."""
    return f"{payload.get('run_id')}:{payload.get('node') or ''}:{payload.get('status')}"


class CompiledTrigger:
    """A trigger definition ready to judge events (see the module docstring)."""

    def __init__(self, trigger: Trigger, event_type: EventType | None = None) -> None:
        self.trigger = trigger
        self.name = trigger.metadata.name
        spec = trigger.spec
        self.workflow, version = split_ref(spec.workflow)
        self.version = None if version == "latest" else version
        self._filter = (
            Expression.compile(strip_braces(spec.filter), field="spec.filter")
            if spec.filter
            else None
        )
        self._inputs = Template.compile(dict(spec.inputs), field="spec.inputs")
        self._schema = event_type.spec.json_schema if event_type else None
        self._validator = (
            jsonschema.Draft202012Validator(self._schema) if self._schema is not None else None
        )

    def payload(self, event: Event) -> Any:
        """The event's JSON payload, or EventRejectedError (too large, not JSON, schema)."""
        limit = self.trigger.spec.max_payload
        if len(event.data) > limit:
            raise EventRejectedError(
                "too_large", f"payload of {len(event.data)} bytes is over the {limit}-byte limit"
            )
        try:
            value = json.loads(event.data) if event.data else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventRejectedError("not_json", f"payload is not JSON: {exc}") from None
        if self._validator is not None:
            errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                where = ".".join(str(p) for p in errors[0].absolute_path) or "payload"
                raise EventRejectedError(
                    "schema",
                    f"{where}: {errors[0].message} (event type {self.trigger.spec.event_type})",
                )
        return value

    def accepts_lifecycle(self, payload: Any) -> bool:
        """``on: [failed]`` reads ``…interrupted`` events: keep only those that failed."""
        source = self.trigger.spec.source.lifecycle
        if source is None or source.node is not None or not isinstance(payload, dict):
            return True
        if payload.get("status") != ev.RunStatus.INTERRUPTED:
            return True
        reason = payload.get("reason")
        wanted = set(source.on)
        return "interrupted" in wanted or ("failed" in wanted and reason == "failed")

    def context(self, event: Event, payload: Any) -> dict[str, Any]:
        return {
            "event": payload,
            "headers": dict(event.headers),
            "subject": event.subject,
            "event_id": event.event_id,
            "trigger": self.name,
        }

    def matches(self, context: Mapping[str, Any]) -> bool:
        """The filter's verdict; ExpressionError if it fails or yields no boolean."""
        if self._filter is None:
            return True
        verdict = self._filter.evaluate(context, field="spec.filter")
        if not isinstance(verdict, bool):
            raise ExpressionError(
                self._filter.source, f"a filter must be true or false, got {verdict!r}"
            )
        return verdict

    def inputs(self, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = self._inputs.render(context)
        assert isinstance(rendered, dict)
        return rendered
