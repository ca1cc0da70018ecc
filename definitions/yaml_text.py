"""Where each node of a workflow is written in its YAML text, for edits that splice the text.

An edit rewrites only the characters it must and leaves every other byte as it was, so
the text is never dumped whole: it is composed once into a node tree whose marks give the
offset of every value, and the edit replaces spans of the original string. New values are
rendered by ruamel.yaml in round-trip mode (YAML 1.1 quoting, so the native loader, which
reads YAML 1.1 scalars, reads back exactly what was meant) and each rendering is read back
and compared before it is used.

The tree comes from libyaml when PyYAML has it: composing a 500-node workflow takes ~20 ms
there against ~300 ms in pure Python (ruamel's round-trip composer included), and an edit
must stay well under 100 ms.

A node's *item* is its lines, from the dash to its last value; its *block* is the item with
the blank lines and comments above it (what removing it removes, what adding puts back).
"""

from __future__ import annotations

import bisect
import functools
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.models import API_VERSION
from actorflow.definitions.yaml_source import MAX_TEXT, MERGE_TAG, SafeLoader, beyond_limits, index

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """libyaml's parser with the native loader's resolvers (YAML 1.2 booleans)."""


_Loader.yaml_implicit_resolvers = SafeLoader.yaml_implicit_resolvers
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

Splice = tuple[int, int, str]  # replace text[start:end] by the string


@dataclass
class WorkflowText:
    """One Workflow document of a YAML text: its tree, its data and its node items."""

    text: str
    file: str
    doc: yaml.MappingNode
    data: dict[str, Any]
    nodes_key: yaml.ScalarNode
    items: list[yaml.Node]
    added_newline: str  # what `read` put at the end, for `splice` to take off
    _starts: list[int]

    @classmethod
    def read(cls, text: str, file: str, workflow: str | None = None) -> WorkflowText:
        """Compose `text` and pick its Workflow document (`workflow`: by name).

        Raises:
            DefinitionError: the text is not YAML, holds no such workflow, or its
                ``spec.nodes`` is not a block list (each with file and line).
        """
        added = "" if text.endswith("\n") else ("\r\n" if "\r\n" in text else "\n")
        text += added  # edits insert whole lines: give the last one its end
        doc = _pick(_compose(text, file), file, workflow)
        data = _construct(doc)
        spec = _child(doc, "spec")
        pair = _pair(spec, "nodes") if isinstance(spec, yaml.MappingNode) else None
        if pair is None or not isinstance(pair[1], yaml.SequenceNode) or pair[1].flow_style:
            line = (pair[0] if pair else spec or doc).start_mark.line + 1
            raise DefinitionError.single(
                "spec.nodes must be a block list (one '- id: ...' item a node) to be edited",
                file=file,
                line=line,
                field="spec.nodes",
            )
        starts = [0]
        starts += [i + 1 for i, c in enumerate(text) if c == "\n"]
        return cls(text, file, doc, data, pair[0], list(pair[1].value), added, starts)

    # --- positions ---------------------------------------------------------------------
    def line_of(self, offset: int) -> int:
        """0-based line of a character offset."""
        return bisect.bisect_right(self._starts, offset) - 1

    def line_start(self, line: int) -> int:
        return self._starts[line] if line < len(self._starts) else len(self.text)

    def line_end(self, line: int) -> int:
        """The offset just past the line's newline."""
        return self.line_start(line + 1)

    def position(self, node_id: str) -> int:
        for k, item in enumerate(self.nodes):
            if isinstance(item, dict) and item.get("id") == node_id:
                return k
        raise DefinitionError.single(
            f"no node {node_id!r} in workflow {self.name!r}",
            file=self.file,
            line=self.nodes_key.start_mark.line + 1,
            field="spec.nodes",
        )

    def item_lines(self, k: int) -> tuple[int, int]:
        """First (the dash's) and last line of node item `k`."""
        item = self.items[k]
        start = item.start_mark.index
        dash = self.text.rfind("-", 0, start)
        on_dash = dash >= 0 and not self.text[dash + 1 : start].strip()
        first = self.line_of(dash if on_dash else start)
        return first, self.line_of(content_end(item, self.text) - 1)

    def anchor_line(self, k: int) -> int:
        """The line after which node `k`'s block begins (what an insert at `k` follows)."""
        if k == 0:
            return self.nodes_key.start_mark.line
        return self.item_lines(k - 1)[1]

    def block_span(self, k: int) -> tuple[int, int]:
        return self.line_end(self.anchor_line(k)), self.line_end(self.item_lines(k)[1])

    def item_span(self, k: int) -> tuple[int, int]:
        first, last = self.item_lines(k)
        return self.line_start(first), self.line_end(last)

    def dash_column(self) -> int:
        first = self.item_lines(0)[0]
        line = self.text[self.line_start(first) : self.line_end(first)]
        return len(line) - len(line.lstrip(" "))

    def issue(
        self, message: str, k: int | None = None, field: str | None = None
    ) -> DefinitionIssue:
        line = self.item_lines(k)[0] + 1 if k is not None else None
        return DefinitionIssue(message, self.file, line, field)

    def lines_map(self) -> dict[tuple[str | int, ...], int]:
        """Field path -> line of this document (for issues found in its data)."""
        lines: dict[tuple[str | int, ...], int] = {}
        index(self.doc, (), lines, self.file, set())
        return lines

    # --- data --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.data.get("metadata", {}).get("name", ""))

    @property
    def nodes(self) -> list[Any]:
        nodes: list[Any] = self.data["spec"]["nodes"]
        return nodes

    def with_nodes(self, nodes: list[Any]) -> dict[str, Any]:
        """The document's data with `nodes` as its ``spec.nodes``."""
        return {**self.data, "spec": {**self.data["spec"], "nodes": nodes}}

    def splice(self, splices: Iterable[Splice]) -> str:
        """The text with each span replaced (spans must not overlap), its end as it was;
        new lines end as the text's do (``\\r\\n`` in a CRLF file)."""
        out = self.text
        crlf = "\r\n" in self.text
        for start, end, new in sorted(splices, key=lambda s: (s[0], s[1]), reverse=True):
            piece = new.replace("\n", "\r\n") if crlf and "\r\n" not in new else new
            out = out[:start] + piece + out[end:]
        if self.added_newline and out.endswith(self.added_newline):
            out = out[: -len(self.added_newline)]
        return out


