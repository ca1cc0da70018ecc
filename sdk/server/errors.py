"""Every error the API answers, in one shape, mapped from the error tree in one table.

``{"error": {"code": "...", "message": "...", "details": {...}}}`` — the code is stable and
for programs, the message one line for people, the details structured (a definition's
issues with file, line and field; a validation error's locations).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from actorflow.definitions.errors import (
    ActorflowError,
    ClusterUnavailableError,
    ControlError,
    DecodeError,
    DefinitionError,
    EventRejectedError,
    FencedError,
    InputError,
    InUseError,
    NotFoundError,
    PayloadError,
    TriggerError,
    WaitTimeoutError,
)


class ApiError(ActorflowError):
    """A refusal of the HTTP layer itself (authentication, permission, size, rate)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        super().__init__(message)


#: Error class → (HTTP status, code); the first class an error is an instance of wins, so
#: subclasses come before their parents.
ERROR_TABLE: list[tuple[type[Exception], int, str]] = [
    (DefinitionError, 422, "definition_invalid"),
    (NotFoundError, 404, "not_found"),
    (InUseError, 409, "in_use"),
    (InputError, 422, "input_invalid"),
    (PayloadError, 422, "payload_invalid"),
    (DecodeError, 422, "payload_invalid"),
    (ControlError, 409, "conflict"),
    (FencedError, 409, "conflict"),
    (EventRejectedError, 422, "event_rejected"),
    (TriggerError, 409, "conflict"),
    (ClusterUnavailableError, 503, "engine_unavailable"),
    (WaitTimeoutError, 504, "timeout"),
    (ActorflowError, 400, "bad_request"),
]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "request_invalid",
    429: "rate_limited",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def respond(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def from_exception(exc: Exception) -> JSONResponse:
    """The one translation: an exception of any kind to the error response."""
    if isinstance(exc, ApiError):
        return respond(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return respond(exc.status_code, code, str(exc.detail), headers=headers)
    for cls, status, code in ERROR_TABLE:
        if isinstance(exc, cls):
            first = (str(exc) or type(exc).__name__).splitlines()[0]
            return respond(status, code, first, _details(exc))
    return respond(500, "internal", f"{type(exc).__name__}: {exc}".splitlines()[0])


def _details(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, DefinitionError):
        return {
            "issues": [
                {"file": i.file, "line": i.line, "field": i.field, "message": i.message}
                for i in exc.issues
            ]
        }
    if isinstance(exc, NotFoundError):
        return {"kind": exc.kind, "name": exc.name}
    if isinstance(exc, EventRejectedError):
        return {"reason": exc.reason}
    return {}


def _validation(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "not JSON")
        return respond(400, "malformed_json", f"the body is not JSON: {reason}")
    issues = [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in errors
    ]
    first = issues[0] if issues else {"location": "", "message": "invalid request"}
    return respond(
        422,
        "request_invalid",
        f"{first['location']}: {first['message']}",
        {"issues": issues},
    )


def install(app: FastAPI) -> None:
    """Route every error through `from_exception` (FastAPI's own included)."""

    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return from_exception(exc)

    for cls in (Exception, ActorflowError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(cls, handle)
