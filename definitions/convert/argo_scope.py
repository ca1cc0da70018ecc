"""What an Argo variable means where it is written: the scope of one template's body.

``{{inputs.parameters.x}}`` is the caller's argument (an expression of the caller's graph
when the template was inlined, ``inputs.x`` in a sub-workflow), ``{{steps.a.outputs.result}}``
reads the native node step `a` became, and ``{{workflow.parameters.x}}`` is the top
workflow's input — or, in a sub-workflow, the ``argo`` object every sub-workflow is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from actorflow.definitions.convert.argo_expr import ArgoExprError, Resolver, template_text
from actorflow.definitions.convert.argo_names import field as cel_field
from actorflow.definitions.convert.argo_names import ident
from actorflow.definitions.errors import DefinitionIssue
from actorflow.definitions.yaml_source import FieldPath, SourceDocument

#: What a converted step's output looks like: a runner's / sub-workflow's
#: ``{result, parameters, artifacts}``, a function's return value, an approval's input.
RefKind = Literal["runner", "workflow", "function", "approval", "sleep", "http"]
RETRIES_MARK = "@@argo.retries@@"  #: replaced by the runner with the attempts before
DURATION_MARK = "@@argo.duration@@"  #: replaced by the runner with the seconds so far
ARGO_INPUT = "argo"  #: the sub-workflow input carrying the workflow-level variables


@dataclass(frozen=True)
class Ref:
    """The native node an Argo step or task became."""

    id: str
    kind: RefKind
    loop: bool = False

    def status(self) -> str:
        return f"nodes.{self.id}.status"

    def output(self, path: list[str], json: bool = False) -> str:
        """``outputs.result`` / ``outputs.parameters.p`` / ``outputs.artifacts.a``."""
        if not path:
            raise ArgoExprError("an output needs a name (result, parameters.NAME, …)")
        head, rest = path[0], path[1:]
        if head == "result" and not rest:
            sel = ["json", "result"] if json else ["result"]
        elif head == "exitCode" and not rest:
            sel = ["exitCode"]
        elif head in ("parameters", "artifacts") and len(rest) == 1:
            sel = (["json"] if json and head == "parameters" else []) + [head, rest[0]]
        else:
            raise ArgoExprError(f"unknown output {'.'.join(path)!r}")
        if self.kind == "http":
            if head != "result":
                raise ArgoExprError("an http step has only its result (the response body)")
            sel = ["body"]
        elif self.kind == "function":
            sel = [] if head == "result" else sel[-1:]
        elif self.kind == "approval":
            if head != "parameters":
                raise ArgoExprError("a suspend step has only the parameters supplied on resume")
            sel = sel[-1:]
        elif self.kind == "sleep":
            raise ArgoExprError("a timed suspend step has no outputs")
        if self.loop:
            inner = "o"
            for s in sel:
                inner = cel_field(inner, s)
            return f"nodes.{self.id}.output.map(o, {inner})"
        out = f"nodes.{self.id}.output"
        for s in sel:
            out = cel_field(out, s)
        return out


_STATUS = "({s} == 'SUCCEEDED' ? 'Succeeded' : ({s} == 'SKIPPED' ? 'Skipped' : 'Failed'))"


@dataclass
class Scope:
    """The variables one template body sees."""

    top: bool  #: in the top workflow (its inputs are the workflow parameters)
    params: dict[str, str]  #: the template's input parameter → CEL
    workflow_params: dict[str, str]  #: declared workflow parameter → its native input name
    steps: dict[str, Ref] = field(default_factory=dict)
    group: Literal["steps", "tasks"] = "steps"
    artifacts: dict[str, str] = field(default_factory=dict)  #: input artifact → its path
    status: str | None = None  #: {{workflow.status}} in an exit handler
    failures: str | None = None
    scheduled: bool = False  #: a CronWorkflow's: {{workflow.scheduledTime}} exists
    json: bool = False  #: resolving a withParam: step outputs as parsed JSON
    undeclared: set[str] = field(default_factory=set)  #: workflow params read, not declared

    def child(self, params: dict[str, str]) -> Scope:
        """The scope of a template inlined here with these arguments."""
        return replace(self, params=params, steps={}, artifacts={}, json=False)

    def argo(self) -> str:
        """The CEL of the ``argo`` object a sub-workflow called from here is given:
        the workflow's name and parameters (and, for an exit handler, its status)."""
        if not self.top and self.status is None:
            return f"inputs.{ARGO_INPUT}"
        if self.top:
            params = ", ".join(
                f"'{name}': inputs.{native}" for name, native in self.workflow_params.items()
            )
            parts = ["'name': run.id", "'parameters': {" + params + "}"]
            if self.scheduled:
                parts.append("'scheduledTime': inputs.scheduledTime")
        else:
            base = f"inputs.{ARGO_INPUT}"
            parts = [f"'name': {base}.name", f"'parameters': {base}.parameters"]
            if self.scheduled:
                parts.append(f"'scheduledTime': {base}.scheduledTime")
        if self.status is not None:
            parts += [f"'status': {self.status}", f"'failures': {self.failures or '[]'}"]
        return "{" + ", ".join(parts) + "}"

    def resolve(self, path: list[str]) -> str:
        """One Argo variable as CEL (`argo_expr.Resolver`)."""
        head = path[0]
        if head == "inputs" and len(path) >= 3 and path[1] == "parameters":
            if path[2] not in self.params:
                raise ArgoExprError(f"the template has no input parameter {path[2]!r}")
            return _rest(self.params[path[2]], path[3:])
        if head == "inputs" and len(path) == 4 and path[1] == "artifacts" and path[3] == "path":
            if path[2] not in self.artifacts:
                raise ArgoExprError(f"the template has no input artifact {path[2]!r}")
            return self.artifacts[path[2]]
        if head == "workflow":
            return self._workflow(path[1:])
        if head in ("steps", "tasks"):
            if len(path) < 3:
                raise ArgoExprError(f"{'.'.join(path)!r} names no output")
            if head != self.group:
                raise ArgoExprError(f"{head}.… is not available in a {self.group} template")
            ref = self.steps.get(path[1])
            if ref is None:
                raise ArgoExprError(f"no {head[:-1]} {path[1]!r} before this one")
            if path[2] == "outputs":
                return ref.output(path[3:], json=self.json)
            if path[2] == "status" and len(path) == 3:
                return _STATUS.format(s=ref.status())
            raise ArgoExprError(f"unknown variable {'.'.join(path)!r}")
        if head == "item":
            return _rest("item", path[1:])
        if head == "retries" and len(path) == 1:
            return f"'{RETRIES_MARK}'"  # the runner counts the attempts (argo_runner)
        raise ArgoExprError(f"unknown variable {'.'.join(path)!r}")

    def _workflow(self, rest: list[str]) -> str:
        what = ".".join(rest)
        if len(rest) == 2 and rest[0] == "parameters":
            name = rest[1]
            if name not in self.workflow_params:
                self.undeclared.add(name)
                native = ident(name)
            else:
                native = self.workflow_params[name]
            if self.top:
                return f"inputs.{native}"
            return cel_field(f"inputs.{ARGO_INPUT}.parameters", name)
        if what in ("name", "uid"):
            return "run.id" if self.top else f"inputs.{ARGO_INPUT}.name"
        if what in {"status", "failures"}:
            value = self.status if what == "status" else self.failures
            if value is None and not self.top:  # given by the caller when an exit handler
                return f"inputs.{ARGO_INPUT}.{what}"
            if value is None:
                raise ArgoExprError(f"{{{{workflow.{what}}}}} is only known in an exit handler")
            return value
        if what == "scheduledTime":
            if not self.scheduled:
                raise ArgoExprError("{{workflow.scheduledTime}} is only known in a CronWorkflow")
            return "inputs.scheduledTime" if self.top else f"inputs.{ARGO_INPUT}.scheduledTime"
        if what in ("duration", "creationTimestamp"):
            return f"'{DURATION_MARK}'"  # the runner fills it in (argo_runner)
        raise ArgoExprError(f"unknown variable workflow.{what!r}")


