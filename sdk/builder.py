"""Build definitions in Python: the same models the YAML loader produces, checked the same way.

Example:
    ```python
    from actorflow.builder import WorkflowBuilder, function

    fetch = function("fetch", "mymod:fetch", memory="256Mi", timeout="30s")
    wf = WorkflowBuilder("etl")
    url = wf.input("url", type="string")
    raw = wf.node("fetch", fetch, inputs={"url": url})
    parsed = wf.node("parse", "parse@1", inputs={"raw": raw.output})
    wf.output("result", parsed.out("rows"))
    workflow = wf.build()            # a validated `Workflow`, or DefinitionError
    ```

References between nodes are written as the expressions the YAML would hold
(``${{ nodes.fetch.output }}``), so a built workflow dumps to readable YAML unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, JsonValue, ValidationError

from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.graph import check_template, validate_workflow
from actorflow.definitions.loader import issues_from_validation
from actorflow.definitions.models import (
    CompensationSpec,
    Connection,
    ErrorPolicy,
    Function,
    HookPoint,
    InputType,
    Need,
    NeedKind,
    Replicas,
    RetryPolicy,
    StepTemplate,
    Workflow,
)

__all__ = ["NodeHandle", "WorkflowBuilder", "function"]

_M = TypeVar("_M", bound=BaseModel)


class _Unset(Enum):
    """Marks an input without a default (`None` is a legitimate default)."""

    TOKEN = 0


def function(
    name: str,
    handler: str | Callable[..., Any],
    *,
    version: str = "1",
    description: str = "",
    cpus: float = 1.0,
    gpus: float = 0.0,
    memory: int | str | None = None,
    custom: Mapping[str, float] | None = None,
    replicas: int | Replicas | Mapping[str, Any] = 1,
    max_concurrency: int = 1,
    timeout: float | str | None = None,
    code_dir: str | Path | None = None,
    retry: RetryPolicy | Mapping[str, Any] | None = None,
    runtime_env: str | None = None,
    node_labels: Mapping[str, str] | None = None,
) -> Function:
    """A `Function` definition; `handler` is ``"module:callable"`` or the callable itself.

    `replicas` is a fixed count or autoscaling bounds (``{"min": 0, "max": 4}``, see
    `Replicas`); `runtime_env` names a registered ``RuntimeEnv`` as ``name@version``.

    Raises:
        DefinitionError: a field is invalid (e.g. a nested function, which replicas
            cannot import, or ``memory="lots"``).
    """
    if callable(handler):
        handler = f"{handler.__module__}:{handler.__qualname__}"
    data: dict[str, Any] = {
        "metadata": {"name": name, "version": version, "description": description},
        "spec": {
            "handler": handler,
            "resources": {"cpus": cpus, "gpus": gpus, "memory": memory, "custom": custom or {}},
            "replicas": _plain(replicas) if not isinstance(replicas, int) else replicas,
            "max_concurrency": max_concurrency,
            "runtime_env": runtime_env,
            "node_labels": dict(node_labels or {}),
            "timeout": timeout,
            "code_dir": None if code_dir is None else str(code_dir),
            "retry": _plain(retry) or {},
        },
    }
    return _validate(Function, data)


def _plain(value: BaseModel | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(value, BaseModel):
        return value.model_dump()
    return dict(value) if value is not None else None


@dataclass(frozen=True)
class NodeHandle:
    """A node added to a builder; its properties are expressions that read its output."""

    id: str

    @property
    def output(self) -> str:
        """``${{ nodes.<id>.output }}``: the node's whole result."""
        return f"${{{{ nodes.{self.id}.output }}}}"

    def out(self, *path: str | int) -> str:
        """An expression for a part of the output: ``out("rows", 0)`` → ``output.rows[0]``."""
        return f"${{{{ nodes.{self.id}.output{''.join(_accessor(p) for p in path)} }}}}"

    @property
    def status(self) -> str:
        """``${{ nodes.<id>.status }}``, for a `when`: ``SUCCEEDED``, ``SKIPPED`` …"""
        return f"${{{{ nodes.{self.id}.status }}}}"

    def on(self, kind: NeedKind) -> Need:
        """A need on how this node ended: ``needs=[fetch.on("failed")]`` is an error branch."""
        return Need(node=self.id, on=kind)


