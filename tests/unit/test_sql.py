"""SQL steps and kind Connection as definitions: the models, the loader's errors with
lines, the task a run makes of a SQL node (params rendered, the query verbatim, the
connection pinned), and the builder."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from run_support import complete, schedule, started

from actorflow.actors.run.state import RunState
from actorflow.builder import WorkflowBuilder, function
from actorflow.definitions import events as ev
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.graph import check_workflow
from actorflow.definitions.loader import dump, load_text
from actorflow.definitions.models import (
    Connection,
    Resources,
    Workflow,
    builtin_function,
)
from actorflow.definitions.plan import builtin_functions, compile_plan, connection_refs
from actorflow.definitions.snapshot import run_started

PG_URL = "postgresql+psycopg://app@127.0.0.1:5432/db"


def _connection(url: str = PG_URL, **spec: Any) -> Connection:
    return Connection.model_validate(
        {"metadata": {"name": "db", "version": "2"}, "spec": {"url": url, **spec}}
    )


def _node(sql: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "apiVersion": "actorflow/v1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"nodes": [{"id": "q", "sql": sql, **more}]},
    }


# --- Connection -------------------------------------------------------------------------


def test_a_connection_takes_a_url_and_a_password_reference() -> None:
    conn = _connection(password={"fromEnv": "DB_PASSWORD"})
    assert conn.ref == "db@2"
    assert conn.spec.password is not None
    assert conn.spec.password.from_env == "DB_PASSWORD"
    assert _connection("sqlite:////tmp/x.db").spec.password is None
    assert load_text(dump([conn])) == [conn]


@given(
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=30)
)
def test_a_url_with_a_password_is_refused_without_quoting_it(tail: str) -> None:
    password = f"Zq7{tail}"  # not a word a message could hold by chance
    url = f"postgresql+psycopg://app:{password}@127.0.0.1:5432/db"
    with pytest.raises(ValidationError) as caught:
        _connection(url)
    assert "holds a password" in str(caught.value)
    assert password not in str(caught.value)
    text = "\n".join(
        ["apiVersion: actorflow/v1", "kind: Connection", "metadata: {name: db}", "spec:"]
    )
    text += f"\n  url: {url}\n"
    with pytest.raises(DefinitionError) as loaded:
        load_text(text, file="c.yaml")
    (issue,) = loaded.value.issues
    assert (issue.line, issue.field) == (5, "spec.url")
    assert password not in str(loaded.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuchdb://app@h/db", "unknown SQL dialect 'nosuchdb'"),
        ("postgresql+nosuchdriver://app@h/db", "unknown SQL dialect"),
        ("not a url", "not a SQLAlchemy URL"),
        ("sqlite:////tmp/${{ inputs.x }}.db", "not templated"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _connection(url)


def test_sqlite_takes_no_password() -> None:
    with pytest.raises(ValidationError, match="SQLite takes no password"):
        _connection("sqlite:////tmp/x.db", password={"fromFile": "/run/pw"})
    with pytest.raises(ValidationError, match="exactly one of fromEnv, fromFile"):
        _connection(password={"fromEnv": "A", "fromFile": "/b"})


# --- the sql node -----------------------------------------------------------------------


def test_a_sql_node_runs_on_the_implicit_sql_pool_and_may_reserve_resources() -> None:
    wf = Workflow.model_validate(
        _node({"connection": "db", "query": "select 1"}, resources={"cpus": 0.5})
    )
    (node,) = wf.spec.nodes
    assert node.kind == "sql"
    assert node.sql is not None
    assert node.sql.connection == "db@latest"
    assert node.sql.max_rows == 1000
    pool = builtin_function("sql", Resources(cpus=0.5))
    assert [f.ref for f in builtin_functions(wf)] == [pool.ref]
    assert pool.spec.handler == "actorflow.actors.functions.sql:run"
    assert connection_refs(wf) == {"db@latest"}


@pytest.mark.parametrize(
    ("sql", "more", "message"),
    [
        ({"connection": "db", "query": "   "}, {}, "the query is empty"),
        ({"connection": "db"}, {}, "Field required"),
        (
            {"connection": "db", "query": "select * from t where a = '${{ inputs.a }}'"},
            {},
            "the query is not templated",
        ),
        ({"connection": "db", "query": "select :a, :b", "params": {"a": 1}}, {}, "binds b"),
        ({"connection": "db", "query": "select 1", "params": {"a": 1}}, {}, "params a are not"),
        ({"connection": "db", "query": "select :x", "params": {"x-y": 1}}, {}, "pattern"),
        ({"connection": "db", "query": "select 1", "maxRows": 0}, {}, "greater than"),
        ({"connection": "db", "query": "select 1"}, {"inputs": {"a": 1}}, "not inputs"),
        ({"connection": "Bad Name", "query": "select 1"}, {}, "pattern"),
    ],
)
def test_bad_sql_nodes_are_refused(sql: dict[str, Any], more: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Workflow.model_validate(_node(sql, **more))


def test_postgres_casts_and_escaped_colons_are_not_binds() -> None:
    query = r"select cast(:n as int), x::text, '10\:30' as t from y"
    wf = Workflow.model_validate(_node({"connection": "db", "query": query, "params": {"n": 1}}))
    assert wf.spec.nodes[0].sql is not None


YAML = """\
apiVersion: actorflow/v1
kind: Connection
metadata: {name: lite}
spec:
  url: sqlite:////tmp/lite.db
