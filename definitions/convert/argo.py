"""Argo Workflows → native definitions (being written)."""

from __future__ import annotations

from actorflow.definitions.convert import ConvertOptions, NativeDocument
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.yaml_source import SourceDocument


def convert(doc: SourceDocument, options: ConvertOptions) -> list[NativeDocument]:
    raise DefinitionError([doc.issue(("apiVersion",), "Argo documents are not converted yet")])
