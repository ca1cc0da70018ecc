"""`actorflow.testing.run_node`: one node's step in this process, as a replica runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

import actorflow
from actorflow.testing import run_node

EXAMPLES = Path(__file__).parents[2] / "examples"
HELLO = EXAMPLES / "hello" / "workflow.yaml"
TRIAGE = EXAMPLES / "triage" / "workflow.yaml"


def test_a_function_node_renders_its_inputs_and_calls_its_handler() -> None:
    assert run_node(HELLO, "greet", {"name": "Ada"}) == "Hello, Ada!"
    assert run_node(HELLO, "greet") == "Hello, world!"  # the input's default
    assert run_node(HELLO, "shout", nodes={"greet": "Hello, Ada!"}) == "HELLO, ADA!"


def test_a_step_error_is_the_one_the_run_would_record() -> None:
    with pytest.raises(actorflow.StepError) as caught:
        run_node(TRIAGE, "measure", {"module": "no_such_module_here"})
    assert caught.value.code == "NO_SUCH_MODULE"
    assert caught.value.retryable is False


def test_a_shell_node_runs_its_argv_verbatim() -> None:
    out = run_node(TRIAGE, "note", nodes={"measure": {"module": "colorsys", "words": 7}})
    assert out == {"exitCode": 0, "stdout": "colorsys: short (7 words)", "stderr": ""}


def _wf(**node: object) -> actorflow.Workflow:
    return actorflow.Workflow.model_validate(
        {"metadata": {"name": "t", "version": "1"}, "spec": {"nodes": [{"id": "n", **node}]}}
    )


def _fn(handler: str, tmp_path: Path, **spec: object) -> actorflow.Function:
    (tmp_path / "mysteps.py").write_text(
        "def boom(x):\n    raise KeyError(x)\n"
        "def half(x):\n    return x / 2\n"
        "async def later(x, ctx):\n    return [x, ctx.node, ctx.attempt]\n"
    )
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": "f", "version": "1"},
            "spec": {"handler": f"mysteps:{handler}", "codeDir": str(tmp_path), **spec},
        }
    )


def test_an_unexpected_exception_is_handler_error_with_its_cause(tmp_path: Path) -> None:
    wf = _wf(function="f@1", inputs={"x": "k"})
    with pytest.raises(actorflow.StepError) as caught:
        run_node(wf, "n", functions=[_fn("boom", tmp_path)])
    assert caught.value.code == "HANDLER_ERROR"
    assert isinstance(caught.value.__cause__, KeyError)


def test_async_handlers_get_a_context(tmp_path: Path) -> None:
    wf = _wf(function="f@latest", inputs={"x": 3})
    assert run_node(wf, "n", functions=[_fn("later", tmp_path)]) == [3, "n", 1]


def test_schemas_are_checked_both_ways(tmp_path: Path) -> None:
    schemas = {
        "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "outputSchema": {"type": "integer"},
    }
    fn = _fn("half", tmp_path, **schemas)
    with pytest.raises(actorflow.StepError, match="inputSchema") as bad_in:
        run_node(_wf(function="f@1", inputs={"x": "two"}), "n", functions=[fn])
    assert bad_in.value.code == "INPUT_INVALID"
    with pytest.raises(actorflow.StepError, match="outputSchema") as bad_out:
        run_node(_wf(function="f@1", inputs={"x": 3}), "n", functions=[fn])  # 1.5
    assert bad_out.value.code == "OUTPUT_INVALID"
    assert run_node(_wf(function="f@1", inputs={"x": 4}), "n", functions=[fn]) == 2


def test_kinds_it_cannot_run_and_unknown_nodes_are_definition_errors() -> None:
    with pytest.raises(actorflow.DefinitionError, match="sleep node"):
        run_node(_wf(sleep="1s"), "n")
    with pytest.raises(actorflow.DefinitionError, match="exactly one workflow"):
        run_node(HELLO, "nope")
