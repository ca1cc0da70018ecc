"""What every route gets from the app: the engine client it was built with."""

from __future__ import annotations

from fastapi import Request

from actorflow._client import AsyncClient


def engine_client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client
