"""`actorflow debug RUN …` and `actorflow runs break RUN NODE`: single-step a run.

Registered on the main app by `actorflow.cli`; errors propagate to its one-line reporter
(a breakpoint on an unknown node, `debug` on a run that is not paused: one line, exit 1).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from actorflow._sync import Client, Run
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev

out = Console()

debug_app = typer.Typer(
    help="Single-step a run paused at a breakpoint: show, override, step, continue.",
    invoke_without_command=True,
)

RunArg = Annotated[str, typer.Argument(help="The run's id.")]
AfterOpt = Annotated[bool, typer.Option("--after", help="After the node, not before it.")]


@contextlib.contextmanager
def _run(run_id: str) -> Iterator[Run]:
    with Client(Settings(), log_to_driver=False) as client:
        yield client.get_run(run_id)


def _show(hits: list[ev.BreakpointHit], run_id: str) -> None:
    for hit in hits:
        what = "inputs" if hit.position == "before" else "output"
        value = hit.inputs if hit.position == "before" else hit.output
        out.print(f"run {run_id} paused {hit.position} {hit.node}; {what}:", highlight=False)
        out.print_json(json.dumps(value, default=str))


@debug_app.callback()
def debug(ctx: typer.Context) -> None:
    """`actorflow debug show RUN` (and the other subcommands); `debug RUN` shows."""


@debug_app.command("show")
def show(run_id: RunArg) -> None:
    """Where the run is paused, and the inputs (overrides included) each held node gets."""
    with _run(run_id) as run:
        _show(run.paused_at(), run_id)


@debug_app.command("override")
def override(
    run_id: RunArg,
    node: Annotated[str, typer.Argument(help="The node the run is paused before.")],
    input_: Annotated[
        list[str],
        typer.Option("--input", "-i", metavar="KEY=VALUE", help="VALUE as JSON, else a string."),
    ],
) -> None:
    """Replace inputs of the node the run is paused before (recorded in its history)."""
    from actorflow.cli import parse_inputs  # the one KEY=VALUE reading

    for pair in input_:
        if "=" not in pair or not pair.partition("=")[0]:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--input")
    with _run(run_id) as run:
        run.paused_at()  # a clear error first when it is not paused
        run.override(node, parse_inputs(input_))
        _show(run.paused_at(), run_id)


@debug_app.command("step")
def step(run_id: RunArg) -> None:
    """Run the held nodes, then stop before the next nodes that become ready."""
    with _run(run_id) as run:
        run.paused_at()
        run.step()
    out.print(f"stepping {run_id}")


@debug_app.command("continue")
def continue_(run_id: RunArg) -> None:
    """Go on past the breakpoints it is paused at (later breakpoints still stop it)."""
    with _run(run_id) as run:
        run.paused_at()
        run.continue_()
    out.print(f"continuing {run_id}")


def break_(
    run_id: RunArg,
    node: Annotated[str, typer.Argument(help="The node to stop at.")],
    after: AfterOpt = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the breakpoint.")] = False,
) -> None:
    """Stop the run PAUSED before NODE is scheduled (or --after it succeeded)."""
    with _run(run_id) as run:
        if clear:
            run.clear_break(node, after=after)
        else:
            run.break_at(node, after=after)
    where = "after" if after else "before"
    out.print(f"{'cleared' if clear else 'set'} breakpoint {where} {node} on {run_id}")


def rerun(
    run_id: RunArg,
    from_node: Annotated[
        str, typer.Option("--from", help="Run this node and what follows it again.")
    ],
    input_: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", metavar="KEY=VALUE", help="Override FROM's inputs."),
    ] = None,
) -> None:
    """A new run reusing RUN's recorded outputs of everything upstream of --from."""
    from actorflow.cli import parse_inputs  # the one KEY=VALUE reading

    for pair in input_ or []:
        if "=" not in pair or not pair.partition("=")[0]:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--input")
    with _run(run_id) as run:
        new = run.rerun(from_node, parse_inputs(input_ or []))
    out.print(new.run_id, highlight=False)


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """`debug …` on the main app, `break` and `rerun` under `runs`."""
    app.add_typer(debug_app, name="debug")
    runs_app.command("break")(break_)
    runs_app.command("rerun")(rerun)
