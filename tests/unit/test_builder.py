"""The Python builder makes the same models as YAML, checked the same way."""

from __future__ import annotations

from typing import Any

import pytest

from actorflow.builder import NodeHandle, WorkflowBuilder, function
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.loader import dump, load_text
from actorflow.definitions.models import Function, Workflow


def tokenize(text: str) -> list[str]:
    return text.split()


def test_function_from_keywords() -> None:
    fn = function(
        "tokenize",
        handler="mymod:tokenize",
        version="2",
        cpus=0.5,
        gpus=1,
        memory="256Mi",
        replicas=2,
        max_concurrency=4,
        timeout="1m30s",
        code_dir="src",
    )
    assert isinstance(fn, Function)
    assert fn.ref == "tokenize@2"
    assert fn.spec.handler == "mymod:tokenize"
    assert fn.spec.resources.memory == 256 * 2**20
    assert (fn.spec.resources.cpus, fn.spec.resources.gpus) == (0.5, 1.0)
    assert (fn.spec.replicas.min, fn.spec.replicas.max) == (2, 2)
    assert (fn.spec.max_concurrency, fn.spec.timeout) == (4, 90.0)
    assert fn.spec.code_dir == "src"


def test_function_from_callable() -> None:
    fn = function("tokenize", tokenize)
    assert fn.spec.handler == f"{__name__}:tokenize"


def test_function_errors_name_fields() -> None:
    def nested(x: Any) -> Any:
        return x

    with pytest.raises(DefinitionError) as info:
        function("Bad Name", nested, memory="lots", timeout=-1)
    assert [i.field for i in info.value.issues] == [
        "metadata.name",
        "spec.handler",
        "spec.resources.memory",
        "spec.timeout",
    ]
    assert "<locals>" in info.value.issues[1].message


def test_node_handle_expressions() -> None:
    handle = NodeHandle("fetch")
    assert handle.output == "${{ nodes.fetch.output }}"
    assert handle.out("k") == "${{ nodes.fetch.output.k }}"
    assert handle.out("rows", 0, "a-b") == '${{ nodes.fetch.output.rows[0]["a-b"] }}'


def test_build_workflow_equals_yaml() -> None:
    parse = function("parse", "mymod:parse")
    wf = WorkflowBuilder("etl", description="demo")
    url = wf.input("url", type="string")
    limit = wf.input("limit", type="integer", default=None)
    fetch = wf.node("fetch", "fetch@1", inputs={"url": url, "limit": limit})
    parsed = wf.node("parse", parse, inputs={"raw": fetch.output}, needs=[fetch])
    wf.node("each", "store", for_each=parsed.out("rows"), inputs={"row": "${{ item }}"})
    wf.output("rows", parsed.out("rows"))
    model = wf.build()

    assert url == "${{ inputs.url }}"
    assert wf.functions == [parse]
    (expected,) = load_text(
        """
        apiVersion: actorflow/v1
        kind: Workflow
        metadata: {name: etl, description: demo}
        spec:
          inputs:
            url: {type: string}
            limit: {type: integer, default: null}
          nodes:
            - id: fetch
              function: fetch@1
              inputs: {url: "${{ inputs.url }}", limit: "${{ inputs.limit }}"}
            - id: parse
              function: parse@1
              needs: [fetch]
              inputs: {raw: "${{ nodes.fetch.output }}"}
            - id: each
              function: store
              forEach: "${{ nodes.parse.output.rows }}"
              inputs: {row: "${{ item }}"}
          outputs:
            rows: "${{ nodes.parse.output.rows }}"
        """.replace("\n        ", "\n")
    )
    assert model == expected
    assert isinstance(model, Workflow)
    assert model.spec.inputs["url"].required
    assert not model.spec.inputs["limit"].required
    assert load_text(dump([parse, model])) == [parse, model]


def test_build_reports_graph_issues() -> None:
    wf = WorkflowBuilder("loop")
    a = wf.node("a", "f@1", needs=["b"])
    wf.node("b", "f@1", inputs={"x": a.output, "y": "${{ inputs.nope }}"})
    wf.node("c", "f@1", needs=["ghost"])
    with pytest.raises(DefinitionError) as info:
        wf.build()
    assert [(i.field, i.message) for i in info.value.issues] == [
        ("spec.nodes[1].inputs.y", "expression reads undeclared input 'nope'"),
        ("spec.nodes[2].needs[0]", "needs unknown node 'ghost'"),
        ("spec.nodes[0]", "cycle: a -> b -> a"),
    ]


def test_build_reports_model_issues() -> None:
    wf = WorkflowBuilder("bad")
    wf.node("not an id", "f@1")
    with pytest.raises(DefinitionError) as info:
        wf.build()
    (issue,) = info.value.issues
    assert issue.field == "spec.nodes[0].id"
    assert "'not an id' is not a valid node id" in issue.message


def test_empty_workflow_is_invalid() -> None:
    with pytest.raises(DefinitionError) as info:
        WorkflowBuilder("empty").build()
    assert info.value.issues[0].field == "spec.nodes"


def test_hooks_and_error_policies_build_like_yaml() -> None:
    b = WorkflowBuilder("hooked", version="1")
    a = b.node("a", "f@1")
    b.hook("after_node", "audit:record", nodes=[a])
    b.hook("after_run", "notify@2")
    b.on_error("DB_DOWN", {"action": "manual", "guidance": "call the DBA"})
    wf = b.build()
    assert [(h.on, h.call, h.nodes) for h in wf.spec.hooks] == [
        ("after_node", "audit:record", ["a"]),
        ("after_run", "notify@2", []),
    ]
    assert wf.spec.on_error["DB_DOWN"].guidance == "call the DBA"
    assert load_text(dump([wf])) == [wf]


def test_a_hook_on_an_unknown_node_is_refused() -> None:
    b = WorkflowBuilder("hooked", version="1")
    b.node("a", "f@1")
    b.hook("before_node", "audit:record", nodes=["ghost"])
    with pytest.raises(DefinitionError, match="hook names unknown node 'ghost'"):
        b.build()
