"""Reading a secret reference (`SecretRef`: ``fromEnv`` / ``fromFile``) where it is used.

Secrets are read at the moment they are needed — by a replica when a step calls out, by
the controller when it checks a definition at apply — and never written anywhere; no
message of this module quotes a secret's value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actorflow.definitions.models import SecretRef


class SecretMissingError(Exception):
    """The reference names an unset variable or an unreadable file; `field` is which of
    the two (``fromEnv`` / ``fromFile``), for an issue that names it."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(reason)


def read_secret(ref: SecretRef | Mapping[str, Any]) -> str:
    """The secret's value (a file's content without its trailing newline), `prefix` first.

    Raises:
        SecretMissingError: the variable is unset, or the file cannot be read.
    """
    secret = ref if isinstance(ref, SecretRef) else SecretRef.model_validate(ref)
    if secret.from_env is not None:
        if secret.from_env not in os.environ:
            raise SecretMissingError(
                "fromEnv", f"environment variable {secret.from_env} is not set"
            )
        return secret.prefix + os.environ[secret.from_env]
    path = Path(str(secret.from_file))
    try:
        return secret.prefix + path.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SecretMissingError("fromFile", f"cannot read {path}: {reason}") from None
