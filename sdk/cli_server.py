"""`actorflow serve` (the REST API on 127.0.0.1:ACTORFLOW_API_PORT) and the API's
`users` and `tokens`.

Registered on the main app by `actorflow.cli`; errors go to its one-line reporter. Users
and tokens live in JetStream (NATS only: these commands start no Ray).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar, cast

import typer
from rich.console import Console

from actorflow._client import AsyncClient
from actorflow._tables import Column, fitted
from actorflow.cli_output import Format, OutputOption, emit
from actorflow.cluster.settings import Settings
from actorflow.server import serve as serve_api
from actorflow.server.access import RANK, Role
from actorflow.server.store import AccessStore, now

out = Console()
users_app = typer.Typer(help="Users of the REST API and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="Bearer tokens of the REST API.", no_args_is_help=True)
_T = TypeVar("_T")


def serve(
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=0, max=65535, help="Instead of ACTORFLOW_API_PORT."),
    ] = None,
) -> None:
    """Serve the REST API (and its OpenAPI document at /docs) until interrupted."""
    settings = Settings()
    if port is not None:
        settings = settings.model_copy(update={"api_port": port})

    def ready(url: str, admin_token: Path | None) -> None:
        out.print(f"actorflow API on {url}  (OpenAPI: {url}/docs)", highlight=False)
        if admin_token is not None:
            out.print(f"first start: the admin token is in {admin_token}", highlight=False)

    asyncio.run(serve_api(settings, on_ready=ready))


@asynccontextmanager
async def _opened() -> AsyncIterator[AccessStore]:
    settings = Settings()
    client = AsyncClient(settings, log_to_driver=False)
    try:
        await client.connect_nats()
        yield await AccessStore.open(
            client.js,
            settings.home,
            settings.stream_replicas,
            audit_max_age_days=settings.api_audit_max_age_days,
            audit_max_entries=settings.api_audit_max_entries,
        )
    finally:
        await client.close()


def _with_store(op: Callable[[AccessStore], Awaitable[_T]]) -> _T:
    async def go() -> _T:
        async with _opened() as store:
            return await op(store)

    return asyncio.run(go())


def _roles(values: list[str] | None) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for value in values or []:
        namespace, _, role = value.partition("=")
        if not namespace or role not in RANK:
            raise typer.BadParameter(
                f"{value!r}: want NAMESPACE=ROLE (NAMESPACE * for all), ROLE one of "
                + ", ".join(RANK)
            )
        roles[namespace] = cast(Role, role)
    return roles


UserArg = Annotated[str, typer.Argument(help="The user's name.")]


@users_app.command("add")
def users_add(
    name: UserArg,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role", "-r", help="NAMESPACE=ROLE (viewer, operator, editor, admin); repeat."
        ),
    ] = None,
) -> None:
    """Add a user (or set an existing user's roles)."""
    roles = _roles(role)
    user = _with_store(lambda s: s.add_user(name, roles))
    shown = ", ".join(f"{ns}={r}" for ns, r in sorted(user.roles.items())) or "no roles"
    out.print(f"user {user.name}: {shown}", highlight=False)


@users_app.command("list")
def users_list(output: OutputOption = Format.table) -> None:
    """Every user and their roles."""
    users = _with_store(lambda s: s.users())
    rows = [
        [
            u.name,
            ", ".join(f"{ns}={r}" for ns, r in sorted(u.roles.items())),
            f"{u.created_at:%Y-%m-%d %H:%M}",
        ]
        for u in users
    ]
    columns = [Column("USER"), Column("ROLES", give="wrap"), Column("CREATED")]
    emit(out, output, users, lambda width: fitted(columns, rows, width=width))


@users_app.command("remove")
def users_remove(name: UserArg) -> None:
    """Remove a user; every token of theirs stops working at once."""
    _with_store(lambda s: s.remove_user(name))
    out.print(f"removed user {name}", highlight=False)


_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    match = _DURATION.fullmatch(value)
    if match:
        at: datetime = now() + timedelta(**{_UNITS[match[2]]: int(match[1])})
        return at
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: want a duration (30d, 12h, 90m) or an ISO time"
        ) from None
    return at if at.tzinfo else at.astimezone()


@tokens_app.command("create")
def tokens_create(
    user: UserArg,
    expires: Annotated[
        str | None, typer.Option("--expires", help="30d, 12h, 90m, 45s or an ISO time.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
) -> None:
    """Make a token for USER and print it, once: it is stored only as a keyed hash."""
    at = _expiry(expires)
    token, record = _with_store(lambda s: s.create_token(user, expires_at=at, name=name))
    until = f", expires {record.expires_at:%Y-%m-%d %H:%M:%S %Z}" if record.expires_at else ""
    typer.echo(token)
    Console(stderr=True).print(
        f"token {record.id} for {user}{until}: shown once, keep it", highlight=False
    )


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's.")] = None,
    output: OutputOption = Format.table,
) -> None:
    """Tokens by id (never the tokens themselves)."""
    tokens = _with_store(lambda s: s.tokens(user))
    rows = [
        [
            t.id,
            t.user,
            t.name,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "-",
        ]
        for t in tokens
    ]
    columns = [Column(h) for h in ("ID", "USER", "NAME", "CREATED", "EXPIRES")]
    emit(out, output, tokens, lambda width: fitted(columns, rows, width=width))


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token: refused from the next request on."""
    _with_store(lambda s: s.revoke(token_id))
    out.print(f"revoked token {token_id}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
