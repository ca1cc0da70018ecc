"""Argo templates that do one thing — `container`, `script`, `suspend` — as one native node.

A container or script becomes a shell node running `argo_runner` on this machine (the
image is kept as the ``ARGO_IMAGE`` variable), or, when `ConvertOptions.image_map` maps
its image to a function, a function node given the template's input parameters. A
`suspend` becomes a `sleep` (with a duration) or an `approval` (without; the output
parameters it declares as ``supplied`` are what the approver gives).
"""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path
from typing import Any

from actorflow.definitions.convert import ConvertOptions
from actorflow.definitions.convert.argo_names import seconds, wrap
from actorflow.definitions.convert.argo_scope import Issues, RefKind, Scope
from actorflow.definitions.yaml_source import FieldPath

_ARTIFACT_STORES = ("s3", "gcs", "oss", "azure", "hdfs", "artifactory")
_UNSUPPORTED_ARTIFACTS = ("http", "git")
_LEAF_BODIES = ("container", "script", "suspend", "http")
UNSUPPORTED_BODIES = {
    "resource": "a Kubernetes resource action has no counterpart here: run kubectl in a "
    "container template instead",
    "containerSet": "run the containers as steps of a steps or dag template",
    "data": "a data template has no counterpart here: transform the data in a script template",
    "plugin": "executor plugins have no counterpart here: call the plugin's service from a "
    "script or http template",
}


@functools.cache
def runner_source() -> str:
    """`argo_runner`'s code as embedded in shell nodes (without its module docstring)."""
    tree = ast.parse((Path(__file__).parent / "argo_runner.py").read_text())
    for node in ast.walk(tree):  # docstrings and comments say nothing to the machine
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def is_leaf(template: dict[str, Any]) -> bool:
    return any(k in template for k in _LEAF_BODIES)


def _as_value(cel: str) -> str:
    """A CEL argument as a native value: a constant string as itself."""
    literal = re.fullmatch(r"'([^'\\]*)'", cel)
    return literal.group(1) if literal else wrap(cel)


