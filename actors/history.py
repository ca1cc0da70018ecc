"""Append to and replay a run's history on JetStream, with the fence on decisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, KeyNotFoundError

from actorflow.definitions import events as ev
from actorflow.definitions.errors import FencedError, NotFoundError

log = logging.getLogger(__name__)

_WRONG_LAST_SEQUENCE = 10071
_T = TypeVar("_T")


@dataclass(frozen=True)
class Recorded:
    event: ev.HistoryEvent
    subject: str
    seq: int


async def with_retries(op: Callable[[], Awaitable[_T]], what: str) -> _T:
    """Retry transient NATS failures (server restarting, reconnecting) with capped backoff.

    Safe only for idempotent operations: every publish here carries a `Nats-Msg-Id`.
    """
    delay = 0.05
    while True:
        try:
            return await op()
        except (NatsTimeoutError, NoRespondersError, ConnectionClosedError, TimeoutError) as exc:
            log.warning("%s failed (%s); retrying in %.2fs", what, type(exc).__name__, delay)
        except APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE or (exc.code or 0) < 500:
                raise
            log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


class DecisionLog:
    """The decisions subject of one run, appended only under the expected-sequence fence."""

    def __init__(self, js: JetStreamContext, run_id: str, last_seq: int, incarnation: str) -> None:
        self._js = js
        self._incarnation = incarnation
        self._subject = ev.run_subject(run_id, ev.DECISIONS)
        self._run_id = run_id
        self.last_seq = last_seq

    async def append(self, event: Any) -> int:
        """Append or raise FencedError: the server refuses it if anyone appended since us."""
        headers = {
            ev.EXPECTED_LAST_SUBJECT_SEQ: str(self.last_seq),
            # Unique per incarnation: a retry of our own append is deduplicated, while a
            # rival incarnation's append at the same sequence meets the fence instead.
            ev.MSG_ID: f"{self._run_id}.d.{self.last_seq}.{self._incarnation}",
        }
        data = ev.encode(event)
        try:
            ack = await with_retries(
                lambda: self._js.publish(self._subject, data, headers=headers),
                f"append to {self._subject}",
            )
        except APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise FencedError(f"run {self._run_id}: another incarnation appended") from exc
            raise
        self.last_seq = ack.seq
        return ack.seq


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


async def replay(js: JetStreamContext, run_id: str) -> list[Recorded]:
    """Every event of a run, in stream order; undecodable messages are logged and skipped."""
    out: list[Recorded] = []
    async for msg in read_stream(js, ev.STREAM_HISTORY, ev.run_history_filter(run_id)):
        seq = msg.metadata.sequence.stream
        try:
            out.append(Recorded(ev.decode_history(msg.data), msg.subject, seq))
        except ev.DecodeError as exc:
            log.error("skipping undecodable event at seq %s: %s", seq, exc)
    return out


async def read_records(js: JetStreamContext) -> AsyncIterator[ev.RunRecord]:
    """Every run record, in one pass over the runs bucket (latest value of each key)."""
    async for msg in read_stream(
        js, f"KV_{ev.KV_RUNS}", f"$KV.{ev.KV_RUNS}.>", DeliverPolicy.LAST_PER_SUBJECT
    ):
        if msg.headers and msg.headers.get("KV-Operation"):
            continue  # deleted or purged
        try:
            yield ev.decode(ev.RunRecord, msg.data)
        except ev.DecodeError as exc:
            log.error("skipping undecodable run record %s: %s", msg.subject, exc)


async def read_record(js: JetStreamContext, run_id: str) -> ev.RunRecord:
    """One run's record; NotFoundError (the actorflow one) for an unknown run."""
    kv = await js.key_value(ev.KV_RUNS)
    try:
        entry = await kv.get(run_id)
    except KeyNotFoundError:
        raise NotFoundError("run", run_id) from None
    return ev.decode(ev.RunRecord, entry.value or b"")
