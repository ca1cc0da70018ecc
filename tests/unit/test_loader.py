"""YAML loading: every kind of bad definition is reported with its file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.loader import dump, load_file, load_path, load_text
from actorflow.definitions.models import Function, Workflow

FUNCTION = """\
apiVersion: actorflow/v1
kind: Function
metadata:
  name: fetch
  version: "1"
spec:
  handler: mymod.io:fetch
  resources:
    memory: 256Mi
  timeout: 30s
"""

WORKFLOW = """\
apiVersion: actorflow/v1
kind: Workflow
metadata:
  name: etl
spec:
  inputs:
    url:
      type: string
  nodes:
    - id: fetch
      function: fetch@1
      inputs:
        url: "${{ inputs.url }}"
    - id: parse
      function: parse@1
      needs: [fetch]
      inputs:
        raw: "${{ nodes.fetch.output }}"
    - id: store
      function: store
      inputs:
        rows: "${{ nodes.parse.output.rows }}"
  outputs:
    stored: "${{ nodes.store.output }}"
"""


def _line(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def _issues(text: str, **kwargs: object) -> list[DefinitionIssue]:
    with pytest.raises(DefinitionError) as info:
        load_text(text, file="defs.yaml", **kwargs)  # type: ignore[arg-type]
    return info.value.issues


def _one(text: str, **kwargs: object) -> DefinitionIssue:
    issues = _issues(text, **kwargs)
    assert len(issues) == 1, issues
    return issues[0]


def test_valid_documents_load() -> None:
    fn, wf = load_text(FUNCTION + "---\n" + WORKFLOW)
    assert isinstance(fn, Function)
    assert fn.spec.resources.memory == 256 * 2**20
    assert fn.spec.timeout == 30.0
    assert isinstance(wf, Workflow)
    assert [n.id for n in wf.spec.nodes] == ["fetch", "parse", "store"]
    assert wf.spec.nodes[2].function == "store@latest"


def test_empty_documents_are_skipped() -> None:
    text = "---\n# only a comment\n---\n" + FUNCTION + "---\n---\n"
    assert [d.ref for d in load_text(text)] == ["fetch@1"]
    assert load_text("") == []


def test_numeric_version_keeps_its_text() -> None:
    (fn,) = load_text(FUNCTION.replace('version: "1"', "version: 1.10"))
    assert fn.metadata.version == "1.10"


def test_on_is_a_key_not_a_boolean() -> None:
    """YAML 1.1 reads a bare ``on`` as true; hooks and lifecycle sources are keyed by it."""
    text = WORKFLOW.replace(
        "  outputs:", "  hooks:\n    - on: before_run\n      call: mymod:hook\n  outputs:"
    )
    (wf,) = load_text(text, known_functions={"fetch@1", "parse@1", "store@latest"})
    assert [(h.on, h.call) for h in wf.spec.hooks] == [("before_run", "mymod:hook")]


def test_only_true_and_false_are_booleans() -> None:
    text = WORKFLOW.replace(
        '        url: "${{ inputs.url }}"',
        '        url: "${{ inputs.url }}"\n        a: yes\n        b: off\n        c: true',
    )
    (wf,) = load_text(text, known_functions={"fetch@1", "parse@1", "store@latest"})
    fetch = wf.spec.nodes[0].inputs
    assert (fetch["a"], fetch["b"], fetch["c"]) == ("yes", "off", True)


@pytest.mark.parametrize(
    ("text", "needle", "field", "message"),
    [
        pytest.param(
            FUNCTION.replace("kind: Function", "kind: Pipeline"),
            "kind:",
            "kind",
            "'Pipeline' is not a known kind "
            "(expected one of Connection, EventType, Function, RuntimeEnv, Template, Trigger, "
            "Workflow)",
            id="unknown-kind",
        ),
        pytest.param(
            FUNCTION.replace("kind: Function\n", ""),
            "apiVersion",
            "kind",
            "required field is missing",
            id="missing-kind",
        ),
        pytest.param(
            FUNCTION.replace("actorflow/v1", "tekton.dev/v1"),
            "apiVersion",
            "apiVersion",
            "unsupported (expected 'actorflow/v1', got 'tekton.dev/v1')",
            id="wrong-api-version",
        ),
        pytest.param(
            FUNCTION.replace("  handler: mymod.io:fetch\n", ""),
            "spec:",
            "spec.handler",
            "required field is missing",
            id="missing-required-field",
        ),
        pytest.param(
            FUNCTION.replace("mymod.io:fetch", "mymod.io.fetch"),
            "handler:",
            "spec.handler",
            "handler must be 'module:callable', got 'mymod.io.fetch'",
            id="bad-handler",
        ),
        pytest.param(
            FUNCTION.replace("256Mi", "lots"),
            "memory:",
            "spec.resources.memory",
            "not a memory size: 'lots'",
            id="bad-memory",
        ),
        pytest.param(
            FUNCTION.replace("30s", "soon"),
            "timeout:",
            "spec.timeout",
            "not a duration: 'soon'",
            id="bad-duration",
        ),
        pytest.param(
            FUNCTION.replace("  timeout: 30s\n", "  timeout: 30s\n  retries: 3\n"),
            "retries:",
            "spec.retries",
            "unknown field",
            id="unknown-field",
        ),
        pytest.param(
            FUNCTION.replace("name: fetch", "name: Fetch Data"),
            "name:",
            "metadata.name",
            "'Fetch Data' is not a valid name",
            id="bad-name",
        ),
        pytest.param(
            FUNCTION.replace("  timeout: 30s\n", "  replicas: 0\n"),
            "replicas:",
            "spec.replicas",
            "greater than or equal to 1, got 0",
            id="out-of-range",
        ),
        pytest.param(
            WORKFLOW.replace("function: parse@1", "function: Parse It"),
            "function: Parse It",
            "spec.nodes[1].function",
            "'Parse It' is not a valid function reference",
            id="bad-function-ref",
        ),
        pytest.param(
            WORKFLOW.replace("type: string", "type: text"),
            "type: text",
            "spec.inputs.url.type",
            "got 'text'",
            id="bad-input-type",
        ),
        pytest.param(
            WORKFLOW.replace(
                "  outputs:", "    - id: fetch  # again\n      function: f\n  outputs:"
            ),
            "# again",
            "spec.nodes[3].id",
            "duplicate node id 'fetch' (first at spec.nodes[0])",
            id="duplicate-node-id",
        ),
        pytest.param(
            WORKFLOW.replace("needs: [fetch]", "needs: [fecth]"),
            "needs:",
            "spec.nodes[1].needs[0]",
            "needs unknown node 'fecth'",
            id="unknown-needs",
        ),
        pytest.param(
            WORKFLOW.replace("nodes.parse.output.rows", "nodes.prase.output.rows"),
            "rows:",
            "spec.nodes[2].inputs.rows",
            "expression reads unknown node 'prase'",
            id="unknown-node-in-expression",
        ),
        pytest.param(
            WORKFLOW.replace("nodes.store.output", "nodes.nowhere.output"),
            "stored:",
            "spec.outputs.stored",
            "expression reads unknown node 'nowhere'",
            id="unknown-node-in-output",
        ),
        pytest.param(
            WORKFLOW.replace("inputs.url", "inputs.uri"),
            "url: ",
            "spec.nodes[0].inputs.url",
            "expression reads undeclared input 'uri'",
            id="undeclared-input",
        ),
        pytest.param(
            WORKFLOW.replace("${{ nodes.fetch.output }}", "${{ nodes.fetch.output + }}"),
            "raw:",
            "spec.nodes[1].inputs.raw",
            "expression 'nodes.fetch.output +': Failed to parse",
            id="expression-syntax-error",
        ),
        pytest.param(
            WORKFLOW.replace("nodes.parse.output.rows", "nodes.store.output"),
            "rows:",
            "spec.nodes[2].inputs.rows",
            "node 'store' reads its own output",
            id="self-reference",
        ),
        pytest.param(
            WORKFLOW.replace("${{ nodes.parse.output.rows }}", "${{ item }}"),
            "rows:",
            "spec.nodes[2].inputs.rows",
            "'item' is only defined inside forEach",
            id="item-without-for-each",
        ),
        pytest.param(
            WORKFLOW.replace("inputs.url", "nodes.store.output"),
            "- id: fetch",
            "spec.nodes[0]",
            "cycle: fetch -> parse -> store -> fetch",
            id="cycle",
        ),
    ],
)
def test_invalid_definition(text: str, needle: str, field: str, message: str) -> None:
    issue = _one(text)
    assert issue.file == "defs.yaml"
    assert issue.field == field
    assert message in issue.message
    assert issue.line == _line(text, needle)


def test_yaml_syntax_error_names_line() -> None:
    text = FUNCTION.replace("  timeout: 30s", "  timeout: [30s")
    issue = _one(text)
    assert issue.file == "defs.yaml"
    assert issue.line is not None
    assert issue.line >= _line(text, "timeout:")
    assert issue.message.startswith("invalid YAML:")


def test_tab_indentation_is_a_syntax_error_at_its_line() -> None:
    text = FUNCTION.replace("  timeout: 30s", "\ttimeout: 30s")
    issue = _one(text)
    assert issue.line == _line(text, "timeout:")
    assert "invalid YAML" in issue.message


def test_python_tags_are_refused() -> None:
    text = FUNCTION + "  codeDir: !!python/object/apply:os.system ['true']\n"
    issue = _one(text)
    assert issue.line == _line(text, "codeDir")
    assert "could not determine a constructor" in issue.message


def test_duplicate_key_names_key_and_both_lines() -> None:
    text = FUNCTION.replace("  timeout: 30s\n", "  timeout: 30s\n  timeout: 40s\n")
    issue = _one(text)
    assert issue.field == "spec.timeout"
    assert issue.line == _line(text, "timeout:", 2)
    assert f"duplicate key 'timeout' (first at line {_line(text, 'timeout:')})" in issue.message


def test_document_must_be_mapping() -> None:
    issue = _one("---\n- a\n- b\n")
    assert issue.line == 2
    assert issue.message == "a document must be a mapping, got list"


def test_unknown_function_with_known_functions() -> None:
    issues = _issues(WORKFLOW, known_functions={"fetch@1", "parse@2"})
    assert [(i.field, i.line, i.message) for i in issues] == [
        (
            "spec.nodes[1].function",
            _line(WORKFLOW, "function: parse@1"),
            "unknown function 'parse@1' (known versions: 2)",
        ),
        (
            "spec.nodes[2].function",
            _line(WORKFLOW, "function: store"),
            "unknown function 'store@latest'",
        ),
    ]


def test_functions_in_the_same_text_are_known() -> None:
    parse = FUNCTION.replace("name: fetch", "name: parse")
    store = FUNCTION.replace("name: fetch", "name: store").replace('"1"', '"7"')
    text = "---\n".join([FUNCTION, parse, store, WORKFLOW])
    assert len(load_text(text, known_functions=())) == 4


def test_all_issues_of_a_file_are_reported_in_line_order() -> None:
    bad_fn = FUNCTION.replace("256Mi", "lots").replace("30s", "soon")
    bad_wf = WORKFLOW.replace("needs: [fetch]", "needs: [nope]")
    text = bad_fn + "---\n" + bad_wf
    issues = _issues(text)
    assert [i.field for i in issues] == [
        "spec.resources.memory",
        "spec.timeout",
        "spec.nodes[1].needs[0]",
    ]
    lines = [i.line for i in issues]
    assert lines == [_line(text, "memory:"), _line(text, "timeout:"), _line(text, "needs:")]
    assert str(issues[2]) == f"defs.yaml:{lines[2]}: spec.nodes[1].needs[0]: " + (
        "needs unknown node 'nope'"
    )


def test_duplicate_definitions_in_a_file() -> None:
    text = FUNCTION + "---\n" + FUNCTION
    issue = _one(text)
    assert issue.field == "metadata.name"
    assert issue.line == _line(text, "name: fetch", 2)
    assert f"duplicate Function 'fetch@1' (first at defs.yaml:{_line(text, 'name:')})" in (
        issue.message
    )


def test_load_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fn.yaml"
    path.write_text(FUNCTION.replace("30s", "soon"))
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    (issue,) = info.value.issues
    assert issue.file == str(path)
    assert issue.line == _line(FUNCTION, "timeout:")


def test_load_path_reads_a_directory_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(WORKFLOW)
    (tmp_path / "a.yaml").write_text(FUNCTION)
    (tmp_path / "notes.txt").write_text("not yaml: [")
    defs = load_path(tmp_path, known_functions={"parse@1", "store@3"})
    assert [d.ref for d in defs] == ["fetch@1", "etl@1"]
    assert load_path(tmp_path / "a.yaml") == defs[:1]


def test_load_path_reports_issues_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FUNCTION.replace("30s", "soon"))
    (tmp_path / "b.yaml").write_text(WORKFLOW.replace("needs: [fetch]", "needs: [x]"))
    with pytest.raises(DefinitionError) as info:
        load_path(tmp_path)
    assert [(Path(i.file or "").name, i.field) for i in info.value.issues] == [
        ("a.yaml", "spec.timeout"),
        ("b.yaml", "spec.nodes[1].needs[0]"),
    ]


def test_dump_round_trips() -> None:
    defs = load_text(FUNCTION + "---\n" + WORKFLOW)
    text = dump(defs)
    assert load_text(text) == defs
    assert text.startswith("---\napiVersion: actorflow/v1\nkind: Function\n")
    assert "maxConcurrency" not in text  # defaults are left out


def test_dump_keeps_explicit_null_default() -> None:
    text = WORKFLOW.replace("type: string", "type: string\n      default: null")
    (wf,) = load_text(text)
    assert isinstance(wf, Workflow)
    assert not wf.spec.inputs["url"].required
    (again,) = load_text(dump([wf]))
    assert isinstance(again, Workflow)
    assert not again.spec.inputs["url"].required
    assert again == wf


_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(
        ["f@1", "a", "${{ nodes.a.output }}", "${{ item }}", "${{ 1 + }}", "30s", "1Gi", "m:f"]
    )
)
_KEYS = st.sampled_from(
    [
        "metadata",
        "spec",
        "name",
        "version",
        "nodes",
        "id",
        "function",
        "needs",
        "inputs",
        "outputs",
        "forEach",
        "handler",
        "resources",
        "memory",
        "timeout",
        "type",
        "default",
    ]
)
_ANY = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=20,
)
_DOCS = st.fixed_dictionaries(
    {"apiVersion": st.just("actorflow/v1"), "kind": st.sampled_from(["Workflow", "Function"])},
    optional={"metadata": _ANY, "spec": _ANY},
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_DOCS, max_size=3))
def test_any_document_loads_or_fails_with_located_issues(docs: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(docs)
    issues: list[DefinitionIssue] = []
    try:
        load_text(text, known_functions={"f@1"})
    except DefinitionError as err:
        issues = err.issues
    assert all(i.file == "<string>" and i.line is not None for i in issues)


def test_an_image_map_maps_images_and_names_the_line_of_a_bad_entry(tmp_path: Path) -> None:
    from actorflow.definitions.convert import ImageTarget, load_image_map

    good = tmp_path / "images.yaml"
    good.write_text("alpine:3.18: {runtimeEnv: sh-env@1}\npython:3.11: {function: py@2}\n")
    assert load_image_map(good) == {
        "alpine:3.18": ImageTarget(runtime_env="sh-env@1"),
        "python:3.11": ImageTarget(function="py@2"),
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("alpine: {runtimeEnv: e@1}\nbusybox: {image: x}\n")
    with pytest.raises(DefinitionError) as err:
        load_image_map(bad)
    (issue,) = err.value.issues
    assert (issue.file, issue.line, issue.field) == (str(bad), 2, "busybox")
    assert "{function: NAME@VERSION}" in issue.message
