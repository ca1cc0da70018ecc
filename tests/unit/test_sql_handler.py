"""The SQL handler against a real SQLite file (no Ray, no NATS): params bound, never
spliced; output shaping and the maxRows cut; one transaction per step; errors mapped to
SQL_* codes; the password read at the call and kept out of messages; the engine pool kept
per URL; a cancelled step's statement interrupted."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from actorflow.actors.functions import sql
from actorflow.actors.functions.sql_errors import sql_error
from actorflow.definitions.errors import ErrorCode, StepError

HOSTILE = "x'); DROP TABLE t; --"
COUNT_FOREVER = (
    "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"
)


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    yield
    sql.dispose_engines()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table t (id integer primary key, name text not null unique, n int)")
    return f"sqlite:///{path}"


async def _sql(url: str, query: str, **kw: Any) -> Any:
    return await sql.run(connection="db@1", url=url, query=query, **kw)


def _rows(url: str, query: str = "select name, n from t order by id") -> list[tuple[Any, ...]]:
    """Read the file with plain sqlite3: what another client sees, i.e. what committed."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return list(conn.execute(query))


async def test_params_are_bound_never_spliced(db: str) -> None:
    insert = "insert into t (name, n) values (:name, :n)"
    out = await _sql(db, insert, params={"name": HOSTILE, "n": None})
    assert out == {"rowCount": 1}
    assert _rows(db) == [(HOSTILE, None)]  # committed, verbatim; the table survives
    rows = await _sql(db, "select name from t where name = :name", params={"name": HOSTILE})
    assert rows == [{"name": HOSTILE}]
    assert await _sql(db, "select name from t where name = :name", params={"name": "x"}) == []


