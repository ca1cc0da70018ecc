"""The Fission Workflows converter: every corpus file converts and validates, each
construct's native shape, converted workflows driven through the run state machine, the
native `fail` node, and malformed files refused with file, line and field. No Ray, no NATS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from run_support import complete, only_stop, schedule, started

from actorflow.actors.run.state import RunState
from actorflow.definitions import events as ev
from actorflow.definitions.convert import ConvertOptions, convert, detect
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Workflow
from actorflow.definitions.yaml_source import compose

CORPUS = Path("/work/shared/corpus/fission")
FILES = sorted(CORPUS.glob("*.wf.yaml")) if CORPUS.is_dir() else []


def _load(text: str, file: str = "x.wf.yaml") -> list[Workflow]:
    models = load_text(text, file=file)
    assert all(isinstance(m, Workflow) for m in models)
    return [m for m in models if isinstance(m, Workflow)]


def _data(text: str, file: str = "x.wf.yaml") -> list[dict[str, Any]]:
    (doc,), issues = compose(text, file)
    assert not issues
    return [d.data for d in convert(doc, "fission", ConvertOptions())]


def _nodes(wf: Workflow) -> dict[str, Any]:
    return {n.id: n for n in wf.spec.nodes}


def _refused(text: str, file: str = "bad.wf.yaml") -> set[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_text(text, file=file)
    assert all(i.file == file for i in caught.value.issues)
    return {(i.line, i.field, i.message) for i in caught.value.issues}


# --- the corpus ---------------------------------------------------------------------------


@pytest.mark.skipif(len(FILES) != 19, reason="the shared corpus is not here")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_corpus_file_converts_and_validates(path: Path) -> None:
    models = _load(path.read_text(), str(path))
    main = models[0]
    assert main.metadata.name == path.name.removesuffix(".wf.yaml")
    assert main.metadata.version == "1"
    assert set(main.spec.outputs) == {"output"}
    for child in models[1:]:
        assert child.metadata.name.startswith(main.metadata.name + "--")


def test_detection_takes_fission_files_with_or_without_api_version() -> None:
    for text in ("apiVersion: 1\noutput: a\ntasks: {a: {run: noop}}", "output: a\ntasks: {}"):
        (doc,), _ = compose(text, "x.wf.yaml")
        assert detect(doc) == "fission"
    (doc,), _ = compose("kind: Workflow\ntasks: {}", "x.yaml")
    assert detect(doc) == "native"


# --- shapes -------------------------------------------------------------------------------

FORTUNE = """\
apiVersion: 1
output: WhaleWithFortune
tasks:
  GenerateFortune:
    run: fortune
  WhaleWithFortune:
    run: whalesay
    inputs:
      body: "{ output('GenerateFortune') }"
    requires:
    - GenerateFortune
"""


def test_functions_inputs_requires_and_output() -> None:
    (data,) = _data(FORTUNE, "fortunewhale.wf.yaml")
    assert data["metadata"] == {"name": "fortunewhale", "version": "1"}
    assert data["spec"]["nodes"] == [
        {"id": "GenerateFortune", "function": "fortune"},
        {
            "id": "WhaleWithFortune",
            "needs": ["GenerateFortune"],
            "function": "whalesay",
            "inputs": {"body": "${{ nodes.GenerateFortune.output }}"},
        },
    ]
    assert data["spec"]["outputs"] == {"output": "${{ nodes.WhaleWithFortune.output }}"}
    assert data["spec"]["inputs"]["default"] == {"type": "any", "required": False}


def test_a_scalar_input_is_the_default_input_and_namespaces_join_the_name() -> None:
    (data,) = _data(
        "output: t\ntasks:\n  t:\n    run: fission://ns/dump\n"
        "    inputs: '{ $.Invocation.Inputs }'\n"
    )
    (node,) = data["spec"]["nodes"]
    assert node == {"id": "t", "function": "ns__dump", "inputs": {"default": "${{ inputs }}"}}


def test_fission_function_inputs_become_keyword_arguments() -> None:
    text = """\
output: T
tasks:
  T:
    run: dump
    inputs: {body: "{ param('body') }", content-type: text/plain, content_type: x}
"""
    assert _refused(text) == {
        (
            5,
            "tasks.T.inputs.content_type",
            "inputs 'content-type' and 'content_type' are both the native input 'content_type': "
            "rename one",
        ),
    }
    (data,) = _data(text.replace(", content_type: x", ""))
    assert data["spec"]["nodes"][0]["inputs"] == {
        "body": "${{ inputs.body }}",
        "content_type": "text/plain",
    }


def test_native_source_lines_point_at_the_fission_task() -> None:
    (doc,), _ = compose(FORTUNE, "f.wf.yaml")
    (native,) = convert(doc, "fission")
    assert native.lines[("spec", "nodes", 1)] == 6
    assert native.lines[("spec", "nodes", 1, "inputs", "body")] == 9


def test_sleep_fail_noop_compose_http() -> None:
    text = """\
