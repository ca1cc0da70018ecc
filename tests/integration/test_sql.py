"""SQL steps end to end, on SQLite and on a real PostgreSQL: params from upstream outputs
bound (an injection attempt is stored verbatim and the table survives), a statement's row
count, the maxRows cap, an integrity error that an `onError` policy matches, refusals at
apply that register nothing, and a password that reaches the database but never the
run's history."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from postgres_support import Postgres, binaries, local_postgres

import actorflow
from actorflow import Connection, WorkflowBuilder
from actorflow.actors.functions import sql
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev

RunInterrupted = Callable[..., tuple[actorflow.Run, actorflow.ErrorInfo]]  # the conftest fixture
TIMEOUT = 120
HOSTILE = "x'); DROP TABLE items; --"
SCHEMA = "create table items (id integer primary key, name text not null unique, qty int)"


def _connection(name: str, url: str, password_file: Path | None = None) -> Connection:
    spec: dict[str, Any] = {"url": url}
    if password_file is not None:
        spec["password"] = {"fromFile": str(password_file)}
    return Connection.model_validate({"metadata": {"name": name, "version": "1"}, "spec": spec})


@pytest.fixture
def lite(tmp_path: Path) -> Path:
    """A fresh SQLite file per test (each test names its own Connection for it)."""
    path = tmp_path / "items.db"
    with sqlite3.connect(path) as conn:
        conn.execute(SCHEMA)
    return path


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = binaries()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(install the Debian package `postgresql`; CI does)"
        )
    with local_postgres(bindir) as server:
        yield server


def _items_workflow(name: str, connection: str) -> WorkflowBuilder:
    """Insert a row whose values come from an upstream function, then five more in one
    statement, read back at most three rows, and count them all."""
    b = WorkflowBuilder(name, version="1")
    item = b.input("item", type="object")
    given = b.node("given", "echo@1", inputs={"value": item})
    one = b.sql(
        "insert_one",
        connection,
        "insert into items (id, name, qty) values (1, :name, :qty)",
        params={"name": given.out("name"), "qty": given.out("qty")},
    )
    bulk = b.sql(
        "insert_five",
        connection,
        "insert into items (id, name, qty) "
        "select n + 1, 'bulk-' || n, n from (select 1 as n union all select 2 union all "
        "select 3 union all select 4 union all select 5) as s where n <= :up_to",
        params={"up_to": 5},
        needs=[one],
    )
    read = b.sql(
        "read",
        connection,
        "select name, qty from items order by id",
        max_rows=3,
        needs=[bulk],
    )
    b.sql("count", connection, "select count(*) as n from items", needs=[read])
    b.output("one", one.output)
    b.output("five", bulk.output)
    b.output("read", read.output)
    b.output("count", "${{ nodes.count.output[0].n }}")
    return b


def _expected_items(result: dict[str, Any]) -> None:
    assert result["one"] == {"rowCount": 1}
    assert result["five"] == {"rowCount": 5}
    assert result["read"] == [
        {"name": HOSTILE, "qty": 3},
        {"name": "bulk-1", "qty": 1},
        {"name": "bulk-2", "qty": 2},
    ]
    assert result["count"] == 6  # the table survived the injection attempt


def test_sql_steps_bind_upstream_outputs_count_rows_and_cap_reads(
    client: actorflow.Client, lite: Path
) -> None:
    conn = _connection("lite-items", f"sqlite:///{lite}")
    b = _items_workflow("sql-lite", "lite-items")
    client.apply([conn, b.build()])
    assert conn in client.connections()
    run = client.run("sql-lite", {"item": {"name": HOSTILE, "qty": 3}}, version="1")
    _expected_items(run.result(timeout=TIMEOUT))
    with sqlite3.connect(lite) as db:  # what another client sees: committed, verbatim
        assert db.execute("select name from items where id = 1").fetchone() == (HOSTILE,)
    assert {n.node: n.status for n in run.nodes()}["read"] is actorflow.NodeStatus.SUCCEEDED


def test_an_integrity_error_is_sql_integrity_and_on_error_can_match_it(
    client: actorflow.Client, lite: Path, run_interrupted: RunInterrupted
) -> None:
    conn = _connection("lite-dup", f"sqlite:///{lite}")
    client.apply([conn])
    with sqlite3.connect(lite) as db:
        db.execute("insert or ignore into items (id, name) values (100, 'taken')")
    b = WorkflowBuilder("sql-dup", version="1")
    b.sql("dup", "lite-dup", "insert into items (name) values (:name)", params={"name": "taken"})
    _, error = run_interrupted(b)
    assert error.code == "SQL_INTEGRITY"
    assert "UNIQUE constraint failed" in error.message
    assert error.retryable is False

    tolerant = WorkflowBuilder("sql-dup-skip", version="1")
    dup = tolerant.sql("dup", "lite-dup", "insert into items (name) values ('taken')")
    after = tolerant.sql("after", "lite-dup", "select count(*) as n from items", needs=[dup])
    tolerant.on_error("SQL_INTEGRITY", {"action": "skip"})
    tolerant.output("dup", dup.output)
    tolerant.output("after", after.output)
    wf = tolerant.build()
    client.apply(wf)
    result = client.run(wf.metadata.name, version="1").result(timeout=TIMEOUT)
    assert result["dup"] is None  # skipped by the policy: a null output, the run went on
    assert result["after"][0]["n"] >= 1


def test_a_sql_compensation_deletes_the_row_its_step_inserted_when_the_run_fails(
    client: actorflow.Client, lite: Path
) -> None:
    """A saga over a database: each insert declares the delete that undoes it, binding
    the step's own rendered params; a later failure leaves the table as it was."""
    conn = _connection("lite-saga", f"sqlite:///{lite}")
    b = WorkflowBuilder("sql-saga", version="1")
    undo = {
        "sql": {
            "connection": "lite-saga",
            "query": "delete from items where name = :name",
            "params": {"name": "${{ step.inputs.params.name }}"},
        }
    }
    first = b.sql(
        "first",
        conn,
        "insert into items (name, qty) values (:name, 1)",
        params={"name": HOSTILE},
        compensate=undo,
    )
    second = b.sql(
        "second",
        conn,
        "insert into items (name, qty) values (:name, 2)",
        params={"name": "second"},
        needs=[first],
        compensate=undo,
    )
    b.shell("fail", ["sh", "-c", "exit 4"], needs=[second], retry={"max_attempts": 1})
    client.apply([conn, b.build()])
    with sqlite3.connect(lite) as db:
        db.execute("insert into items (name, qty) values ('kept', 0)")
    run = client.run("sql-saga", version="1")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is actorflow.RunStatus.COMPENSATED, record
    assert record.error is not None
    assert record.error.code == "EXIT_4"
    with sqlite3.connect(lite) as db:  # the witness: the database itself
        assert db.execute("select name from items").fetchall() == [("kept",)]
    nodes = {n.node: n for n in run.nodes()}
    for node in ("first", "second"):
        undone = nodes[node].compensation
        assert undone is not None
        assert undone.status is actorflow.NodeStatus.SUCCEEDED, undone