def content_end(node: yaml.Node, text: str) -> int:
    """The offset just past a value's last character (the end mark of a block collection
    or a block scalar lies past its trailing blank lines and comments, and the next line's
    indent: those belong to what follows)."""
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        end = int(node.end_mark.index)
        while end > node.start_mark.index + 1 and text[end - 1] in " \t\r\n":
            end -= 1
        return end
    if not isinstance(node, yaml.CollectionNode) or node.flow_style or not node.value:
        return int(node.end_mark.index)
    last = node.value[-1]
    if isinstance(node, yaml.MappingNode):
        key, value = last
        if isinstance(value, yaml.ScalarNode) and value.start_mark.index == value.end_mark.index:
            return content_end(key, text)  # `key:` with nothing after it
        return content_end(value, text)
    return content_end(last, text)


def pairs(node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
    return [(str(k.value), k, v) for k, v in node.value]


def parse_fragment(text: str) -> Any:
    """Read a rendered fragment as the native loader would."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@functools.cache
def _renderer() -> YAML:
    out = YAML(typ="rt")
    out.version = (1, 1)  # quote what YAML 1.1 would read as something else ('no', '1_0')
    out.default_flow_style = None  # collections of scalars in flow style, the rest in block
    out.width = 4096
    out.indent(mapping=2, sequence=4, offset=2)
    return out


def render_mapping(data: dict[str, Any]) -> list[str]:
    """`data` as block-mapping lines (no newline, no indent), checked to read back equal."""
    stream = io.StringIO()
    top = CommentedMap(data)
    top.fa.set_block_style()  # the fields one a line; what is inside them as it comes
    _renderer().dump(top, stream)
    body = stream.getvalue().split("---\n", 1)[1]
    lines = body.splitlines()
    if parse_fragment(body) != data:
        raise DefinitionError.single(f"cannot write {data!r} as YAML that reads back the same")
    return lines


def render_inline(value: Any) -> str:
    """`value` on one line (a scalar or a flow collection)."""
    lines = render_mapping({"x": value})
    if len(lines) == 1 and lines[0].startswith("x: "):
        return lines[0][3:]
    flow = render_flow(value)
    if parse_fragment(f"x: {flow}\n") != {"x": value}:
        raise DefinitionError.single(f"cannot write {value!r} on one line")
    return flow


def render_flow(value: Any) -> str:
    """A flow rendering of any JSON value (JSON is YAML's flow syntax)."""
    return json.dumps(value, ensure_ascii=False)


def _compose(text: str, file: str) -> list[yaml.Node]:
    """The documents' node trees, refused past the native loader's limits (size, depth,
    alias expansion) so that an edit never constructs a bomb."""
    if len(text) > MAX_TEXT:
        raise DefinitionError.single(f"too large (at most {MAX_TEXT // 2**20} MiB)", file=file)
    loader = _Loader(text)
    docs: list[yaml.Node] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if (problem := beyond_limits(node)) is not None:
                line = node.start_mark.line + 1
                raise DefinitionError.single(problem, file=file, line=line)
            docs.append(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise DefinitionError.single(f"invalid YAML: {reason}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise DefinitionError.single(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()
    return docs


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    pair = _pair(node, key) if isinstance(node, yaml.MappingNode) else None
    return pair[1] if pair else None


def _pair(node: yaml.MappingNode, key: str) -> tuple[yaml.ScalarNode, yaml.Node] | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _pick(docs: list[yaml.Node], file: str, workflow: str | None) -> yaml.MappingNode:
    found: list[tuple[str, yaml.MappingNode]] = []
    for doc in docs:
        if not isinstance(doc, yaml.MappingNode) or _scalar(_child(doc, "kind")) != "Workflow":
            continue
        if _scalar(_child(doc, "apiVersion")) != API_VERSION:
            continue
        name = _scalar(_child(_child(doc, "metadata") or doc, "name")) or ""
        found.append((name, doc))
    chosen = [doc for name, doc in found if workflow is None or name == workflow]
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        what = f"no native Workflow named {workflow!r}" if workflow else "no native Workflow"
        names = ", ".join(name for name, _ in found)
        hint = f" (it has: {names})" if names else " (edits write native text: convert first)"
        raise DefinitionError.single(f"{what} in the file{hint}", file=file)
    names = ", ".join(name for name, _ in found)
    raise DefinitionError.single(
        f"the file holds several workflows ({names}): name one (--workflow)", file=file
    )


def _construct(doc: yaml.MappingNode) -> dict[str, Any]:
    loader = _Loader("")
    try:
        try:
            data: dict[str, Any] = _Plain(loader).build(doc)
        except _UnusualError:  # anchors, merge keys, odd tags or keys: PyYAML's own way
            data = loader.construct_document(doc)
    finally:
        loader.dispose()
    version = _child(_child(doc, "metadata") or doc, "version")
    metadata = data.get("metadata")
    numeric = isinstance(version, yaml.ScalarNode) and version.tag in _NUMBER_TAGS
    if numeric and isinstance(metadata, dict) and version is not None:
        metadata["version"] = version.value  # `version: 1.10` means the text, as in the loader
    return data


class _UnusualError(Exception):
    """A construct `_Plain` leaves to PyYAML's constructor."""


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Plain:
    """Data from a node tree as the loader's constructor builds it, for the shapes
    definitions have (maps, lists, scalars), about twice as fast: strings are taken as
    written, other scalars go through the constructor, anything else falls back."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.seen: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        if id(node) in self.seen:  # an alias: shared data, which only PyYAML keeps shared
            raise _UnusualError
        self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            return self.loader.construct_object(node)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self.build(item) for item in node.value]
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            out: dict[Any, Any] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
                    raise _UnusualError
                out[self.build(key)] = self.build(value)
            return out
        raise _UnusualError
