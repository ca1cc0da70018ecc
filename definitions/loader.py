"""Load definitions from YAML and dump them back, with errors that point at the source.

YAML is parsed with a `yaml.SafeLoader` subclass (plain data only, never Python objects).
Each document is first *composed* into a node tree, which still knows where every key sits;
from it we take a map ``field path -> line`` before constructing plain data. Every later
problem — pydantic's, the graph checker's — carries a field path and is given its line
from that map, so a user sees ``etl.yaml:14: spec.nodes[2].function: ...`` for each
problem in the file at once, not only the first.

Example::

    workflows = load_path("definitions/")        # a file or a directory
    text = dump(workflows)                       # load_text(text) == workflows
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from actorflow.definitions.convert import ConvertOptions, convert_documents
from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.graph import check_template, check_workflow
from actorflow.definitions.models import (
    API_VERSION,
    AnyDefinition,
    Connection,
    EventType,
    Function,
    RuntimeEnv,
    StepTemplate,
    Trigger,
    Workflow,
)
from actorflow.definitions.templates import catalog, check_uses
from actorflow.definitions.yaml_source import (
    FieldPath,
    SourceDocument,
    compose,
    line_of,
    parse_field,
    render,
)

_MODELS: dict[str, type[AnyDefinition]] = {
    "Function": Function,
    "Workflow": Workflow,
    "Template": StepTemplate,
    "RuntimeEnv": RuntimeEnv,
    "Trigger": Trigger,
    "EventType": EventType,
    "Connection": Connection,
}
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_PATTERN_HINTS = {
    "name": "name (lowercase letters, digits, '-' or '_'; at most 64; starts and ends "
    "with a letter or digit)",
    "version": "version (letters, digits, '.', '_' or '-'; at most 31)",
    "id": "node id (a letter or '_', then letters, digits or '_')",
    "needs": "node id (a letter or '_', then letters, digits or '_')",
    "node": "node id (a letter or '_', then letters, digits or '_')",
    "function": "function reference ('name@version' or 'name')",
    "connection": "connection reference ('name@version' or 'name')",
}


class _Dumper(yaml.SafeDumper):
    """SafeDumper that double-quotes strings holding Unicode line breaks.

    With ``allow_unicode`` PyYAML writes NEL / LS / PS raw in plain and single-quoted
    scalars, and reading them back folds them into spaces; double quotes escape them.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in _UNICODE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_UNICODE_BREAKS = "\x85\u2028\u2029"
_Dumper.add_representer(str, _represent_str)


@dataclass(frozen=True)
class _Document:
    model: AnyDefinition
    file: str
    lines: Mapping[FieldPath, int]


def load_text(
    text: str,
    *,
    file: str = "<string>",
    known_functions: Collection[str] | None = None,
    known_templates: Mapping[str, StepTemplate] | None = None,
    known_workflows: Collection[str] | None = None,
    known_connections: Collection[str] | None = None,
    convert: ConvertOptions | None = None,
) -> list[AnyDefinition]:
    """Parse and validate every document of a multi-document YAML text.

    Args:
        text: YAML, documents separated by ``---``; empty documents are skipped.
        file: the name issues report.
        known_functions: when given, ``name@version`` refs that workflows may call, in
            addition to the functions defined in `text` itself.
        known_workflows: when given, ``name@version`` refs of registered workflows that
            sub-workflow nodes may start (besides those defined in `text`).
        known_templates: when given, the registered templates by reference (see
            `templates.catalog`); template nodes must then name one of them or one
            defined in `text`. (Without, only templates defined here are checked.)
        known_connections: when given, ``name@version`` refs of registered connections
            that SQL nodes may name (besides those defined in `text`).
        convert: how to read Argo and Fission documents (detected per document by
            default and converted to native ones before validation).

    Raises:
        DefinitionError: with one issue per problem found in the whole text.
    """
    docs, issues = _parse(text, file, convert)
    return _finish(
        docs,
        issues,
        known_functions,
        known_templates,
        known_workflows,
        known_connections=known_connections,
    )


def load_file(
    path: str | Path,
    *,
    known_functions: Collection[str] | None = None,
    known_templates: Mapping[str, StepTemplate] | None = None,
    known_workflows: Collection[str] | None = None,
    known_connections: Collection[str] | None = None,
    convert: ConvertOptions | None = None,
) -> list[AnyDefinition]:
    """`load_text` on a file's content; issues name the file as given."""
    docs, issues = _parse_file(Path(path), convert)
    return _finish(
        docs,
        issues,
        known_functions,
        known_templates,
        known_workflows,
        known_connections=known_connections,
    )


