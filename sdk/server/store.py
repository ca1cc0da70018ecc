"""The API's state in the ``AF_API`` KV bucket: users, tokens (as keyed hashes),
ownership of definitions and runs; and the audit log in the ``AF_AUDIT`` stream, bounded
by age and count (`Settings.api_audit_max_age_days`, `api_audit_max_entries`).

A token is ``af_<id>_<secret>``: shown once, when created; stored is only an HMAC-SHA256
of the secret under the server key (``ACTORFLOW_HOME/api.key``, mode 0600, made at first
use), compared in constant time. A leaked bucket gives no token.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from actorflow.actors.store.errors import BAD_REQUEST, NOT_FOUND, not_found_as
from actorflow.actors.store.jetstream import ensure_key_value
from actorflow.actors.store.streams import read_kv_values, read_stream
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev
from actorflow.definitions.errors import NotFoundError
from actorflow.server.access import (
    AuditEntry,
    Ownership,
    Role,
    TokenInfo,
    TokenRecord,
    User,
    check_name,
)
from actorflow.server.errors import ApiError

KEY_FILE = "api.key"
#: Where the first start writes the admin token it makes (mode 0600).
ADMIN_TOKEN_FILE = "api-admin-token"
_PREFIX = "af_"


def server_key(home: Path) -> bytes:
    """The HMAC key tokens are hashed with: read, or made once with mode 0600."""
    path = home / KEY_FILE
    home.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


def now() -> datetime:
    return datetime.now(UTC)


class AccessStore:
    """Reads and writes of the ``AF_API`` bucket; no cache, so a revocation or a removed
    user holds from the next request on."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, key: bytes) -> None:
        self._js = js
        self._kv = kv
        self._key = key

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        home: Path,
        replicas: int = 1,
        *,
        audit_max_age_days: float | None = None,
        audit_max_entries: int | None = None,
    ) -> AccessStore:
        """The store, its bucket and audit stream made if missing (the audit limits, the
        settings' defaults unless given, applied to an existing stream too)."""
        await _ensure_audit_stream(
            js,
            replicas,
            audit_max_age_days or _default("api_audit_max_age_days"),
            audit_max_entries or _default("api_audit_max_entries"),
        )
        # Created, or raised to `replicas` (ACTORFLOW_STREAM_REPLICAS), like the engine's.
        await ensure_key_value(
            js,
            KeyValueConfig(
                bucket=ev.KV_API, history=1, replicas=replicas, storage=StorageType.FILE
            ),
        )
        kv = await js.key_value(ev.KV_API)
        store = cls(js, kv, server_key(home))
        await store._move_legacy_audit()
        return store

    async def _values(self, prefix: str) -> dict[str, bytes]:
        return await read_kv_values(self._js, ev.KV_API, prefix)

    # --- users ----------------------------------------------------------------------------
    async def add_user(self, name: str, roles: dict[str, Role]) -> User:
        """Add a user, or replace the roles of an existing one."""
        check_name("user", name)
        for namespace in roles:
            if namespace != "*":
                check_name("namespace", namespace)
        user = User(name=name, roles=roles, created_at=now())
        await self._kv.put(f"user.{name}", user.model_dump_json().encode())
        return user

    async def user(self, name: str) -> User:
        with not_found_as("user", name):
            entry = await self._kv.get(f"user.{name}")
        return User.model_validate_json(entry.value or b"")

    async def users(self) -> list[User]:
        values = await self._values("user.")
        return sorted((User.model_validate_json(v) for v in values.values()), key=lambda u: u.name)

    async def remove_user(self, name: str) -> None:
        """Remove a user and revoke every token of theirs."""
        await self.user(name)
        for token in await self.tokens(name):
            await self.revoke(token.id)
        await self._kv.delete(f"user.{name}")

    # --- tokens ---------------------------------------------------------------------------
    def _digest(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    async def create_token(
        self, user: str, *, expires_at: datetime | None = None, name: str = ""
    ) -> tuple[str, TokenRecord]:
        """A new token for `user`: the token itself (shown once) and what is stored."""
        await self.user(user)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(
            id=token_id,
            user=user,
            digest=self._digest(secret),
            created_at=now(),
            expires_at=expires_at,
            name=name,
        )
        await self._kv.put(f"token.{token_id}", record.model_dump_json().encode())
        return f"{_PREFIX}{token_id}_{secret}", record

    async def tokens(self, user: str | None = None) -> list[TokenInfo]:
        values = await self._values("token.")
        records = [TokenRecord.model_validate_json(v) for v in values.values()]
        return sorted(
            (
                TokenInfo.model_validate(r.model_dump(exclude={"digest"}))
                for r in records
                if user is None or r.user == user
            ),
            key=lambda t: t.created_at,
        )

    async def revoke(self, token_id: str) -> None:
        with not_found_as("token", token_id):
            await self._kv.get(f"token.{token_id}")
        await self._kv.delete(f"token.{token_id}")

    async def authenticate(self, token: str) -> tuple[User, str]:
        """The user a presented token belongs to, and the token's id; 401 when it is
        malformed, unknown, revoked or expired (the same answer for the first three)."""
        refused = ApiError(
            401,
            "unauthenticated",
            "the token is not valid (unknown, revoked or malformed)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        if not token.startswith(_PREFIX) or token.count("_") < 2:
            raise refused
        token_id, secret = token[len(_PREFIX) :].split("_", 1)
        if not token_id.isalnum():
            raise refused
        try:
            entry = await self._kv.get(f"token.{token_id}")
        except NOT_FOUND:
            raise refused from None
        record = TokenRecord.model_validate_json(entry.value or b"")
        if not hmac.compare_digest(record.digest, self._digest(secret)):
            raise refused
        if record.expires_at is not None and record.expires_at <= now():
            raise ApiError(
                401,
                "unauthenticated",
                f"the token expired at {record.expires_at.isoformat()}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            user = await self.user(record.user)
        except NotFoundError:
            raise refused from None
        return user, token_id

    # --- ownership ------------------------------------------------------------------------
    async def ownership(self, kind: str, name: str) -> Ownership | None:
        try:
            entry = await self._kv.get(f"owner.{kind}.{name}")
        except NOT_FOUND:
            return None
        return Ownership.model_validate_json(entry.value or b"")

    async def owned(self, kind: str) -> dict[str, Ownership]:
        values = await self._values(f"owner.{kind}.")
        return {k: Ownership.model_validate_json(v) for k, v in values.items()}

    async def set_ownership(self, kind: str, name: str, ownership: Ownership) -> None:
        await self._kv.put(f"owner.{kind}.{name}", ownership.model_dump_json().encode())

    # --- workflow sources (what graph edits edit) ----------------------------------------
    async def put_source(self, name: str, version: str, text: str) -> None:
        await self._kv.put(f"source.{name}.{version}", text.encode())

    async def source(self, name: str, version: str) -> str | None:
        """The YAML a workflow version was applied as through the API, if it was."""
        try:
            entry = await self._kv.get(f"source.{name}.{version}")
        except NOT_FOUND:
            return None
        return (entry.value or b"").decode()

    # --- audit ----------------------------------------------------------------------------
    async def audit(self, entry: AuditEntry, *, msg_id: str | None = None) -> None:
        await self._js.publish(
            ev.audit_subject(entry.namespace),
            entry.model_dump_json().encode(),
            stream=ev.STREAM_AUDIT,
            headers={ev.MSG_ID: msg_id} if msg_id else None,
        )

    async def audit_log(self) -> list[AuditEntry]:
        """Every entry the stream still keeps, oldest first."""
        return [
            AuditEntry.model_validate_json(msg.data)
            async for msg in read_stream(self._js, ev.STREAM_AUDIT, ev.AUDIT_SUBJECTS)
        ]

    async def _move_legacy_audit(self) -> None:
        """Entries an older API wrote to the bucket (where nothing bounded them) move to
        the stream, oldest first; the message ids make two servers starting at once move
        each entry once."""
        values = await self._values("audit.")
        for key in sorted(values):
            entry = AuditEntry.model_validate_json(values[key])
            await self.audit(entry, msg_id=f"legacy-{key}")
            await self._kv.purge(f"audit.{key}")


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


async def _ensure_audit_stream(
    js: JetStreamContext, replicas: int, max_age_days: float, max_entries: int
) -> None:
    """The audit stream with these limits: made, or its limits changed to these."""
    config = StreamConfig(
        name=ev.STREAM_AUDIT,
        subjects=[ev.AUDIT_SUBJECTS],
        storage=StorageType.FILE,
        num_replicas=replicas,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=max_age_days * 86400.0,  # seconds (nats-py sends nanoseconds)
        max_msgs=max_entries,
        duplicate_window=120.0,
    )
    try:
        info = await js.stream_info(ev.STREAM_AUDIT)
    except NOT_FOUND:
        try:
            await js.add_stream(config)
            return
        except BAD_REQUEST:  # made concurrently
            info = await js.stream_info(ev.STREAM_AUDIT)
    held = info.config
    age = max_age_days * 86400.0
    have = held.num_replicas or 1  # replicas only ever grow, as the engine's streams'
    if held.max_msgs != max_entries or abs((held.max_age or 0) - age) > 1e-3 or have < replicas:
        config.num_replicas = max(have, replicas)
        await js.update_stream(config)


async def bootstrap(store: AccessStore, home: Path) -> Path | None:
    """With no user yet, make ``admin`` (admin of every namespace) and one token for it,
    written to `ADMIN_TOKEN_FILE` under `home` (mode 0600); returns that path, or None
    when users exist (nothing is made twice)."""
    if await store.users():
        return None
    await store.add_user("admin", {"*": "admin"})
    token, _ = await store.create_token("admin", name="first start")
    path = home / ADMIN_TOKEN_FILE
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return path
