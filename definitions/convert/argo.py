"""Argo Workflows (``argoproj.io/v1alpha1``) → native definitions.

A `Workflow`, `WorkflowTemplate` or `ClusterWorkflowTemplate` becomes a native Workflow
named after it (its inputs: the workflow's parameters; its nodes: the entrypoint's body),
plus one sub-workflow per steps / dag template called (``<name>--<template>``; every
template of a WorkflowTemplate, so that `templateRef`s elsewhere can call them). A
`CronWorkflow` adds one schedule `Trigger` per schedule. An `onExit` handler runs after
the entrypoint (run as the sub-workflow ``main``) whatever its outcome, and the run still
fails when the entrypoint did. How each construct maps: `docs/argo.md`.

    native = convert(doc, ConvertOptions())   # raises DefinitionError with every issue
"""

from __future__ import annotations

from typing import Any

from actorflow.definitions.convert import ConvertOptions, NativeDocument
from actorflow.definitions.convert.argo_graph import Graph, fail_after
from actorflow.definitions.convert.argo_leaf import is_leaf
from actorflow.definitions.convert.argo_names import definition_name, ident, seconds, wrap
from actorflow.definitions.convert.argo_outputs import group_outputs
from actorflow.definitions.convert.argo_scope import Issues, Node, Scope
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.yaml_source import FieldPath, SourceDocument

_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
#: WorkflowSpec fields about pods, clusters and bookkeeping: no meaning on this machine.
IGNORED_SPEC_FIELDS = frozenset(
    [
        "podGC",
        "ttlStrategy",
        "ttlSecondsAfterFinished",
        "volumes",
        "volumeClaimTemplates",
        "serviceAccountName",
        "automountServiceAccountToken",
        "imagePullSecrets",
        "nodeSelector",
        "affinity",
        "tolerations",
        "securityContext",
        "podPriorityClassName",
        "priority",
        "podMetadata",
        "hostNetwork",
        "dnsPolicy",
        "dnsConfig",
        "schedulerName",
        "podDisruptionBudget",
        "archiveLogs",
        "artifactRepositoryRef",
        "artifactGC",
        "executor",
        "metrics",
        "shutdown",
        "parallelism",
        "podSpecPatch",
        "volumeClaimGC",
        "workflowMetadata",
        "hostAliases",
    ]
)
_SPEC_FIELDS = frozenset(
    [
        "entrypoint",
        "arguments",
        "templates",
        "onExit",
        "hooks",
        "retryStrategy",
        "activeDeadlineSeconds",
    ]
)
_CRON_FIELDS = frozenset(
    [
        "schedule",
        "schedules",
        "timezone",
        "concurrencyPolicy",
        "startingDeadlineSeconds",
        "suspend",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "workflowSpec",
        "workflowMetadata",
        "stopStrategy",
    ]
)
_EXIT_STATUS = "(nodes.main.status == 'SUCCEEDED' ? 'Succeeded' : 'Failed')"
_EXIT_FAILURES = (
    "(nodes.main.status == 'FAILED' ? [{'displayName': 'main', 'message': "
    "nodes.main.error.message}] : [])"
)


def convert(doc: SourceDocument, options: ConvertOptions) -> list[NativeDocument]:
    """One Argo document as native documents — all of them, or a `DefinitionError`."""
    issues = Issues(doc)
    data = doc.data
    kind = data.get("kind")
    if kind not in _KINDS:
        raise DefinitionError(
            [
                doc.issue(
                    ("kind",), f"Argo kind {kind!r} is not converted (one of {', '.join(_KINDS)})"
                )
            ]
        )
    metadata = data.get("metadata") or {}
    raw_name = metadata.get("name") or str(metadata.get("generateName") or "").rstrip("-")
    if not raw_name:
        issues.add(("metadata",), "an Argo document needs metadata.name or generateName")
    name = definition_name(str(raw_name or "argo"))
    spec_path: FieldPath = ("spec", "workflowSpec") if kind == "CronWorkflow" else ("spec",)
    spec = data.get("spec") or {}
    if kind == "CronWorkflow":
        for key in spec:
            if key not in _CRON_FIELDS:
                issues.add(("spec", key), f"unknown CronWorkflow field {key!r}")
        spec = spec.get("workflowSpec") or {}
    if not isinstance(spec, dict):
        raise DefinitionError([doc.issue(spec_path, "must be a mapping")])
    out = _workflow(issues, options, name=name, spec=spec, path=spec_path, kind=kind)
    if kind == "CronWorkflow":
        out += _triggers(issues, name, data.get("spec") or {})
    if issues.found:
        raise DefinitionError(issues.found)
    return out


