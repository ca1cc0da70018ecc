"""The Argo converter: every corpus file converts and validates; each construct's native
form (asserted on the converted data); a converted step run by its runner; bad input
refused with file, line and field, converting nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from actorflow.actors.run.gates import Gate, gate
from actorflow.definitions.convert import ConvertOptions, ImageTarget, NativeDocument, convert
from actorflow.definitions.convert.argo_leaf import runner_source
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.events import NodeStatus
from actorflow.definitions.expressions import Template
from actorflow.definitions.loader import load_text
from actorflow.definitions.models import Trigger, Workflow
from actorflow.definitions.yaml_source import compose

CORPUS = Path("/work/shared/corpus/argo")
FILES = sorted(p.name for p in CORPUS.glob("*.yaml"))


def _convert(text: str, options: ConvertOptions | None = None) -> list[NativeDocument]:
    docs, issues = compose(text, "wf.yaml")
    assert not issues
    return convert(docs[0], "argo", options)


def _corpus(name: str, **options: Any) -> list[NativeDocument]:
    return _convert((CORPUS / name).read_text(), ConvertOptions(**options))


def _nodes(doc: NativeDocument) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in doc.data["spec"]["nodes"]}


def _config(node: dict[str, Any]) -> dict[str, Any]:
    argv = node["shell"]["argv"]
    assert argv[:3] == ["python3", "-c", runner_source()]
    return dict(json.loads(argv[3]), values=argv[4:])


def _run_step(node: dict[str, Any], context: dict[str, Any], tmp: Path) -> Any:
    """Run one converted shell node as its replica would: rendered, never via a shell."""
    shell = Template.compile(node["shell"]).render({"run": {"id": "r1"}, **context})
    argv = [a if isinstance(a, str) else json.dumps(a) for a in shell["argv"]]
    env = {"ACTORFLOW_ARGO_ARTIFACTS": str(tmp / "store"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else proc.stderr


@pytest.mark.parametrize("name", FILES)
def test_every_corpus_file_converts_and_validates(name: str) -> None:
    assert len(FILES) == 29
    models = load_text((CORPUS / name).read_text(), file=name)
    workflows = [m for m in models if isinstance(m, Workflow)]
    assert workflows
    assert all(m.metadata.name.startswith(workflows[0].metadata.name) for m in workflows)


def test_steps_are_sequential_stages_of_parallel_steps() -> None:
    (top,) = _corpus("steps.yaml")
    nodes = _nodes(top)
    assert list(nodes) == ["hello1", "hello2a", "hello2b"]
    assert nodes["hello1"]["needs"] == []
    assert nodes["hello2a"]["needs"] == nodes["hello2b"]["needs"] == ["hello1"]
    assert _config(nodes["hello2a"])["command"] == ["echo", "hello2a"]
    assert nodes["hello2a"]["shell"]["env"] == {"ARGO_IMAGE": "busybox"}


def test_dag_depends_become_needs_and_status_conditions() -> None:
    (top,) = _corpus("dag-diamond.yaml")
    assert _nodes(top)["D"]["needs"] == ["B", "C"]
    assert "when" not in _nodes(top)["D"]
    (top,) = _corpus("dag-enhanced-depends.yaml")
    nodes = _nodes(top)
    assert nodes["should_execute_1"]["needs"] == ["A", {"node": "C", "on": "finished"}]
    assert nodes["should_execute_1"]["when"] == (
        "${{ nodes.A.status in ['SUCCEEDED', 'SKIPPED'] && "
        "(nodes.C.status == 'SUCCEEDED' || nodes.C.status == 'FAILED') }}"
    )
    assert nodes["should_not_execute"]["needs"] == ["B", "C"]
    assert nodes["should_execute_2"]["needs"] == [
        {"node": "B", "on": "finished"},
        {"node": "C", "on": "finished"},
    ]


def test_when_reads_the_steps_result_and_a_steps_template_is_a_recursive_subworkflow() -> None:
    (top,) = _corpus("coinflip.yaml")
    assert _nodes(top)["heads"]["when"] == (
        "${{ string(nodes.flip_coin.output.result) == 'heads' }}"
    )
    top, sub = _corpus("dag-coinflip.yaml")
    assert sub.data["metadata"]["name"] == "dag-diamond-coinflip--coinflip"
    assert _nodes(top)["A"]["workflow"] == "dag-diamond-coinflip--coinflip"
    tails = _nodes(sub)["tails"]
    assert tails["workflow"] == "dag-diamond-coinflip--coinflip"  # itself, under a when
    assert tails["inputs"] == {"argo": "${{ inputs.argo }}"}
    assert "when" in tails
    assert sub.data["spec"]["inputs"] == {"argo": {"type": "object"}}


def test_loops_become_for_each() -> None:
    (top,) = _corpus("loops.yaml")
    node = _nodes(top)["print_message_loop"]
    assert node["forEach"] == "${{ ['hello world', 'goodbye world'] }}"
    assert _config(node)["values"] == ["${{ item }}"]
    (top,) = _corpus("loops-param-result.yaml")
    assert _nodes(top)["sleep"]["forEach"] == "${{ nodes.generate.output.json.result }}"
    (top,) = _corpus("loops-maps.yaml")
    assert _nodes(top)["test_linux"]["shell"]["env"]["ARGO_IMAGE"] == (
        "${{ item.image }}:${{ item.tag }}"
    )
    doc = _convert(_wf("withSequence: {count: '3', format: 'n%02d'}"))[0]
    assert _nodes(doc)["a"]["forEach"] == "${{ ['n00', 'n01', 'n02'] }}"


def test_parameters_are_inputs_and_outputs_are_read_from_files() -> None:
    (top,) = _corpus("global-parameters.yaml")
    assert top.data["spec"]["inputs"] == {"message": {"type": "any", "default": "hello world"}}
    assert _config(_nodes(top)["print_message"])["values"] == ["${{ inputs.message }}"]
    (top,) = _corpus("output-parameter.yaml")
    nodes = _nodes(top)
    config = _config(nodes["generate_parameter"])
    assert config["parameters"] == [
        {"name": "hello-param", "path": "/tmp/hello_world.txt", "default": "Foobar"}
    ]
    assert _config(nodes["consume_parameter"])["values"] == [
        "${{ nodes.generate_parameter.output.parameters['hello-param'] }}"
    ]


def test_retry_strategy_and_deadlines() -> None:
    (top,) = _corpus("retry-backoff.yaml")
    node = _nodes(top)["retry_backoff"]
    assert node["retry"] == {"maxAttempts": 11, "initialDelay": 1, "backoff": 2.0, "maxDelay": 5}
    assert node["timeout"] == "1m"  # maxDuration: all attempts together
    (top,) = _corpus("timeouts-step.yaml")
    assert _nodes(top)["sleep"]["timeout"] == 10
    (top,) = _corpus("timeouts-workflow.yaml")
    assert top.data["spec"]["timeout"] == 30
    doc = _convert(_wf("", retry="{limit: 3, expression: 'asInt(lastRetry.exitCode) > 1'}"))[0]
    assert _nodes(doc)["a"]["retry"] == {
        "maxAttempts": 4,
        "initialDelay": 0,
        "nonRetryable": ["EXIT_1"],
    }
    doc = _convert(_wf("", retry="{limit: 2, retryPolicy: OnError}"))[0]
    assert len(_nodes(doc)["a"]["retry"]["nonRetryable"]) == 255


def test_continue_on_exit_handlers_and_suspend() -> None:
    (top,) = _corpus("continue-on-fail.yaml")
    assert _nodes(top)["C"]["continueOn"] == "failed"
    top, handler = _corpus("exit-handlers.yaml")
    nodes = _nodes(top)
    assert list(nodes) == ["main", "on_exit", "argo_failed"]
    assert nodes["on_exit"]["needs"] == [{"node": "main", "on": "finished"}]
    assert (
        "'status': (nodes.main.status == 'SUCCEEDED' ? 'Succeeded' : 'Failed')"
        in (nodes["on_exit"]["inputs"]["argo"])
    )
    assert nodes["argo_failed"]["when"] == "${{ nodes.main.status == 'FAILED' }}"
    assert _nodes(handler)["cry"]["when"] == "${{ string(inputs.argo.status) != 'Succeeded' }}"
    (top,) = _corpus("exit-handler-dag-level.yaml")
    assert _nodes(top)["A_exit"]["needs"] == [{"node": "A", "on": "finished"}]
    (top,) = _corpus("suspend-template.yaml")
    nodes = _nodes(top)
    assert nodes["approve"]["approval"]["guidance"].startswith("Argo suspend template")
    assert nodes["delay"]["sleep"] == 20
    assert nodes["release"]["needs"] == ["delay"]


def test_a_cron_workflow_is_a_workflow_and_a_schedule_trigger() -> None:
    models = load_text((CORPUS / "cron-workflow.yaml").read_text(), file="cron.yaml")
    (trigger,) = [m for m in models if isinstance(m, Trigger)]
    assert trigger.spec.workflow in ("hello-world", "hello-world@latest")
    schedule = trigger.spec.source.schedule
    assert schedule is not None
    assert (schedule.cron, schedule.timezone) == ("* * * * *", "America/Los_Angeles")
    assert trigger.spec.max_concurrency == 1  # concurrencyPolicy: Replace
    assert trigger.spec.inputs == {"scheduledTime": "${{ event.instant }}"}


def test_an_image_mapped_to_a_function_calls_it_with_the_inputs() -> None:
    target = ImageTarget(function="say@1")
    (top,) = _corpus("dag-diamond.yaml", image_map={"busybox": target})
    assert _nodes(top)["A"] == {
        "id": "A",
        "function": "say@1",
        "inputs": {"message": "A"},
        "needs": [],
    }
    _, nested = _corpus("dag-nested.yaml", image_map={"busybox": target})
    assert _nodes(nested)["B"]["inputs"] == {"message": "${{ string(inputs.message) + 'B' }}"}


def test_converted_steps_run_as_argo_runs_them(tmp_path: Path) -> None:
    (top,) = _corpus("output-parameter.yaml")
    nodes = _nodes(top)
    code, out = _run_step(nodes["generate_parameter"], {}, tmp_path)
    assert code == 0
    assert out["parameters"] == {"hello-param": "hello world"}
    context = {"nodes": {"generate_parameter": {"output": out}}}
    assert _run_step(nodes["consume_parameter"], context, tmp_path)[1]["result"] == "hello world"
    (top,) = _corpus("artifact-passing.yaml")
    nodes = _nodes(top)
    code, out = _run_step(nodes["generate_artifact"], {}, tmp_path)
    assert code == 0
    key = out["artifacts"]["hello-art"]
    assert (tmp_path / "store" / key).read_text() == "hello world\n"
    _, got = _run_step(
        nodes["consume_artifact"], {"nodes": {"generate_artifact": {"output": out}}}, tmp_path
    )
    assert got["result"] == "hello world"
    (top,) = _corpus("loops-param-result.yaml")
    code, out = _run_step(_nodes(top)["generate"], {}, tmp_path)
    assert out["json"]["result"] == list(range(20, 31))
    (top,) = _corpus("dag-enhanced-depends.yaml")
    assert _run_step(_nodes(top)["C"], {}, tmp_path)[0] == 1  # `exit 1` is the step's failure


def _wf(extra: str, retry: str | None = None) -> str:
    strategy = f"\n    retryStrategy: {retry}" if retry else ""
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: w-}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        template: t
        {extra}
  - name: t{strategy}
    container: {{image: busybox, command: [echo, hi]}}
"""