def load_path(
    path: str | Path,
    *,
    known_functions: Collection[str] | None = None,
    known_templates: Mapping[str, StepTemplate] | None = None,
    known_workflows: Collection[str] | None = None,
    known_connections: Collection[str] | None = None,
    convert: ConvertOptions | None = None,
) -> list[AnyDefinition]:
    """Load a file, or every ``*.yaml`` / ``*.yml`` directly in a directory (sorted by name).

    Issues from all files are reported together; functions defined in any file count as
    known to the workflows of every file.
    """
    root = Path(path)
    files = (
        sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if root.is_dir()
        else [root]
    )
    docs: list[_Document] = []
    issues: list[DefinitionIssue] = []
    for file in files:
        more_docs, more_issues = _parse_file(file, convert)
        docs += more_docs
        issues += more_issues
    return _finish(
        docs,
        issues,
        known_functions,
        known_templates,
        known_workflows,
        known_connections=known_connections,
    )


def dump(defs: Iterable[BaseModel]) -> str:
    """Multi-document YAML in the camelCase spelling, defaults left out.

    The output loads back to equal models: `load_text(dump(defs)) == list(defs)`.
    """
    return yaml.dump_all(
        [_to_data(d) for d in defs],
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        explicit_start=True,
    )


def issues_from_validation(
    error: ValidationError,
    data: Any,
    *,
    file: str | None = None,
    lines: Mapping[FieldPath, int] | None = None,
) -> list[DefinitionIssue]:
    """Translate pydantic's errors into issues with field paths (and lines, when known).

    `data` is what was validated: pydantic's `loc` also holds type tags (``list[...]``,
    ``function-after[...]``), and walking the data tells real keys from those tags.
    """
    issues = []
    for err in error.errors():
        path, value, found = _resolve(data, err["loc"])
        line = line_of(path, lines) if lines is not None else None
        message = _message(err, path, value, found)
        issues.append(DefinitionIssue(message, file=file, line=line, field=render(path)))
    return issues


# --- parsing ------------------------------------------------------------------------------