def _templates(
    issues: Issues, spec: dict[str, Any], path: FieldPath
) -> dict[str, tuple[dict[str, Any], FieldPath]]:
    out: dict[str, tuple[dict[str, Any], FieldPath]] = {}
    templates = spec.get("templates")
    if not isinstance(templates, list):
        issues.add((*path, "templates"), "templates must be a list")
        return out
    for i, tpl in enumerate(templates):
        tpath = (*path, "templates", i)
        if not isinstance(tpl, dict) or not tpl.get("name"):
            issues.add(tpath, "a template needs a name")
        elif str(tpl["name"]) in out:
            issues.add((*tpath, "name"), f"duplicate template {tpl['name']!r}")
        else:
            out[str(tpl["name"])] = (tpl, tpath)
    return out


def _parameters(
    issues: Issues, spec: dict[str, Any], path: FieldPath
) -> dict[str, tuple[Any, FieldPath]]:
    """The workflow's parameters: name → (default or None, source path)."""
    out: dict[str, tuple[Any, FieldPath]] = {}
    args = spec.get("arguments") or {}
    for i, p in enumerate(args.get("parameters") or []):
        ppath = (*path, "arguments", "parameters", i)
        if not isinstance(p, dict) or "name" not in p:
            issues.add(ppath, "a parameter needs a name")
            continue
        if "valueFrom" in p:
            issues.add(
                (*ppath, "valueFrom"),
                "a workflow parameter's valueFrom (config maps) is not converted: give a value",
            )
        value = p.get("value", p.get("default"))
        out[str(p["name"])] = (None if value is None else _text(value), ppath)
    for i, _ in enumerate(args.get("artifacts") or []):
        issues.add(
            (*path, "arguments", "artifacts", i),
            "workflow artifacts are not "
            "converted: give the steps the artifacts with an s3 key or raw data",
        )
    return out


def _workflow(
    issues: Issues,
    options: ConvertOptions,
    *,
    name: str,
    spec: dict[str, Any],
    path: FieldPath,
    kind: str,
) -> list[NativeDocument]:
    for key in spec:
        if key == "workflowTemplateRef":
            issues.add(
                (*path, key),
                "a workflow that only refers to a WorkflowTemplate is "
                "not converted: convert the WorkflowTemplate and run it",
            )
        elif key in ("templateDefaults", "synchronization"):
            issues.add(
                (*path, key),
                f"{key} is not converted: set it on each template "
                "(synchronization: use a native concurrency key)",
            )
        elif key not in _SPEC_FIELDS and key not in IGNORED_SPEC_FIELDS:
            issues.add((*path, key), f"unknown workflow field {key!r}")
    templates = _templates(issues, spec, path)
    params = _parameters(issues, spec, path)
    graph = Graph(issues, options, name, templates, scheduled=kind == "CronWorkflow")
    if "retryStrategy" in spec:
        graph.default_retry = (spec["retryStrategy"], (*path, "retryStrategy"))
    entry = spec.get("entrypoint")
    docs: list[NativeDocument] = []
    workflow_params = {p: ident(p) for p in params}
    if kind in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        for tname in templates:
            graph.want_sub(tname)
    if entry is None and kind not in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        issues.add(path, "a workflow needs an entrypoint")
    elif entry is not None and str(entry) not in templates:
        issues.add((*path, "entrypoint"), f"unknown template {entry!r}")
    elif entry is not None:
        docs.append(
            _top(
                graph,
                spec=spec,
                path=path,
                entry=str(entry),
                params=params,
                workflow_params=workflow_params,
            )
        )
    return docs + graph.build_pending(workflow_params)


