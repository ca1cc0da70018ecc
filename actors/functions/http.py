"""The handler of HTTP nodes: one request with aiohttp, judged by the node's condition.

Secret header values arrive as references (`SecretRef`) and are read here, at the moment of
the call, from the replica's environment or a file: they never enter a definition, a task
or a history, and no message of this module quotes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp

from actorflow.definitions.errors import ErrorCode, ExpressionError, StepError
from actorflow.definitions.expressions import Expression

_BODY_IN_ERROR = 500  # characters of a failing response's body quoted in its message


def _header(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return json.dumps(value)
    prefix = str(value.get("prefix") or "")
    if value.get("from_env"):
        env = str(value["from_env"])
        if env not in os.environ:
            raise StepError(
                ErrorCode.SECRET_MISSING,
                f"header {name}: environment variable {env} is not set",
                retryable=False,
            )
        return prefix + os.environ[env]
    path = Path(str(value.get("from_file")))
    try:
        return prefix + path.read_text().strip()
    except OSError as exc:
        raise StepError(
            ErrorCode.SECRET_MISSING,
            f"header {name}: cannot read {path}: {exc.strerror}",
            retryable=False,
        ) from None


def _decoded(text: str, content_type: str) -> Any:
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


async def run(
    *,
    url: str,
    method: str = "GET",
    headers: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float | None = 30.0,
    success_condition: str = "response.status >= 200 && response.status < 300",
    retry_on: list[int] | None = None,
) -> dict[str, Any]:
    """Make the request; ``{status, headers, body}`` when the condition holds."""
    sent = {name: _header(name, value) for name, value in (headers or {}).items()}
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        kwargs["data"] = body.encode()
    elif body is not None:
        kwargs["json"] = body
    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=limit) as session,
            session.request(method, url, headers=sent, **kwargs) as reply,
        ):
            text = await reply.text(errors="replace")
            response = {
                "status": reply.status,
                "headers": dict(reply.headers),
                "body": _decoded(text, reply.headers.get("Content-Type", "")),
            }
    except TimeoutError as exc:
        raise StepError(ErrorCode.TIMEOUT, f"{method} {url}: no answer within {timeout}s") from exc
    except aiohttp.ClientError as exc:
        reason = f"{method} {url}: {type(exc).__name__}: {exc}"
        raise StepError(ErrorCode.HTTP_UNREACHABLE, reason) from exc
    try:
        ok = Expression.compile(success_condition).evaluate({"response": response})
    except ExpressionError as exc:
        raise StepError(ErrorCode.EXPRESSION_ERROR, str(exc), retryable=False) from exc
    if ok is not True:
        status = response["status"]
        raise StepError(
            f"HTTP_{status}",
            f"{method} {url} answered {status}: {text[:_BODY_IN_ERROR]}",
            retryable=status in (retry_on if retry_on is not None else [429, 500, 502, 503, 504]),
            details={"status": status},
        )
    return response