async def test_rows_are_objects_capped_at_max_rows_and_the_cut_is_logged(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(5):
        await _sql(
            db, "insert into t (name, n) values (:name, :n)", params={"name": f"r{i}", "n": i}
        )
    rows = await _sql(db, "select name, n from t order by n", max_rows=3)
    assert rows == [{"name": "r0", "n": 0}, {"name": "r1", "n": 1}, {"name": "r2", "n": 2}]
    assert "more than maxRows=3 rows" in capsys.readouterr().err
    assert len(await _sql(db, "select * from t", max_rows=5)) == 5
    assert "maxRows" not in capsys.readouterr().err  # exactly max_rows: nothing was cut
    changed = await _sql(db, "update t set n = n + 1 where n >= :low", params={"low": 3})
    assert changed == {"rowCount": 2}


def test_column_values_become_json() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ident = uuid.UUID(int=1)
    values = [
        Decimal(42),
        Decimal("1.5"),
        Decimal("NaN"),
        float("inf"),
        when,
        when.date(),
        dt.time(1, 2),
        dt.timedelta(minutes=2),
        ident,
        b"\x00\xff",
        memoryview(b"ab"),
        [Decimal(1), {"k": when}],
        object,
    ]
    assert [sql._json(v) for v in values] == [
        42,
        1.5,
        "NaN",
        "inf",
        "2026-01-02T03:04:05+00:00",
        "2026-01-02",
        "01:02:00",
        120.0,
        str(ident),
        "AP8=",
        "YWI=",
        [1, {"k": "2026-01-02T03:04:05+00:00"}],
        str(object),
    ]


async def test_a_failing_statement_leaves_nothing_behind(db: str) -> None:
    await _sql(db, "insert into t (name) values ('taken')")
    insert_two = "insert into t (name) select 'fresh' union all select 'taken'"
    with pytest.raises(StepError) as caught:
        await _sql(db, insert_two)
    assert caught.value.code == ErrorCode.SQL_INTEGRITY
    assert caught.value.retryable is False
    assert "UNIQUE constraint failed: t.name" in caught.value.message
    assert _rows(db, "select name from t") == [("taken",)]  # 'fresh' was rolled back


@pytest.mark.parametrize(
    ("query", "params", "code"),
    [
        ("selec 1", {}, ErrorCode.SQL_SYNTAX),
        ("select * from t where", {}, ErrorCode.SQL_SYNTAX),
        ("select * from nowhere", {}, ErrorCode.SQL_PROGRAMMING),
        ("select nope from t", {}, ErrorCode.SQL_PROGRAMMING),
        ("select :v", {"v": {"not": "bindable"}}, ErrorCode.SQL_PROGRAMMING),
        ("select :v", {}, ErrorCode.SQL_PROGRAMMING),
        ("insert into t (n) values (1)", {}, ErrorCode.SQL_INTEGRITY),
    ],
)
async def test_errors_map_to_sql_codes(
    db: str, query: str, params: dict[str, Any], code: ErrorCode
) -> None:
    with pytest.raises(StepError) as caught:
        await _sql(db, query, params=params)
    assert caught.value.code == code
    assert caught.value.message.startswith("db@1: failed: ")
    assert caught.value.details["connection"] == "db@1"
    assert "sqlalche.me" not in caught.value.message


async def test_a_database_that_cannot_be_opened_is_sql_connection_and_retryable(
    tmp_path: Path,
) -> None:
    with pytest.raises(StepError) as caught:
        await _sql(f"sqlite:///{tmp_path}/no/such/dir/x.db", "select 1")
    assert caught.value.code == ErrorCode.SQL_CONNECTION
    assert caught.value.retryable is True
    assert "cannot connect" in caught.value.message
    with pytest.raises(StepError) as driver:
        await _sql("mysql+nosuchdriver://app@127.0.0.1/db", "select 1")
    assert driver.value.code == ErrorCode.SQL_CONNECTION
    assert driver.value.retryable is False


async def test_a_missing_password_is_secret_missing(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AF_TEST_DB_PASSWORD", raising=False)
    with pytest.raises(StepError) as env:
        await _sql(db, "select 1", password={"from_env": "AF_TEST_DB_PASSWORD"})
    assert env.value.code == ErrorCode.SECRET_MISSING
    assert "AF_TEST_DB_PASSWORD is not set" in env.value.message
    with pytest.raises(StepError) as file:
        await _sql(db, "select 1", password={"from_file": str(tmp_path / "absent")})
    assert file.value.code == ErrorCode.SECRET_MISSING
    assert file.value.retryable is False


class _PgError(Exception):
    """A stand-in for a psycopg error: its message and SQLSTATE."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("cls", "sqlstate", "connecting", "code", "retryable"),
    [
        (sa_exc.ProgrammingError, "42601", False, ErrorCode.SQL_SYNTAX, False),
        (sa_exc.ProgrammingError, "42P01", False, ErrorCode.SQL_PROGRAMMING, False),
        (sa_exc.IntegrityError, "23505", False, ErrorCode.SQL_INTEGRITY, False),
        (sa_exc.DataError, "22012", False, ErrorCode.SQL_DATA, False),
        (sa_exc.OperationalError, "57014", False, ErrorCode.SQL_TIMEOUT, True),
        (sa_exc.OperationalError, "55P03", False, ErrorCode.SQL_TIMEOUT, True),
        (sa_exc.OperationalError, "40P01", False, ErrorCode.SQL_OPERATIONAL, True),
        (sa_exc.OperationalError, "08006", False, ErrorCode.SQL_CONNECTION, True),
        (sa_exc.OperationalError, "57P01", False, ErrorCode.SQL_CONNECTION, True),
        (sa_exc.OperationalError, "28P01", True, ErrorCode.SQL_CONNECTION, False),
        (sa_exc.OperationalError, None, True, ErrorCode.SQL_CONNECTION, True),
        (sa_exc.InternalError, None, False, ErrorCode.SQL_OPERATIONAL, True),
        (sa_exc.NotSupportedError, None, False, ErrorCode.SQL_PROGRAMMING, False),
    ],
)
def test_the_error_table(
    cls: type[sa_exc.DBAPIError],
    sqlstate: str | None,
    connecting: bool,
    code: ErrorCode,
    retryable: bool,
) -> None:
    exc = cls("select 1", {}, _PgError("boom\nDETAIL:  Key (id)=(1) already exists.", sqlstate))
    error = sql_error(exc, connection="pg@1", connecting=connecting)
    assert (error.code, error.retryable) == (code, retryable)
    assert "boom DETAIL:  Key (id)=(1) already exists." in error.message
    assert "select 1" not in error.message  # the database's words, not SQLAlchemy's wrapping
    assert error.details.get("sqlstate") == sqlstate


def test_non_dbapi_errors_and_the_password_mask() -> None:
    pool = sql_error(sa_exc.TimeoutError("QueuePool limit reached"), connection="pg@1")
    assert pool.code == ErrorCode.SQL_TIMEOUT
    secret = "hunter2-secret"
    leaky = sa_exc.OperationalError("x", {}, _PgError(f"bad password {secret} for app", None))
    masked = sql_error(leaky, connection="pg@1", connecting=True, secret=secret)
    assert secret not in masked.message
    assert "bad password *** for app" in masked.message


def test_an_engine_is_kept_per_url_and_replaced_when_the_password_changes() -> None:
    url = "postgresql+psycopg://app@127.0.0.1:1/db"  # never connected to here
    first = sql._engine(url, "ref", "old")
    assert sql._engine(url, "ref", "old") is first
    rotated = sql._engine(url, "ref", "new")
    assert rotated is not first
    assert rotated.url.password == "new"
    assert sql._engine(url, "other-ref", "new") is not rotated


async def test_a_cancelled_step_interrupts_its_statement(db: str) -> None:
    """An endless count, cancelled once SQLite is running it (it calls `started()`), is
    interrupted: the step's thread gets the driver's error and the pool a free thread."""
    running = threading.Event()
    engine = sql._engine(db, repr([]), None)  # the engine the step below will use

    @event.listens_for(engine, "connect")
    def _register(dbapi: sqlite3.Connection, _: Any) -> None:
        dbapi.create_function("started", 0, lambda: running.set() or 1)

    ended: list[BaseException] = []
    original = sql._Statement.execute

    def execute(self: Any) -> Any:
        try:
            return original(self)
        except BaseException as exc:
            ended.append(exc)
            raise

    query = COUNT_FOREVER.replace("select 1 union", "select started() union")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sql._Statement, "execute", execute)
        step = asyncio.ensure_future(_sql(db, query))
        deadline = time.monotonic() + 60
        while not running.is_set():
            assert time.monotonic() < deadline, "the statement never started"
            await asyncio.sleep(0.01)
        step.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step
        while not ended:
            assert time.monotonic() < deadline, "the statement was not interrupted"
            await asyncio.sleep(0.01)
    assert isinstance(ended[0], StepError)
    assert await _sql(db, "select count(*) as n from t") == [{"n": 0}]
