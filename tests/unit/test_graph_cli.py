"""`actorflow graph FILE` and `actorflow edit FILE …` on files (no engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actorflow.cli import main
from actorflow.definitions.loader import load_path

TEXT = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: demo, version: "1"}
spec:
  nodes:
    # fetch it
    - id: fetch
      function: add@1

    - id: report   # tail
      function: add@1
      needs: [fetch]
    - id: audit
      function: log@1
      inputs: {x: "${{ nodes.fetch.output }}"}
    - id: undo
      function: fix@1
      needs: [{node: report, on: failed}]
"""


@pytest.fixture
def wf(tmp_path: Path) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(TEXT)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_graph_json_carries_coordinates_and_every_edge(
    wf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "graph", str(wf), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [(n["id"], n["layer"]) for n in data["nodes"]] == [
        ("fetch", 0),
        ("report", 1),
        ("audit", 1),
        ("undo", 2),
    ]
    assert all(isinstance(n["x"], float) and isinstance(n["y"], float) for n in data["nodes"])
    edges = {(e["source"], e["target"], e["via"], e["on"]) for e in data["edges"]}
    assert edges == {
        ("fetch", "report", "needs", "succeeded"),
        ("fetch", "audit", "data", "succeeded"),
        ("report", "undo", "needs", "failed"),
    }


def test_graph_text_mermaid_and_dot(wf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, text, _ = _run(capsys, "graph", str(wf))
    assert text.splitlines() == [
        "demo@1: 4 nodes in 3 layers",
        "  0  fetch   function add@1",
        "  1  report  function add@1  <- fetch",
        "  1  audit   function log@1  <- fetch (data)",
        "  2  undo    function fix@1  <- report (failed)",
    ]
    _, mermaid, _ = _run(capsys, "graph", str(wf), "-F", "mermaid")
    assert mermaid.startswith("flowchart TD\n")
    assert "  fetch -.-> audit\n" in mermaid
    assert "  report -->|failed| undo\n" in mermaid
    _, dot, _ = _run(capsys, "graph", str(wf), "-F", "dot")
    assert '  "fetch" -> "audit" [style=dashed];\n' in dot
    assert '  {rank=same; "report" "audit"}\n' in dot


def test_edit_commands_write_in_place_or_elsewhere(
    wf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.yaml"
    code, _, err = _run(
        capsys, "edit", str(wf), "add-node", "notify", "-f", "mail@1", "-n", "audit",
        "-i", "to=ops", "-o", str(out),
    )  # fmt: skip
    assert (code, wf.read_text()) == (0, TEXT)
    assert "added node notify" in err
    assert out.read_text() == TEXT + (
        "    - id: notify\n      function: mail@1\n      needs: [audit]\n      inputs: {to: ops}\n"
    )
    assert _run(capsys, "edit", str(wf), "add-dep", "audit", "report")[0] == 0
    assert '      inputs: {x: "${{ nodes.fetch.output }}"}\n' in wf.read_text()
    assert "      function: log@1\n      needs: [report]\n" in wf.read_text()
    assert _run(capsys, "edit", str(wf), "remove-dep", "audit", "report")[0] == 0
    assert wf.read_text() == TEXT
    assert _run(capsys, "edit", str(wf), "update-node", "fetch", "-s", "timeout=30")[0] == 0
    assert "      function: add@1\n      timeout: 30\n\n" in wf.read_text()
    assert _run(capsys, "edit", str(wf), "remove-node", "undo")[0] == 0
    (model,) = load_path(wf)
    assert [n.id for n in model.spec.nodes] == ["fetch", "report", "audit"]  # type: ignore[union-attr]


def test_a_refused_edit_says_why_and_changes_nothing(
    wf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "edit", str(wf), "add-dep", "fetch", "undo")
    assert code == 1
    assert err.startswith(f"error: {wf}:7: spec.nodes[0]: edit refused: cycle: fetch -> ")
    assert wf.read_text() == TEXT


def test_an_edit_on_a_file_that_does_not_parse_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEXT.replace("    - id: audit", "    - id: [audit"))
    before = bad.read_text()
    code, _, err = _run(capsys, "edit", str(bad), "remove-node", "undo")
    assert code == 1
    assert f"{bad}:" in err
    assert "Traceback" not in err
    assert bad.read_text() == before


@pytest.mark.parametrize(
    "args",
    [
        ["edit", "{wf}", "add-dep", "fetch"],
        ["edit", "{wf}", "add-dep", "fetch", "report", "--on", "sometimes"],
        ["edit", "{wf}", "add-node", "x", "-i", "novalue"],
        ["edit", "{wf}", "update-node", "fetch"],
        ["edit", "{wf}", "teleport", "fetch"],
        ["graph", "{wf}", "--format", "png"],
        ["graph", "no/such.yaml"],
    ],
)
def test_bad_arguments_print_usage_not_a_traceback(
    wf: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = _run(capsys, *(a.replace("{wf}", str(wf)) for a in args))
    assert code == 2
    assert "Usage:" in err
    assert "Traceback" not in err
    assert wf.read_text() == TEXT


def test_a_file_of_several_workflows_needs_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TEXT + "---\n" + TEXT.replace("name: demo", "name: other"))
    code, _, err = _run(capsys, "graph", str(path))
    assert code == 2
    assert "several workflows (demo@1, other@1)" in err
    code, out, _ = _run(capsys, "graph", str(path), "-w", "other")
    assert (code, out.splitlines()[0]) == (0, "other@1: 4 nodes in 3 layers")
    code, _, err = _run(capsys, "edit", str(path), "remove-node", "undo")
    assert code == 1
    assert "several workflows (demo, other): name one (--workflow)" in err
    assert _run(capsys, "edit", str(path), "remove-node", "undo", "-w", "other")[0] == 0
    demo, other = path.read_text().split("---\n")
    assert demo == TEXT
    assert "undo" not in other
