"""SQLAlchemy's exceptions as `SQL_*` step errors: the one table SQL steps fail through.

SQLAlchemy wraps every driver's errors in the DB-API classes (`IntegrityError`,
`ProgrammingError`, `OperationalError` …), so the class decides the code; where drivers
file one kind of error under another class, the database's own code refines it: a
PostgreSQL SQLSTATE (``42601`` syntax error, ``57014`` statement cancelled, class ``08``
connection trouble, class ``28`` bad credentials) or SQLite's error name (its syntax
errors and unknown tables are ``OperationalError`` s with ``SQLITE_ERROR``).

Messages are the database's own (PostgreSQL's DETAIL included), with any occurrence of
the password masked (``***``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import exc as sa_exc

from actorflow.definitions.errors import ErrorCode, StepError

_MASK = "***"
_MESSAGE_LIMIT = 1000  # characters of a database's message kept in the error

# (class, code, retryable): the first class the error is an instance of decides.
_DBAPI_CODES: tuple[tuple[type[sa_exc.DBAPIError], ErrorCode, bool], ...] = (
    (sa_exc.IntegrityError, ErrorCode.SQL_INTEGRITY, False),
    (sa_exc.DataError, ErrorCode.SQL_DATA, False),
    (sa_exc.ProgrammingError, ErrorCode.SQL_PROGRAMMING, False),
    (sa_exc.NotSupportedError, ErrorCode.SQL_PROGRAMMING, False),
    (sa_exc.InterfaceError, ErrorCode.SQL_PROGRAMMING, False),
    (sa_exc.OperationalError, ErrorCode.SQL_OPERATIONAL, True),
    (sa_exc.InternalError, ErrorCode.SQL_OPERATIONAL, True),
)
# PostgreSQL SQLSTATEs (or their two-character class) that say more than the class.
_SQLSTATE_CODES: dict[str, tuple[ErrorCode, bool]] = {
    "42601": (ErrorCode.SQL_SYNTAX, False),  # syntax_error
    "57014": (ErrorCode.SQL_TIMEOUT, True),  # query_canceled (statement_timeout)
    "55P03": (ErrorCode.SQL_TIMEOUT, True),  # lock_not_available (lock_timeout)
    "08": (ErrorCode.SQL_CONNECTION, True),  # connection_exception
    "28": (ErrorCode.SQL_CONNECTION, False),  # invalid_authorization_specification
    "57P": (ErrorCode.SQL_CONNECTION, True),  # admin / crash shutdown, cannot connect now
}
_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")
_SQLITE_SYNTAX = ("syntax error", "incomplete input", "unrecognized token")


def sql_error(
    exc: BaseException, *, connection: str, connecting: bool = False, secret: str | None = None
) -> StepError:
    """The step error for `exc`, raised while `connecting` to or running a statement on
    `connection` (its ``name@version``); `secret` is masked wherever it appears."""
    code, retryable, details = _classify(exc, connecting=connecting)
    message = _masked(_message_of(exc), secret)
    what = "cannot connect" if code is ErrorCode.SQL_CONNECTION and connecting else "failed"
    return StepError(
        code,
        f"{connection}: {what}: {message}",
        retryable=retryable,
        details={"connection": connection, **details},
    )


def _classify(exc: BaseException, *, connecting: bool) -> tuple[ErrorCode, bool, dict[str, Any]]:
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give in time
        return ErrorCode.SQL_TIMEOUT, True, {}
    if isinstance(exc, ImportError | sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return ErrorCode.SQL_CONNECTION, False, {}  # no driver, or a URL it cannot use
    if isinstance(exc, sa_exc.DBAPIError):
        return _classify_dbapi(exc, connecting=connecting)
    if isinstance(exc, sa_exc.StatementError):  # e.g. a value no driver can bind
        return ErrorCode.SQL_PROGRAMMING, False, {}
    return ErrorCode.SQL_OPERATIONAL, True, {}


def _classify_dbapi(
    exc: sa_exc.DBAPIError, *, connecting: bool
) -> tuple[ErrorCode, bool, dict[str, Any]]:
    details: dict[str, Any] = {"dbapiError": type(exc.orig).__name__}
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        details["sqlstate"] = sqlstate
        for key in (sqlstate, sqlstate[:3], sqlstate[:2]):
            if key in _SQLSTATE_CODES:
                code, retryable = _SQLSTATE_CODES[key]
                return code, retryable, details
    if connecting or exc.connection_invalidated:
        return ErrorCode.SQL_CONNECTION, True, details
    name = getattr(exc.orig, "sqlite_errorname", None)
    if isinstance(name, str):
        details["sqliteError"] = name
        if name == "SQLITE_ERROR":  # SQLite's catch-all: a statement it cannot run as written
            text = str(exc.orig).lower()
            if any(marker in text for marker in _SQLITE_SYNTAX):
                return ErrorCode.SQL_SYNTAX, False, details
            return ErrorCode.SQL_PROGRAMMING, False, details
    for cls, code, retryable in _DBAPI_CODES:
        if isinstance(exc, cls):
            return code, retryable, details
    return ErrorCode.SQL_OPERATIONAL, True, details


def _message_of(exc: BaseException) -> str:
    """The database's own words (not SQLAlchemy's wrapping, which repeats the statement
    and its parameters)."""
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) else None
    source = orig if isinstance(orig, BaseException) else exc
    text = _BACKGROUND.sub("", str(source))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:_MESSAGE_LIMIT] or type(source).__name__


def _masked(text: str, secret: str | None) -> str:
    return text.replace(secret, _MASK) if secret else text
