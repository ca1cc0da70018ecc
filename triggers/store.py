"""Trigger definitions, event types and counts in the ``AF_TRIGGERS`` KV bucket.

Keys: ``trigger.<name>`` (a `TriggerRecord`: the applied definition, its enabled flag and
where its durable consumer reads), ``eventtype.<name>`` (an `EventType`), ``stats.<name>``
(`TriggerStats`, written by the trigger host) and ``webhook`` (the HTTP server's base URL).
The controller is the only writer of definitions; the trigger host the only writer of
stats — so neither ever overwrites the other's fields.
"""

from __future__ import annotations

from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from actorflow.actors.store.streams import read_stream
from actorflow.definitions import events as ev
from actorflow.definitions.models import EventType, Trigger


class TriggerRecord(BaseModel):
    """A trigger as stored: the definition, whether it listens, and its consumer's home."""

    model_config = ConfigDict(frozen=True)

    trigger: Trigger
    enabled: bool = True
    stream: str = ""
    applied_at: datetime = Field(default_factory=ev.now)

    @property
    def name(self) -> str:
        return self.trigger.metadata.name


def trigger_key(name: str) -> str:
    return f"trigger.{name}"


def event_type_key(name: str) -> str:
    return f"eventtype.{name}"


def stats_key(name: str) -> str:
    return f"stats.{name}"


async def bucket(js: JetStreamContext) -> KeyValue:
    return await js.key_value(ev.KV_TRIGGERS)


async def _values(js: JetStreamContext, prefix: str) -> dict[str, bytes]:
    """Latest value of each live key under `prefix` (one pass; deleted keys left out)."""
    subject = f"$KV.{ev.KV_TRIGGERS}.{prefix}.>"
    out: dict[str, bytes] = {}
    async for msg in read_stream(
        js, f"KV_{ev.KV_TRIGGERS}", subject, DeliverPolicy.LAST_PER_SUBJECT
    ):
        key = msg.subject.removeprefix(f"$KV.{ev.KV_TRIGGERS}.{prefix}.")
        if msg.headers and msg.headers.get("KV-Operation"):
            out.pop(key, None)
            continue
        out[key] = msg.data
    return out


async def triggers(js: JetStreamContext) -> dict[str, TriggerRecord]:
    return {
        k: TriggerRecord.model_validate_json(v) for k, v in (await _values(js, "trigger")).items()
    }


async def event_types(js: JetStreamContext) -> dict[str, EventType]:
    return {
        k: EventType.model_validate_json(v) for k, v in (await _values(js, "eventtype")).items()
    }


async def stats(js: JetStreamContext) -> dict[str, ev.TriggerStats]:
    return {k: ev.decode(ev.TriggerStats, v) for k, v in (await _values(js, "stats")).items()}


async def get_trigger(kv: KeyValue, name: str) -> TriggerRecord | None:
    try:
        entry = await kv.get(trigger_key(name))
    except KeyNotFoundError:
        return None
    return TriggerRecord.model_validate_json(entry.value or b"")


async def webhook_url(js: JetStreamContext) -> str | None:
    try:
        entry = await (await bucket(js)).get(ev.WEBHOOK_KEY)
    except KeyNotFoundError:
        return None
    return (entry.value or b"").decode() or None
