"""`actorflow convert`, and the options `apply` shares with it: reading Argo and Fission
files as native definitions."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from actorflow.definitions.convert import ConvertOptions, load_image_map
from actorflow.definitions.loader import dump, load_path


class Source(StrEnum):
    argo = "argo"
    fission = "fission"


FromOption = Annotated[
    Source | None,
    typer.Option("--from", help="The file's syntax (default: detected per document)."),
]
ImageMapOption = Annotated[
    Path | None,
    typer.Option(
        "--image-map",
        exists=True,
        dir_okay=False,
        help="YAML: container image -> {function: REF} or {runtimeEnv: REF} (Argo).",
    ),
]


def options(source: Source | None, image_map: Path | None) -> ConvertOptions:
    """What the two flags mean to the loader (a bad image map raises `DefinitionError`)."""
    return ConvertOptions(
        source=source.value if source else None,
        image_map=load_image_map(image_map) if image_map else {},
    )


def convert(
    file: Annotated[
        Path, typer.Argument(exists=True, help="An Argo or Fission file, or a folder of them.")
    ],
    source: FromOption = None,
    image_map: ImageMapOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print (or write) the native YAML of an Argo or Fission file; nothing is registered.
    A construct that cannot be converted is reported at its line, and nothing is written."""
    text = dump(load_path(file, convert=options(source, image_map)))
    if output is None:
        Console(soft_wrap=True, highlight=False).print(text, end="", markup=False)
    else:
        output.write_text(text, encoding="utf-8")
