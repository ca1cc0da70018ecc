"""Read a run's captured output back from `AF_LOGS`: all of it so far, or following it live."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actorflow.actors.store.errors import not_found_as
from actorflow.actors.store.streams import read_stream
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)


async def ensure_run_exists(js: JetStreamContext, run_id: str) -> None:
    """NotFoundError unless the run has a history. Its first decision is appended before
    `run()` returns, so a run started a moment ago is found (its record may lag)."""
    with not_found_as("run", run_id):
        await js.get_last_msg(ev.STREAM_HISTORY, ev.run_subject(run_id, ev.DECISIONS), direct=True)


async def read_logs(
    js: JetStreamContext, run_id: str, node: str | None = None
) -> AsyncGenerator[ev.LogLine, None]:
    """Every stored line of the run (or of one node), in the order they were stored."""
    async for msg in read_stream(js, ev.STREAM_LOGS, ev.logs_filter(run_id, node)):
        for line in _lines(msg):
            yield line


async def follow_logs(
    js: JetStreamContext,
    run_id: str,
    node: str | None,
    finished: Callable[[], Awaitable[bool]],
    *,
    poll: float = 0.5,
) -> AsyncGenerator[ev.LogLine, None]:
    """Stored lines, then new ones as they are stored, until the run has finished.

    Whether the run has finished is asked *before* each drain of what is stored: replicas
    store a step's lines before its result, so once the run is finished, one more drain
    has every line there will be.
    """
    subject = ev.logs_filter(run_id, node)
    sub = await js.pull_subscribe(
        subject,
        stream=ev.STREAM_LOGS,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            filter_subject=subject,
        ),
    )
    try:
        while True:
            done = await finished()
            while True:
                try:
                    msgs = await sub.fetch(256, timeout=poll)
                except TimeoutError:
                    break  # nothing more stored for now
                for msg in msgs:
                    for line in _lines(msg):
                        yield line
            if done:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def _lines(msg: Msg) -> list[ev.LogLine]:
    try:
        return ev.decode(ev.LogBatch, msg.data).lines
    except ev.DecodeError as exc:
        log.error("skipping an undecodable log batch on %s: %s", msg.subject, exc)
        return []
