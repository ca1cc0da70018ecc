"""The REST API's error answers turned back into the error tree, in one table.

The API answers every error as ``{"error": {"code", "message", "details"}}`` with a code
mapped from the engine's error tree (`actorflow.server.errors`); this is that mapping read
backwards, so code written against the local `Client` catches the same classes through
the API: a 404 is a `NotFoundError`, a 409 a `ControlError` (or `InUseError`), a 422 a
`DefinitionError` with its issues, 401 / 403 an `AuthError` saying what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actorflow.definitions.errors import (
    ActorflowError,
    AuthError,
    ClusterUnavailableError,
    ControlError,
    DefinitionError,
    DefinitionIssue,
    EventRejectedError,
    InputError,
    InUseError,
    NotFoundError,
    PayloadError,
    RemoteApiError,
    WaitTimeoutError,
)

_Build = Callable[[int, str, dict[str, Any], str], ActorflowError]


def _not_found(_: int, message: str, details: dict[str, Any], __: str) -> ActorflowError:
    kind, name = details.get("kind"), details.get("name")
    if isinstance(kind, str) and isinstance(name, str):
        return NotFoundError(kind, name)
    return NotFoundError("resource", message)  # a route the API does not have


def _definition(_: int, message: str, details: dict[str, Any], __: str) -> ActorflowError:
    raw = details.get("issues")
    issues = [
        DefinitionIssue(
            str(i.get("message", "")),
            file=i.get("file"),
            line=i.get("line"),
            field=i.get("field"),
        )
        for i in (raw if isinstance(raw, list) else [])
        if isinstance(i, dict)
    ]
    return DefinitionError(issues or [DefinitionIssue(message)])


def _rejected(_: int, message: str, details: dict[str, Any], __: str) -> ActorflowError:
    reason = str(details.get("reason", "schema"))
    return EventRejectedError(reason, message.removeprefix(f"{reason}: "))


def _auth(status: int, message: str, _: dict[str, Any], url: str) -> ActorflowError:
    if status == 401:
        return AuthError(
            status,
            "unauthenticated",
            f"the REST API at {url} refused the token ({message}): set ACTORFLOW_API_TOKEN "
            "or ACTORFLOW_API_TOKEN_FILE to a valid one (`actorflow tokens create USER`)",
        )
    return AuthError(status, "forbidden", f"the REST API at {url} refused: {message}")


def _simple(cls: Callable[[str], ActorflowError]) -> _Build:
    return lambda _status, message, _details, _url: cls(message)


#: The API's error code → how to rebuild the error the engine raised. A code not here (a
#: rate limit past the retries, a malformed request, a server error) is a `RemoteApiError`
#: with its status and code.
ERROR_CODES: dict[str, _Build] = {
    "not_found": _not_found,
    "definition_invalid": _definition,
    "input_invalid": _simple(InputError),
    "request_invalid": _simple(InputError),
    "payload_invalid": _simple(PayloadError),
    "too_large": _simple(PayloadError),
    "event_rejected": _rejected,
    "conflict": _simple(ControlError),
    "in_use": _simple(InUseError),
    "timeout": _simple(WaitTimeoutError),
    "unauthenticated": _auth,
    "forbidden": _auth,
    "engine_unavailable": lambda _s, message, _d, url: ClusterUnavailableError(
        "the engine behind the REST API", url, message
    ),
}


def error_from_answer(status: int, body: Any, url: str) -> ActorflowError:
    """The error an API answer of `status` with `body` (parsed JSON, or anything else for
    an answer that is not the API's) stands for."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return RemoteApiError(
            status,
            "not_api",
            f"{url} answered HTTP {status} without the API's error shape: is "
            "ACTORFLOW_API_URL the actorflow REST API?",
        )
    code = str(error.get("code") or "error")
    message = str(error.get("message") or f"HTTP {status}")
    details = error.get("details")
    details = details if isinstance(details, dict) else {}
    if status in (401, 403):  # whatever the code says, this is about the token
        return _auth(status, message, details, url)
    build = ERROR_CODES.get(code)
    if build is None:
        return RemoteApiError(status, code, f"the REST API answered {status} {code}: {message}")
    return build(status, message, details, url)
