"""Reading every message of a subject with JetStream's batched direct get (ADR-31).

`streams.read_stream` creates a consumer, asks its info, fetches and deletes it: four or
five round trips and the server's work of making a consumer — about 10 ms for a run's
history here. One batched direct get is one request answered by a burst of messages and
an end-of-batch marker: about 1 ms. The price is consistency: any replica of a stream may
answer a direct get, so a write acknowledged a moment ago may be missing from a
follower's answer. That suits what a person or an API client looks at (the SDK's views of
a run), not a driver that folds a history and appends under a sequence fence.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError

_BATCH = 256  # messages per request; a longer history takes more requests
_STATUS, _PENDING = "Status", "Nats-Num-Pending"


class DirectGetUnsupportedError(Exception):
    """The server answered without batch headers (nats-server before 2.11)."""


@dataclass(frozen=True)
class StoredMsg:
    subject: str
    seq: int
    data: bytes


async def read_direct(js: JetStreamContext, stream: str, subject: str) -> AsyncIterator[StoredMsg]:
    """Every message on `subject` (wildcards allowed), in stream order, by batched direct
    gets. Raises `DirectGetUnsupportedError` before yielding anything on a server that cannot."""
    # nats-py has no batched direct get: the request goes out on the JetStream context's
    # own connection and API prefix.
    nc, prefix = js._nc, js._prefix
    timeout = js._timeout
    seq = 1
    while True:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        pending = 0
        try:
            request = {"batch": _BATCH, "seq": seq, "next_by_subj": subject}
            await nc.publish(f"{prefix}.DIRECT.GET.{stream}", json.dumps(request).encode(), inbox)
            while True:
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except NatsTimeoutError as exc:
                    raise TimeoutError(f"direct get on {stream} {subject}: no answer") from exc
                headers = msg.headers or {}
                status = headers.get(_STATUS)
                if status == "404":
                    return  # nothing (more) on the subject
                if status == "204":  # end of this batch
                    pending = int(headers.get(_PENDING, "0"))
                    break
                if status is not None:
                    raise APIError.from_msg(msg)
                if _PENDING not in headers:
                    raise DirectGetUnsupportedError(stream)
                seq = int(headers["Nats-Sequence"]) + 1
                yield StoredMsg(headers["Nats-Subject"], seq - 1, msg.data)
        finally:
            await sub.unsubscribe()
        if pending <= 0:
            return
