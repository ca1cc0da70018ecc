"""What a run keeps of its definitions when it starts: the snapshot in `RunStarted`.

A run must never change behaviour because someone applies a new version halfway, so its
first event carries the workflow itself, the concrete version of every function it calls
(``@latest`` resolved now), the retry policies those functions have now, and the handlers
of function-reference hooks. Pure: the controller looks the definitions up, this decides
what the run keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actorflow.definitions import events as ev
from actorflow.definitions.models import Function, RetryPolicy, Workflow
from actorflow.definitions.plan import bind_inputs, compile_plan
from actorflow.definitions.priorities import resolve_priority


def run_started(
    run_id: str,
    wf: Workflow,
    functions: Mapping[str, Function],
    inputs: Mapping[str, Any],
    *,
    templates: Mapping[str, str] | None = None,
    workflows: Mapping[str, str] | None = None,
    parent: ev.ParentRef | None = None,
    depth: int = 0,
    priority: int | None = None,
) -> ev.RunStarted:
    """The first event of a run of `wf` (its templates already expanded: `templates` says
    which version each reference resolved to); `functions` maps every reference the
    workflow makes (as written) to the definition it resolves to now, `workflows` every
    sub-workflow reference to a version. A child run names its `parent` and `depth`; a
    `priority` overrides the workflow's for this run.

    Raises `InputError` for inputs the workflow does not accept and `DefinitionError` for
    a workflow that does not compile — here, before anything is recorded.
    """
    bound = bind_inputs(wf.spec.inputs, inputs)
    versions = {ref: f.metadata.version for ref, f in functions.items()}
    retries = {
        node.id: functions[node.function].spec.retry.model_dump(mode="json")
        for node in wf.spec.nodes
        if node.function
        and node.retry is None
        and functions[node.function].spec.retry != RetryPolicy()
    }
    hooks = {
        h.call: {
            "handler": functions[h.call].spec.handler,
            "code_dir": functions[h.call].spec.code_dir,
        }
        for h in wf.spec.hooks
        if h.call in functions
    }
    compile_plan(wf, versions, workflows=workflows)
    return ev.RunStarted(
        run_id=run_id,
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        plan=wf.model_dump(mode="json", by_alias=True),
        functions=versions,
        retries=retries,
        hooks=hooks,
        inputs=bound,
        templates=dict(templates or {}),
        workflows=dict(workflows or {}),
        parent=parent,
        depth=depth,
        priority=resolve_priority(None, priority, wf.spec.priority),
    )