---
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: w}
spec:
  nodes:
    - id: here
      sql: {connection: lite, query: "select 1"}
    - id: registered
      sql: {connection: pg, query: "select 1"}
    - id: nowhere
      sql:
        connection: nope
        query: "select 1"
    - id: reads
      sql:
        connection: lite
        query: "select :v"
        params: {v: "${{ nodes.ghost.output }}"}
"""


def test_the_loader_names_line_and_field_of_unknown_connections_and_bad_params() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_text(YAML, file="w.yaml", known_connections={"pg@3"})
    assert [(i.line, i.field) for i in caught.value.issues] == [
        (18, "spec.nodes[2].sql.connection"),
        (24, "spec.nodes[3].sql.params.v"),
    ]
    assert "unknown connection 'nope@latest'" in caught.value.issues[0].message
    assert "unknown node 'ghost'" in caught.value.issues[1].message
    # Without a registry to check against, only what the text itself says is checked.
    with pytest.raises(DefinitionError) as unchecked:
        load_text(YAML, file="w.yaml")
    assert [i.field for i in unchecked.value.issues] == ["spec.nodes[3].sql.params.v"]


def test_the_loader_reports_an_empty_query_and_a_bad_url_at_their_lines() -> None:
    text = YAML.replace("url: sqlite:////tmp/lite.db", "url: nosuchdb://x/y").replace(
        'query: "select :v"', 'query: ""'
    )
    with pytest.raises(DefinitionError) as caught:
        load_text(text, file="w.yaml")
    assert [(i.line, i.field) for i in caught.value.issues] == [
        (5, "spec.url"),
        (23, "spec.nodes[3].sql.query"),
    ]


# --- the plan and the task ----------------------------------------------------------------


def _workflow() -> Workflow:
    b = WorkflowBuilder("w")
    name = b.input("name", type="string")
    first = b.node("first", "f@1", inputs={"x": name})
    b.sql(
        "insert",
        "db",
        "insert into t (name, n) values (:name, :n)",
        params={"name": name, "n": first.output},
        max_rows=5,
    )
    return b.build()


def _started(wf: Workflow, connections: dict[str, Connection], **inputs: Any) -> ev.RunStarted:
    base = started(wf, **inputs)
    functions = {"f@1": function("f", "mod:f"), **{f.ref: f for f in builtin_functions(wf)}}
    snapshot = run_started("r1", wf, functions, inputs, connections=connections)
    return base.model_copy(update={"connections": snapshot.connections})


def test_a_sql_task_binds_rendered_params_keeps_the_query_and_pins_the_connection() -> None:
    wf = _workflow()
    conn = _connection(password={"fromFile": "/run/secrets/db"})
    hostile = "x'); DROP TABLE t; --"
    first_event = _started(wf, {"db@latest": conn}, name=hostile)
    # The pinned connection travels in the run's first event, through the codec.
    first_event = ev.decode(ev.RunStarted, ev.encode(first_event))
    state = RunState(first_event)
    (first,) = schedule(state)
    complete(state, first, 7)
    (task,) = schedule(state)
    assert task.function == builtin_function("sql", Resources(cpus=0.1)).metadata.name
    assert task.inputs == {
        "connection": "db@2",
        "url": PG_URL,
        "password": {"from_env": None, "from_file": "/run/secrets/db", "prefix": ""},
        "query": "insert into t (name, n) values (:name, :n)",
        "params": {"name": hostile, "n": 7},
        "max_rows": 5,
    }


def test_a_sql_node_whose_connection_was_not_resolved_does_not_compile() -> None:
    with pytest.raises(DefinitionError, match="connection 'db@latest' of node 'insert'"):
        compile_plan(_workflow(), {"f@1": "1"})


def test_the_graph_checks_connections_by_name_and_version() -> None:
    wf = _workflow()
    assert check_workflow(wf, known_connections={"db@2"}) == []
    (issue,) = check_workflow(wf, known_connections={"other@1"})
    assert issue.field == "spec.nodes[1].sql.connection"
    pinned = Workflow.model_validate(
        _node({"connection": "db@3", "query": "select 1"}),
    )
    (issue,) = check_workflow(pinned, known_connections={"db@2"})
    assert "known versions: 2" in issue.message


def test_the_builder_collects_connection_models_to_register() -> None:
    conn = _connection()
    b = WorkflowBuilder("w")
    node = b.sql("q", conn, "select :a as a", params={"a": 1})
    wf = b.build()
    assert b.connections == [conn]
    assert wf.spec.nodes[0].sql is not None
    assert wf.spec.nodes[0].sql.connection == "db@2"
    assert node.output == "${{ nodes.q.output }}"
    bad = WorkflowBuilder("w")
    bad.sql("q", "db", "select :a")
    with pytest.raises(DefinitionError) as caught:
        bad.build()
    (issue,) = caught.value.issues
    assert issue.field == "spec.nodes[0].sql"


def test_a_sql_compensation_runs_on_the_sql_pool_with_its_connection_pinned() -> None:
    wf = Workflow.model_validate(
        _node(
            {"connection": "db", "query": "insert into t (n) values (:n)", "params": {"n": 1}},
            compensate={
                "sql": {
                    "connection": "undo-db@2",
                    "query": "delete from t where n = :n",
                    "params": {"n": "${{ step.inputs.params.n }}"},
                }
            },
        )
    )
    assert connection_refs(wf) == {"db@latest", "undo-db@2"}
    assert [f.ref for f in builtin_functions(wf)] == [
        builtin_function("sql", Resources(cpus=0.1)).ref
    ]
    (issue,) = check_workflow(wf, known_connections={"db@1"})
    assert issue.field == "spec.nodes[0].compensate.sql.connection"
    undo = Connection.model_validate(
        {"metadata": {"name": "undo-db", "version": "2"}, "spec": {"url": "sqlite:///u.db"}}
    )
    versions = {f.ref: "1" for f in builtin_functions(wf)}
    plan = compile_plan(wf, versions, connections={"db@latest": _connection(), "undo-db@2": undo})
    (node,) = plan.nodes.values()
    assert node.compensation is not None
    rendered = node.compensation.inputs.render({"step": {"inputs": {"params": {"n": 7}}}})
    assert rendered["connection"] == "undo-db@2"
    assert rendered["query"] == "delete from t where n = :n"
    assert rendered["params"] == {"n": 7}
