"""DAG edges: `dependencies` and `depends` as native needs (and a status condition), a
dependency cycle reported in Argo's names, and the anchoring that lets a task run after
dependencies that were all skipped, as Argo does.
"""

from __future__ import annotations

from typing import Any

from actorflow.definitions.convert.argo_expr import ArgoExprError, parse_depends
from actorflow.definitions.convert.argo_names import ident
from actorflow.definitions.convert.argo_scope import Issues, Node, Scope
from actorflow.definitions.yaml_source import FieldPath


def check_cycles(
    issues: Issues, edges: dict[str, tuple[list[str], FieldPath]], names: dict[str, str]
) -> None:
    """A dependency cycle, reported once at the task that closes it, in Argo's names."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(node: str, path: list[str]) -> bool:
        state[node] = 1
        for dep in edges.get(node, ([], ()))[0]:
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], node, dep] if dep in path else [node, dep]
                text = " -> ".join(names.get(c, c) for c in reversed(cycle))
                issues.add(edges[node][1], f"dependency cycle: {text}")
                return True
            if state.get(dep) is None and walk(dep, [*path, node]):
                return True
        state[node] = 2
        return False

    for node in edges:
        if state.get(node) is None and walk(node, []):
            return


def task_edges(
    issues: Issues, task: dict[str, Any], tpath: FieldPath, ids: dict[str, str], scope: Scope
) -> tuple[list[Any], str | None]:
    """A task's native needs, and the status condition its `depends` adds to `when`."""
    if "dependencies" in task:
        deps = task["dependencies"] or []
        if not isinstance(deps, list):
            issues.add((*tpath, "dependencies"), "must be a list of task names")
            return [], None
        needs: list[Any] = []
        for k, dep in enumerate(deps):
            if str(dep) not in ids:
                issues.add((*tpath, "dependencies", k), f"unknown task {dep!r}")
            else:
                needs.append(ids[str(dep)])
        return needs, None
    if "depends" not in task:
        return [], None
    text = task["depends"]
    try:
        depends = parse_depends(str(text), lambda t: f"nodes.{ids.get(t, ident(t))}.status")
    except ArgoExprError as exc:
        issues.add((*tpath, "depends"), f"{text!r}: {exc}")
        return [], None
    unknown = [t for t in depends.tasks if t not in ids]
    for t in unknown:
        issues.add((*tpath, "depends"), f"{text!r}: unknown task {t!r}")
    if unknown:
        return [], None
    if set(depends.plain) == set(depends.tasks):  # only `A && B`: plain needs say it all
        return [ids[t] for t in depends.tasks], None
    needs = [
        ids[t] if t in depends.plain else {"node": ids[t], "on": "finished"} for t in depends.tasks
    ]
    return needs, depends.cel


def anchor_skippable_needs(nodes: list[Node]) -> None:
    """A task whose plain needs all have a `when` may see them all skipped; Argo runs it
    (a skipped dependency counts as done), the native gate wants one need met: give it
    the needs of those tasks too (which ran, or it is skipped anyway), transitively."""
    by_id = {n.data["id"]: n.data for n in nodes}

    def anchors(node_id: str, seen: frozenset[str]) -> list[str]:
        plain = [n for n in by_id.get(node_id, {}).get("needs", []) if isinstance(n, str)]
        if not plain or not all("when" in by_id.get(p, {}) for p in plain):
            return []
        out: list[str] = []
        for p in plain:
            if p in seen:
                continue
            for a in [*by_id[p].get("needs", []), *anchors(p, seen | {p})]:
                if isinstance(a, str) and a not in out and a not in plain:
                    out.append(a)
        return out

    for data in by_id.values():
        extra = anchors(data["id"], frozenset({data["id"]}))
        if extra:
            data["needs"] = [*data.get("needs", []), *extra]