class _Values:
    """The runner's positional values: every templated value is one argv element."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def ref(self, value: Any) -> Any:
        if isinstance(value, str) and "${{" not in value:
            return value  # a literal stays in the config
        self.items.append(value)
        return {"$": len(self.items) - 1}


def leaf_node(
    issues: Issues,
    options: ConvertOptions,
    template: dict[str, Any],
    tpath: FieldPath,
    scope: Scope,
    *,
    arg_artifacts: dict[str, tuple[dict[str, Any], FieldPath]],
    retries_key: str,
) -> tuple[dict[str, Any], RefKind]:
    """The node body (no id, needs or loop) of a container, script or suspend template."""
    if "suspend" in template:
        return _suspend(issues, template, tpath)
    if "http" in template:
        return _http(issues, template, tpath, scope)
    kind = "container" if "container" in template else "script"
    body = template[kind] or {}
    bpath = (*tpath, kind)
    if not isinstance(body, dict):
        issues.add(bpath, "must be a mapping")
        return {"value": {}}, "runner"
    image = body.get("image")
    target = options.image_map.get(image) if isinstance(image, str) else None
    if target is not None and target.function:
        inputs = dict(scope.params)
        return {
            "function": target.function,
            "inputs": {k: _as_value(v) for k, v in inputs.items()},
        }, "function"
    if target is not None and target.runtime_env:
        issues.add(
            (*bpath, "image"),
            f"image {image!r} is mapped to runtime environment {target.runtime_env!r}, but "
            "shell steps run on the implicit shell pool: map the image to a function instead",
        )
    values = _Values()
    config: dict[str, Any] = {}
    command = body.get("command") or []
    args = body.get("args") or []
    if not isinstance(command, list) or not isinstance(args, list):
        issues.add(bpath, "command and args must be lists")
        command, args = [], []
    argv = [
        values.ref(issues.text(str(a), (*bpath, key, i), scope))
        for key, items in (("command", command), ("args", args))
        for i, a in enumerate(items)
    ]
    if kind == "script":
        if not command:
            issues.add((*bpath, "command"), "a script needs a command (e.g. [python] or [sh])")
        config["source"] = values.ref(
            issues.text(str(body.get("source", "")), (*bpath, "source"), scope)
        )
    if not argv and kind == "container":
        config["noCommand"] = image or "?"
    config["command"] = argv
    raw = json.dumps(template.get(kind))
    if "{{retries}}" in raw or "{{workflow.duration}}" in raw:
        config["retriesKey"] = values.ref(retries_key)
    env = _env(issues, body, bpath, scope, values)
    if env:
        config["env"] = env
    _artifacts_in(
        issues, template, tpath, scope, arg_artifacts=arg_artifacts, values=values, config=config
    )
    _outputs(issues, template, tpath, scope, values=values, config=config)
    shell: dict[str, Any] = {
        "argv": ["python3", "-c", runner_source(), json.dumps(config), *values.items],
        "output": "json",
    }
    if image is not None:
        shell["env"] = {"ARGO_IMAGE": issues.text(str(image), (*bpath, "image"), scope)}
    if body.get("workingDir"):
        shell["cwd"] = issues.text(str(body["workingDir"]), (*bpath, "workingDir"), scope)
    return {"shell": shell}, "runner"


def _env(
    issues: Issues, body: dict[str, Any], bpath: FieldPath, scope: Scope, values: _Values
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body.get("envFrom"):
        issues.add(
            (*bpath, "envFrom"),
            "envFrom (config maps, secrets) is not converted: "
            "list the variables under env with values",
        )
    for i, var in enumerate(body.get("env") or []):
        path = (*bpath, "env", i)
        if not isinstance(var, dict) or "name" not in var:
            issues.add(path, "an env entry needs a name")
        elif "valueFrom" in var:
            issues.add(
                (*path, "valueFrom"),
                "env valueFrom (secrets, config maps, fields) is "
                "not converted: give a value, or read the secret in the step",
            )
        else:
            out[str(var["name"])] = values.ref(issues.text(str(var.get("value", "")), path, scope))
    return out


def _artifacts_in(
    issues: Issues,
    template: dict[str, Any],
    tpath: FieldPath,
    scope: Scope,
    *,
    arg_artifacts: dict[str, tuple[dict[str, Any], FieldPath]],
    values: _Values,
    config: dict[str, Any],
) -> None:
    declared = (template.get("inputs") or {}).get("artifacts") or []
    out: list[dict[str, Any]] = []
    for i, art in enumerate(declared):
        path = (*tpath, "inputs", "artifacts", i)
        name = art.get("name")
        if not art.get("path"):
            issues.add(path, f"input artifact {name!r} needs a path to be placed at")
            continue
        entry: dict[str, Any] = {"name": name, "path": values.ref(str(art["path"]))}
        if art.get("optional"):
            entry["optional"] = True
        source = arg_artifacts[name][0] if name in arg_artifacts else None
        if source is None:
            source = artifact_source(issues, art, path, scope, declared_only=True)
        if source is None:
            issues.add(
                path,
                f"input artifact {name!r} has no store to come from: pass it with "
                "arguments.artifacts (from: a step's output artifact, or an s3 / gcs key, "
                "read from the local artifact folder), or give raw data",
            )
            continue
        entry.update({k: values.ref(v) for k, v in source.items()})
        out.append(entry)
    if out:
        config["inputs"] = out


def artifact_source(
    issues: Issues,
    art: dict[str, Any],
    path: FieldPath,
    scope: Scope,
    declared_only: bool = False,
) -> dict[str, Any] | None:
    """Where an artifact comes from: ``{key}`` in the folder store or ``{raw}`` data."""
    if not declared_only and "from" in art:
        return {"key": issues.text(str(art["from"]), (*path, "from"), scope)}
    if not declared_only and "fromExpression" in art:
        from actorflow.definitions.convert.argo_expr import expr_to_cel

        cel = issues.cel(expr_to_cel, art["fromExpression"], (*path, "fromExpression"), scope)
        return {"key": wrap(cel)} if cel else {"key": ""}
    if isinstance(art.get("raw"), dict):
        return {"raw": issues.text(str(art["raw"].get("data", "")), (*path, "raw"), scope)}
    for store in _ARTIFACT_STORES:
        if isinstance(art.get(store), dict) and art[store].get("key"):
            return {"key": issues.text(str(art[store]["key"]), (*path, store, "key"), scope)}
    for kind in _UNSUPPORTED_ARTIFACTS:
        if kind in art:
            issues.add(
                (*path, kind),
                f"{kind} artifacts are not fetched here: fetch it in the step's command",
            )
            return {"key": ""}
    return None


def _outputs(
    issues: Issues,
    template: dict[str, Any],
    tpath: FieldPath,
    scope: Scope,
    *,
    values: _Values,
    config: dict[str, Any],
) -> None:
    outputs = template.get("outputs") or {}
    params: list[dict[str, Any]] = []
    for i, p in enumerate(outputs.get("parameters") or []):
        path = (*tpath, "outputs", "parameters", i)
        source = p.get("valueFrom") or {}
        if "path" not in source:
            other = ", ".join(sorted(source)) or "a value"
            issues.add(
                path,
                f"output parameter {p.get('name')!r} of a container or script "
                f"comes from a file here (valueFrom.path), not from {other}",
            )
            continue
        entry: dict[str, Any] = {
            "name": p.get("name"),
            "path": values.ref(
                issues.text(str(source["path"]), (*path, "valueFrom", "path"), scope)
            ),
        }
        if "default" in source:
            entry["default"] = values.ref(issues.text(str(source["default"]), path, scope))
        params.append(entry)
    if params:
        config["parameters"] = params
    arts: list[dict[str, Any]] = []
    for i, a in enumerate(outputs.get("artifacts") or []):
        path = (*tpath, "outputs", "artifacts", i)
        if not a.get("path"):
            issues.add(path, f"output artifact {a.get('name')!r} needs a path")
            continue
        entry = {"name": a.get("name"), "path": values.ref(str(a["path"]))}
        for store in _ARTIFACT_STORES:
            if isinstance(a.get(store), dict) and a[store].get("key"):
                key = issues.text(str(a[store]["key"]), (*path, store, "key"), scope)
                entry["key"] = values.ref(key)
        if a.get("optional"):
            entry["optional"] = True
        arts.append(entry)
    if arts:
        config["artifacts"] = arts


def _suspend(
    issues: Issues, template: dict[str, Any], tpath: FieldPath
) -> tuple[dict[str, Any], RefKind]:
    spec = template.get("suspend") or {}
    if not isinstance(spec, dict):
        issues.add((*tpath, "suspend"), "must be a mapping")
        spec = {}
    if spec.get("duration") not in (None, ""):
        return {"sleep": seconds(spec["duration"])}, "sleep"
    supplied = [
        str(p.get("name"))
        for p in ((template.get("outputs") or {}).get("parameters") or [])
        if isinstance(p, dict) and "supplied" in (p.get("valueFrom") or {})
    ]
    guidance = f"Argo suspend template {template.get('name')!r}: approve to resume"
    approval: dict[str, Any] = {"guidance": guidance}
    if supplied:
        approval["guidance"] += f", giving {', '.join(supplied)}"
        approval["schema"] = {
            "type": "object",
            "required": supplied,
            "properties": {name: {"type": "string"} for name in supplied},
        }
    return {"approval": approval}, "approval"


def _http(
    issues: Issues, template: dict[str, Any], tpath: FieldPath, scope: Scope
) -> tuple[dict[str, Any], RefKind]:
    spec = template.get("http") or {}
    path = (*tpath, "http")
    out: dict[str, Any] = {
        "url": issues.text(str(spec.get("url", "")), (*path, "url"), scope),
        "method": str(spec.get("method", "GET")).upper(),
    }
    headers = {}
    for i, h in enumerate(spec.get("headers") or []):
        if "valueFrom" in h:
            issues.add((*path, "headers", i), "header valueFrom is not converted")
        headers[str(h.get("name"))] = issues.text(
            str(h.get("value", "")), (*path, "headers", i), scope
        )
    if headers:
        out["headers"] = headers
    if "body" in spec:
        out["body"] = issues.text(spec["body"], (*path, "body"), scope)
    if "timeoutSeconds" in spec:
        out["timeout"] = seconds(spec["timeoutSeconds"])
    if "successCondition" in spec:
        issues.add(
            (*path, "successCondition"),
            "successCondition is not translated: the native http step succeeds on a 2xx status",
        )
    return {"http": out}, "http"