def test_bad_sql_definitions_are_refused_at_apply_and_register_nothing(
    client: actorflow.Client, tmp_path: Path
) -> None:
    before = {c.ref for c in client.connections()}
    unknown = WorkflowBuilder("sql-unknown", version="1")
    unknown.sql("q", "no-such-connection", "select 1")
    with pytest.raises(actorflow.DefinitionError) as caught:
        client.apply(unknown.build())
    assert "unknown connection 'no-such-connection@latest'" in str(caught.value)
    assert any(i.field == "spec.nodes[0].sql.connection" for i in caught.value.issues)

    missing = _connection(
        "pg-missing", "postgresql+psycopg://app@127.0.0.1:1/db", tmp_path / "none"
    )
    uses = WorkflowBuilder("sql-missing-secret", version="1")
    uses.sql("q", "pg-missing", "select 1")
    with pytest.raises(actorflow.DefinitionError) as secret:
        client.apply([missing, uses.build()])
    (issue,) = secret.value.issues
    assert issue.field == "spec.password.fromFile"
    assert "Connection pg-missing@1: the password cannot be read" in issue.message
    assert {c.ref for c in client.connections()} == before
    assert "sql-missing-secret@1" not in {w.ref for w in client.workflows()}

    # From a file, the SDK names the line that names the unknown connection.
    path = tmp_path / "wf.yaml"
    path.write_text(
        "apiVersion: actorflow/v1\nkind: Workflow\nmetadata: {name: sql-file}\nspec:\n"
        "  nodes:\n    - id: q\n      sql:\n        connection: nowhere\n"
        "        query: select 1\n"
    )
    with pytest.raises(actorflow.DefinitionError) as from_file:
        client.apply(path)
    (issue,) = from_file.value.issues
    assert (issue.file, issue.line, issue.field) == (str(path), 8, "spec.nodes[0].sql.connection")


