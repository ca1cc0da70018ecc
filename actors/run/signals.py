"""Signals: messages on ``af.signal.<signal>.<key>`` that end the waits registered for them.

A wait registers itself in the waits bucket when it starts, then looks at the last signal
already published for it (a signal may come before the run reaches its wait). The
controller routes every later signal to the registered waits. Both paths deliver with the
same message id, and the run's fold ignores a second delivery, so a signal ends a wait once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import jsonschema
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.jetstream import key_value
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.streams import read_stream
from actorflow.actors.store.tracing import inject
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)


def check(value: Any, schema: dict[str, Any] | None, what: str) -> None:
    """ValueError naming where `value` breaks `schema` (no schema: anything goes)."""
    if not schema:
        return
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top"
        raise ValueError(f"{what} does not match its schema at {where}: {exc.message}") from None


def check_payload(data: bytes, schema: dict[str, Any] | None) -> Any:
    """The payload as JSON, checked against `schema`; ValueError says what is wrong."""
    try:
        payload = json.loads(data or b"null")
    except ValueError as exc:
        raise ValueError(f"signal payload is not JSON: {exc}") from None
    check(payload, schema, "signal payload")
    return payload


async def deliver(
    js: JetStreamContext, run_id: str, node: str, payload: Any, signal_seq: int
) -> ev.RunSignalled:
    event = ev.RunSignalled(
        run_id=run_id, id=ev.signal_event_id(run_id, node, signal_seq), node=node, payload=payload
    )
    await with_retries(
        lambda: js.publish(
            ev.run_subject(run_id, ev.CONTROL),
            ev.encode(event),
            headers=inject({ev.MSG_ID: event.id}),
        ),
        f"deliver signal to {run_id}",
    )
    return event


async def register(
    js: JetStreamContext, wait: ev.WaitRef, run_id: str, schema: dict[str, Any] | None
) -> ev.RunSignalled | None:
    """Register the wait, then deliver (and return) the signal already there, if any."""
    kv = await key_value(js, ev.KV_WAITS)
    value = ev.WaitRegistration(run_id=run_id, node=wait.node, json_schema=schema)
    await kv.put(ev.wait_key(wait.signal, wait.key, run_id, wait.node), ev.encode(value))
    try:
        last = await js.get_last_msg(ev.STREAM_SIGNALS, ev.signal_subject(wait.signal, wait.key))
    except NOT_FOUND:
        return None
    try:
        payload = check_payload(last.data or b"", schema)
    except ValueError as exc:
        log.warning("run %s node %s: earlier signal refused: %s", run_id, wait.node, exc)
        return None
    return await deliver(js, run_id, wait.node, payload, last.seq or 0)


async def unregister(js: JetStreamContext, wait: ev.WaitRef, run_id: str) -> None:
    kv = await key_value(js, ev.KV_WAITS)
    with contextlib.suppress(*NOT_FOUND):
        await kv.delete(ev.wait_key(wait.signal, wait.key, run_id, wait.node))


async def route(js: JetStreamContext, wake: Callable[[str], None]) -> None:
    """The controller's loop: each signal to the waits registered for it, then `wake` the
    run. A durable consumer, so no signal is missed while the controller is down."""
    sub = await js.pull_subscribe(
        ev.SIGNAL_SUBJECTS,
        durable=ev.SIGNAL_ROUTER,
        stream=ev.STREAM_SIGNALS,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW),
    )
    while True:
        try:
            msgs = await sub.fetch(64, timeout=5.0)
        except TimeoutError:
            continue
        except Exception as exc:  # reconnecting: back off and try again
            log.debug("signal fetch failed: %s", exc)
            await asyncio.sleep(0.5)
            continue
        for msg in msgs:
            try:
                for run_id in await _route_one(js, msg):
                    wake(run_id)
                await msg.ack()
            except Exception:
                log.exception("signal on %s not routed; it will be redelivered", msg.subject)


async def _route_one(js: JetStreamContext, msg: Msg) -> list[str]:
    signal, key = ev.parse_signal_subject(msg.subject)
    woken: list[str] = []
    async for entry in read_stream(
        js,
        ev.kv_stream(ev.KV_WAITS),
        ev.kv_filter(ev.KV_WAITS, ev.waits_prefix(signal, key)),
        DeliverPolicy.LAST_PER_SUBJECT,
    ):
        if entry.headers and entry.headers.get(ev.KV_OPERATION):
            continue
        wait = ev.decode(ev.WaitRegistration, entry.data)
        try:
            payload = check_payload(msg.data, wait.json_schema)
        except ValueError as exc:
            log.warning("signal %s refused for run %s: %s", msg.subject, wait.run_id, exc)
            continue
        await deliver(js, wait.run_id, wait.node, payload, msg.metadata.sequence.stream)
        woken.append(wait.run_id)
    return woken