output: C
tasks:
  S: {run: sleep, inputs: 1m30s}
  F: {run: fail, inputs: "all has failed", requires: [S]}
  N: {run: noop, inputs: "{ param() }"}
  C:
    run: compose
    inputs: {a: "{ output('N') }", b: 2}
  H:
    run: http
    inputs: {url: "http://x/{ no }", method: post, body: {k: "{ param() }"},
             content-type: application/json}
"""
    (data,) = _data(text)
    nodes = {n["id"]: n for n in data["spec"]["nodes"]}
    assert nodes["S"]["sleep"] == 90.0
    assert nodes["F"] == {"id": "F", "needs": ["S"], "fail": "all has failed"}
    assert nodes["N"]["value"] == "${{ inputs.default }}"
    assert nodes["C"]["value"] == {"a": "${{ nodes.N.output }}", "b": 2}
    assert nodes["H"]["http"] == {
        "url": "http://x/{ no }",  # not wrapped in braces as a whole: a literal, as in Fission
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": {"k": "${{ inputs.default }}"},
    }


def test_http_output_is_the_body_and_output_headers_the_headers() -> None:
    text = """\
output: W
tasks:
  H: {run: http, inputs: "http://example"}
  W:
    run: whalesay
    inputs: {body: "{ output('H') + outputHeaders('H').Date }"}
    requires: [H]
"""
    (data,) = _data(text)
    body = data["spec"]["nodes"][1]["inputs"]["body"]
    assert body == "${{ (nodes.H.output.body + nodes.H.output.headers.Date) }}"


def test_http_urls_follow_fissions_rules() -> None:
    text = """\
output: A
tasks:
  A: {run: http, inputs: example.com}
  B:
    run: http
    inputs: {url: "{ param() }", query: {q: a b, n: 2}, headers: {X-Token: "{ param('t') }"}}
"""
    (data,) = _data(text)
    a, b = data["spec"]["nodes"]
    assert a["http"] == {"url": "http://example.com"}
    assert b["http"] == {
        "url": '${{ (inputs.default.startsWith("http") ? inputs.default : "http://" + '
        'inputs.default) + "?q=a+b&n=2" }}',
        "headers": {"X-Token": "${{ inputs.t }}"},
    }


def test_a_workflow_beside_the_file_is_a_sub_workflow(tmp_path: Path) -> None:
    (tmp_path / "echowhale.wf.yaml").write_text("output: a\ntasks: {a: {run: noop}}\n")
    text = "output: W\ntasks:\n  W: {run: echowhale, inputs: '{ param() }'}\n"
    (data,) = _data(text, str(tmp_path / "nested.wf.yaml"))
    assert data["spec"]["nodes"] == [
        {"id": "W", "workflow": "echowhale", "inputs": {"default": "${{ inputs.default }}"}}
    ]
    assert data["spec"]["outputs"]["output"] == "${{ nodes.W.output.output }}"


def test_an_inline_workflow_becomes_its_own_workflow() -> None:
    text = """\
output: Scope
tasks:
  Scope:
    run: noop
    inputs:
      default:
        output: B
        tasks:
          A: {run: fortune}
          B: {run: whalesay, inputs: {body: "{ output('A') }"}, requires: [A]}
"""
    main, child = _load(text, "scoped.wf.yaml")
    assert _nodes(main)["Scope"].workflow == "scoped--scope@1"
    assert child.metadata.name == "scoped--scope"
    assert [n.id for n in child.spec.nodes] == ["A", "B"]
    assert main.spec.outputs == {"output": "${{ nodes.Scope.output.output }}"}


def test_foreach_runs_its_body_per_item_and_gathers_the_outputs() -> None:
    text = """\
output: M
tasks:
  M:
    run: foreach
    inputs:
      foreach: [1, 2]
      do: {run: noop, inputs: "{ task().Inputs._item * 10 }"}
