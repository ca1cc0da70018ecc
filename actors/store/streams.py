"""Reading JetStream streams to the end, and the run records bucket."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actorflow.actors.store.errors import not_found_as
from actorflow.actors.store.jetstream import key_value
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)


async def read_stream(
    js: JetStreamContext,
    stream: str,
    subject: str,
    deliver: DeliverPolicy = DeliverPolicy.ALL,
) -> AsyncIterator[Msg]:
    """Every message on `subject` (per `deliver`), read until the consumer has none pending.

    Stops on the consumer's own pending count, not on a watcher's "caught up" marker, so
    writes that land while reading cannot cut the listing short.
    """
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            deliver_policy=deliver,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=5.0,
            filter_subject=subject,
        ),
    )
    info = await sub.consumer_info()
    try:
        pending = info.num_pending or 0
        while pending > 0:
            try:
                msgs = await sub.fetch(min(pending, 512), timeout=5.0)
            except TimeoutError:
                break
            for msg in msgs:
                pending = msg.metadata.num_pending
                yield msg
    finally:
        # Delete the consumer now: recovering a thousand runs replays a thousand histories,
        # and ephemeral consumers left to expire would hit the server's consumer limit.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)


async def read_records(js: JetStreamContext) -> AsyncIterator[ev.RunRecord]:
    """Every run record, in one pass over the runs bucket (latest value of each key)."""
    async for msg in read_stream(
        js, ev.kv_stream(ev.KV_RUNS), ev.kv_filter(ev.KV_RUNS), DeliverPolicy.LAST_PER_SUBJECT
    ):
        if msg.headers and msg.headers.get(ev.KV_OPERATION):
            continue  # deleted or purged
        try:
            yield ev.decode(ev.RunRecord, msg.data)
        except ev.DecodeError as exc:
            log.error("skipping undecodable run record %s: %s", msg.subject, exc)


async def read_record(js: JetStreamContext, run_id: str) -> ev.RunRecord:
    """One run's record; NotFoundError (the actorflow one) for an unknown run."""
    kv = await key_value(js, ev.KV_RUNS)
    with not_found_as("run", run_id):
        entry = await kv.get(run_id)
    return ev.decode(ev.RunRecord, entry.value or b"")


async def read_kv_values(js: JetStreamContext, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Latest value of each live key of `bucket` under `prefix`, by the key's rest (one
    pass; deleted and purged keys left out)."""
    out: dict[str, bytes] = {}
    async for msg in read_stream(
        js, ev.kv_stream(bucket), ev.kv_filter(bucket, prefix), DeliverPolicy.LAST_PER_SUBJECT
    ):
        key = ev.kv_key(bucket, msg.subject, prefix)
        if msg.headers and msg.headers.get(ev.KV_OPERATION):
            out.pop(key, None)
            continue
        out[key] = msg.data
    return out


async def read_trigger_stats(js: JetStreamContext) -> dict[str, ev.TriggerStats]:
    """Every trigger's counts, as its host last wrote them."""
    values = await read_kv_values(js, ev.KV_TRIGGERS, ev.trigger_keys_prefix(ev.STATS_KEYS))
    return {k: ev.decode(ev.TriggerStats, v) for k, v in values.items()}
