"""The handler of SQL nodes: one statement, its params bound, in one transaction.

Every SQL node's task comes here on its implicit pool (`definitions.models.builtin_function`)
with the connection the run pinned when it started (its URL, without a password, and the
password's reference) and the node's params rendered. The params are bound by SQLAlchemy
(``text()`` with ``:name``), never spliced into the query, so a value is data whatever it
holds. The password is read here, at the call, and reaches only the driver.

An engine (and so its connection pool) is kept per URL and password reference for the
replica's life: steps on one database share warm connections. A changed password (a
rotated secret) replaces the engine. Blocking DB-API calls run on a worker thread; a
cancelled step (its timeout, a replica draining) interrupts its statement.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import math
import sys
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from actorflow.actors.functions.secrets import SecretMissingError, read_secret
from actorflow.actors.functions.sql_errors import sql_error
from actorflow.definitions.errors import ErrorCode, StepError

DEFAULT_MAX_ROWS = 1000  #: rows a query's output holds at most, unless the node says

_engines: dict[tuple[str, str], tuple[str, Engine]] = {}
_engines_lock = threading.Lock()


async def run(
    *,
    connection: str,
    url: str,
    query: str,
    password: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Any:
    """Run `query` on the database at `url`; the rows as a list of objects (at most
    `max_rows`), or ``{"rowCount": n}`` for a statement that returns none.

    Raises:
        StepError: ``SECRET_MISSING`` (the password cannot be read here), or a ``SQL_*``
            code (`sql_errors`).
    """
    secret = None
    if password is not None:
        try:
            secret = read_secret(password)
        except SecretMissingError as exc:
            raise StepError(
                ErrorCode.SECRET_MISSING,
                f"{connection}: the password cannot be read: {exc.reason}",
                retryable=False,
            ) from None
    statement = _Statement(
        connection=connection,
        url=url,
        secret=secret,
        password=password,
        query=query,
        params=dict(params or {}),
        max_rows=max_rows,
    )
    try:
        rows, cut = await asyncio.to_thread(statement.execute)
    except asyncio.CancelledError:
        statement.interrupt()  # the thread's statement fails, rolls back, frees its connection
        raise
    if cut:
        sys.stderr.write(
            f"sql: {connection}: the query returned more than maxRows={max_rows} rows; "
            f"the output holds the first {max_rows}\n"
        )
    return rows


def dispose_engines() -> None:
    """Close every pooled connection of this process (tests; a replica going away)."""
    with _engines_lock:
        engines = [engine for _, engine in _engines.values()]
        _engines.clear()
    for engine in engines:
        engine.dispose()


class _Statement:
    """One step's statement, run on a worker thread; `interrupt` may come from the loop."""

    def __init__(
        self,
        *,
        connection: str,
        url: str,
        secret: str | None,
        password: Mapping[str, Any] | None,
        query: str,
        params: dict[str, Any],
        max_rows: int,
    ) -> None:
        self.connection = connection
        self.url = url
        self.secret = secret
        self.password_ref = repr(sorted((password or {}).items()))
        self.query = query
        self.params = params
        self.max_rows = max_rows
        self._dbapi: Any = None
        self._interrupted = False
        self._lock = threading.Lock()

    def execute(self) -> tuple[Any, bool]:
        try:
            engine = _engine(self.url, self.password_ref, self.secret)
            conn = engine.connect()
        except (sa_exc.SQLAlchemyError, ImportError) as exc:
            raise self._error(exc, connecting=True) from None
        try:
            with conn:
                self._attach(conn)
                with conn.begin():  # one transaction: committed on success, else rolled back
                    return self._run(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(exc) from None
        finally:
            self._attach(None)

    def _run(self, conn: Connection) -> tuple[Any, bool]:
        if self._interrupted:  # cancelled before it started (an interrupt would miss it)
            raise StepError(ErrorCode.SQL_TIMEOUT, f"{self.connection}: interrupted")
        result = conn.execute(text(self.query), self.params)
        if not result.returns_rows:
            return {"rowCount": result.rowcount}, False
        rows = result.mappings().fetchmany(self.max_rows + 1)
        cut = len(rows) > self.max_rows
        result.close()  # the rest, if any, is not read
        return [{k: _json(v) for k, v in row.items()} for row in rows[: self.max_rows]], cut

    def _error(self, exc: BaseException, *, connecting: bool = False) -> StepError:
        if self._interrupted:  # the step was cancelled: whatever the driver said is moot
            return StepError(ErrorCode.SQL_TIMEOUT, f"{self.connection}: interrupted")
        return sql_error(exc, connection=self.connection, connecting=connecting, secret=self.secret)

    def _attach(self, conn: Connection | None) -> None:
        with self._lock:
            self._dbapi = conn.connection.dbapi_connection if conn is not None else None
            if self._dbapi is not None and self._interrupted:
                _interrupt(self._dbapi)

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._dbapi is not None:
                _interrupt(self._dbapi)


def _interrupt(dbapi: Any) -> None:
    """Stop the statement a DB-API connection is running, from another thread: SQLite's
    ``interrupt()``, psycopg's ``cancel_safe()`` / ``cancel()``; others run to the end."""
    for name in ("interrupt", "cancel_safe", "cancel"):
        method = getattr(dbapi, name, None)
        if callable(method):
            with contextlib.suppress(Exception):  # finished already, or the connection is gone
                method()
            return


def _engine(url: str, password_ref: str, secret: str | None) -> Engine:
    """The engine for (`url`, password reference), created once per replica process and
    replaced when the password read now differs from the one it was made with."""
    digest = hashlib.sha256((secret or "").encode()).hexdigest()
    key = (url, password_ref)
    with _engines_lock:
        held = _engines.get(key)
        if held is not None and held[0] == digest:
            return held[1]
        target = make_url(url)
        if secret is not None:
            target = target.set(password=secret)
        engine = create_engine(target, pool_pre_ping=True)
        _engines[key] = (digest, engine)
    if held is not None:
        held[1].dispose()  # the old password's connections
    return engine


def _json(value: Any) -> Any:
    """A column value as JSON: dates and times in ISO 8601, whole decimals as integers and
    others as floats, UUIDs as text, bytes as base64, intervals as seconds; arrays and
    JSON columns as themselves; NaN and infinities as text."""
    if isinstance(value, float | Decimal) and not math.isfinite(value):
        return str(value)  # NaN and the infinities have no JSON number
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)