BAD = {
    "unknown template": (
        _wf("").replace("template: t\n", "template: nope\n"),
        "wf.yaml:10: spec.templates[0].steps[0][0].template: unknown template 'nope'",
    ),
    "when that does not parse": (
        _wf('when: "{{steps.a.outputs.result}} == ("'),
        "wf.yaml:11: spec.templates[0].steps[0][0].when:",
    ),
    "wrong type": (
        _wf("withItems: {a: 1}"),
        "wf.yaml:11: spec.templates[0].steps[0][0].withItems: withItems must be a list",
    ),
    "resource template": (
        _wf("").replace(
            "container: {image: busybox, command: [echo, hi]}", "resource: {action: get}"
        ),
        "wf.yaml:13: spec.templates[1].resource: a resource template is not converted",
    ),
    "artifact without a store": (
        _wf("").replace(
            "  - name: t\n", "  - name: t\n    inputs: {artifacts: [{name: x, path: /tmp/x}]}\n"
        ),
        "wf.yaml:13: spec.templates[1].inputs.artifacts[0]: input artifact 'x' has no store",
    ),
    "dependency cycle": (
        """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: t, depends: b}
      - {name: b, template: t, depends: "a && !c.Failed"}
      - {name: c, template: t}
  - name: t
    container: {image: busybox, command: [echo, hi]}
""",
        "wf.yaml:11: spec.templates[0].dag.tasks[1].depends: dependency cycle: a -> b -> a",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_at_its_line_and_converts_nothing(case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(DefinitionError) as err:
        load_text(text, file="wf.yaml")
    assert str(err.value).startswith(expected) or expected in str(err.value), str(err.value)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = _wf("when: '{{steps.zz.outputs.result}} == 1'").replace(
        "command: [echo, hi]}", "command: [echo, hi]}\n    sidecars: []"
    )
    with pytest.raises(DefinitionError) as err:
        _convert(text)
    messages = [(i.line, i.field) for i in err.value.issues]
    assert (11, "spec.templates[0].steps[0][0].when") in messages
    assert (14, "spec.templates[1].sidecars") in messages


TEMPLATES = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: say
    inputs: {parameters: [{name: msg}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.msg}}"]}
  - name: gate
    suspend: {}
    outputs:
      parameters:
      - {name: approver, valueFrom: {supplied: {}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: user}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: ask
        templateRef: {name: lib, template: gate}
    - - name: hello
        templateRef: {name: lib, template: say}
        arguments: {parameters: [{name: msg, value: "{{steps.ask.outputs.parameters.approver}}"}]}
"""


def test_template_refs_call_a_workflow_templates_templates_as_sub_workflows() -> None:
    models = load_text(TEMPLATES, file="lib.yaml")
    names = sorted(m.metadata.name for m in models)
    assert names == ["lib--gate", "lib--say", "user"]
    by_name = {m.metadata.name: m for m in models if isinstance(m, Workflow)}
    say = by_name["lib--say"]
    assert set(say.spec.inputs) == {"msg", "argo"}
    assert say.spec.outputs["result"] == "${{ nodes.main.output.result }}"
    gate = by_name["lib--gate"].spec.nodes[0]
    assert gate.approval is not None
    assert gate.approval.json_schema == {
        "type": "object",
        "required": ["approver"],
        "properties": {"approver": {"type": "string"}},
    }
    hello = by_name["user"].spec.nodes[1]
    assert hello.workflow in ("lib--say", "lib--say@latest")
    assert by_name["lib--gate"].spec.outputs == {"parameters": "${{ nodes.main.output }}"}
    assert hello.inputs["msg"] == "${{ nodes.ask.output.parameters.approver }}"


HTTP = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: t}
    - - name: b
        template: u
        arguments: {parameters: [{name: r, value: "{{steps.a.outputs.result}}"}]}
  - name: t
    http: {url: "https://example.com/{{workflow.name}}", method: post, body: x}
  - name: u
    inputs: {parameters: [{name: r}]}
    container: {image: i, command: [echo, "{{inputs.parameters.r}}"]}
"""


def test_an_http_template_is_an_http_node_whose_result_is_the_body() -> None:
    text = HTTP
    models = load_text(text, file="wf.yaml")
    (wf,) = models
    assert isinstance(wf, Workflow)
    a, b = wf.spec.nodes
    assert a.http is not None
    assert (a.http.url, a.http.method, a.http.body) == (
        "https://example.com/${{ run.id }}",
        "POST",
        "x",
    )
    assert b.shell is not None
    assert b.shell.argv[4:] == ["${{ nodes.a.output.body }}"]


SKIPPED_STAGE = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: t}
    - - {name: b, template: t, when: "1 == 2"}
      - {name: c, template: t, when: "1 == 3"}
    - - {name: d, template: t}
  - name: t
    container: {image: busybox, command: [echo, hi]}
"""


def test_a_step_after_a_wholly_skipped_stage_still_runs_as_in_argo() -> None:
    (wf,) = load_text(SKIPPED_STAGE, file="wf.yaml")
    assert isinstance(wf, Workflow)
    d = wf.spec.nodes[3]
    assert d.need_ids == ["b", "c", "a"]
    ended = {"a": NodeStatus.SUCCEEDED, "b": NodeStatus.SKIPPED, "c": NodeStatus.SKIPPED}
    assert gate(d.need_kinds, ended) is Gate.RUN
    assert gate(d.need_kinds, {**ended, "b": NodeStatus.FAILED}) is Gate.SKIP
    dag = SKIPPED_STAGE.replace(
        SKIPPED_STAGE[SKIPPED_STAGE.index("    steps:") : SKIPPED_STAGE.index("  - name: t\n")],
        "    dag:\n      tasks:\n      - {name: a, template: t}\n"
        '      - {name: b, template: t, when: "1 == 2", dependencies: [a]}\n'
        "      - {name: c, template: t, dependencies: [b]}\n",
    )
    (wf,) = load_text(dag, file="wf.yaml")
    assert isinstance(wf, Workflow)
    assert wf.spec.nodes[2].need_ids == ["b", "a"]


def test_a_native_check_failing_on_converted_data_points_at_the_argo_line() -> None:
    text = (
        _wf("")
        .replace("container: {image: busybox, command: [echo, hi]}", "suspend: {duration: forever}")
        .replace("  entrypoint: main\n", "  entrypoint: main\n  activeDeadlineSeconds: soon\n")
    )
    with pytest.raises(DefinitionError) as err:
        load_text(text, file="wf.yaml")
    found = {(i.line, i.field) for i in err.value.issues}
    assert found == {(6, "spec.timeout"), (14, "spec.nodes[0].sleep")}