def _top(
    graph: Graph,
    *,
    spec: dict[str, Any],
    path: FieldPath,
    entry: str,
    params: dict[str, tuple[Any, FieldPath]],
    workflow_params: dict[str, str],
) -> NativeDocument:
    """The workflow itself: the entrypoint's body, its exit handler after it."""
    issues = graph.issues
    tpl, tpath = graph.templates[entry]
    entry_params: dict[str, tuple[Any, FieldPath]] = {}
    for i, p in enumerate((tpl.get("inputs") or {}).get("parameters") or []):
        if isinstance(p, dict) and p.get("name") and str(p["name"]) not in params:
            value = p.get("value", p.get("default"))
            entry_params[str(p["name"])] = (
                None if value is None else _text(value),
                (*tpath, "inputs", "parameters", i),
            )
    declared = {**params, **entry_params}
    all_params = {**workflow_params, **{p: ident(p) for p in entry_params}}
    scope = Scope(
        top=True,
        params={p: f"inputs.{ident(p)}" for p in declared},
        workflow_params=all_params,
        scheduled=graph.scheduled,
    )
    exit_template, exit_path = _exit_handler(issues, spec, path)
    nodes: list[Node]
    if exit_template is None:
        nodes = (
            graph.body(tpl, tpath, scope)
            if not is_leaf(tpl)
            else graph.leaf_call(ident(entry), tpl, tpath, scope, arg_arts={}, epath=tpath)
        )
    else:
        nodes = _main_and_exit(
            graph, scope, entry=entry, exit_template=exit_template, exit_path=exit_path, tpath=tpath
        )
    inputs: dict[str, Any] = {}
    for pname, (value, _) in declared.items():
        spec_in: dict[str, Any] = {"type": "any"}
        if value is not None:
            spec_in["default"] = value
        inputs[ident(pname)] = spec_in
    for pname in sorted(scope.undeclared - set(declared)):  # read by an expression only
        inputs[ident(pname)] = {"type": "any", "required": False}
    if graph.scheduled:
        inputs["scheduledTime"] = {"type": "string", "default": ""}
    native: dict[str, Any] = {"inputs": inputs, "nodes": []}
    if not is_leaf(tpl) and exit_template is None:
        native["outputs"] = group_outputs(graph.issues, tpl, tpath, scope)
    elif exit_template is None and nodes and "shell" in nodes[0].data:
        native["outputs"] = {
            "result": f"${{{{ nodes.{nodes[0].data['id']}.output.result }}}}",
            "parameters": f"${{{{ nodes.{nodes[0].data['id']}.output.parameters }}}}",
        }
    elif exit_template is not None:
        native["outputs"] = {"main": "${{ nodes.main.output }}"}
    if "activeDeadlineSeconds" in spec:
        native["timeout"] = seconds(spec["activeDeadlineSeconds"])
    doc = graph.document(graph.name, native, nodes, path, f"Argo workflow {graph.name!r}")
    for pname, (_, ppath) in declared.items():
        line = issues.doc.line(ppath)
        if line is not None:
            doc.lines[("spec", "inputs", ident(pname))] = line
    if "activeDeadlineSeconds" in spec:
        line = issues.doc.line((*path, "activeDeadlineSeconds"))
        if line is not None:
            doc.lines[("spec", "timeout")] = line
    return doc


def _exit_handler(
    issues: Issues, spec: dict[str, Any], path: FieldPath
) -> tuple[str | None, FieldPath]:
    exit_template: str | None = None
    exit_path: FieldPath = (*path, "onExit")
    if spec.get("onExit"):
        exit_template = str(spec["onExit"])
    hooks = spec.get("hooks") or {}
    for hname, hook in hooks.items() if isinstance(hooks, dict) else []:
        if hname == "exit" and isinstance(hook, dict) and hook.get("template"):
            exit_template, exit_path = str(hook["template"]), (*path, "hooks", "exit")
        else:
            issues.add(
                (*path, "hooks", hname),
                "only the exit hook is converted: use onExit, or a step with a when",
            )
    return exit_template, exit_path


