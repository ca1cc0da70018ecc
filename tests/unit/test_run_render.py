"""Rendering a run: tables that fit, the terminal graph, the HTML report — pure, no cluster."""

from __future__ import annotations

import re
from datetime import timedelta

from rich.console import Console
from run_support import T0, complete, fail, schedule, started

from actorflow._display import runs_table
from actorflow._graph_view import graph_tree
from actorflow._report import render_report
from actorflow._run_view import run_view
from actorflow._tables import Column, fitted, middle
from actorflow.actors.run.state import RunState
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev

HOSTILE = "<script>alert(1)</script>"


def _text(renderable: object, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def _record(run_id: str = "r1", **kw: object) -> ev.RunRecord:
    return ev.RunRecord.model_validate(
        {
            "run_id": run_id,
            "workflow": "a-rather-long-workflow-name",
            "version": "12",
            "status": ev.RunStatus.INTERRUPTED,
            "created_at": T0,
            "updated_at": T0,
            **kw,
        }
    )


def test_middle_keeps_both_ends() -> None:
    cut = middle("view-report-4cb40587f1", 12)
    assert len(cut) == 12
    assert cut.startswith("view-")
    assert cut.endswith("587f1")
    assert middle("short", 12) == "short"


def test_runs_table_fits_80_columns_with_whole_headers_and_one_line_per_run() -> None:
    records = [_record(f"a-rather-long-workflow-name-{i:010x}") for i in range(3)]
    lines = _text(runs_table(records, 80), 80)
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["run", "workflow", "status", "progress", "created", "duration"]
    assert len(lines) == 2 + len(records)  # header, rule, one line each
    assert all(re.search(r"\d\d-\d\d \d\d:\d\d:\d\d", line) for line in lines[2:])
    assert all("INTERRUPTED" in line for line in lines[2:])
    wide = _text(runs_table(records), 300)
    assert records[0].run_id in "\n".join(wide)
    assert "priority" in wide[0]


def test_a_table_that_cannot_shrink_keeps_its_values() -> None:
    table = fitted(
        [Column("status"), Column("note", give="wrap")], [["SUCCEEDED", "x " * 60]], width=40
    )
    lines = _text(table, 40)
    assert max(len(line) for line in lines) <= 40
    assert "SUCCEEDED" in lines[2]


def _view() -> object:
    b = WorkflowBuilder("w")
    a = b.node("a", "f@1", inputs={"x": 1})
    b.node("b", "g@1", inputs={"y": a.output}, continue_on="failed")
    b.node("c", "h@1", inputs={"z": a.output})
    state = RunState(started(b.build()))
    (ta,) = schedule(state)
    state.apply(ev.TaskStarted(run_id="r1", task=ta.ref, replica="f-0", at=T0))
    complete(state, ta, HOSTILE, at=T0 + timedelta(seconds=1))
    tb, tc = schedule(state, T0 + timedelta(seconds=1))
    fail(state, tb, code="DISK_FULL", retryable=False, at=T0 + timedelta(seconds=2))
    complete(state, tc, "ok", at=T0 + timedelta(seconds=2))
    return run_view(_record(status=ev.RunStatus.SUCCEEDED), state)


def test_the_graph_tree_shows_layers_statuses_and_the_error() -> None:
    text = "\n".join(_text(graph_tree(_view()), 100))  # type: ignore[arg-type]
    assert "layer 0" in text
    assert "● b  FAILED" in text
    assert "[DISK_FULL] boom" in text
    assert "← a" in text


def test_the_report_escapes_run_data_and_links_nothing_outside() -> None:
    page = render_report(_view())  # type: ignore[arg-type]
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page
    assert "https://" not in page
    assert not re.search(r"""(src|href)=["'](?!#)""", page)
    for node in ("a", "b", "c"):
        assert f'data-node="{node}"' in page
    assert page.count('class="bar ') == 3  # one bar per attempt
    assert "[DISK_FULL]" in page
