"""YAML text as plain data that still knows where each field was written.

The native loader and the Argo / Fission converters read YAML the same way: each document
is composed into a node tree, a map ``field path -> line`` is taken from it, then plain
data is constructed. A problem found later in the data (by pydantic, the graph checker or a
converter) is reported with the line of its field path, so users see
``etl.yaml:14: spec.nodes[2].function: ...`` whichever syntax they wrote.

Example::

    docs, issues = compose(text, "wf.yaml")
    for doc in docs:
        doc.issue(("spec", "templates", 3, "name"), "duplicate template")
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from actorflow.definitions.errors import DefinitionIssue

FieldPath = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"
_FIELD_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


class SafeLoader(yaml.SafeLoader):
    """Our own SafeLoader subclass, so constructors we might add never leak into PyYAML's.

    Booleans are YAML 1.2's (``true`` / ``false`` only): YAML 1.1 also reads ``on``, ``off``,
    ``yes`` and ``no`` as booleans, which would turn the key of ``on: before_run`` (hooks,
    lifecycle sources) into ``True``.
    """


_BOOL = "tag:yaml.org,2002:bool"
SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class SourceDocument:
    """One YAML document: its data, its node tree, and the line of every field path."""

    data: Any
    node: yaml.Node
    file: str
    lines: dict[FieldPath, int] = field(default_factory=dict)

    def line(self, path: FieldPath) -> int | None:
        return line_of(path, self.lines)

    def issue(self, path: FieldPath, message: str) -> DefinitionIssue:
        """An issue at `path` (its line, or its nearest written parent's)."""
        return DefinitionIssue(message, self.file, self.line(path), render(path) or None)


MAX_TEXT = 8 * 2**20
"""Characters of one definition text: far above any real workflow, far below a bomb."""
MAX_DEPTH = 64
"""Nesting of mappings and lists: deeper documents are refused before anything recurses
over them (pydantic, the JSON encoder, CEL's value conversion)."""
MAX_NODES = 200_000
"""Values of one document once its aliases are expanded: a "billion laughs" text is small,
its expansion is not."""


def compose(text: str, file: str) -> tuple[list[SourceDocument], list[DefinitionIssue]]:
    """Every non-empty document of `text`, and the YAML-level issues (syntax, duplicate
    keys, and the limits above: a document past one is refused, not constructed)."""
    docs: list[SourceDocument] = []
    issues: list[DefinitionIssue] = []
    if len(text) > MAX_TEXT:
        size = f"{len(text) / 2**20:.1f} MiB"
        return [], [DefinitionIssue(f"too large ({size}; at most {MAX_TEXT // 2**20} MiB)", file)]
    try:
        loader = SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # checked when the loader is made: NUL, controls…
        at = text.count("\n", 0, exc.position) + 1
        why = f"not YAML text: {exc.reason} (#x{exc.character:04x})"
        return [], [DefinitionIssue(why, file, at)]
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            if (problem := beyond_limits(node)) is not None:
                issues.append(DefinitionIssue(problem, file, node.start_mark.line + 1))
                continue
            lines: dict[FieldPath, int] = {}
            issues += index(node, (), lines, file, set())
            data = loader.construct_document(node)
            if data is not None:
                docs.append(SourceDocument(data, node, file, lines))
    except RecursionError:  # PyYAML's composer recurses per level, before we can look
        issues.append(DefinitionIssue(f"nested deeper than {MAX_DEPTH} levels", file))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        issues.append(DefinitionIssue(f"invalid YAML: {reason}", file=file, line=line))
    except yaml.YAMLError as exc:
        issues.append(DefinitionIssue(f"YAML error: {exc}", file=file))
    finally:
        loader.dispose()
    return docs, issues


def beyond_limits(root: yaml.Node) -> str | None:
    """Why a composed document is too deep or expands too far, or None. Iterative, and
    each distinct node is measured once (an alias's expansion is counted, not walked)."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        children = _children(node)
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_NODES:
                return f"expands to more than {MAX_NODES} values (aliases included)"
        elif id(node) not in size:
            stack.append((node, depth, True))
            stack += [(c, depth + 1, False) for c in children if id(c) not in size]
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def index(
    node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], file: str, seen: set[int]
) -> list[DefinitionIssue]:
    """Record the line of every field path under `node`; report duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:  # an alias: its content was indexed where it was anchored
        return []
    seen.add(id(node))
    issues: list[DefinitionIssue] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = str(key_node.value)
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in first_line:
                issues.append(
                    DefinitionIssue(
                        f"duplicate key {key!r} (first at line {first_line[key]})",
                        file=file,
                        line=line,
                        field=render(child),
                    )
                )
            else:
                first_line[key] = line
            lines[child] = line
            issues += index(value_node, child, lines, file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues += index(item, (*path, i), lines, file, seen)
    return issues


def render(path: FieldPath) -> str:
    """('spec', 'nodes', 2, 'function') -> 'spec.nodes[2].function'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def parse_field(text: str | None) -> FieldPath:
    """'spec.nodes[2].function' -> ('spec', 'nodes', 2, 'function')."""
    if not text:
        return ()
    return tuple(int(i) if i else key for i, key in _FIELD_PART.findall(text))


def line_of(path: FieldPath, lines: Mapping[FieldPath, int] | None) -> int | None:
    """The line of `path`, or of its nearest parent that the source spells out."""
    if lines is None:
        return None
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)
