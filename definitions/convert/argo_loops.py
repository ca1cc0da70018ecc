"""Argo loops — `withItems`, `withParam`, `withSequence` — as a native `forEach`.

`withItems` is a literal list; `withParam` over a step's output reads that output parsed
as JSON (the runner gives each result and parameter parsed, since CEL cannot parse JSON);
`withSequence` with whole numbers is expanded here into its formatted strings.
"""

from __future__ import annotations

import json
from typing import Any

from actorflow.definitions.convert.argo_expr import ArgoExprError, tag_to_cel
from actorflow.definitions.convert.argo_names import cel_literal, cel_of_text, wrap
from actorflow.definitions.convert.argo_scope import Issues, Scope
from actorflow.definitions.yaml_source import FieldPath


def loop_of(
    issues: Issues, entry: dict[str, Any], epath: FieldPath, scope: Scope
) -> tuple[str, FieldPath] | None:
    if "withItems" in entry:
        items = entry["withItems"]
        path = (*epath, "withItems")
        if not isinstance(items, list):
            issues.add(path, "withItems must be a list")
            return None
        return wrap(_cel_items(issues, items, path, scope)), path
    if "withParam" in entry:
        path = (*epath, "withParam")
        text = entry["withParam"]
        json_scope = scope.child(scope.params)
        json_scope.steps, json_scope.group, json_scope.json = scope.steps, scope.group, True
        if not isinstance(text, str):
            issues.add(path, "withParam must be a string (a JSON list or a tag)")
            return None
        stripped = text.strip()
        if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
            try:
                return wrap(tag_to_cel(stripped[2:-2], json_scope.resolve)), path
            except ArgoExprError as exc:
                issues.add(path, f"{text!r}: {exc}")
                return None
        try:
            items = json.loads(stripped)
        except ValueError:
            issues.add(path, f"{text!r} is neither one tag nor a JSON list")
            return None
        if not isinstance(items, list):
            issues.add(path, "withParam must give a list")
            return None
        return wrap(cel_literal(items)), path
    if "withSequence" in entry:
        return _sequence(issues, entry["withSequence"], (*epath, "withSequence"), scope)
    return None


def _cel_items(issues: Issues, items: list[Any], path: FieldPath, scope: Scope) -> str:
    parts = []
    for i, item in enumerate(items):
        if isinstance(item, str) and "{{" in item:
            text = issues.text(item, (*path, i), scope)
            parts.append(cel_of_text(text))
        else:
            parts.append(cel_literal(item))
    return "[" + ", ".join(parts) + "]"


def _sequence(
    issues: Issues, seq: Any, path: FieldPath, scope: Scope
) -> tuple[str, FieldPath] | None:
    if not isinstance(seq, dict):
        issues.add(path, "withSequence must be a mapping")
        return None
    try:
        if "count" in seq:
            start = int(seq.get("start", 0))
            numbers = list(range(start, start + int(seq["count"])))
        else:
            start, end = int(seq.get("start", 0)), int(seq["end"])
            step = 1 if end >= start else -1
            numbers = list(range(start, end + step, step))
    except (KeyError, TypeError, ValueError):
        issues.add(
            path,
            "withSequence needs a whole-number count, or start and end "
            "(a tag there is not converted: give numbers)",
        )
        return None
    fmt = seq.get("format")
    try:
        items = [(str(fmt) % n) if fmt else str(n) for n in numbers]
    except (TypeError, ValueError):
        issues.add((*path, "format"), f"format {fmt!r} is not a printf format for a number")
        return None
    return wrap(cel_literal(items)), path
