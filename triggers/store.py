"""Trigger definitions, event types and counts in the ``AF_TRIGGERS`` KV bucket.

Keys (built by the wire contract: `ev.trigger_key`, `ev.event_type_key`, `ev.stats_key`,
`ev.WEBHOOK_KEY`): ``trigger.<name>`` (a `TriggerRecord`: the applied definition, its enabled
flag and where its durable consumer reads), ``eventtype.<name>`` (an `EventType`),
``stats.<name>`` (`TriggerStats`, written by the trigger host) and ``webhook`` (the HTTP
server's base URL).
The controller is the only writer of definitions; the trigger host the only writer of
stats — so neither ever overwrites the other's fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import Field

from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.streams import read_kv_values, read_trigger_stats
from actorflow.definitions import events as ev
from actorflow.definitions.models import EventType, Trigger


class TriggerRecord(ev.Message):
    """A trigger as stored: the definition, whether it listens, and its consumer's home.

    A message of the wire contract kept here, beside the one module that reads and writes
    it, because it holds a `Trigger` definition (the contract does not import the models).
    """

    type: Literal["TriggerRecord"] = "TriggerRecord"
    trigger: Trigger
    enabled: bool = True
    stream: str = ""
    applied_at: datetime = Field(default_factory=ev.now)

    @property
    def name(self) -> str:
        return self.trigger.metadata.name


async def bucket(js: JetStreamContext) -> KeyValue:
    return await js.key_value(ev.KV_TRIGGERS)


async def _values(js: JetStreamContext, family: ev.TriggerKeyFamily) -> dict[str, bytes]:
    """Latest value of each live key of `family`, by name."""
    return await read_kv_values(js, ev.KV_TRIGGERS, ev.trigger_keys_prefix(family))


async def triggers(js: JetStreamContext) -> dict[str, TriggerRecord]:
    return {k: ev.decode(TriggerRecord, v) for k, v in (await _values(js, ev.TRIGGER_KEYS)).items()}


async def event_types(js: JetStreamContext) -> dict[str, EventType]:
    return {
        k: EventType.model_validate_json(v)
        for k, v in (await _values(js, ev.EVENT_TYPE_KEYS)).items()
    }


async def stats(js: JetStreamContext) -> dict[str, ev.TriggerStats]:
    return await read_trigger_stats(js)


async def get_trigger(kv: KeyValue, name: str) -> TriggerRecord | None:
    try:
        entry = await kv.get(ev.trigger_key(name))
    except NOT_FOUND:
        return None
    return ev.decode(TriggerRecord, entry.value or b"")


async def webhook_url(js: JetStreamContext) -> str | None:
    kv = await bucket(js)
    try:
        entry = await kv.get(ev.WEBHOOK_KEY)
    except NOT_FOUND:
        return None
    return (entry.value or b"").decode() or None