def _main_and_exit(
    graph: Graph,
    scope: Scope,
    *,
    entry: str,
    exit_template: str,
    exit_path: FieldPath,
    tpath: FieldPath,
) -> list[Node]:
    """``main`` (the entrypoint), the exit handler after it whatever its end, and a last
    node that fails the run when main failed — as Argo's workflow is Failed then."""
    issues = graph.issues
    tpl, _ = graph.templates[entry]
    args = dict(scope.params)
    if is_leaf(tpl):
        nodes = graph.leaf_call("main", tpl, tpath, scope.child(args), arg_arts={}, epath=tpath)
    else:
        inputs = {ident(p): wrap(scope.params[p]) for p in _names(tpl)}
        inputs["argo"] = wrap(scope.argo())
        nodes = [Node({"id": "main", "workflow": graph.want_sub(entry), "inputs": inputs}, tpath)]
    if exit_template not in graph.templates:
        issues.add(exit_path, f"unknown template {exit_template!r}")
        return nodes
    exit_scope = scope.child(dict(scope.params))
    exit_scope.status, exit_scope.failures = _EXIT_STATUS, _EXIT_FAILURES
    taken = {"main", "on_exit", "argo_failed"}
    exit_nodes, _ = graph.call(
        {"name": "on_exit", "template": exit_template},
        exit_path,
        exit_scope,
        "on_exit",
        taken=taken,
    )
    for node in exit_nodes[:1]:
        node.data["needs"] = [{"node": "main", "on": "finished"}]
    fail = fail_after("argo_failed", "main", "on_exit", exit_path)
    return nodes + exit_nodes + ([fail] if exit_nodes else [])


def _names(tpl: dict[str, Any]) -> list[str]:
    return [str(p.get("name")) for p in (tpl.get("inputs") or {}).get("parameters") or []]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _triggers(issues: Issues, name: str, cron: dict[str, Any]) -> list[NativeDocument]:
    """One schedule Trigger per cron schedule of a CronWorkflow."""
    schedules = cron.get("schedules") or ([cron["schedule"]] if cron.get("schedule") else [])
    key = "schedules" if cron.get("schedules") else "schedule"
    if not schedules:
        issues.add(("spec",), "a CronWorkflow needs a schedule or schedules")
    policy = cron.get("concurrencyPolicy", "Allow")
    if policy not in ("Allow", "Forbid", "Replace"):
        issues.add(
            ("spec", "concurrencyPolicy"),
            f"concurrencyPolicy {policy!r} is not one of Allow, Forbid, Replace",
        )
    if "when" in cron:
        issues.add(
            ("spec", "when"),
            "a CronWorkflow's when is not converted: put the condition on the entrypoint's steps",
        )
    out: list[NativeDocument] = []
    for i, schedule in enumerate(schedules):
        tname = definition_name(name, "cron" if len(schedules) == 1 else f"cron-{i + 1}")
        source: dict[str, Any] = {"cron": str(schedule), "timezone": cron.get("timezone") or "UTC"}
        spec: dict[str, Any] = {
            "source": {"schedule": source},
            "workflow": name,
            "inputs": {"scheduledTime": "${{ event.instant }}"},
            "enabled": not bool(cron.get("suspend", False)),
        }
        if policy in ("Forbid", "Replace"):
            spec["maxConcurrency"] = 1
        data = {
            "apiVersion": "actorflow/v1",
            "kind": "Trigger",
            "metadata": {
                "name": tname,
                "version": "1",
                "description": f"schedule of Argo CronWorkflow {name!r}",
            },
            "spec": spec,
        }
        line = issues.doc.line(("spec", key, i) if key == "schedules" else ("spec", key))
        lines: dict[FieldPath, int] = {}
        if line is not None:
            lines = {(): line, ("spec", "source"): line}
        out.append(NativeDocument(data, lines))
    return out
