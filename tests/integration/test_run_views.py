"""Seeing a run: `runs show --graph`, `runs watch`, `runs report`, `-o json|yaml` and
tables that fit 80 columns — the real CLI on the session's Ray and nats-server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from report_support import HOSTILE, handled_failure

import actorflow
from actorflow import NodeStatus, RunStatus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finished(client: actorflow.Client) -> actorflow.Run:
    wf = handled_failure().build()
    client.apply(wf)
    run = client.run(wf.metadata.name, {})
    record = run.wait(timeout=120)
    assert record.status is RunStatus.SUCCEEDED, record
    return run


def _cli(env: dict[str, str], *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env={**env, "COLUMNS": str(columns)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_view_has_every_node_attempt_input_output_and_log(finished: actorflow.Run) -> None:
    view = finished.view()
    assert [n.id for n in view.nodes] == ["load", "explode", "publish", "handle"]
    explode = view.node("explode")
    assert explode.status is NodeStatus.FAILED
    assert [a.status for a in explode.tasks[0].attempts] == [NodeStatus.FAILED] * 2
    assert explode.error is not None
    assert explode.error.code == "HANDLER_ERROR"
    assert "ValueError" in explode.error.traceback
    publish = view.node("publish").tasks[0]
    assert (publish.inputs, publish.output) == ({"value": HOSTILE}, HOSTILE)
    assert any("load" in line.text for line in view.node("load").tasks[0].logs)
    assert {(e.source, e.target) for e in view.edges} == {
        ("load", "explode"),
        ("load", "publish"),
        ("explode", "handle"),
    }


TABLES = [
    ("runs", "list"),
    ("workflows", "list"),
    ("functions", "list"),
    ("templates", "list"),
    ("connections", "list"),
    ("envs", "list"),
    ("triggers", "list"),
    ("status",),
]


@pytest.mark.parametrize("command", TABLES, ids=" ".join)
def test_tables_fit_80_columns_with_whole_headers(
    cli_env: dict[str, str], finished: actorflow.Run, command: tuple[str, ...]
) -> None:
    result = _cli(cli_env, *command)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, result.stdout
    if command == ("runs", "list"):
        header = next(line for line in lines if line.startswith("run "))
        assert header.split() == ["run", "workflow", "status", "progress", "created", "duration"]
        row = next((line for line in lines if "view-re" in line), result.stdout)
        assert re.search(r"\b\d\d-\d\d \d\d:\d\d:\d\d\b", row), row  # one line, short date


def test_runs_show_fits_and_wide_shows_everything(
    cli_env: dict[str, str], finished: actorflow.Run
) -> None:
    narrow = _cli(cli_env, "runs", "show", finished.run_id)
    assert narrow.returncode == 0, narrow.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout
    assert "HANDLER_ERROR" in narrow.stdout
    wide = _cli(cli_env, "runs", "list", "--wide", "-w", "view-report")
    assert wide.returncode == 0, wide.stderr
    assert finished.run_id in wide.stdout
    assert "priority" in wide.stdout


def test_json_and_yaml_are_the_models(cli_env: dict[str, str], finished: actorflow.Run) -> None:
    listed = _cli(cli_env, "runs", "list", "-w", "view-report", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    records = [actorflow.RunRecord.model_validate(r) for r in json.loads(listed.stdout)]
    assert finished.run_id in [r.run_id for r in records]  # the browser test's run too
    assert {r.workflow for r in records} == {"view-report"}
    shown = _cli(cli_env, "runs", "show", finished.run_id, "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    data = yaml.safe_load(shown.stdout)
    assert data["record"]["run_id"] == finished.run_id
    assert [n["id"] for n in data["nodes"]] == ["load", "explode", "publish", "handle"]
    workflows = json.loads(_cli(cli_env, "workflows", "list", "-o", "json").stdout)
    assert "view-report" in [w["metadata"]["name"] for w in workflows]


def test_a_bad_output_format_is_a_usage_error(cli_env: dict[str, str]) -> None:
    result = _cli(cli_env, "runs", "list", "-o", "xml")
    assert result.returncode == 2
    assert "xml" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_graph_and_watch(cli_env: dict[str, str], finished: actorflow.Run) -> None:
    graph = _cli(cli_env, "runs", "show", finished.run_id, "--graph")
    assert graph.returncode == 0, graph.stderr
    for node in ("load", "explode", "publish", "handle"):
        assert node in graph.stdout
    assert "2 attempts" in graph.stdout
    assert "[HANDLER_ERROR]" in graph.stdout
    assert "disk is full" in graph.stdout
    assert "← explode" in graph.stdout
    watched = _cli(cli_env, "runs", "watch", finished.run_id)
    assert watched.returncode == 0, watched.stderr
    assert "SUCCEEDED" in watched.stdout


def test_watch_exits_1_for_a_run_that_failed(
    cli_env: dict[str, str], client: actorflow.Client
) -> None:
    b = actorflow.WorkflowBuilder("view-fails")
    b.node("boom", "coded-fail@1", inputs={"code": "NOPE", "message": "no"})
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, {})
    watched = _cli(cli_env, "runs", "watch", run.run_id)  # waits for the end itself
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "INTERRUPTED" in watched.stdout
    assert run.status().status is RunStatus.INTERRUPTED


def test_report_is_one_file_with_no_external_url_and_escaped_data(
    cli_env: dict[str, str], finished: actorflow.Run, tmp_path: Path
) -> None:
    target = tmp_path / "run.html"
    result = _cli(cli_env, "runs", "report", finished.run_id, "-o", str(target))
    assert result.returncode == 0, result.stderr
    page = target.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page  # the output holding a script tag is text, escaped
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    for node in ("load", "explode", "publish", "handle"):
        assert f'data-node="{node}"' in page