def _rest(base: str, path: list[str]) -> str:
    for part in path:
        base = cel_field(base, part)
    return base


@dataclass
class Issues:
    """Every problem found in one Argo document, each at its field's source line."""

    doc: SourceDocument
    found: list[DefinitionIssue] = field(default_factory=list)

    def add(self, path: FieldPath, message: str) -> None:
        issue = self.doc.issue(path, message)
        if issue not in self.found:  # a template inlined twice is one problem
            self.found.append(issue)

    def text(self, value: Any, path: FieldPath, scope: Scope) -> Any:
        """A value with Argo tags as a native templated value (strings only; a literal
        number or boolean stays one; a list or map is walked)."""
        if isinstance(value, str):
            try:
                return template_text(value, scope.resolve)
            except ArgoExprError as exc:
                self.add(path, f"{value!r}: {exc}")
                return value
        if isinstance(value, list):
            return [self.text(v, (*path, i), scope) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.text(v, (*path, k), scope) for k, v in value.items()}
        return value

    def cel(
        self, convert: Callable[[str, Resolver], str], text: Any, path: FieldPath, scope: Scope
    ) -> str | None:
        """`text` through one of `argo_expr`'s translators, or None (and an issue)."""
        if not isinstance(text, str):
            self.add(path, f"must be a string, got {type(text).__name__}")
            return None
        try:
            return convert(text, scope.resolve)
        except ArgoExprError as exc:
            self.add(path, f"{text!r}: {exc}")
            return None


@dataclass
class Node:
    """A native node being built, with the source paths of its fields."""

    data: dict[str, Any]
    src: FieldPath
    fields: dict[str, FieldPath] = field(default_factory=dict)
