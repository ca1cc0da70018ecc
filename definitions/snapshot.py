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
from actorflow.definitions.errors import ExpressionError, InputError
from actorflow.definitions.expressions import Template
from actorflow.definitions.models import Connection, Function, RetryPolicy, Workflow
from actorflow.definitions.plan import bind_inputs, compile_plan
from actorflow.definitions.priorities import resolve_priority

#: Longest rendered concurrency key: it is recorded on every run of the key, and listed.
MAX_KEY_LENGTH = 256


def run_started(
    run_id: str,
    wf: Workflow,
    functions: Mapping[str, Function],
    inputs: Mapping[str, Any],
    *,
    templates: Mapping[str, str] | None = None,
    workflows: Mapping[str, str] | None = None,
    connections: Mapping[str, Connection] | None = None,
    parent: ev.ParentRef | None = None,
    depth: int = 0,
    priority: int | None = None,
) -> ev.RunStarted:
    """The first event of a run of `wf` (its templates already expanded: `templates` says
    which version each reference resolved to); `functions` maps every reference the
    workflow makes (as written) to the definition it resolves to now, `workflows` every
    sub-workflow reference to a version, `connections` every SQL node's connection
    reference to its `Connection`. A child run names its `parent` and `depth`; a
    `priority` overrides the workflow's for this run.

    Raises `InputError` for inputs the workflow does not accept (or from which its
    concurrency key does not render) and `DefinitionError` for a workflow that does not
    compile — here, before anything is recorded.
    """
    bound = bind_inputs(wf.spec.inputs, inputs)
    concurrency = concurrency_of(wf, bound, run_id, depth)
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
    compile_plan(wf, versions, workflows=workflows, connections=connections)
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
        connections={
            ref: c.model_dump(mode="json", by_alias=True) for ref, c in (connections or {}).items()
        },
        parent=parent,
        depth=depth,
        priority=resolve_priority(None, priority, wf.spec.priority),
        concurrency=concurrency,
    )


def concurrency_of(
    wf: Workflow, inputs: Mapping[str, Any], run_id: str, depth: int = 0
) -> ev.ConcurrencyRef | None:
    """The run's concurrency key, rendered once from its (bound) inputs and the run, with
    its group, limit and queue; None when the workflow sets no `concurrency`.

    Raises `InputError` naming the field when the key does not render to a non-empty
    string or integer (a key that cannot be computed would put the run in no queue).
    """
    spec = wf.spec.concurrency
    if spec is None:
        return None
    field = "spec.concurrency.key"
    context = {
        "inputs": dict(inputs),
        "run": {
            "id": run_id,
            "workflow": wf.metadata.name,
            "version": wf.metadata.version,
            "depth": depth,
        },
    }
    try:
        value = Template.compile(spec.key, field=field).render(context)
    except ExpressionError as exc:
        raise InputError(f"{wf.ref} {field}: {spec.key!r} does not render: {exc.reason}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InputError(
            f"{wf.ref} {field}: {spec.key!r} must render to a non-empty string or an "
            f"integer, got {value!r}"
        )
    if len(value) > MAX_KEY_LENGTH:
        raise InputError(
            f"{wf.ref} {field}: the key is {len(value)} characters long (at most {MAX_KEY_LENGTH})"
        )
    group = spec.group or wf.metadata.name
    return ev.ConcurrencyRef(
        group=group, key=value, limit=spec.limit, queue=ev.queue_name(group, value)
    )
