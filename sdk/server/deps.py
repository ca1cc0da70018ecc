"""What every route gets from the app: the engine client, the access store, and the
authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from actorflow._client import AsyncClient
from actorflow.server.access import User
from actorflow.server.errors import ApiError
from actorflow.server.ratelimit import RateLimiter
from actorflow.server.store import AccessStore

_bearer = HTTPBearer(auto_error=False, description="A token from `actorflow tokens create USER`.")


@dataclass(frozen=True)
class Caller:
    user: User
    token_id: str


def engine_client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client


def access_store(request: Request) -> AccessStore:
    store: AccessStore | None = request.app.state.access
    if store is None:
        raise ApiError(503, "engine_unavailable", "the API was started without its store")
    return store


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The user the request's bearer token belongs to; 401 without a valid one."""
    if credentials is None:
        raise ApiError(
            401,
            "unauthenticated",
            "send 'Authorization: Bearer TOKEN' (a token from `actorflow tokens create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user, token_id = await access_store(request).authenticate(credentials.credentials)
    who = Caller(user=user, token_id=token_id)
    limiter: RateLimiter | None = request.app.state.limiter
    if limiter is not None:
        limiter.take(token_id)
    return who


Authenticated = Annotated[Caller, Depends(caller)]
Store = Annotated[AccessStore, Depends(access_store)]
EngineClient = Annotated[AsyncClient, Depends(engine_client)]
