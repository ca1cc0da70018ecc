"""Connect to NATS and make sure the streams and buckets of the wire contract exist."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.kv import KeyValue

from actorflow.actors.config import EngineTunables
from actorflow.actors.store.errors import API_ERROR, BAD_REQUEST, NOT_FOUND, reason
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ClusterUnavailableError

log = logging.getLogger(__name__)

# Captured step output must never fill the disk: AF_LOGS is bounded in age and bytes (the
# tunables; the oldest batches go first), and refuses a single message over 1 MiB
# (replicas split their batches well below that).
LOGS_MAX_MSG_SIZE = 1024**2


async def connect(
    url: str,
    *,
    name: str,
    connect_timeout: float = 5.0,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> NatsClient:
    """Connect with endless reconnects: a restarted nats-server must not strand an actor."""
    try:
        # Reconnects are endless once connected, so bound the first connection ourselves.
        return await asyncio.wait_for(
            _connect(url, name, min(connect_timeout, 2.0), on_reconnect), connect_timeout
        )
    except TimeoutError:
        raise ClusterUnavailableError(
            "NATS", url, f"no server answered within {connect_timeout:g}s"
        ) from None
    except Exception as exc:
        raise ClusterUnavailableError("NATS", url, str(exc) or type(exc).__name__) from exc


async def _connect(
    url: str,
    name: str,
    attempt_timeout: float,
    on_reconnect: Callable[[], Awaitable[None]] | None,
) -> NatsClient:
    async def on_error(exc: Exception) -> None:
        log.debug("nats error on %s: %s", name, exc)

    # `on_reconnect` hears of the drop too, not only of the reconnect: the client delivers
    # messages (a replica's fetched task) while it flushes on reconnecting, before it calls
    # `reconnected_cb`, and a replica must already treat those as possibly run before.
    extra: dict[str, Any] = (
        {"reconnected_cb": on_reconnect, "disconnected_cb": on_reconnect} if on_reconnect else {}
    )
    # A cluster's URLs come comma-separated; the client fails over between them.
    return await nats.connect(
        [part.strip() for part in url.split(",") if part.strip()],
        name=name,
        connect_timeout=attempt_timeout,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        allow_reconnect=True,
        error_cb=on_error,
        pending_size=64 * 1024 * 1024,
        **extra,
    )


_buckets: weakref.WeakKeyDictionary[JetStreamContext, dict[str, KeyValue]] = (
    weakref.WeakKeyDictionary()
)


async def key_value(js: JetStreamContext, bucket: str) -> KeyValue:
    """`js.key_value(bucket)`, looked up once per connection: the lookup is a stream-info
    round trip, and a run's record writes are on the hot path."""
    cached = _buckets.setdefault(js, {})
    kv = cached.get(bucket)
    if kv is None:
        kv = cached[bucket] = await js.key_value(bucket)
    return kv


async def ensure_infrastructure(js: JetStreamContext, config: EngineTunables) -> None:
    """Idempotently create streams, KV buckets and the object store (safe from every actor)."""
    replicas = config.stream_replicas
    week = 7 * 86400.0
    # name, subjects, what differs from the common settings (file storage, limits retention)
    streams: list[tuple[str, str, dict[str, Any]]] = [
        (ev.STREAM_HISTORY, ev.HISTORY_SUBJECTS, {"duplicate_window": 120.0, "allow_direct": True}),
        (
            ev.STREAM_TASKS,
            ev.TASK_SUBJECTS,
            {"duplicate_window": 120.0, "retention": RetentionPolicy.WORK_QUEUE},
        ),
        (ev.STREAM_EVENTS, ev.EVENT_SUBJECTS, {"max_age": week, "discard": DiscardPolicy.OLD}),
        (
            ev.STREAM_SIGNALS,
            ev.SIGNAL_SUBJECTS,
            {
                "max_age": week,
                "max_msgs_per_subject": 16,
                "duplicate_window": 120.0,
                "allow_direct": True,
            },
        ),
        (
            ev.STREAM_TRIGGERS,
            ev.TRIGGER_SUBJECTS,
            {"max_age": week, "duplicate_window": 120.0, "allow_direct": True},
        ),
        # Concurrency queues: never aged out (a queued run may wait for days); each queue
        # is compacted by the runs that release their places (see actors/run/queue.py).
        (ev.STREAM_QUEUES, ev.QUEUE_SUBJECTS, {"duplicate_window": 120.0, "allow_direct": True}),
        (
            ev.STREAM_LOGS,
            ev.LOG_SUBJECTS,
            {
                "max_age": config.logs_max_age_days * 86400.0,
                "max_bytes": config.logs_max_bytes,
                "max_msg_size": LOGS_MAX_MSG_SIZE,
                "discard": DiscardPolicy.OLD,
                "duplicate_window": 120.0,
            },
        ),
    ]
    for name, subjects, extra in streams:
        settings: dict[str, Any] = {"retention": RetentionPolicy.LIMITS, **extra}
        stream = StreamConfig(
            name=name,
            subjects=[subjects],
            storage=StorageType.FILE,
            num_replicas=replicas,
            **settings,
        )
        await _ensure_stream(js, stream)
    for bucket in (ev.KV_DEFINITIONS, ev.KV_RUNS, ev.KV_WAITS, ev.KV_TRIGGERS):
        await ensure_key_value(
            js,
            KeyValueConfig(bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE),
        )
    await _ensure_bucket(
        js,
        f"OBJ_{ev.OBJECT_STORE}",
        replicas,
        lambda: js.create_object_store(
            ev.OBJECT_STORE,
            ObjectStoreConfig(bucket=ev.OBJECT_STORE, replicas=replicas, storage=StorageType.FILE),
        ),
    )


