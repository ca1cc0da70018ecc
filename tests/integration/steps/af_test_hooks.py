"""Hooks used by the integration tests: each appends what it saw to a file named by the run."""

from __future__ import annotations

import json
import os
from typing import Any

HOOK_LOG = "/tmp/actorflow-test-hooks"


def record(event: dict[str, Any]) -> None:
    os.makedirs(HOOK_LOG, exist_ok=True)
    with open(os.path.join(HOOK_LOG, event["run_id"]), "a") as fh:
        fh.write(json.dumps({k: event[k] for k in ("point", "node", "status")}) + "\n")


def explode(event: dict[str, Any]) -> None:
    raise RuntimeError(f"hook exploded at {event['point']}")
