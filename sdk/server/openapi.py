"""Write the API's OpenAPI document: ``python -m actorflow.server.openapi`` rewrites the
committed docs/openapi.json (a unit test fails when the two drift)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from actorflow.server.app import openapi_document

REGENERATE = "python -m actorflow.server.openapi"


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "docs/openapi.json")
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