"""
    main, body = _load(text, "each.wf.yaml")
    each = _nodes(main)["M__each"]
    assert (each.workflow, each.for_each) == ("each--m@1", "${{ [1, 2] }}")
    assert each.inputs == {"_item": "${{ item }}"}
    assert _nodes(main)["M"].value == "${{ nodes.M__each.output.map(o, o.output) }}"
    assert _nodes(body)["do"].value == "${{ (inputs._item * 10) }}"


# --- behaviour: converted workflows through the run state machine ---------------------------

MAYBE = """\
output: PassAlong
tasks:
  Show: {run: noop, inputs: "{$.Invocation.Inputs.default}"}
  If:
    run: if
    inputs:
      if: "{$.Invocation.Inputs.default.length < 20}"
      then: {run: whalesay, inputs: {body: "{$.Tasks.Show.Output}"}}
      else: "{$.Tasks.Show.Output}"
    requires: [Show]
  PassAlong: {run: compose, inputs: "{$.Tasks.If.Output}", requires: [If]}
"""


def test_if_runs_the_then_task_when_true() -> None:
    (wf,) = _load(MAYBE)
    state = RunState(started(wf, default="short"))
    (task,) = schedule(state)
    assert task.ref.node == "If__then"
    assert task.inputs == {"body": "short"}
    complete(state, task, "whale says short")
    stop = only_stop(state)
    assert (stop.status, stop.outputs) == (ev.RunStatus.SUCCEEDED, {"output": "whale says short"})


def test_if_takes_the_else_value_when_false_and_skips_only_the_branch() -> None:
    (wf,) = _load(MAYBE)
    long = "This sentence is far to complex for a whale!"
    state = RunState(started(wf, default=long))
    stop = only_stop(state)
    assert (stop.status, stop.outputs) == (ev.RunStatus.SUCCEEDED, {"output": long})


SWITCH = """\
output: R
tasks:
  R:
    run: switch
    inputs:
      switch: "{ param() }"
      cases:
      - {case: hello, action: world!}
      - {case: foo, action: {run: shout, inputs: "{ param() }"}}
      default: right...
"""


@pytest.mark.parametrize(("given", "out"), [("hello", "world!"), ("acme", "right...")])
def test_switch_picks_the_case_value_or_the_default(given: str, out: str) -> None:
    (wf,) = _load(SWITCH)
    stop = only_stop(RunState(started(wf, default=given)))
    assert (stop.status, stop.outputs) == (ev.RunStatus.SUCCEEDED, {"output": out})


def test_switch_runs_a_task_case() -> None:
    (wf,) = _load(SWITCH)
    state = RunState(started(wf, default="foo"))
    (task,) = schedule(state)
    assert (task.ref.node, task.inputs) == ("R__case1", {"default": "foo"})
    complete(state, task, "FOO")
    assert only_stop(state).outputs == {"output": "FOO"}


def test_metadata_headers_default_to_empty() -> None:
    text = """\
output: Wrap
tasks:
  Gen: {run: fortune}
  Wrap:
    run: compose
    inputs: "{ (param('headers').Prefix || '') + output('Gen') + (param('headers').Postfix || '') }"
    requires: [Gen]
"""
    (wf,) = _load(text)
    for headers, out in [({}, "luck"), ({"Prefix": "> ", "Postfix": "!"}, "> luck!")]:
        state = RunState(started(wf, headers=headers))
        (task,) = schedule(state)
        complete(state, task, "luck")
        assert only_stop(state).outputs == {"output": out}


def test_the_fail_node_fails_the_run_with_its_message() -> None:
    text = """\
output: Never
tasks:
  FailHere: {run: fail, inputs: "all has failed: { param() }"}
  Never: {run: noop, inputs: "never", requires: [FailHere]}
"""
    (wf,) = _load(text)
    stop = only_stop(RunState(started(wf, default="x")))
    assert (stop.status, stop.node) == (ev.RunStatus.INTERRUPTED, "FailHere")
    assert stop.error is not None
    assert (stop.error.code, stop.error.message) == ("FAIL", "all has failed: { param() }")


def test_a_native_fail_node_renders_its_message() -> None:
    wf = Workflow.model_validate(
        {
            "metadata": {"name": "f"},
            "spec": {"nodes": [{"id": "a", "fail": "bad ${{ inputs.x }}"}], "inputs": {"x": {}}},
        }
    )
    stop = only_stop(RunState(started(wf, x=3)))
    assert stop.error is not None
    assert (stop.error.code, stop.error.message, stop.error.retryable) == ("FAIL", "bad 3", False)
    with pytest.raises(ValueError, match="takes no inputs"):
        Workflow.model_validate(
            {
                "metadata": {"name": "f"},
                "spec": {"nodes": [{"id": "a", "fail": "x", "inputs": {"k": 1}}]},
            }
        )


def test_javascript_task_is_a_value_over_its_args() -> None:
    text = """\
output: J
tasks:
  J:
    run: javascript
    inputs:
      args: {a: 2, b: "{ param() }"}
      expr: "({'sum': a + b, 'big': b > 10})"
