"""The REST API served in-process on a free port, over its own engine client on the
session's cluster (a uvicorn server on a private event-loop thread)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from actorflow._client import AsyncClient
from actorflow.cluster.settings import Settings
from actorflow.server.serve import server
from actorflow.server.store import AccessStore

_T = TypeVar("_T")


@dataclass
class Served:
    """A running API: its URL, and its access store to run calls on (from the tests'
    thread, on the server's loop)."""

    url: str
    store: AccessStore
    loop: asyncio.AbstractEventLoop
    admin_token: str = ""

    def call(self, op: Callable[[AccessStore], Coroutine[Any, Any, _T]]) -> _T:
        return asyncio.run_coroutine_threadsafe(op(self.store), self.loop).result(60)

    def token(self, user: str, roles: dict[str, Any] | None = None, **options: Any) -> str:
        """A token of `user` (added with `roles` first when given)."""
        if roles is not None:
            self.call(lambda s: s.add_user(user, roles))
        token, _ = self.call(lambda s: s.create_token(user, **options))
        return token


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[Served]:
    """The base URL of a running API; stopped (and its client closed) on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-test", daemon=True)
    thread.start()

    async def start() -> tuple[AsyncClient, AccessStore, Any, asyncio.Task[None]]:
        client = AsyncClient(settings, log_to_driver=False)
        await client.connect()
        store = await AccessStore.open(client.js, settings.home)
        srv = server(client, store, settings.model_copy(update={"api_port": 0}))
        task = asyncio.ensure_future(srv.serve())
        await asyncio.wait_for(srv.ready.wait(), 30)
        return client, store, srv, task

    client, store, srv, task = asyncio.run_coroutine_threadsafe(start(), loop).result(60)

    async def stop() -> None:
        srv.should_exit = True
        await asyncio.wait_for(task, 30)
        await client.close()

    try:
        yield Served(srv.url, store, loop)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """The error body of `response`, checked to have the one shape, status and code."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return dict(body["error"])
