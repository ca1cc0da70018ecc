"""Values travel inline up to a limit; larger ones go to the object store as an address.

Blobs are content-addressed (sha256), so the same large value fanned out to a hundred
nodes is stored once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nats.js import JetStreamContext

from actorflow.definitions import events as ev
from actorflow.definitions.errors import PayloadError


def dumps(value: Any) -> bytes:
    """Strict JSON: no NaN, no objects json would stringify by accident."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"value is not JSON-serialisable: {exc}") from exc


class BlobStore:
    """Turns values into `Payload`s and back, through the object store when they are large."""

    def __init__(self, js: JetStreamContext, inline_limit: int) -> None:
        self._js = js
        self._limit = inline_limit
        self._stored: set[str] = set()

    async def to_payload(self, value: Any) -> ev.Payload:
        data = dumps(value)
        if len(data) <= self._limit:
            return ev.Payload.model_construct(inline=value, blob=None)
        name = hashlib.sha256(data).hexdigest()
        if name not in self._stored:
            store = await self._js.object_store(ev.OBJECT_STORE)
            await store.put(name, data)
            self._stored.add(name)
        return ev.Payload(blob=ev.BlobRef(name=name, size=len(data)))

    async def value(self, payload: ev.Payload) -> Any:
        if payload.blob is None:
            return payload.inline
        store = await self._js.object_store(payload.blob.bucket)
        result = await store.get(payload.blob.name)
        return json.loads(result.data or b"null")