"""
    (wf,) = _load(text)
    stop = only_stop(RunState(started(wf, default=20)))
    assert stop.outputs == {"output": {"sum": 22, "big": True}}


def test_a_sequential_foreach_takes_one_item_per_level() -> None:
    text = """\
output: M
tasks:
  M:
    run: foreach
    inputs:
      foreach: "{ param() }"
      sequential: true
      do: {run: shout, inputs: "{ task().Inputs._item }"}
"""
    main, loop = _load(text, "seq.wf.yaml")
    assert _nodes(main)["M__loop"].inputs == {
        "_items": "${{ inputs.default }}",
        "_index": 0,
        "_acc": [],
    }
    assert _nodes(main)["M"].value == "${{ nodes.M__loop.output.output }}"

    def level(**inputs: Any) -> RunState:
        first = started(loop, **inputs).model_copy(update={"workflows": {"seq--m@1": "1"}})
        return RunState(first)

    state = level(_items=["a", "b"], _index=1, _acc=["A"])
    (task,) = schedule(state)
    assert (task.ref.node, task.inputs) == ("do", {"default": "b"})
    complete(state, task, "B")
    (task,) = schedule(state)
    assert task.inputs["inputs"] == {"_items": ["a", "b"], "_index": 2, "_acc": ["A", "B"]}
    stop = only_stop(level(_items=["a", "b"], _index=2, _acc=["A", "B"]))
    assert stop.outputs == {"output": ["A", "B"]}


def test_repeat_and_while_call_themselves_under_a_condition() -> None:
    text = """\
output: W
tasks:
  W:
    run: while
    inputs:
      expr: "{ !task().Inputs._prev || task().Inputs._prev < 5 }"
      limit: 10
      do: {run: noop, inputs: "{ (task().Inputs._prev || 0) + 1 }"}
"""
    main, loop = _load(text, "count.wf.yaml")
    assert _nodes(main)["W"].workflow == "count--w@1"
    nodes = _nodes(loop)
    assert nodes["next"].workflow == "count--w@1"
    assert nodes["limit"].fail == "while limit exceeded"

    def level(**inputs: Any) -> RunState:
        first = started(loop, **inputs).model_copy(update={"workflows": {"count--w@1": "1"}})
        return RunState(first)

    # one level of the loop: _prev = 2 -> do gives 3 and recurses with it
    state = level(_prev=2, _count=2, _limit=10)
    (task,) = schedule(state)
    assert (task.ref.node, task.inputs["inputs"]) == (
        "next",
        {"_prev": 3, "_count": 3, "_limit": 10},
    )
    # the last level: the condition is false, the output is _prev
    stop = only_stop(level(_prev=5, _count=5, _limit=10))
    assert stop.outputs == {"output": 5}
    # past the limit: the run fails as Fission's does
    stop = only_stop(level(_prev=1, _count=11, _limit=10))
    assert stop.error is not None
    assert stop.error.message == "while limit exceeded"


# --- refusals -----------------------------------------------------------------------------


def test_unknown_requires_and_output_are_refused_at_their_lines() -> None:
    text = """\
output: Nope
tasks:
  A:
    run: noop
    requires:
    - Ghost
"""
    assert _refused(text) == {
        (1, "output", "output 'Nope' is not a task of this workflow"),
        (6, "tasks.A.requires[0]", "unknown task 'Ghost' in requires"),
    }


def test_a_dependency_cycle_is_refused_with_its_path() -> None:
    text = """\
output: A
tasks:
  A: {run: noop, requires: [B]}
  B: {run: noop, requires: [A]}
"""
    ((line, field, message),) = _refused(text)
    assert message == "dependency cycle: A -> B -> A (remove one requires)"
    assert (line, field) == (3, "tasks.A.requires")


def test_an_expression_that_does_not_parse_is_refused() -> None:
    text = """\
output: A
tasks:
  A:
    run: whalesay
    inputs:
      body: "{ output('A' }"
      other: "{ function() { return 1 } }"
"""
    issues = _refused(text)
    assert {(line, field) for line, field, _ in issues} == {
        (6, "tasks.A.inputs.body"),
        (7, "tasks.A.inputs.other"),
    }
    messages = sorted(m for _, _, m in issues)
    assert "expected ',' or ')', found the end (column 13)" in messages[0]
    assert "function body cannot be converted" in messages[1]


def test_wrong_types_and_unknown_fields_are_refused_and_nothing_converts() -> None:
    text = """\
output: A
timeout: 5s
tasks:
  A: {run: 3, retries: 2}
  B: just-a-string
  C: {run: noop, requires: C}
  D: {run: sleep, inputs: soon}
