"""The webhook endpoint: ``POST /hooks/<trigger>`` on a small aiohttp server in the controller.

A delivery is checked here (size, signature, JSON) and appended to the trigger's stream
subject (``af.trigger.<name>.hook``) with ``Nats-Msg-Id`` = trigger + delivery id, so a
sender's retry of the same delivery is stored once and starts one run; the trigger host
consumes it like any other event (durably, with backpressure). A refused delivery is
answered with its status and recorded on ``af.trigger.<name>.rejected`` so the trigger's
counts show it; it never starts a run.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from nats.js import JetStreamContext

from actorflow.actors.store.retry import with_retries
from actorflow.definitions import events as ev
from actorflow.triggers.evaluate import DELIVERY_HEADERS, SIGNATURE_HEADERS, signature_ok
from actorflow.triggers.store import TriggerRecord

log = logging.getLogger(__name__)


class WebhookServer:
    """Owned by the trigger service; `start` binds, `close` unbinds."""

    def __init__(
        self,
        js: JetStreamContext,
        host: str,
        port: int,
        lookup: Callable[[str], TriggerRecord | None],
    ) -> None:
        self._js = js
        self._host = host
        self._port = port
        self._lookup = lookup
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hooks/{trigger}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["trigger"]
        record = self._lookup(name)
        if record is None or record.trigger.spec.source.webhook is None:
            return _error(404, f"no webhook trigger {name!r}")
        if not record.enabled:
            return _error(409, f"trigger {name!r} is disabled")
        spec = record.trigger.spec
        limit = spec.max_payload
        too_large = f"body over the {limit}-byte limit"
        if request.content_length is not None and request.content_length > limit:
            return await self._reject(name, 413, "too_large", too_large)
        body = await _read_at_most(request, limit)
        if body is None:
            return await self._reject(name, 413, "too_large", too_large)
        secret = spec.source.webhook.secret if spec.source.webhook else None
        if secret:
            header = next(
                (request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers), None
            )
            if not signature_ok(secret, body, header):
                why = "missing signature" if header is None else "bad signature"
                return await self._reject(name, 401, "signature", why)
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return await self._reject(name, 400, "not_json", f"body is not JSON: {exc}")
        delivery = _first(request, DELIVERY_HEADERS) or uuid.uuid4().hex
        headers = {ev.MSG_ID: ev.webhook_msg_id(name, delivery), ev.DELIVERY: delivery}
        for key in (ev.TRACEPARENT, ev.TRACESTATE):  # the sender's trace goes on in the run
            if (value := request.headers.get(key)) and len(value) <= 512:
                headers[key] = value
        subject = ev.trigger_event_subject(name, "hook")
        ack = await with_retries(
            lambda: self._js.publish(subject, body, headers=headers), f"webhook {name}"
        )
        payload: dict[str, Any] = {
            "trigger": name,
            "delivery": delivery,
            "duplicate": ack.duplicate,
        }
        return web.json_response(payload, status=202)

    async def _reject(self, name: str, status: int, reason: str, message: str) -> web.Response:
        """Answer the sender and record the refusal for the trigger's counts."""
        headers = {
            ev.REJECT_REASON: reason,
            ev.REJECT_MESSAGE: message[:300],
            ev.MSG_ID: uuid.uuid4().hex,
        }
        try:
            await self._js.publish(ev.trigger_event_subject(name, "rejected"), b"", headers=headers)
        except Exception as exc:  # the refusal stands even if it cannot be counted
            log.warning("webhook %s: refusal not recorded: %s", name, exc)
        return _error(status, f"{reason}: {message}")


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes `limit` bytes (never buffered beyond it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _first(request: web.Request, names: tuple[str, ...]) -> str | None:
    return next((request.headers[h] for h in names if h in request.headers), None)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