def _parse_file(
    path: Path, convert: ConvertOptions | None
) -> tuple[list[_Document], list[DefinitionIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [DefinitionIssue(f"cannot read: {exc}", file=str(path))]
    docs, issues = _parse(text, str(path), convert)
    return [_anchor_code_dir(doc, path.parent) for doc in docs], issues


def _anchor_code_dir(doc: _Document, base: Path) -> _Document:
    """A relative `codeDir` (or `workingDir`, `pyModules`) means relative to the file that
    says it, not to the cwd."""
    model = doc.model

    def anchored(path: str) -> str:
        return path if Path(path).is_absolute() else str((base / path).resolve())

    spec: BaseModel
    if isinstance(model, Function) and model.spec.code_dir:
        spec = model.spec.model_copy(update={"code_dir": anchored(model.spec.code_dir)})
    elif isinstance(model, RuntimeEnv) and (model.spec.working_dir or model.spec.py_modules):
        spec = model.spec.model_copy(
            update={
                "working_dir": model.spec.working_dir and anchored(model.spec.working_dir),
                "py_modules": [anchored(m) for m in model.spec.py_modules],
            }
        )
    else:
        return doc
    return _Document(model.model_copy(update={"spec": spec}), doc.file, doc.lines)


def _parse(
    text: str, file: str, options: ConvertOptions | None
) -> tuple[list[_Document], list[DefinitionIssue]]:
    """Every document that validates as a model (Argo and Fission ones converted first),
    and every issue of the others."""
    sources, issues = compose(text, file)
    converted, more = convert_documents(sources, options)
    issues += more
    docs: list[_Document] = []
    for source in converted:
        node = source.node if isinstance(source, SourceDocument) else None
        model = _validate(source.data, node, file, source.lines, issues)
        if model is not None:
            docs.append(_Document(model, file, source.lines))
    return docs, issues


def _validate(
    data: Any,
    node: yaml.Node | None,
    file: str,
    lines: Mapping[FieldPath, int],
    issues: list[DefinitionIssue],
) -> AnyDefinition | None:
    line = node.start_mark.line + 1 if node is not None else line_of((), lines)
    if not isinstance(data, dict):
        got = type(data).__name__
        issues.append(DefinitionIssue(f"a document must be a mapping, got {got}", file, line))
        return None
    header: list[DefinitionIssue] = []
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if api_version != API_VERSION:
        what = "required field is missing" if api_version is None else "unsupported"
        message = f"{what} (expected {API_VERSION!r}, got {api_version!r})"
        header.append(DefinitionIssue(message, file, line_of(("apiVersion",), lines), "apiVersion"))
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        what = "required field is missing" if kind is None else f"{kind!r} is not a known kind"
        message = f"{what} (expected one of {', '.join(sorted(_MODELS))})"
        header.append(DefinitionIssue(message, file, line_of(("kind",), lines), "kind"))
    if header or model is None:  # another schema altogether: its fields would only be noise
        issues += header
        return None
    if node is not None:
        _keep_version_text(data, node)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues += issues_from_validation(exc, data, file=file, lines=lines)
        return None


def _keep_version_text(data: dict[str, Any], node: yaml.Node) -> None:
    """`version: 1.10` is a float to YAML (1.1); use the text the user wrote instead."""
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        if key_node.value != "metadata" or not isinstance(value_node, yaml.MappingNode):
            continue
        for inner_key, inner_value in value_node.value:
            if inner_key.value == "version" and inner_value.tag in _NUMBER_TAGS:
                metadata["version"] = inner_value.value


def _finish(
    docs: list[_Document],
    issues: list[DefinitionIssue],
    known_functions: Collection[str] | None,
    known_templates: Mapping[str, StepTemplate] | None = None,
    known_workflows: Collection[str] | None = None,
    *,
    known_connections: Collection[str] | None = None,
) -> list[AnyDefinition]:
    """Cross-document checks (duplicates, graphs), then raise everything or return models."""
    known = None
    if known_functions is not None:
        known = set(known_functions) | {d.model.ref for d in docs if d.model.kind == "Function"}
    local = [d.model for d in docs if isinstance(d.model, StepTemplate)]
    workflows = None
    if known_workflows is not None:
        workflows = {*known_workflows, *(d.model.ref for d in docs if d.model.kind == "Workflow")}
    connections = None
    if known_connections is not None:
        connections = {
            *known_connections,
            *(d.model.ref for d in docs if isinstance(d.model, Connection)),
        }
    templates = {**(known_templates or {}), **catalog([], {}, local)}
    first: dict[tuple[str, str], _Document] = {}
    for doc in docs:
        key = (doc.model.kind, doc.model.ref)
        name_line = line_of(("metadata", "name"), doc.lines)
        if key in first:
            other = first[key]
            where = f"{other.file}:{line_of(('metadata', 'name'), other.lines)}"
            message = f"duplicate {key[0]} {key[1]!r} (first at {where})"
            issues.append(DefinitionIssue(message, doc.file, name_line, "metadata.name"))
        else:
            first[key] = doc
        found: list[DefinitionIssue] = []
        if isinstance(doc.model, Workflow):
            found = check_workflow(
                doc.model,
                known_functions=known,
                known_workflows=workflows,
                known_connections=connections,
            )
        elif isinstance(doc.model, StepTemplate):
            found = check_template(doc.model, known_functions=known, known_connections=connections)
        if isinstance(doc.model, Workflow | StepTemplate):
            uses = check_uses(doc.model.spec.nodes, templates.get)
            if known_templates is None:  # a template defined elsewhere may exist
                uses = [i for i in uses if not i.message.startswith("unknown template")]
            found += uses
        for issue in found:
            line = line_of(parse_field(issue.field), doc.lines)
            issues.append(DefinitionIssue(issue.message, doc.file, line, issue.field))
    if issues:
        raise DefinitionError(_sorted(issues))
    return [d.model for d in docs]


def _sorted(issues: list[DefinitionIssue]) -> list[DefinitionIssue]:
    """Group by file (in first-seen order), then by line; stable within a line."""
    files = {i.file: n for n, i in reversed(list(enumerate(issues)))}
    return sorted(issues, key=lambda i: (files[i.file], i.line or 0))


# --- paths and messages -------------------------------------------------------------------


def _resolve(data: Any, loc: tuple[str | int, ...]) -> tuple[FieldPath, Any, bool]:
    """Follow `loc` through `data`; return the real path, the value there, and whether the
    last step was found (a missing field's path still names it)."""
    path: list[str | int] = []
    current, found = data, True
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current, found = current[part], True
            path.append(part)
        elif isinstance(current, dict) and isinstance(part, str) and "[" not in part:
            path.append(part)  # a missing (or unexpected) key: name it, nothing below
            current, found = None, False
            break
    return tuple(path), current, found


def _message(err: Mapping[str, Any], path: FieldPath, value: Any, found: bool) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "string_pattern_mismatch":
        names = [p for p in path if isinstance(p, str)]
        hint = _PATTERN_HINTS.get(names[-1] if names else "", "value")
        return f"{value!r} is not a valid {hint}"
    message = str(err["msg"])
    if found and isinstance(value, str | int | float | bool):
        message += f", got {value!r}"
    return message


def _to_data(model: BaseModel) -> dict[str, Any]:
    """A model as plain YAML data: apiVersion and kind first, defaults left out — except
    what changes meaning when left out (an input's explicit `default: null`)."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    head = {
        "apiVersion": getattr(model, "api_version", API_VERSION),
        "kind": getattr(model, "kind", type(model).__name__),
    }
    if isinstance(model, AnyDefinition):
        data.setdefault("metadata", {})["version"] = model.metadata.version
        metadata = data.pop("metadata")
        data = {"metadata": {"name": metadata.pop("name"), **metadata}, **data}
    if isinstance(model, Workflow):
        inputs = data["spec"].get("inputs", {})
        for name, spec in model.spec.inputs.items():
            if not spec.required:
                inputs[name]["default"] = spec.default
    data.pop("apiVersion", None)
    data.pop("kind", None)
    return {**head, **data}