"""
    issues = _refused(text)
    assert issues == {
        (
            2,
            "timeout",
            "unknown field 'timeout' (a Fission workflow has apiVersion, "
            "description, output and tasks)",
        ),
        (4, "tasks.A.run", "run must name a function, a workflow or an internal function"),
        (
            4,
            "tasks.A.retries",
            "unknown field 'retries' (a Fission task has run, inputs and requires)",
        ),
        (5, "tasks.B", "a task is a map with run (and inputs, requires)"),
        (6, "tasks.C.requires", "requires must be a list of task ids"),
    }


def test_a_construct_without_a_counterpart_is_one_issue_each() -> None:
    text = """\
output: A
tasks:
  A: {run: sleep, inputs: soon}
  B: {run: foreach, inputs: {foreach: [1], collect: maybe, do: {run: noop}}}
  C: {run: whalesay, inputs: {body: "{ $.Workflow.Id }"}}
"""
    issues = _refused(text)
    assert {(line, field) for line, field, _ in issues} == {
        (3, "tasks.A.inputs"),
        (4, "tasks.B.inputs.collect"),
        (5, "tasks.C.inputs.body"),
    }


# --- properties ---------------------------------------------------------------------------


@st.composite
def _dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Task ids with requires on earlier tasks only: always a DAG."""
    n = draw(st.integers(min_value=1, max_value=8))
    ids = [f"T{i}" for i in range(n)]
    return {
        tid: draw(st.lists(st.sampled_from(ids[:i]), unique=True)) if i else []
        for i, tid in enumerate(ids)
    }


def _text(dag: dict[str, list[str]]) -> str:
    lines = [f"output: {next(iter(dag))}", "tasks:"]
    for tid, requires in dag.items():
        lines += [
            f"  {tid}:",
            "    run: noop",
            f"    inputs: \"{{ '{tid}' }}\"",
            f"    requires: {requires}",
        ]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(_dags())
def test_requires_become_needs_exactly(dag: dict[str, list[str]]) -> None:
    (wf,) = _load(_text(dag))
    assert {n.id: n.need_ids for n in wf.spec.nodes} == dag
    assert {n.id: n.value for n in wf.spec.nodes} == {t: f'${{{{ "{t}" }}}}' for t in dag}


@settings(max_examples=60, deadline=None)
@given(_dags().filter(lambda d: len(d) > 1), st.data())
def test_a_back_edge_is_always_a_reported_cycle(
    dag: dict[str, list[str]], data: st.DataObject
) -> None:
    ids = list(dag)
    last = ids[-1]
    ancestors = {last}
    for tid in reversed(ids):  # everything `last` reaches through requires
        if tid in ancestors:
            ancestors |= set(dag[tid])
    target = data.draw(st.sampled_from(sorted(ancestors - {last}) or [ids[0]]))
    if target not in ancestors:
        dag[last] = [*dag[last], target]  # make sure last reaches target
    dag[target] = [*dag[target], last]
    messages = [m for _, _, m in _refused(_text(dag))]
    assert messages
    assert all(m.startswith("dependency cycle: ") for m in messages)


def test_a_task_returned_by_noop_runs_in_its_place_with_its_own_output() -> None:
    text = """\
output: N
tasks:
  N:
    run: noop
    inputs:
      default: {run: http, inputs: "example.com/ip"}
"""
    (data,) = _data(text)
    assert data["spec"]["nodes"] == [{"id": "N", "http": {"url": "http://example.com/ip"}}]
    assert data["spec"]["outputs"] == {"output": "${{ nodes.N.output.body }}"}


def test_another_tasks_inputs_are_read_in_that_tasks_place() -> None:
    text = """\
output: B
tasks:
  A: {run: shout, inputs: {text: "{ param() }", times: 2}}
  B:
    run: compose
    inputs: "{ input('A', 'times') + $.Tasks.A.Inputs.times }"
    requires: [A]
  C: {run: compose, inputs: "{ task().Inputs.default }"}
"""
    with pytest.raises(DefinitionError) as caught:
        _load(text)
    (issue,) = caught.value.issues
    assert (issue.line, issue.field) == (8, "tasks.C.inputs")
    assert "read each other in a circle" in issue.message
    (data,) = _data(text.replace('  C: {run: compose, inputs: "{ task().Inputs.default }"}\n', ""))
    value = data["spec"]["nodes"][1]["value"]
    a_inputs = '{"text": inputs.default, "times": 2}'
    assert value == f"${{{{ ({a_inputs}.times + {a_inputs}.times) }}}}"
