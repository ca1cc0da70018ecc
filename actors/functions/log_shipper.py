"""Ship the captured output of a replica's requests to the `AF_LOGS` stream.

Lines are batched: every `interval` seconds each running request's new lines go out as one
`LogBatch` message on ``af.log.<run_id>.<node>``, and a request's last lines go out when it
ends — *before* the replica publishes its result, so a step shown done has all its lines
stored. Publishing is acknowledged by JetStream (a stored batch is really stored) and
best effort: a failure is logged and the batch dropped, never raised into the step, and
one publish waits at most `timeout` seconds, so a struggling server costs a step at most
that. Each batch carries a `Nats-Msg-Id` unique to its execution, so a retried publish is
stored once while a redelivered task's new execution is stored in full.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets

from nats.js import JetStreamContext

from actorflow.actors.functions.capture import LogTag, TaskLog
from actorflow.actors.store.tracing import carrier
from actorflow.definitions import events as ev

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 2.0
# Under AF_LOGS's 1 MiB message limit even if every character took 6 bytes of JSON.
MAX_BATCH_CHARS = 128 * 1024


class LogShipper:
    """One per replica process; owns one background flusher that runs only while requests do."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        interval: float,
        timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self._js = js
        self._interval = interval
        self._timeout = timeout
        self._open: dict[TaskLog, _Shipping] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0  # lines lost to publish failures, for stats

    def open(self, tag: LogTag) -> TaskLog:
        task_log = TaskLog(tag)
        self._open[task_log] = _Shipping(ev.log_subject(tag.run_id, tag.node))
        if self._flusher is None or self._flusher.done():
            # A fresh context: the flusher's own log records belong to no request.
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_loop(), context=contextvars.Context()
            )
        return task_log

    async def close(self, task_log: TaskLog) -> None:
        """Ship the request's remaining lines; returns once they are stored (or dropped)."""
        shipping = self._open.pop(task_log, None)
        if shipping is not None:
            await self._ship(task_log, shipping, final=True)

    async def _flush_loop(self) -> None:
        while self._open:
            await asyncio.sleep(self._interval)
            for task_log, shipping in list(self._open.items()):
                await self._ship(task_log, shipping, final=False)

    async def _ship(self, task_log: TaskLog, shipping: _Shipping, *, final: bool) -> None:
        # One request's batches go out one at a time, so the stream keeps its line order.
        async with shipping.lock:
            batches = _batches(task_log.take(final=final))
            for number, batch in enumerate(batches):
                shipping.batches += 1
                msg_id = ev.log_batch_msg_id(shipping.execution, shipping.batches)
                try:
                    await self._js.publish(
                        shipping.subject,
                        ev.encode(ev.LogBatch(lines=batch)),
                        timeout=self._timeout,
                        headers={ev.MSG_ID: msg_id, **shipping.headers},
                    )
                except Exception as exc:
                    # Give up on this flush's remaining batches too: if the server did not
                    # answer, waiting for it again per batch would slow the step down.
                    lost = sum(len(b) for b in batches[number:])
                    self.dropped += lost
                    log.warning(
                        "dropped %d log lines of %s/%s: %s",
                        lost,
                        task_log.tag.run_id,
                        task_log.tag.node,
                        exc or type(exc).__name__,
                    )
                    return


class _Shipping:
    __slots__ = ("batches", "execution", "headers", "lock", "subject")

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.headers = carrier()  # the request's trace (opened in the request's context)
        self.execution = secrets.token_hex(8)
        self.batches = 0
        self.lock = asyncio.Lock()


def _batches(lines: list[ev.LogLine]) -> list[list[ev.LogLine]]:
    out: list[list[ev.LogLine]] = []
    size = MAX_BATCH_CHARS
    for line in lines:
        cost = len(line.text) + 256  # the tags and JSON around the text
        if size + cost > MAX_BATCH_CHARS:
            out.append([])
            size = 0
        out[-1].append(line)
        size += cost
    return out