async def _history_text(url: str, run_id: str) -> str:
    nc = await nats.connect(url)
    try:
        return "\n".join(ev.encode(r.event).decode() for r in await replay(nc.jetstream(), run_id))
    finally:
        await nc.close()


def test_the_same_workflow_on_postgresql_keeps_the_password_out_of_the_history(
    client: actorflow.Client, postgres: Postgres, tmp_path: Path
) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text(postgres.password + "\n")
    conn = _connection("pg", postgres.url, secret)
    create = WorkflowBuilder("sql-pg-schema", version="1")
    create.sql("schema", "pg", SCHEMA.replace("integer primary key", "int primary key"))
    client.apply([conn, create.build(), _items_workflow("sql-pg", "pg").build()])
    assert client.run("sql-pg-schema", version="1").result(timeout=TIMEOUT) == {}
    run = client.run("sql-pg", {"item": {"name": HOSTILE, "qty": 3}}, version="1")
    _expected_items(run.result(timeout=TIMEOUT))
    history = asyncio.run(_history_text(client.nats_url, run.run_id))
    assert postgres.url in history  # the references are recorded …
    assert str(secret) in history
    assert postgres.password not in history  # … the password never


def test_postgresql_errors_map_by_sqlstate(postgres: Postgres, tmp_path: Path) -> None:
    """The handler alone (no Ray): the codes a real server's errors get."""
    secret = tmp_path / "pw"
    secret.write_text(postgres.password)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")

    async def failing(query: str, password: Path = secret) -> actorflow.StepError:
        return await failing_on(postgres.url, query, password)

    async def failing_on(url: str, query: str, password: Path = secret) -> actorflow.StepError:
        try:
            await sql.run(
                connection="pg@1",
                url=url,
                password={"from_file": str(password)},
                query=query,
            )
        except actorflow.StepError as exc:
            return exc
        raise AssertionError(f"{query!r} did not fail")

    async def check() -> None:
        try:
            syntax = await failing("selec 1")
            assert (syntax.code, syntax.details["sqlstate"]) == ("SQL_SYNTAX", "42601")
            missing = await failing("select * from no_such_table")
            assert missing.code == "SQL_PROGRAMMING"
            data = await failing("select 'x'::int")
            assert data.code == "SQL_DATA"
            slow = await failing_on(
                postgres.url + "?options=-c%20statement_timeout%3D200", "select pg_sleep(30)"
            )
            assert (slow.code, slow.details["sqlstate"]) == ("SQL_TIMEOUT", "57014")
            login = await failing("select 1", password=wrong)
            assert login.code == "SQL_CONNECTION"
            assert "password authentication failed" in login.message
            assert "not-the-password" not in login.message
            assert postgres.password not in login.message
        finally:
            sql.dispose_engines()

    asyncio.run(check())
