"""Who may do what: users, tokens, roles per namespace, owners and visibility — the pure
part (models and the policy), no NATS.

Roles rank ``viewer < operator < editor < admin``; a user holds one per namespace (``*``:
every namespace). A definition or run records its owner, namespace and visibility:

- *see* (read): public → anyone authenticated; private → its owner or a viewer of its
  namespace. A caller who may not see a resource is told it does not exist (404).
- *run* (start a run of a workflow): public → anyone authenticated; private → its owner or
  an operator of its namespace.
- *control* a run: its owner (who started it) or an operator of its namespace.
- *change* a definition: its owner or an editor of its namespace; creating one in a
  namespace needs editor there.

Everything else is refused: deny by default.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actorflow.definitions.errors import InputError

Role = Literal["viewer", "operator", "editor", "admin"]
Visibility = Literal["private", "public"]
Verb = Literal["see", "run", "control", "change"]
RANK: dict[str, int] = {"viewer": 1, "operator": 2, "editor": 3, "admin": 4}
EVERY_NAMESPACE = "*"
DEFAULT_NAMESPACE = "default"

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_name(what: str, value: str) -> str:
    """A user or namespace name: it becomes a KV key token."""
    if not _NAME.fullmatch(value):
        raise InputError(f"{what} {value[:80]!r} is not 1-64 letters, digits, '_' or '-'")
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class User(_Frozen):
    name: str
    roles: dict[str, Role] = Field(default_factory=dict)
    created_at: datetime

    def role_in(self, namespace: str) -> int:
        """The rank of the user's role in `namespace` (0: none)."""
        return max(
            RANK.get(self.roles.get(namespace, ""), 0),
            RANK.get(self.roles.get(EVERY_NAMESPACE, ""), 0),
        )


class TokenRecord(_Frozen):
    """A token as stored: its id, whose it is and a keyed hash of its secret, never the
    secret itself."""

    id: str
    user: str
    digest: str
    created_at: datetime
    expires_at: datetime | None = None
    name: str = ""


class TokenInfo(_Frozen):
    """A token as listed (no digest)."""

    id: str
    user: str
    created_at: datetime
    expires_at: datetime | None = None
    name: str = ""


class Ownership(_Frozen):
    """Who owns a definition or a run, in which namespace, seen by whom."""

    owner: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    visibility: Visibility = "private"


#: What a resource the API did not create (applied by the SDK, the CLI or a trigger) is:
#: the default namespace's, private.
UNOWNED = Ownership()


class AuditEntry(_Frozen):
    """One change or control action: who, what, on what, when, and how it ended."""

    at: datetime
    user: str
    action: str
    target: str
    namespace: str = DEFAULT_NAMESPACE
    status: int = 200


def allowed(user: User, verb: Verb, resource: Ownership) -> bool:
    """The policy (see the module docstring)."""
    if resource.owner == user.name:
        return True
    rank = user.role_in(resource.namespace)
    if verb == "see":
        return resource.visibility == "public" or rank >= RANK["viewer"]
    if verb == "run":
        return resource.visibility == "public" or rank >= RANK["operator"]
    if verb == "control":
        return rank >= RANK["operator"]
    return rank >= RANK["editor"]


def may_create(user: User, namespace: str) -> bool:
    return user.role_in(namespace) >= RANK["editor"]
