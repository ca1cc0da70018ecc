"""Run one node's step in this process — no Ray, no NATS — for unit tests of your steps.

`run_node` renders the node's inputs the way the run actor would (from the workflow's
inputs and the outputs you give for the nodes it needs), checks them against the
function's `inputSchema`, calls the handler the way a replica would (with a `ctx` if it
asks for one), checks the result against `outputSchema`, and returns it. A failure is
the `StepError` the run would record: the handler's own, or ``HANDLER_ERROR`` for any
other exception (the original chained as its cause), ``INPUT_INVALID`` /
``OUTPUT_INVALID`` for a value the schemas refuse, ``EXIT_<n>`` for a shell step.

Example:
    ```python
    from actorflow.testing import run_node

    def test_shout() -> None:
        out = run_node("examples/hello/workflow.yaml", "shout", nodes={"greet": "Hello, Ada!"})
        assert out == "HELLO, ADA!"
    ```
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from actorflow.actors.functions import shell
from actorflow.actors.functions.context import StepContext
from actorflow.actors.functions.handlers import Handler
from actorflow.definitions.errors import DefinitionError, DefinitionIssue, ErrorCode, StepError
from actorflow.definitions.loader import load_path
from actorflow.definitions.models import Function, Workflow, split_ref
from actorflow.definitions.plan import bind_inputs, builtin_functions, compile_plan
from actorflow.definitions.schemas import Checker

#: The node kinds `run_node` runs; the others need the engine (a sub-workflow is a run, an
#: HTTP or SQL step a network peer, sleeps / waits / approvals time and signals).
RUNNABLE_KINDS = ("function", "shell")

Definitions = str | Path | Workflow | Iterable[Workflow | Function | Any]


def run_node(
    definition: Definitions,
    node: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    nodes: Mapping[str, Any] | None = None,
    item: Any = None,
    functions: Iterable[Function] = (),
) -> Any:
    """The output of `node`'s step, run here.

    Args:
        definition: a YAML file or folder (as `actorflow apply -f` takes), a `Workflow`, or
            models; the functions the node calls come from it or from `functions`.
        node: the node's id (in the one workflow of `definition` that has it).
        inputs: the workflow's inputs (defaults applied and types checked as at run start).
        nodes: outputs of the nodes this one reads, by id (``nodes.<id>.output``).
        item: the for-each item, for a node with `forEach`.
        functions: more `Function` definitions, when `definition` has only the workflow.
    """
    models = _models(definition) + list(functions)
    wf = _workflow_with(models, node)
    fns = {f"{f.metadata.name}@{f.metadata.version}": f for f in models if isinstance(f, Function)}
    versions = _versions(wf, fns)
    planned = compile_plan(wf, versions).nodes[node]
    if planned.kind not in RUNNABLE_KINDS:
        raise DefinitionError(
            [
                DefinitionIssue(
                    f"run_node runs {' and '.join(RUNNABLE_KINDS)} nodes; {node!r} is a "
                    f"{planned.kind} node (run it on the engine)",
                    f"workflow {wf.metadata.name}",
                    field=f"spec.nodes.{node}",
                )
            ]
        )
    context = {
        "inputs": bind_inputs(wf.spec.inputs, dict(inputs or {})),
        "nodes": {
            k: {"output": v, "status": "SUCCEEDED", "error": None} for k, v in (nodes or {}).items()
        },
        "run": {"id": "test-run", "workflow": wf.metadata.name, "version": wf.metadata.version},
        "item": item,
    }
    rendered = planned.inputs.render(context)
    if planned.kind == "shell":
        return _step(lambda: shell.run(**rendered))
    function = fns[f"{planned.function}@{planned.version}"]
    return _call_function(function, wf, node, rendered)


def _call_function(function: Function, wf: Workflow, node: str, inputs: Any) -> Any:
    spec = function.spec
    if spec.input_schema is not None and (problem := Checker(spec.input_schema).problem(inputs)):
        raise StepError(
            ErrorCode.INPUT_INVALID,
            f"the function's inputSchema refuses it: {problem}",
            retryable=False,
        )
    handler = _load(spec.handler, spec.code_dir)
    ctx = StepContext(
        run_id="test-run",
        workflow=wf.metadata.name,
        node=node,
        index=None,
        attempt=1,
        idempotency_key=f"test-run.{node}.1",
        logger=logging.getLogger(f"actorflow.step.{node}"),
    )
    with ThreadPoolExecutor(max_workers=1) as pool:  # a sync handler runs as on a replica
        result = _step(lambda: handler.call(inputs, ctx, pool))
    if spec.output_schema is not None and (problem := Checker(spec.output_schema).problem(result)):
        raise StepError(
            ErrorCode.OUTPUT_INVALID,
            f"the function's outputSchema refuses it: {problem}",
            retryable=False,
        )
    return result


def _load(path: str, code_dir: str | None) -> Handler:
    """`Handler.load`, but from this function's `codeDir` even when a module of the same
    name (another example's ``steps``) was imported from elsewhere before: a replica
    has a process of its own; a test process has one for all its functions."""
    if code_dir:
        top = path.partition(":")[0].split(".")[0]
        where = Path(code_dir).resolve()
        loaded = sys.modules.get(top)
        origin = Path(getattr(loaded, "__file__", None) or "/").resolve()
        if loaded is not None and not origin.is_relative_to(where):
            for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[name]
        if code_dir in sys.path:
            sys.path.remove(code_dir)
        sys.path.insert(0, code_dir)
    return Handler.load(path, code_dir)


def _step(call: Any) -> Any:
    """Call, awaiting a coroutine; any exception but a StepError becomes HANDLER_ERROR."""
    try:
        result = call()
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
    except StepError:
        raise
    except Exception as exc:
        raise StepError(ErrorCode.HANDLER_ERROR, f"{type(exc).__name__}: {exc}") from exc
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _models(definition: Definitions) -> list[Any]:
    if isinstance(definition, str | Path):
        return list(load_path(Path(definition)))
    if isinstance(definition, Workflow):
        return [definition]
    return list(definition)


def _workflow_with(models: list[Any], node: str) -> Workflow:
    found = [
        m for m in models if isinstance(m, Workflow) and any(n.id == node for n in m.spec.nodes)
    ]
    if len(found) != 1:
        names = ", ".join(w.metadata.name for w in found) or "none of the workflows"
        raise DefinitionError(
            [
                DefinitionIssue(
                    f"node {node!r} must be in exactly one workflow ({names} has it)", "run_node"
                )
            ]
        )
    return found[0]


def _versions(wf: Workflow, fns: Mapping[str, Function]) -> dict[str, str]:
    """Each function reference the workflow writes → the version given (`name` or
    `name@latest`: the highest one given)."""
    out = {
        f"{f.metadata.name}@{f.metadata.version}": f.metadata.version for f in builtin_functions(wf)
    }
    refs = {n.function_ref for n in wf.spec.nodes if n.function_ref}
    for ref in sorted(refs):
        name, version = split_ref(ref)
        have = sorted(
            (f.metadata.version for f in fns.values() if f.metadata.name == name),
            key=lambda v: (len(v), v),
        )
        if version == "latest" and have:
            out[ref] = have[-1]
        elif version in have:
            out[ref] = version
    return out


__all__ = ["RUNNABLE_KINDS", "run_node"]