async def ensure_key_value(js: JetStreamContext, config: KeyValueConfig) -> None:
    """Create a KV bucket, or give an existing one at least `config.replicas` replicas."""

    async def create() -> Any:
        return await js.create_key_value(config=config)

    await _ensure_bucket(js, ev.kv_stream(config.bucket), config.replicas, create)


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    name = config.name or ""
    try:
        info = await js.stream_info(name)
    except NOT_FOUND:
        try:
            await js.add_stream(config)
            return
        except BAD_REQUEST:  # created concurrently by another actor (or a refused config)
            info = await _created_meanwhile(js, name, config.num_replicas or 1)
        except API_ERROR as exc:
            raise _replicas_refused(name, config.num_replicas or 1, exc) from None
    await _reconcile_replicas(js, info, config.num_replicas or 1)


async def _ensure_bucket(
    js: JetStreamContext, stream: str, replicas: int, create: Callable[[], Awaitable[Any]]
) -> None:
    """A KV bucket or object store, by the stream behind it (which says its replicas)."""
    try:
        info = await js.stream_info(stream)
    except NOT_FOUND:
        try:
            await create()
            return
        except BAD_REQUEST:
            info = await _created_meanwhile(js, stream, replicas)
        except API_ERROR as exc:
            raise _replicas_refused(stream, replicas, exc) from None
    await _reconcile_replicas(js, info, replicas)


async def _created_meanwhile(js: JetStreamContext, name: str, replicas: int) -> StreamInfo:
    """After a 400 on create: the stream another actor made meanwhile — or, when there is
    none, the refusal itself (e.g. more replicas than the cluster has servers)."""
    try:
        return await js.stream_info(name)
    except NOT_FOUND:
        raise _replicas_refused(name, replicas, None) from None


async def _reconcile_replicas(js: JetStreamContext, info: StreamInfo, replicas: int) -> None:
    """Raise a stream made with fewer replicas (a cluster grown from one server, or
    ``ACTORFLOW_STREAM_REPLICAS`` raised) to `replicas`: JetStream copies its messages to
    the new peers while it serves. A stream with more is left as it is: an engine started
    with the default 1 must not take an operator's three away."""
    have = info.config.num_replicas or 1
    if have >= replicas:
        return
    name = info.config.name or ""
    try:
        await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
    except API_ERROR as exc:
        raise _replicas_refused(name, replicas, exc, have) from None
    log.info("stream %s: replicas %d -> %d", name, have, replicas)


def _replicas_refused(
    stream: str, replicas: int, exc: Exception | None, have: int | None = None
) -> ClusterUnavailableError:
    what = (
        f"has {have} replicas and cannot get {replicas}"
        if have
        else f"cannot have {replicas} replicas"
    )
    told = f"JetStream says: {reason(exc)}; " if exc is not None else ""
    return ClusterUnavailableError(
        "NATS",
        f"stream {stream}",
        f"{what} (ACTORFLOW_STREAM_REPLICAS={replicas}): {told}"
        f"{replicas} replicas need a JetStream cluster of at least {replicas} servers",
    )
