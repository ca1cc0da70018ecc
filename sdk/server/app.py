"""The ASGI application: routes, the one error shape, and the body-size bound.

Example:
    ```python
    async with AsyncClient() as client:
        access = await AccessStore.open(client.js, client.settings.home)
        app = create_app(client, access)   # serve with uvicorn, or `actorflow serve`
    ```
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actorflow._client import AsyncClient
from actorflow.server import errors, routes_definitions, routes_graph, routes_runs, ui
from actorflow.server.models import Health
from actorflow.server.ratelimit import RateLimiter
from actorflow.server.store import AccessStore

#: The largest request body the API reads (a definition, a start's inputs, an event).
MAX_BODY = 1024 * 1024

API_VERSION = "1"


class _BodyLimit:
    """413 for a body over `limit`: at once when Content-Length says so, else as soon as
    the bytes read pass it (a chunked upload), before any route sees them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # FastAPI passes an HTTPException raised while it parses a body through
                # (any other error there becomes a 400).
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"the request body is over {self.limit} bytes"

    async def _refuse(self, send: Send) -> None:
        response = errors.respond(413, "too_large", self._message())
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def create_app(
    client: AsyncClient, access: AccessStore | None, limiter: RateLimiter | None = None
) -> FastAPI:
    """The API over a connected `client` and the access store (the app closes neither;
    without a store every authenticated route answers 401)."""
    app = FastAPI(
        title="actorflow",
        version=API_VERSION,
        description="Durable, event-driven workflows: definitions, runs, logs, signals.",
    )
    app.state.client = client
    app.state.access = access
    app.state.limiter = limiter
    errors.install(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Up (needs no token)."""
        return Health()

    app.include_router(routes_definitions.router, tags=["definitions"])
    app.include_router(routes_graph.router, tags=["graph"])
    app.include_router(routes_runs.router, tags=["runs"])
    app.include_router(ui.router)
    app.add_middleware(_BodyLimit)
    return app


def openapi_document(app: FastAPI | None = None) -> dict[str, Any]:
    """The OpenAPI document (no engine needed: the routes alone make it)."""
    return (app or create_app(AsyncClient.__new__(AsyncClient), None)).openapi()
