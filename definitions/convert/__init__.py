"""Converters from other workflow syntaxes (Argo Workflows, Fission Workflows) to native
definitions — pure: no Ray, no NATS.

A converter reads a `SourceDocument` (YAML data that knows the line of every field) and
returns `NativeDocument`s: native definitions as plain data, each with a map from its own
field paths to lines of the *source* file. The native loader validates them like any
document it reads, so a problem is reported at the Argo or Fission line that caused it,
and a file converts completely or not at all (`DefinitionError` with every issue).

    docs, issues = compose(text, "hello.yaml")
    native = convert_documents(docs, "hello.yaml")   # detects the format per document
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from actorflow.definitions.errors import DefinitionError, DefinitionIssue
from actorflow.definitions.yaml_source import FieldPath, SourceDocument, compose

Format = Literal["native", "argo", "fission"]
FORMATS: tuple[Format, ...] = ("native", "argo", "fission")
ARGO_API_VERSION = "argoproj.io/v1alpha1"


@dataclass
class ImageTarget:
    """What `--image-map` maps an Argo container image to: a function reference (the
    step calls it with the template's inputs) or a runtime environment the shell step's
    pool runs in."""

    function: str | None = None
    runtime_env: str | None = None


@dataclass
class ConvertOptions:
    """How to read foreign documents: `source` forces a format (else each document's is
    detected); `image_map` maps Argo container images to functions or environments."""

    source: Format | None = None
    image_map: Mapping[str, ImageTarget] = field(default_factory=dict)


@dataclass
class NativeDocument:
    """A native definition as plain data (camelCase, as YAML would spell it), with the
    source line of each of its field paths (the nearest written parent is used for paths
    not listed)."""

    data: dict[str, Any]
    lines: dict[FieldPath, int] = field(default_factory=dict)


def load_image_map(path: str | Path) -> dict[str, ImageTarget]:
    """An `--image-map` file: YAML mapping each container image to ``{function: ref}`` or
    ``{runtimeEnv: ref}``.

    Raises:
        DefinitionError: at the line of each entry that is neither.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([DefinitionIssue(f"cannot read: {exc}", file=file)]) from None
    docs, issues = compose(text, file)
    out: dict[str, ImageTarget] = {}
    data = docs[0].data if len(docs) == 1 else None
    if not issues and not isinstance(data, dict):
        issues.append(DefinitionIssue("an image map is one mapping: image -> target", file))
    for image, target in (data or {}).items() if isinstance(data, dict) else ():
        keys = set(target) if isinstance(target, dict) else set()
        if keys == {"function"} and isinstance(target["function"], str):
            out[str(image)] = ImageTarget(function=target["function"])
        elif keys == {"runtimeEnv"} and isinstance(target["runtimeEnv"], str):
            out[str(image)] = ImageTarget(runtime_env=target["runtimeEnv"])
        else:
            message = "map an image to {function: NAME@VERSION} or {runtimeEnv: NAME@VERSION}"
            issues.append(docs[0].issue((str(image),), message))
    if issues:
        raise DefinitionError(issues)
    return out


def detect(doc: SourceDocument) -> Format:
    """Argo documents name Argo's apiVersion; a Fission workflow is `apiVersion: 1` (a
    number or the string) with `tasks`, or a document with a `tasks` map and neither
    apiVersion nor kind; everything else is read as native (whose loader
    says what is wrong with it)."""
    data = doc.data
    if not isinstance(data, dict):
        return "native"
    api = data.get("apiVersion")
    if api == ARGO_API_VERSION:
        return "argo"
    if str(api) in ("1", "1.0") and "tasks" in data:
        return "fission"
    if api is None and "kind" not in data and isinstance(data.get("tasks"), dict):
        return "fission"  # apiVersion is optional in Fission (half the examples omit it)
    return "native"


def convert(
    doc: SourceDocument, fmt: Format, options: ConvertOptions | None = None
) -> list[NativeDocument]:
    """One source document of format `fmt` (not native) as native documents.

    Raises:
        DefinitionError: every construct that cannot be converted, at its source line.
    """
    options = options or ConvertOptions()
    if fmt == "argo":
        from actorflow.definitions.convert import argo

        return argo.convert(doc, options)
    if fmt == "fission":
        from actorflow.definitions.convert import fission

        return fission.convert(doc, options)
    raise ValueError(f"not a foreign format: {fmt}")


def convert_documents(
    docs: list[SourceDocument], options: ConvertOptions | None = None
) -> tuple[list[NativeDocument | SourceDocument], list[DefinitionIssue]]:
    """Each document converted when it is Argo or Fission (detected unless the options
    say), native ones passed through; the issues of every document that did not convert."""
    options = options or ConvertOptions()
    out: list[NativeDocument | SourceDocument] = []
    issues: list[DefinitionIssue] = []
    for doc in docs:
        kind = options.source or detect(doc)
        if kind == "native":
            out.append(doc)
            continue
        try:
            out += convert(doc, kind, options)
        except DefinitionError as exc:
            issues += exc.issues
    return out, issues


__all__ = [
    "FORMATS",
    "ConvertOptions",
    "Format",
    "ImageTarget",
    "NativeDocument",
    "convert",
    "convert_documents",
    "detect",
    "load_image_map",
]