NeedRef = str | NodeHandle | Need


def _need(n: NeedRef) -> str | dict[str, str]:
    if isinstance(n, Need):
        return {"node": n.node, "on": n.on}
    return n.id if isinstance(n, NodeHandle) else n


class WorkflowBuilder:
    """Collects inputs, nodes and outputs; `build` validates them as one `Workflow`."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "1",
        description: str = "",
        labels: Mapping[str, str] | None = None,
        timeout: float | str | None = None,
    ) -> None:
        """`timeout` bounds the whole run (``"2h"`` or seconds): past it, RUN_TIMEOUT."""
        self._timeout = timeout
        self._metadata: dict[str, Any] = {
            "name": name,
            "version": version,
            "description": description,
            "labels": dict(labels or {}),
        }
        self._inputs: dict[str, dict[str, Any]] = {}
        self._nodes: list[dict[str, Any]] = []
        self._outputs: dict[str, JsonValue] = {}
        self._functions: dict[str, Function] = {}
        self._on_error: dict[str, dict[str, Any]] = {}
        self._hooks: list[dict[str, Any]] = []
        self._templates: dict[str, StepTemplate] = {}
        self._connections: dict[str, Connection] = {}
        self._concurrency: dict[str, Any] | None = None

    @property
    def functions(self) -> list[Function]:
        """The `Function` models passed to `node`, to register along with the workflow."""
        return list(self._functions.values())

    def input(
        self,
        name: str,
        *,
        type: InputType = "any",
        default: JsonValue | Literal[_Unset.TOKEN] = _Unset.TOKEN,
        description: str = "",
    ) -> str:
        """Declare a workflow input; returns the expression that reads it."""
        spec: dict[str, Any] = {"type": type, "description": description}
        if default is not _Unset.TOKEN:
            spec["default"] = default
        self._inputs[name] = spec
        return f"${{{{ inputs{_accessor(name)} }}}}"

    def node(
        self,
        id: str,
        function: str | Function,
        *,
        inputs: Mapping[str, JsonValue] | None = None,
        needs: Iterable[NeedRef] = (),
        for_each: str | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        when: str | None = None,
        continue_on: Literal["failed"] | None = None,
        timeout: float | str | None = None,
        compensate: CompensationSpec | Mapping[str, Any] | None = None,
    ) -> NodeHandle:
        """Add a node calling `function` (a `Function` or ``"name@version"``); `when`
        (``"${{ … }}"``) false skips it, `continue_on="failed"` lets its dependants run
        when it fails, `timeout` bounds all its attempts together, `compensate` (e.g.
        ``{"function": "refund@1"}``) undoes it when the run fails for good."""
        if isinstance(function, Function):
            self._functions[function.ref] = function
            function = function.ref
        self._nodes.append(
            {
                "id": id,
                "function": function,
                "needs": [_need(n) for n in needs],
                "inputs": dict(inputs or {}),
                "for_each": for_each,
                "retry": _plain(retry),
                "when": when,
                "continue_on": continue_on,
                "timeout": timeout,
                "compensate": _plain(compensate),
            }
        )
        return NodeHandle(id)

    def shell(
        self,
        id: str,
        argv: Iterable[JsonValue],
        *,
        env: Mapping[str, JsonValue] | None = None,
        cwd: str | None = None,
        output: Literal["text", "json"] = "text",
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
        resources: Mapping[str, Any] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        compensate: CompensationSpec | Mapping[str, Any] | None = None,
    ) -> NodeHandle:
        """A command, as a list of arguments (each templated value stays one argument);
        its output is ``{exitCode, stdout, stderr}``, or stdout as JSON."""
        spec = {"argv": list(argv), "env": dict(env or {}), "cwd": cwd, "output": output}
        self._nodes.append(
            {
                "id": id,
                "shell": spec,
                "needs": [_need(n) for n in needs],
                "when": when,
                "resources": dict(resources) if resources is not None else None,
                "retry": _plain(retry),
                "timeout": timeout,
                "compensate": _plain(compensate),
            }
        )
        return NodeHandle(id)

    def http(
        self,
        id: str,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, Any] | None = None,
        body: JsonValue = None,
        timeout: float | str = 30.0,
        success_condition: str | None = None,
        retry_on: Iterable[int] | None = None,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        compensate: CompensationSpec | Mapping[str, Any] | None = None,
    ) -> NodeHandle:
        """An HTTP call; its output is ``{status, headers, body}``. A header value may be
        ``{"from_env": "TOKEN", "prefix": "Bearer "}`` (or ``from_file``): read by the
        replica at call time, never stored."""
        spec: dict[str, Any] = {
            "method": method,
            "url": url,
            "headers": dict(headers or {}),
            "body": body,
            "timeout": timeout,
        }
        if success_condition is not None:
            spec["success_condition"] = success_condition
        if retry_on is not None:
            spec["retry_on"] = list(retry_on)
        self._nodes.append(
            {
                "id": id,
                "http": spec,
                "needs": [_need(n) for n in needs],
                "when": when,
                "retry": _plain(retry),
                "compensate": _plain(compensate),
            }
        )
        return NodeHandle(id)

    def sql(
        self,
        id: str,
        connection: str | Connection,
        query: str,
        *,
        params: Mapping[str, JsonValue] | None = None,
        max_rows: int | None = None,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
        resources: Mapping[str, Any] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        compensate: CompensationSpec | Mapping[str, Any] | None = None,
    ) -> NodeHandle:
        """One SQL statement on `connection` (a `Connection`, or ``"name"`` /
        ``"name@version"`` of a registered one), in one transaction. `params` values (which
        may be ``${{ … }}`` expressions) are bound as ``:name``, never spliced into
        `query`. Its output is the rows as a list of objects (at most `max_rows`, default
        1000), or ``{"rowCount": n}`` for a statement."""
        if isinstance(connection, Connection):
            self._connections[connection.ref] = connection
            connection = connection.ref
        spec: dict[str, Any] = {"connection": connection, "query": query}
        spec["params"] = dict(params or {})
        if max_rows is not None:
            spec["max_rows"] = max_rows
        self._nodes.append(
            {
                "id": id,
                "sql": spec,
                "needs": [_need(n) for n in needs],
                "when": when,
                "resources": dict(resources) if resources is not None else None,
                "retry": _plain(retry),
                "timeout": timeout,
                "compensate": _plain(compensate),
            }
        )
        return NodeHandle(id)

    @property
    def connections(self) -> list[Connection]:
        """The `Connection` models passed to `sql`, to register along with the workflow."""
        return list(self._connections.values())

    def sleep(
        self,
        id: str,
        duration: float | str,
        *,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
    ) -> NodeHandle:
        """A durable timer: the node succeeds `duration` after it starts (output null)."""
        return self._special(id, needs, when, sleep=duration)

    def wait(
        self,
        id: str,
        signal: str,
        key: str = "",
        *,
        schema: Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
    ) -> NodeHandle:
        """Wait for a message on ``af.signal.<signal>.<key>``; its payload is the output."""
        spec = {"signal": signal, "key": key, "schema": schema, "timeout": timeout}
        return self._special(id, needs, when, wait=spec)

    def approval(
        self,
        id: str,
        guidance: str = "",
        *,
        schema: Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
    ) -> NodeHandle:
        """Wait for a person's approval; the approval's input is the output."""
        spec = {"guidance": guidance, "schema": schema, "timeout": timeout}
        return self._special(id, needs, when, approval=spec)

    def workflow(
        self,
        id: str,
        workflow: str | Workflow,
        *,
        inputs: Mapping[str, JsonValue] | None = None,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
        for_each: str | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        on_parent_stop: Literal["cancel", "terminate", "abandon"] = "cancel",
    ) -> NodeHandle:
        """A child run of `workflow` (``"name@version"``, a bare name for the latest, or a
        `Workflow`): its outputs are the node's output, its failure the node's."""
        if isinstance(workflow, Workflow):
            workflow = workflow.ref
        self._nodes.append(
            {
                "id": id,
                "workflow": workflow,
                "needs": [_need(n) for n in needs],
                "inputs": dict(inputs or {}),
                "for_each": for_each,
                "retry": _plain(retry),
                "when": when,
                "timeout": timeout,
                "on_parent_stop": on_parent_stop,
            }
        )
        return NodeHandle(id)

    def value(
        self,
        id: str,
        value: JsonValue,
        *,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
    ) -> NodeHandle:
        """A node whose output is `value` rendered once its needs end: no task."""
        return self._special(id, needs, when, value=value)

    def template(
        self,
        id: str,
        template: str | StepTemplate,
        *,
        inputs: Mapping[str, JsonValue] | None = None,
        needs: Iterable[NeedRef] = (),
        when: str | None = None,
    ) -> NodeHandle:
        """A group of a template's nodes (``"name@version"`` or a `StepTemplate`, which
        is then registered with the workflow), ids prefixed ``<id>.``; its output is the
        template's outputs."""
        if isinstance(template, StepTemplate):
            self._templates[template.ref] = template
            template = template.ref
        return self._special(id, needs, when, template=template, inputs=dict(inputs or {}))

    @property
    def templates(self) -> list[StepTemplate]:
        """The `StepTemplate` models passed to `template`, to register with the workflow."""
        return list(self._templates.values())

    def _special(
        self, id: str, needs: Iterable[NeedRef], when: str | None, **kind: Any
    ) -> NodeHandle:
        entry = {"id": id, "needs": [_need(n) for n in needs], "when": when, **kind}
        self._nodes.append(entry)
        return NodeHandle(id)

    def hook(
        self,
        on: HookPoint,
        call: str | Callable[..., Any] | Function,
        *,
        nodes: Iterable[str | NodeHandle] = (),
    ) -> None:
        """Call `call` at `on` (``before_run``, ``after_run``, ``before_node``,
        ``after_node``): an importable callable, ``"module:callable"``, or a `Function`."""
        if isinstance(call, Function):
            self._functions[call.ref] = call
            call = call.ref
        elif callable(call):
            call = f"{call.__module__}:{call.__qualname__}"
        ids = [n.id if isinstance(n, NodeHandle) else n for n in nodes]
        self._hooks.append({"on": on, "call": call, "nodes": ids})

    def concurrency(self, key: str, *, limit: int = 1, group: str | None = None) -> None:
        """At most `limit` unfinished runs per `key` (a literal or an expression over
        inputs and run, e.g. ``"${{ inputs.cluster }}"``); the others wait, PENDING, in start
        order. Workflows naming the same `group` share keys (default: this workflow's)."""
        self._concurrency = {"key": key, "limit": limit, "group": group}

    def on_error(self, code: str, policy: ErrorPolicy | Mapping[str, Any]) -> None:
        """What to do when a step fails with `code` (``"default"``: any other code)."""
        self._on_error[code] = _plain(policy) or {}

    def output(self, name: str, value: JsonValue) -> None:
        """Declare a workflow output: a literal or an expression over nodes and inputs."""
        self._outputs[name] = value

    def build(self) -> Workflow:
        """The validated workflow.

        Raises:
            DefinitionError: every model and graph problem at once.
        """
        data = {
            "metadata": self._metadata,
            "spec": {
                "inputs": self._inputs,
                "nodes": self._nodes,
                "outputs": self._outputs,
                "on_error": self._on_error,
                "hooks": self._hooks,
                "timeout": self._timeout,
                "concurrency": self._concurrency,
            },
        }
        return validate_workflow(_validate(Workflow, data))

    def build_template(self) -> StepTemplate:
        """The same inputs, nodes and outputs as a reusable `StepTemplate` (kind
        ``Template``; hooks, error policies and timeouts belong to workflows).

        Raises:
            DefinitionError: every model and graph problem at once.
        """
        data = {
            "metadata": self._metadata,
            "spec": {"inputs": self._inputs, "nodes": self._nodes, "outputs": self._outputs},
        }
        template = _validate(StepTemplate, data)
        issues = check_template(template)
        if issues:
            raise DefinitionError(issues)
        return template


def _validate(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(issues_from_validation(exc, data)) from None


def _accessor(key: str | int) -> str:
    """`.key` where CEL allows it, else `["key"]` / `[0]`."""
    if isinstance(key, int):
        return f"[{key}]"
    if key.isidentifier() and key.isascii():
        return f".{key}"
    return f"[{json.dumps(key)}]"
