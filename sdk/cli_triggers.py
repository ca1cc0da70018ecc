"""`actorflow triggers …`, `actorflow events list` and `actorflow publish`.

Registered on the main app by `actorflow.cli`; errors propagate to its one-line reporter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from actorflow._client import TriggerInfo
from actorflow._sync import Client
from actorflow._tables import Cell, Column, fitted
from actorflow.cli_output import Format, OutputOption, WideOption, emit
from actorflow.cluster.settings import Settings
from actorflow.definitions.models import EventType

out = Console()

triggers_app = typer.Typer(help="Triggers: list, enable, disable, delete.", no_args_is_help=True)
events_app = typer.Typer(help="The event library: declared event types.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The trigger's name.")]


@contextlib.contextmanager
def _client() -> Iterator[Client]:
    with Client(Settings(), log_to_driver=False) as client:
        yield client


def _source(info: TriggerInfo) -> str:
    source = info.trigger.spec.source
    if source.subject is not None:
        return f"subject {source.subject}"
    if source.schedule is not None:
        s = source.schedule
        timing = f"cron '{s.cron}' {s.timezone}" if s.cron else f"every {s.every:g}s"
        return f"schedule {timing} (missed: {s.missed})"
    if source.webhook is not None:
        return "webhook" + (" (signed)" if source.webhook.secret else "")
    assert source.lifecycle is not None
    life = source.lifecycle
    node = f".{life.node}" if life.node else ""
    return f"lifecycle {life.workflow}{node} on {','.join(life.on)}"


def triggers_table(
    infos: list[TriggerInfo], webhook: str | None = None, width: int | None = None
) -> Table:
    """Each trigger and its counts (rejections, activity and the last event / error only
    with ``--wide``)."""
    columns = [
        Column("name", give="end"),
        Column("source", give="wrap"),
        Column("workflow", give="end"),
        Column("enabled"),
        *(Column(c, justify="right") for c in ("seen", "matched", "started", "errors")),
        Column("rejected", justify="right", wide=True),
        Column("active", justify="right", wide=True),
        Column("last event", wide=True),
        Column("last error", give="wrap", wide=True),
    ]
    rows: list[list[Cell]] = []
    for info in infos:
        s = info.stats
        source = _source(info)
        if webhook and info.trigger.spec.source.webhook is not None:
            source += f"\n{webhook}/hooks/{info.name}"
        rows.append(
            [
                info.name,
                source,
                info.trigger.spec.workflow,
                "yes" if info.enabled else "no",
                str(s.seen),
                str(s.matched),
                str(s.started),
                str(s.errors),
                str(s.rejected),
                str(s.active),
                s.last_event_at.strftime("%Y-%m-%d %H:%M:%S") if s.last_event_at else "-",
                s.last_error[:60] or "-",
            ]
        )
    return fitted(columns, rows, width=width, title="triggers")


@triggers_app.command("list")
def triggers_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Every trigger with its counts: events seen, matched, runs started, errors, rejected."""
    with _client() as client:
        infos = client.triggers()
        webhook = None
        with contextlib.suppress(Exception):
            webhook = client.webhook_url()
    emit(out, output, infos, lambda width: triggers_table(infos, webhook, width), wide=wide)


@triggers_app.command("enable")
def triggers_enable(name: NameArg) -> None:
    """Listen again (events from now on)."""
    with _client() as client:
        client.enable_trigger(name)
    out.print(f"enabled {name}", highlight=False)


@triggers_app.command("disable")
def triggers_disable(name: NameArg) -> None:
    """Stop listening; events arriving meanwhile start no runs."""
    with _client() as client:
        client.disable_trigger(name)
    out.print(f"disabled {name}", highlight=False)


@triggers_app.command("delete")
def triggers_delete(name: NameArg) -> None:
    """Remove the trigger, its consumer and its counts."""
    with _client() as client:
        client.delete_trigger(name)
    out.print(f"deleted {name}", highlight=False)


def event_types_table(types: list[EventType], width: int | None = None) -> Table:
    columns = [
        Column("name", give="end"),
        Column("subject", give="end"),
        Column("schema", give="wrap"),
    ]
    rows: list[list[Cell]] = [
        [t.metadata.name, t.spec.subject, json.dumps(t.spec.json_schema)[:80]] for t in types
    ]
    return fitted(columns, rows, width=width, title="event types")


@events_app.command("list")
def events_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Declared event types: name, subject, payload schema."""
    with _client() as client:
        types = client.event_types()
    emit(out, output, types, lambda width: event_types_table(types, width), wide=wide)


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}") from None


def publish(
    subject: Annotated[str, typer.Argument(help="A literal subject, e.g. orders.eu.created.")],
    data: Annotated[str, typer.Option("--data", "-d", help="The payload, as JSON.")] = "null",
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type", "-t", help="Validate against this event type (default: those matching)."
        ),
    ] = None,
    msg_id: Annotated[
        str | None, typer.Option("--id", help="The event id (Nats-Msg-Id) triggers dedupe on.")
    ] = None,
) -> None:
    """Publish a JSON event; checked against the declared event types its subject matches."""
    payload = _json(data)
    with _client() as client:
        result = client.publish(subject, payload, event_type=event_type, msg_id=msg_id)
    where = f"{result.stream} seq {result.seq}" if result.stream else "no stream"
    dup = " (duplicate)" if result.duplicate else ""
    out.print(f"published {subject} → {where}{dup}", highlight=False)
