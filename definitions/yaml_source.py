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


def compose(text: str, file: str) -> tuple[list[SourceDocument], list[DefinitionIssue]]:
    """Every non-empty document of `text`, and the YAML-level issues (syntax, duplicate keys)."""
    docs: list[SourceDocument] = []
    issues: list[DefinitionIssue] = []
    loader = SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            lines: dict[FieldPath, int] = {}
            issues += index(node, (), lines, file, set())
            data = loader.construct_document(node)
            if data is not None:
                docs.append(SourceDocument(data, node, file, lines))
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
