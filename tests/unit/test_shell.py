"""Shell steps: the definition, the task the run state machine makes of one, and the handler
running real commands (a subprocess, no Ray, no NATS)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from run_support import complete, schedule, started

from actorflow.actors.functions import shell
from actorflow.actors.run.state import RunState
from actorflow.builder import WorkflowBuilder
from actorflow.definitions.errors import StepError
from actorflow.definitions.models import Resources, Workflow, builtin_function
from actorflow.definitions.plan import builtin_functions, function_refs

HOSTILE = ["; rm -rf x", "$(touch pwned)", 'it\'s "quoted"', "*", "a b", "`id`", "\\n"]
PRINT_ARGS = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def _run(**kw: Any) -> Any:
    return asyncio.run(shell.run(**kw))


def test_arguments_arrive_verbatim_and_json_output_is_parsed(tmp_path: Any) -> None:
    assert _run(argv=[*PRINT_ARGS, *HOSTILE, 7, {"k": 1}], output="json", cwd=str(tmp_path)) == [
        *HOSTILE,
        "7",
        '{"k": 1}',
    ]
    assert not (tmp_path / "pwned").exists()


def test_text_output_carries_exit_code_stdout_and_stderr() -> None:
    argv = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    assert _run(argv=argv) == {"exitCode": 0, "stdout": "out\n", "stderr": "err\n"}


def test_env_and_cwd_reach_the_command(tmp_path: Any) -> None:
    argv = [sys.executable, "-c", "import os; print(os.environ['GREETING'], os.getcwd())"]
    result = _run(argv=argv, env={"GREETING": "hi"}, cwd=str(tmp_path))
    assert result["stdout"].split() == ["hi", str(tmp_path)]


def test_a_non_zero_exit_is_exit_n_with_stderrs_tail() -> None:
    argv = [sys.executable, "-c", "import sys; print('disk full', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(StepError) as caught:
        _run(argv=argv)
    assert caught.value.code == "EXIT_3"
    assert "disk full" in caught.value.message
    assert caught.value.details == {"exitCode": 3}
    with pytest.raises(StepError) as missing:
        _run(argv=["no-such-command-anywhere"])
    assert missing.value.code == "EXIT_127"
    with pytest.raises(StepError) as not_json:
        _run(argv=["echo", "not json"], output="json")
    assert not_json.value.code == "OUTPUT_NOT_JSON"


def _shell_workflow() -> Workflow:
    b = WorkflowBuilder("w")
    name = b.input("name", type="string")
    first = b.node("first", "f@1", inputs={"x": name})
    b.shell("greet", ["echo", "hello", first.output, "${{ inputs.name }}!"], needs=[first])
    b.shell("big", ["true"], resources={"cpus": 2})
    return b.build()


def test_a_shell_node_is_a_task_for_its_implicit_pool_with_the_command_rendered() -> None:
    wf = _shell_workflow()
    small = builtin_function("shell", Resources(cpus=0.1))
    big = builtin_function("shell", Resources(cpus=2))
    assert {f.ref for f in builtin_functions(wf)} == {small.ref, big.ref}
    assert small.ref != big.ref
    assert {small.ref, big.ref} <= function_refs(wf)
    state = RunState(started(wf, name="; rm -rf /"))
    tasks = {t.ref.node: t for t in schedule(state)}
    assert tasks["big"].function == big.metadata.name
    complete(state, tasks["first"], "$(whoami)")
    (greet,) = schedule(state)
    assert greet.function == small.metadata.name
    assert greet.inputs["argv"] == ["echo", "hello", "$(whoami)", "; rm -rf /!"]


def test_bad_shell_nodes_are_refused() -> None:
    def wf(node: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "actorflow/v1",
            "kind": "Workflow",
            "metadata": {"name": "w"},
            "spec": {"nodes": [{"id": "s", **node}]},
        }

    with pytest.raises(ValueError, match="argv"):
        Workflow.model_validate(wf({"shell": {"argv": []}}))
    with pytest.raises(ValueError, match="not inputs"):
        Workflow.model_validate(wf({"shell": {"argv": ["true"]}, "inputs": {"a": 1}}))
    with pytest.raises(ValueError, match="only shell, http and sql nodes take resources"):
        Workflow.model_validate(wf({"function": "f@1", "resources": {"cpus": 1}}))
