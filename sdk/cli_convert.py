"""Definitions from other sources: `actorflow convert` (Argo and Fission files, with the
options `apply` shares) and `actorflow functions init` (a Function from a callable)."""

from __future__ import annotations

import importlib
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from actorflow.definitions.convert import ConvertOptions, load_image_map
from actorflow.definitions.errors import DefinitionError
from actorflow.definitions.loader import dump, load_path
from actorflow.definitions.models import Function
from actorflow.definitions.schemas import describe_callable


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


def _check_handler(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", value):
        raise typer.BadParameter(f"{value!r} is not module:callable")
    return value


def functions_init(
    handler: Annotated[
        str, typer.Argument(help="module:callable", callback=_check_handler, metavar="HANDLER")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Default: the callable's name.")
    ] = None,
    version: Annotated[str, typer.Option("--version")] = "1",
    code_dir: Annotated[
        Path,
        typer.Option("--code-dir", exists=True, file_okay=False, help="Where the module is."),
    ] = Path("."),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write a Function definition for a Python callable: its input schema from the
    parameters' type hints and defaults, its output schema from the return hint, its
    description from the docstring. Review it, then `actorflow apply -f` it."""
    module_name, _, attr = handler.partition(":")
    sys.path.insert(0, str(code_dir.resolve()))
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:  # whatever the user's module raises on import
        raise DefinitionError.single(
            f"{handler} cannot be imported from {code_dir}: {type(exc).__name__}: {exc}",
            field="handler",
        ) from None
    finally:
        sys.path.pop(0)
    if not callable(target):
        raise DefinitionError.single(f"{handler} is not callable", field="handler")
    try:
        inputs, result, description = describe_callable(target)
    except TypeError as exc:
        raise DefinitionError.single(str(exc), field="handler") from None
    default_name = re.sub(r"[^a-z0-9_-]+", "-", attr.rsplit(".", 1)[-1].lower()).strip("-_")
    function = Function.model_validate(
        {
            "metadata": {
                "name": name or default_name or "function",
                "version": version,
                "description": description,
            },
            "spec": {
                "handler": handler,
                "codeDir": str(code_dir),
                "inputSchema": inputs,
                **({"outputSchema": result} if result else {}),
            },
        }
    )
    text = dump([function])
    if output is None:
        Console(soft_wrap=True, highlight=False).print(text, end="", markup=False)
    else:
        output.write_text(text, encoding="utf-8")
