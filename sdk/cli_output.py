"""``-o table|json|yaml`` and ``--wide``: what every `list` and `show` command takes.

JSON and YAML are the models' own `model_dump(mode="json", by_alias=True)` — the same
field names as the Python API and the wire, so a script reading them keeps working when a
table changes. Tables fit the terminal's width unless ``--wide``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console, RenderableType

__all__ = ["Format", "OutputOption", "WideOption", "emit", "plain"]


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    Format,
    typer.Option("--output", "-o", case_sensitive=False, help="table (default), json or yaml."),
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Every column, every value whole (wider than the terminal).")
]


def plain(value: Any) -> Any:
    """JSON-ready data: models as their JSON form, containers element by element."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit(
    console: Console,
    fmt: Format,
    data: Any,
    table: Callable[[int | None], RenderableType],
    *,
    wide: bool = False,
) -> None:
    """Print `data` as JSON / YAML, or `table(width)` — `width` the console's, None when
    `wide` (printed as wide as it is)."""
    if fmt is Format.json:
        typer.echo(json.dumps(plain(data), indent=2, ensure_ascii=False))
        return
    if fmt is Format.yaml:
        typer.echo(yaml.safe_dump(plain(data), sort_keys=False, allow_unicode=True), nl=False)
        return
    if not wide:
        console.print(table(console.width))
        return
    rendered = table(None)
    needed = console.measure(rendered, options=console.options.update_width(100_000)).maximum
    # A console's print never goes past the console's own width: print on a wider one.
    wider = Console(
        file=console.file,
        width=max(console.width, needed),
        force_terminal=console.is_terminal or None,
        no_color=console.no_color,
    )
    wider.print(rendered, crop=False)
