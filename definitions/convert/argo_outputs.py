"""What a converted template gives its caller: a steps or dag template's declared outputs
(`valueFrom.parameter` / `expression`, artifacts `from` / `fromExpression`), and a leaf
template's sub-workflow outputs, shaped as its node's so that `Ref.output` reads both alike.
"""

from __future__ import annotations

from typing import Any

from actorflow.definitions.convert.argo_expr import expr_to_cel
from actorflow.definitions.convert.argo_names import as_text, wrap
from actorflow.definitions.convert.argo_scope import Issues, Scope
from actorflow.definitions.yaml_source import FieldPath

_LEAF_OUTPUTS = ("result", "exitCode", "parameters", "artifacts", "json")


def group_outputs(
    issues: Issues, tpl: dict[str, Any], tpath: FieldPath, scope: Scope
) -> dict[str, Any]:
    outputs = tpl.get("outputs") or {}
    params: dict[str, Any] = {}
    for i, p in enumerate(outputs.get("parameters") or []):
        path = (*tpath, "outputs", "parameters", i)
        source = p.get("valueFrom") or {}
        name = str(p.get("name"))
        if "parameter" in source:
            params[name] = issues.text(
                str(source["parameter"]), (*path, "valueFrom", "parameter"), scope
            )
        elif "expression" in source:
            cel = issues.cel(
                expr_to_cel, source["expression"], (*path, "valueFrom", "expression"), scope
            )
            params[name] = wrap(cel) if cel else ""
        elif "value" in p:
            params[name] = issues.text(as_text(p["value"]), (*path, "value"), scope)
        else:
            issues.add(
                path,
                f"output parameter {name!r} of a steps or dag template "
                "needs valueFrom.parameter, valueFrom.expression or a value",
            )
        if p.get("globalName"):
            issues.add(
                (*path, "globalName"),
                "globalName is not converted: read the output from the run's outputs",
            )
    arts: dict[str, Any] = {}
    for i, a in enumerate(outputs.get("artifacts") or []):
        path = (*tpath, "outputs", "artifacts", i)
        name = str(a.get("name"))
        if "from" in a:
            arts[name] = issues.text(str(a["from"]), (*path, "from"), scope)
        elif "fromExpression" in a:
            cel = issues.cel(expr_to_cel, a["fromExpression"], (*path, "fromExpression"), scope)
            arts[name] = wrap(cel) if cel else ""
        else:
            issues.add(
                path,
                f"output artifact {name!r} of a steps or dag template needs from or fromExpression",
            )
    out: dict[str, Any] = {}
    if params:
        out["parameters"] = params
    if arts:
        out["artifacts"] = arts
    return out


def leaf_outputs(node: dict[str, Any]) -> dict[str, Any]:
    """A leaf template's sub-workflow outputs, shaped as its node's (`Ref.output` reads
    them alike): a runner's as they are, an approval's input as its parameters."""
    if "shell" in node:
        return {k: f"${{{{ nodes.main.output.{k} }}}}" for k in _LEAF_OUTPUTS}
    if "approval" in node:
        return {"parameters": "${{ nodes.main.output }}"}
    if "sleep" in node:
        return {}
    return {"result": "${{ nodes.main.output }}"}
