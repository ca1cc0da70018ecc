"""MkDocs hook: the SDK reference page documents every public name of `actorflow`.

`__all__` is read from the package's source (found, not imported), so the check needs
neither Ray nor NATS; a name missing from docs/reference/sdk.md is a warning, which fails
`mkdocs build --strict`.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.actorflow")

_REFERENCE = "reference/sdk.md"
_DOCUMENTED = re.compile(r"^::: actorflow\.(\w+)\s*$", re.MULTILINE)
_NOT_OBJECTS = {"__version__"}


def _public_names() -> list[str]:
    spec = importlib.util.find_spec("actorflow")
    if spec is None or spec.origin is None:
        raise RuntimeError("actorflow is not installed: run `make setup`")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [str(v) for v in ast.literal_eval(node.value)]
    raise RuntimeError(f"no __all__ in {spec.origin}")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == _REFERENCE:
        documented = set(_DOCUMENTED.findall(markdown))
        missing = [n for n in _public_names() if n not in documented | _NOT_OBJECTS]
        if missing:
            log.warning("%s does not document actorflow.%s", _REFERENCE, ", ".join(missing))
    return markdown
