"""Argo `steps` and `dag` templates as native nodes, and the calls between templates.

A call of a container, script or suspend template is *inlined*: it becomes one native
node of the caller's graph, its arguments substituted where the template reads its
inputs. A call of a steps or dag template becomes a `workflow:` node running that
template as a sub-workflow (``<workflow>--<template>``, converted once however often it is
called) — which is what lets a template call itself, loop, retry or time out as a whole,
and be the target of an error branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actorflow.definitions.convert import ConvertOptions, NativeDocument
from actorflow.definitions.convert.argo_edges import (
    anchor_skippable_needs,
    check_cycles,
    task_edges,
)
from actorflow.definitions.convert.argo_expr import (
    when_to_cel,
)
from actorflow.definitions.convert.argo_leaf import (
    UNSUPPORTED_BODIES,
    artifact_source,
    is_leaf,
    leaf_node,
)
from actorflow.definitions.convert.argo_loops import loop_of
from actorflow.definitions.convert.argo_names import (
    as_text,
    cel_of_text,
    definition_name,
    ident,
    seconds,
    unique,
    wrap,
)
from actorflow.definitions.convert.argo_outputs import group_outputs, leaf_outputs
from actorflow.definitions.convert.argo_retry import retry_policy
from actorflow.definitions.convert.argo_scope import ARGO_INPUT, Issues, Node, Ref, Scope
from actorflow.definitions.yaml_source import FieldPath

#: Template fields that only place or schedule a pod: no meaning on this machine.
IGNORED_TEMPLATE_FIELDS = frozenset(
    [
        "name",
        "metadata",
        "nodeSelector",
        "affinity",
        "tolerations",
        "schedulerName",
        "priorityClassName",
        "priority",
        "serviceAccountName",
        "automountServiceAccountToken",
        "securityContext",
        "podSpecPatch",
        "hostAliases",
        "volumes",
        "archiveLocation",
        "metrics",
        "memoize",
        "parallelism",
        "failFast",
        "executor",
        "synchronization",
        "daemon",
        "initContainers",
    ]
)
_TEMPLATE_FIELDS = frozenset(
    [
        "inputs",
        "outputs",
        "retryStrategy",
        "timeout",
        "activeDeadlineSeconds",
        "container",
        "script",
        "suspend",
        "steps",
        "dag",
        "http",
    ]
)
_ENTRY_FIELDS = frozenset(
    [
        "name",
        "template",
        "templateRef",
        "inline",
        "arguments",
        "when",
        "withItems",
        "withParam",
        "withSequence",
        "continueOn",
        "hooks",
        "onExit",
        "dependencies",
        "depends",
    ]
)


@dataclass
class Graph:
    """Converts the templates of one Argo workflow spec."""

    issues: Issues
    options: ConvertOptions
    name: str  #: the native name of the workflow (sub-workflows are ``name--template``)
    templates: dict[str, tuple[dict[str, Any], FieldPath]]
    default_retry: tuple[dict[str, Any], FieldPath] | None = None
    subs: dict[str, NativeDocument | None] = field(default_factory=dict)
    scheduled: bool = False

    # --- sub-workflows ------------------------------------------------------------------
    def sub_name(self, template: str) -> str:
        return definition_name(self.name, template)

    def want_sub(self, template: str) -> str:
        """The sub-workflow of a template, converted when the caller is done."""
        self.subs.setdefault(template, None)
        return self.sub_name(template)

    def build_pending(self, workflow_params: dict[str, str]) -> list[NativeDocument]:
        """Every sub-workflow asked for (those asked for while building included)."""
        while any(doc is None for doc in self.subs.values()):
            name = next(n for n, d in self.subs.items() if d is None)
            self.subs[name] = self.sub_workflow(name, workflow_params)
        return [d for d in self.subs.values() if d is not None]

    def sub_workflow(self, template: str, workflow_params: dict[str, str]) -> NativeDocument:
        tpl, tpath = self.templates[template]
        params = _input_names(tpl)
        scope = Scope(
            top=False,
            params={p: f"inputs.{ident(p)}" for p in params},
            workflow_params=workflow_params,
            scheduled=self.scheduled,
        )
        inputs: dict[str, Any] = {ident(p): {"type": "any"} for p in params}
        inputs[ARGO_INPUT] = {"type": "object"}
        if is_leaf(tpl):
            nodes = self.leaf_call("main", tpl, tpath, scope, arg_arts={}, epath=tpath)
            outputs = leaf_outputs(nodes[0].data if nodes else {})
        else:
            nodes = self.body(tpl, tpath, scope)
            outputs = group_outputs(self.issues, tpl, tpath, scope)
        spec: dict[str, Any] = {"inputs": inputs, "nodes": [], "outputs": outputs}
        return self.document(
            self.sub_name(template), spec, nodes, tpath, f"Argo template {template!r}"
        )

    def document(
        self, name: str, spec: dict[str, Any], nodes: list[Node], src: FieldPath, about: str
    ) -> NativeDocument:
        """A native Workflow from built nodes, with the source line of each field."""
        lines: dict[FieldPath, int] = {}
        for path in ((), ("metadata",), ("spec",), ("spec", "inputs"), ("spec", "outputs")):
            line = self.issues.doc.line(src)
            if line is not None:
                lines[path] = line
        for i, node in enumerate(nodes):
            spec["nodes"].append(node.data)
            line = self.issues.doc.line(node.src)
            if line is not None:
                lines[("spec", "nodes", i)] = line
            for key, fpath in node.fields.items():
                line = self.issues.doc.line(fpath)
                if line is not None:
                    lines[("spec", "nodes", i, key)] = line
        data = {
            "apiVersion": "actorflow/v1",
            "kind": "Workflow",
            "metadata": {"name": name, "version": "1", "description": f"converted from {about}"},
            "spec": spec,
        }
        return NativeDocument(data, lines)

    # --- template bodies ----------------------------------------------------------------
    def check_template(self, tpl: dict[str, Any], tpath: FieldPath) -> bool:
        """Refuse what a template holds that cannot be converted; False if it has no body."""
        for key in tpl:
            if key in UNSUPPORTED_BODIES:
                self.issues.add(
                    (*tpath, key), f"a {key} template is not converted: {UNSUPPORTED_BODIES[key]}"
                )
            elif key == "sidecars":
                self.issues.add(
                    (*tpath, key),
                    "sidecars are not converted: start the "
                    "service the step needs in its command, or beside the run",
                )
            elif key not in _TEMPLATE_FIELDS and key not in IGNORED_TEMPLATE_FIELDS:
                self.issues.add((*tpath, key), f"unknown template field {key!r}")
        bodies = [
            k
            for k in ("container", "script", "suspend", "steps", "dag", "http", *UNSUPPORTED_BODIES)
            if k in tpl
        ]
        if len(bodies) != 1:
            self.issues.add(
                tpath,
                "a template needs exactly one of container, script, "
                f"suspend, steps, dag, http (got {', '.join(bodies) or 'none'})",
            )
        return len(bodies) == 1 and bodies[0] not in UNSUPPORTED_BODIES

    def body(self, tpl: dict[str, Any], tpath: FieldPath, scope: Scope) -> list[Node]:
        """The nodes of a steps or dag template's body."""
        if not self.check_template(tpl, tpath):
            return []
        self._input_artifacts(tpl, tpath, scope)
        if "steps" in tpl:
            return self._steps(tpl["steps"], (*tpath, "steps"), scope)
        if "dag" in tpl:
            return self._dag(tpl["dag"] or {}, (*tpath, "dag"), scope)
        return self.leaf_call(
            ident(str(tpl.get("name", "main"))), tpl, tpath, scope, arg_arts={}, epath=tpath
        )

    def _input_artifacts(self, tpl: dict[str, Any], tpath: FieldPath, scope: Scope) -> None:
        for i, _ in enumerate((tpl.get("inputs") or {}).get("artifacts") or []):
            self.issues.add(
                (*tpath, "inputs", "artifacts", i),
                "a steps or dag template takes no input artifacts here: pass them to its steps",
            )

    def _steps(self, stages: Any, spath: FieldPath, scope: Scope) -> list[Node]:
        scope.group = "steps"
        if not isinstance(stages, list):
            self.issues.add(spath, "steps must be a list of lists of steps")
            return []
        out: list[Node] = []
        taken: set[str] = set()
        previous: list[str] = []
        for i, written in enumerate(stages):
            # a lone step where a parallel group was meant
            stage = [written] if isinstance(written, dict) else written
            if not isinstance(stage, list):
                self.issues.add((*spath, i), "a stage must be a list of steps")
                continue
            current: list[str] = []
            conditional: list[bool] = []
            refs: dict[str, Ref] = {}
            for j, entry in enumerate(stage):
                epath = (*spath, i, j)
                if not isinstance(entry, dict) or not entry.get("name"):
                    self.issues.add(epath, "a step needs a name")
                    continue
                node_id = unique(str(entry["name"]), taken)
                nodes, ref = self.call(entry, epath, scope, node_id, taken=taken)
                if nodes:
                    nodes[0].data["needs"] = list(previous) + nodes[0].data.get("needs", [])
                out += nodes
                current.append(node_id)
                conditional.append(bool(nodes) and "when" in nodes[0].data)
                if ref is not None:
                    refs[str(entry["name"])] = ref
            scope.steps.update(refs)  # a stage reads the stages before it, not its own
            # A stage whose every step has a `when` may be skipped whole; Argo still runs
            # the next, which natively needs one need met: it also needs the stage before.
            previous = current + (previous if all(conditional) else []) if current else previous
        return out

    def _dag(self, dag: dict[str, Any], dpath: FieldPath, scope: Scope) -> list[Node]:
        scope.group = "tasks"
        tasks = dag.get("tasks")
        for key in dag:
            if key == "target":
                self.issues.add(
                    (*dpath, key),
                    "dag target is not converted: list the tasks to run, or give them a when",
                )
            elif key not in ("tasks", "failFast"):
                self.issues.add((*dpath, key), f"unknown dag field {key!r}")
        if not isinstance(tasks, list) or not tasks:
            self.issues.add(dpath, "a dag needs a list of tasks")
            return []
        taken: set[str] = set()
        ids: dict[str, str] = {}
        for i, task in enumerate(tasks):
            if not isinstance(task, dict) or not task.get("name"):
                self.issues.add((*dpath, "tasks", i), "a task needs a name")
                continue
            if str(task["name"]) in ids:
                self.issues.add((*dpath, "tasks", i, "name"), f"duplicate task {task['name']!r}")
                continue
            ids[str(task["name"])] = unique(str(task["name"]), taken)
        forms = {
            ("depends" in t)
            for t in tasks
            if isinstance(t, dict) and ("depends" in t or "dependencies" in t)
        }
        if len(forms) > 1:
            self.issues.add(dpath, "a dag uses dependencies or depends, not both")
        # every task may read any other's outputs: refs first, from each callee's kind
        for task in tasks:
            if isinstance(task, dict) and str(task.get("name")) in ids:
                scope.steps[str(task["name"])] = self._ref_of(task, ids[str(task["name"])])
        out: list[Node] = []
        edges: dict[str, tuple[list[str], FieldPath]] = {}
        for i, task in enumerate(tasks):
            if not isinstance(task, dict) or str(task.get("name")) not in ids:
                continue
            tpath = (*dpath, "tasks", i)
            node_id = ids[str(task["name"])]
            needs, condition = task_edges(self.issues, task, tpath, ids, scope)
            key = "depends" if "depends" in task else "dependencies"
            edges[node_id] = (
                [n if isinstance(n, str) else n["node"] for n in needs],
                (*tpath, key),
            )
            nodes, _ = self.call(task, tpath, scope, node_id, taken=taken, extra_when=condition)
            if nodes:
                nodes[0].data["needs"] = needs + nodes[0].data.get("needs", [])
                if "depends" in task or "dependencies" in task:
                    key = "depends" if "depends" in task else "dependencies"
                    nodes[0].fields["needs"] = (*tpath, key)
            out += nodes
        check_cycles(self.issues, edges, {v: k for k, v in ids.items()})
        if not self.issues.found:
            anchor_skippable_needs(out)
        return out

    def _ref_of(self, entry: dict[str, Any], node_id: str) -> Ref:
        loop = any(k in entry for k in ("withItems", "withParam", "withSequence"))
        tpl = self._callee(entry)
        if tpl is None or not is_leaf(tpl) or "templateRef" in entry:
            return Ref(node_id, "workflow", loop)
        if "suspend" in tpl:
            has_duration = (tpl.get("suspend") or {}).get("duration") not in (None, "")
            return Ref(node_id, "sleep" if has_duration else "approval", loop)
        kind = "container" if "container" in tpl else "script"
        image = (tpl.get(kind) or {}).get("image") if kind in tpl else None
        target = self.options.image_map.get(image) if isinstance(image, str) else None
        if "http" in tpl:
            return Ref(node_id, "http", loop)
        if target is not None and target.function:
            return Ref(node_id, "function", loop)
        return Ref(node_id, "runner", loop)

    def _callee(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        if isinstance(entry.get("inline"), dict):
            return dict(entry["inline"])
        found = self.templates.get(str(entry.get("template")))
        return found[0] if found else None

    # --- calls --------------------------------------------------------------------------
    def call(
        self,
        entry: dict[str, Any],
        epath: FieldPath,
        scope: Scope,
        node_id: str,
        *,
        taken: set[str],
        extra_when: str | None = None,
    ) -> tuple[list[Node], Ref | None]:
        """The node(s) of one step or task: the call, and its exit hook if it has one."""
        for key in entry:
            if key not in _ENTRY_FIELDS:
                self.issues.add((*epath, key), f"unknown step field {key!r}")
        ref = self._ref_of(entry, node_id)
        ways = [k for k in ("template", "templateRef", "inline") if k in entry]
        if len(ways) != 1:
            self.issues.add(epath, "a step needs exactly one of template, templateRef, inline")
            return [], None
        loop = loop_of(self.issues, entry, epath, scope)
        node_scope_args, arg_arts = self._arguments(entry, epath, scope)
        node: Node
        if "templateRef" in entry:
            node = self._ref_call(entry, epath, scope, node_id, node_scope_args)
        else:
            if "inline" in entry:
                tpl, tpath = dict(entry["inline"] or {}), (*epath, "inline")
                tpl.setdefault("name", str(entry["name"]))
            else:
                name = str(entry["template"])
                if name not in self.templates:
                    self.issues.add((*epath, "template"), f"unknown template {name!r}")
                    return [], None
                tpl, tpath = self.templates[name]
            args = self._fill_defaults(tpl, tpath, epath, scope, args=node_scope_args)
            if args is None:
                return [], None
            if is_leaf(tpl):
                if not self.check_template(tpl, tpath):
                    return [], None
                child = scope.child(args)
                nodes = self.leaf_call(
                    node_id,
                    tpl,
                    tpath,
                    child,
                    arg_arts=arg_arts,
                    epath=epath,
                    loop=loop is not None,
                )
                if not nodes:
                    return [], None
                node = nodes[0]
            else:
                if "inline" in entry:
                    self.issues.add(
                        (*epath, "inline"),
                        "an inline steps or dag template is not converted: name it in templates",
                    )
                    return [], None
                for name_ in arg_arts:
                    self.issues.add(
                        arg_arts[name_][1],
                        "artifacts are passed to container and script templates only",
                    )
                node = self._workflow_call(str(entry["template"]), node_id, epath, scope, args)
                self._apply_template_limits(node, tpl, tpath)
        node.src = epath
        if loop is not None:
            if "sleep" in node.data or "approval" in node.data:
                self.issues.add(epath, "a suspend template cannot be looped")
            node.data["forEach"] = loop[0]
            node.fields["forEach"] = loop[1]
        when = self._when(entry, epath, scope)
        parts = [p for p in (extra_when, when) if p]
        if parts:
            node.data["when"] = wrap(" && ".join(f"({p})" if len(parts) > 1 else p for p in parts))
            node.fields["when"] = (*epath, "when") if when else (*epath, "depends")
        cont = entry.get("continueOn")
        if isinstance(cont, dict) and (cont.get("failed") or cont.get("error")):
            node.data["continueOn"] = "failed"
            node.fields["continueOn"] = (*epath, "continueOn")
        nodes = [node]
        nodes += self._exit_hook(entry, epath, scope, node_id, taken=taken, ref=ref)
        return nodes, ref

    def _when(self, entry: dict[str, Any], epath: FieldPath, scope: Scope) -> str | None:
        if "when" not in entry:
            return None
        text = entry["when"]
        looped = any(k in entry for k in ("withItems", "withParam", "withSequence"))
        if looped and isinstance(text, str) and "{{item" in text.replace(" ", ""):
            self.issues.add(
                (*epath, "when"),
                "a when over {{item}} is not converted: filter the list the loop goes over instead",
            )
            return None
        return self.issues.cel(when_to_cel, text, (*epath, "when"), scope)

    def _arguments(
        self, entry: dict[str, Any], epath: FieldPath, scope: Scope
    ) -> tuple[dict[str, str], dict[str, tuple[dict[str, Any], FieldPath]]]:
        """The call's parameters as CEL of the caller, and its artifacts as written."""
        args = entry.get("arguments") or {}
        params: dict[str, str] = {}
        for i, p in enumerate(args.get("parameters") or []):
            path = (*epath, "arguments", "parameters", i)
            if not isinstance(p, dict) or "name" not in p:
                self.issues.add(path, "an argument needs a name")
                continue
            if "value" not in p:
                self.issues.add(
                    path,
                    f"argument {p['name']!r} needs a value (valueFrom is "
                    "not converted for arguments)",
                )
                continue
            params[str(p["name"])] = cel_of_text(
                self.issues.text(as_text(p["value"]), (*path, "value"), scope)
            )
        arts: dict[str, tuple[dict[str, Any], FieldPath]] = {}
        for i, a in enumerate(args.get("artifacts") or []):
            path = (*epath, "arguments", "artifacts", i)
            if not isinstance(a, dict) or "name" not in a:
                self.issues.add(path, "an artifact argument needs a name")
                continue
            source = artifact_source(self.issues, a, path, scope)
            if source is None:
                self.issues.add(
                    path,
                    f"artifact argument {a['name']!r} needs from, "
                    "fromExpression, an s3 / gcs key or raw data",
                )
                continue
            arts[str(a["name"])] = (source, path)
        return params, arts

    def _fill_defaults(
        self,
        tpl: dict[str, Any],
        tpath: FieldPath,
        epath: FieldPath,
        scope: Scope,
        *,
        args: dict[str, str],
    ) -> dict[str, str] | None:
        """Every input parameter of the callee: the argument, else its default."""
        out: dict[str, str] = {}
        ok = True
        for i, p in enumerate((tpl.get("inputs") or {}).get("parameters") or []):
            name = str(p.get("name"))
            if name in args:
                out[name] = args[name]
            elif "value" in p or "default" in p:
                value = p.get("value", p.get("default"))
                out[name] = cel_of_text(
                    self.issues.text(as_text(value), (*tpath, "inputs", "parameters", i), scope)
                )
            else:
                self.issues.add(
                    (*epath, "arguments"),
                    f"template {tpl.get('name')!r} needs "
                    f"input parameter {name!r}, and this step does not give it",
                )
                ok = False
        return out if ok else None

    def _ref_call(
        self,
        entry: dict[str, Any],
        epath: FieldPath,
        scope: Scope,
        node_id: str,
        args: dict[str, str],
    ) -> Node:
        ref = entry.get("templateRef") or {}
        path = (*epath, "templateRef")
        if not isinstance(ref, dict) or not ref.get("name") or not ref.get("template"):
            self.issues.add(path, "templateRef needs a name and a template")
            ref = {"name": "unknown", "template": "unknown"}
        target = definition_name(str(ref["name"]), str(ref["template"]))
        inputs = {ident(k): wrap(v) for k, v in args.items()}
        inputs[ARGO_INPUT] = wrap(scope.argo())
        return Node(
            {"id": node_id, "workflow": target, "inputs": inputs}, epath, {"workflow": path}
        )

    def _workflow_call(
        self, template: str, node_id: str, epath: FieldPath, scope: Scope, args: dict[str, str]
    ) -> Node:
        inputs = {ident(k): wrap(v) for k, v in args.items()}
        inputs[ARGO_INPUT] = wrap(scope.argo())
        data = {"id": node_id, "workflow": self.want_sub(template), "inputs": inputs}
        return Node(data, epath, {"workflow": (*epath, "template")})

    def leaf_call(
        self,
        node_id: str,
        tpl: dict[str, Any],
        tpath: FieldPath,
        scope: Scope,
        *,
        arg_arts: dict[str, tuple[dict[str, Any], FieldPath]],
        epath: FieldPath,
        loop: bool = False,
    ) -> list[Node]:
        """A container, script or suspend template as one node of the caller's graph."""
        if "steps" in tpl or "dag" in tpl:
            return self.body(tpl, tpath, scope)
        if not self.check_template(tpl, tpath):
            return []
        run = "run.id" if scope.top else f"inputs.{ARGO_INPUT}.name"
        key = f"${{{{ {run} }}}}/{node_id}" + ("/${{ index }}" if loop else "")
        body, _ = leaf_node(
            self.issues, self.options, tpl, tpath, scope, arg_artifacts=arg_arts, retries_key=key
        )
        source = {"shell": next((k for k in ("container", "script") if k in tpl), "container")}
        source.update(sleep="suspend", approval="suspend", http="http", function="container")
        fields = {k: (*tpath, source.get(k, k)) for k in body}
        node = Node({"id": node_id, **body}, epath, fields)
        self._apply_template_limits(node, tpl, tpath)
        return [node]

    def _apply_template_limits(self, node: Node, tpl: dict[str, Any], tpath: FieldPath) -> None:
        """A template's retryStrategy and deadlines, on the node that runs it."""
        if "sleep" in node.data or "approval" in node.data:
            return
        retry = tpl.get("retryStrategy")
        rpath = (*tpath, "retryStrategy")
        if retry is None and self.default_retry is not None and is_leaf(tpl):
            retry, rpath = self.default_retry
        timeout = None
        if retry is not None:
            policy, max_duration = retry_policy(self.issues, retry, rpath)
            if policy is not None:
                node.data["retry"] = policy
                node.fields["retry"] = rpath
            timeout = max_duration
        for key in ("activeDeadlineSeconds", "timeout"):
            if key in tpl:
                value = seconds(tpl[key])
                if isinstance(value, str) and "{{" in value:
                    self.issues.add(
                        (*tpath, key), "a templated deadline is not converted: give a duration"
                    )
                    continue
                timeout = value
                node.fields["timeout"] = (*tpath, key)
        if timeout is not None:
            node.data["timeout"] = timeout

    def _exit_hook(
        self,
        entry: dict[str, Any],
        epath: FieldPath,
        scope: Scope,
        node_id: str,
        *,
        taken: set[str],
        ref: Ref,
    ) -> list[Node]:
        hooks = entry.get("hooks") or {}
        exit_template = None
        path: FieldPath = (*epath, "onExit")
        if "onExit" in entry:
            exit_template = str(entry["onExit"])
        for name, hook in hooks.items() if isinstance(hooks, dict) else []:
            if name == "exit" and isinstance(hook, dict) and "template" in hook:
                exit_template, path = str(hook["template"]), (*epath, "hooks", "exit")
            else:
                self.issues.add(
                    (*epath, "hooks", name),
                    "only the exit hook is converted: "
                    "give the step an exit hook, or a follow-up step with a when",
                )
        if exit_template is None:
            return []
        hook_id = unique(f"{node_id}_exit", taken)
        hook_scope = scope.child(dict(scope.params))
        hook_scope.steps, hook_scope.group = scope.steps, scope.group
        status = ref.status()
        hook_scope.status = f"({status} == 'SUCCEEDED' ? 'Succeeded' : 'Failed')"
        hook_scope.failures = "[]"
        call = {"name": hook_id, "template": exit_template}
        nodes, _ = self.call(call, path, hook_scope, hook_id, taken=taken)
        if nodes:
            nodes[0].data["needs"] = [{"node": node_id, "on": "finished"}]
            nodes.append(fail_after(unique(f"{node_id}_failed", taken), node_id, hook_id, path))
        return nodes

    # --- outputs of steps / dag templates -----------------------------------------------


def fail_after(fail_id: str, step: str, hook: str, src: FieldPath) -> Node:
    """A node that fails the run when `step` failed, once its exit `hook` ran: the hook's
    ``finished`` need takes the step's failure in its stride, Argo's does not."""
    return Node(
        {
            "id": fail_id,
            "shell": {"argv": ["sh", "-c", f"echo 'step {step} failed' >&2; exit 1"]},
            "needs": [{"node": step, "on": "finished"}, {"node": hook, "on": "finished"}],
            "when": f"${{{{ nodes.{step}.status == 'FAILED' }}}}",
        },
        src,
    )


def _input_names(tpl: dict[str, Any]) -> list[str]:
    return [
        str(p.get("name"))
        for p in (tpl.get("inputs") or {}).get("parameters") or []
        if isinstance(p, dict)
    ]
