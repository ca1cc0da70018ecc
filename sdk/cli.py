"""The `actorflow` command.

Example:
    ```python
    actorflow up
    actorflow run hello -f examples/hello/workflow.yaml --input name=Ada --wait
    actorflow runs list --status INTERRUPTED
    actorflow down
    ```

Every error the engine raises on purpose (and any other) prints as one red line on stderr
and exits 1; usage errors exit 2. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import ray
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from actorflow import _display as show
from actorflow import cli_convert, cli_debug, cli_graph, cli_server, cli_triggers
from actorflow._graph_view import graph_tree
from actorflow._remote import unsupported
from actorflow._report import render_report
from actorflow._sync import Client, Run
from actorflow._views import NodeInfo
from actorflow.cli_output import Format, OutputOption, WideOption, emit
from actorflow.cluster import lifecycle, wiring
from actorflow.cluster.settings import Settings
from actorflow.definitions.convert import ConvertOptions
from actorflow.definitions.errors import (
    ActorflowError,
    NotFoundError,
    RunFailedError,
    WaitTimeoutError,
)
from actorflow.definitions.events import ControlAction, LogLine, RunRecord, RunStatus
from actorflow.definitions.loader import load_path
from actorflow.definitions.models import Connection, Function, RuntimeEnv, Workflow

_POLL = 0.3

out = Console()
err = Console(stderr=True)


class _Options:
    debug = False


app = typer.Typer(
    name="actorflow",
    help="Durable, event-driven workflows on Ray actors and NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
workflows_app = typer.Typer(help="Registered workflows.", no_args_is_help=True)
functions_app = typer.Typer(help="Registered functions and their pools.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(workflows_app, name="workflows")
app.add_typer(functions_app, name="functions")
envs_app = typer.Typer(help="Registered runtime environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
templates_app = typer.Typer(
    help="Registered templates (reusable node groups).", no_args_is_help=True
)
app.add_typer(templates_app, name="templates")
connections_app = typer.Typer(help="Registered database connections.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")
# triggers and events live in their own module
app.add_typer(cli_triggers.triggers_app, name="triggers")
app.add_typer(cli_triggers.events_app, name="events")
app.command()(cli_triggers.publish)
cli_graph.register(app)  # `graph` and `edit`
cli_debug.register(app, runs_app)  # `debug …`, `runs break`
cli_server.register(app)  # `serve`


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    _Options.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@contextlib.contextmanager
def _client() -> Iterator[Client]:
    with Client(Settings(), log_to_driver=False) as client:
        yield client


# --- cluster --------------------------------------------------------------------------------
@app.command()
def up(
    nats_servers: Annotated[
        int | None,
        typer.Option(
            "--nats-servers",
            min=1,
            help="Start this many nats-servers as one JetStream cluster (default 1); "
            "streams then get min(N, 3) replicas unless ACTORFLOW_STREAM_REPLICAS is set.",
        ),
    ] = None,
) -> None:
    """Start a local Ray head and nats-server that keep running after this command."""
    with err.status("starting nats-server and Ray …"):
        state = lifecycle.up(Settings(), nats_servers=nats_servers)
    verb = "already up" if state["already_up"] else "up"
    out.print(f"[green]actorflow {verb}[/green]")
    servers = state["nats"].get("servers")
    if servers:
        replicas = state["nats"].get("stream_replicas", 1)
        out.print(f"  NATS       {len(servers)} servers, streams at {replicas} replicas")
        for server in servers:
            out.print(f"    {server['name']}     {server['url']}  (pid {server['pid']})")
    else:
        out.print(f"  NATS       {state['nats']['url']}  (pid {state['nats']['pid']})")
    out.print(f"  Ray        {state['ray']['address']}  (pid {state['ray']['pid']})")
    out.print(f"  dashboard  {state['ray'].get('dashboard', '-')}")
    api = state.get("api", {})
    if "url" in api:
        out.print(f"  REST API   {api['url']}  (pid {api['pid']})")
    elif "error" in api:
        err.print(f"  REST API   not serving: {api['error']}", style="yellow", markup=False)
    token = Settings().home / "api-admin-token"
    if token.exists():
        out.print(f"  API admin token in {token}", highlight=False)


@app.command()
def down() -> None:
    """Stop what `actorflow up` started (only that; other Ray clusters are left alone)."""
    result = lifecycle.down(Settings())
    if not result["was_up"]:
        out.print("actorflow is not up")
        return
    for name, pid in result["stopped"].items():
        out.print(f"stopped {name} (pid {pid})")
    if result["leftover"]:
        raise ActorflowError(f"processes still running after SIGKILL: {result['leftover']}")


@app.command()
def status(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Ray nodes and resources, NATS, JetStream streams, function pools and run counts."""
    settings = Settings()
    if settings.api_access() is not None:
        raise unsupported("actorflow status")
    recorded = lifecycle.status(settings)
    if not (settings.ray_address and settings.nats_url) and not all(
        recorded.get(k, {}).get("alive") for k in ("nats", "ray")
    ):
        raise ActorflowError(
            "no actorflow cluster is up: run `actorflow up`, or set "
            "ACTORFLOW_RAY_ADDRESS and ACTORFLOW_NATS_URL to join one"
        )
    with _client() as client:
        info = client.engine_info()
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        streams, pools, records = client.stream_stats(), client.pools(), client.runs()
    data = {
        "nats": client.nats_url,
        "dashboard": info.dashboard_url or None,
        "metrics": info.metrics_url or None,
        "metrics_error": info.metrics_error or None,
        "ray_nodes": nodes,
        "streams": streams,
        "pools": pools,
        "runs": dict(Counter(r.status.value for r in records)),
    }

    def tables(width: int | None) -> RenderableType:
        head = [Text.assemble(("NATS", "bold"), f"       {data['nats']}")]
        if data["dashboard"]:
            head.append(Text.assemble(("dashboard", "bold"), f"  {data['dashboard']}"))
        metrics = info.metrics_url or info.metrics_error or "off (ACTORFLOW_METRICS_PORT=0)"
        head.append(Text.assemble(("metrics", "bold"), f"    {metrics}"))
        return Group(
            *head,
            show.ray_nodes_table(nodes, width),
            show.streams_table(streams, width),
            show.pools_table(pools, width),
            show.status_counts(records),
        )

    emit(out, output, data, tables, wide=wide)


# --- definitions ----------------------------------------------------------------------------
PathOption = Annotated[
    Path,
    typer.Option("--file", "-f", exists=True, help="A YAML file, or a folder of them."),
]


@app.command()
def apply(
    file: PathOption,
    source: cli_convert.FromOption = None,
    image_map: cli_convert.ImageMapOption = None,
) -> None:
    """Register the definitions of a YAML file or folder — native, Argo or Fission (those
    converted on the way)."""
    convert = cli_convert.options(source, image_map)
    load_path(file, convert=convert)  # validate before connecting: a bad file fails fast
    with _client() as client:
        _apply(client, file, convert)


app.command("convert")(cli_convert.convert)
functions_app.command("init")(cli_convert.functions_init)


def _apply(client: Client, file: Path, convert: ConvertOptions | None = None) -> None:
    known: list[Function | Workflow | RuntimeEnv | Connection] = [
        *client.functions(),
        *client.workflows(),
        *client.runtime_envs(),
        *(client.connections() if client.api_url is None else []),  # not through the API
    ]
    existed = {(d.kind, d.metadata.name, d.metadata.version) for d in known}
    out.print(show.applied_table(client.apply(file, convert=convert), existed))


@workflows_app.command("list")
def workflows_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Every registered workflow version."""
    with _client() as client:
        items = client.workflows()
    emit(out, output, items, lambda width: show.workflows_table(items, width), wide=wide)


@functions_app.command("list")
def functions_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Every registered function version: replicas (ready/desired, min-max), pending and
    in-flight tasks, environment and level, resources, and whether its pool serves."""
    with _client() as client:
        functions, pools = client.functions(), client.pools()
    data = {"functions": functions, "pools": pools}
    emit(out, output, data, lambda width: show.functions_table(functions, pools, width), wide=wide)


def _check_ref(value: str) -> str:
    name, _, version = value.partition("@")
    if not name or not version:
        raise typer.BadParameter(f"{value!r} is not NAME@VERSION")
    return value


RefArg = Annotated[str, typer.Argument(help="NAME@VERSION", callback=_check_ref)]


@functions_app.command("delete")
def functions_delete(ref: RefArg) -> None:
    """Delete one function version (refused while a registered workflow uses it)."""
    with _client() as client:
        client.delete("Function", ref)
    out.print(f"deleted function {ref}")


@workflows_app.command("delete")
def workflows_delete(ref: RefArg) -> None:
    """Delete one workflow version (refused while another workflow or a trigger names it;
    runs already started finish as they began)."""
    with _client() as client:
        client.delete("Workflow", ref)
    out.print(f"deleted workflow {ref}")


@templates_app.command("list")
def templates_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Every registered template version."""
    with _client() as client:
        items = client.templates()
    emit(out, output, items, lambda width: show.templates_table(items, width), wide=wide)


@templates_app.command("delete")
def templates_delete(ref: RefArg) -> None:
    """Delete one template version (refused while a workflow or template uses it)."""
    with _client() as client:
        client.delete("Template", ref)
    out.print(f"deleted template {ref}")


@connections_app.command("list")
def connections_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Every registered connection version: its URL and where its password is read from."""
    with _client() as client:
        items = client.connections()
    emit(out, output, items, lambda width: show.connections_table(items, width), wide=wide)


@connections_app.command("delete")
def connections_delete(ref: RefArg) -> None:
    """Delete one connection version (refused while a workflow's SQL step uses it)."""
    with _client() as client:
        client.delete("Connection", ref)
    out.print(f"deleted connection {ref}")


@envs_app.command("list")
def envs_list(output: OutputOption = Format.table, wide: WideOption = False) -> None:
    """Every registered runtime environment version with its resource level."""
    with _client() as client:
        envs = client.runtime_envs()
    dumped = [e.model_dump(mode="json", by_alias=True) for e in envs]
    emit(out, output, envs, lambda width: show.runtime_envs_table(dumped, width), wide=wide)


@envs_app.command("delete")
def envs_delete(ref: RefArg) -> None:
    """Delete one runtime environment version (refused while a function uses it)."""
    with _client() as client:
        client.delete("RuntimeEnv", ref)
    out.print(f"deleted runtime env {ref}")


# --- runs -----------------------------------------------------------------------------------
def _check_inputs(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if "=" not in value or not value.partition("=")[0]:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE")
    return values


def _check_json(value: str | None) -> str | None:
    if value is not None:
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise typer.BadParameter("must be a JSON object")
    return value


def parse_inputs(pairs: list[str] | None, inputs_json: str | None = None) -> dict[str, Any]:
    """``--inputs-json`` first, then each ``--input k=v`` (the value as JSON when it parses,
    else as a string: ``n=3`` gives 3, ``name=Ada`` gives "Ada")."""
    inputs: dict[str, Any] = json.loads(inputs_json) if inputs_json else {}
    for pair in pairs or []:
        key, _, raw = pair.partition("=")
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="The workflow to run.")],
    *,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            callback=_check_inputs,
            metavar="KEY=VALUE",
            help="An input; VALUE is read as JSON when it parses, else as a string.",
        ),
    ] = None,
    inputs_json: Annotated[
        str | None,
        typer.Option("--inputs-json", callback=_check_json, help="All inputs as a JSON object."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", exists=True, help="Apply this YAML file or folder first."),
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Default: latest.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Watch the run until it stops.")] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Seconds to wait (with --wait).")
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            "-p",
            min=0,
            max=9,
            help="0-9, 9 most urgent: where its tasks wait in a busy pool (default: the "
            "workflow's).",
        ),
    ] = None,
    break_before: Annotated[
        list[str] | None,
        typer.Option("--break-before", metavar="NODE", help="Stop PAUSED before NODE runs."),
    ] = None,
) -> None:
    """Start a run; prints its id, or with --wait its progress and outputs."""
    inputs = parse_inputs(input_, inputs_json)
    if file:
        load_path(file)  # validate before connecting: a bad file fails fast
    settings = Settings()
    with _client() as client:
        if file:
            _apply(client, file)
        handle = client.run(
            name, inputs, version=version, priority=priority, break_before=break_before or ()
        )
        if not wait:
            out.print(handle.run_id, highlight=False)
            if client.api_url is None and not (
                settings.ray_address or wiring.read_state(settings).get("ray")
            ):
                err.print(
                    "note: no cluster is up, so the run stops with this command and resumes "
                    "when a client next connects; use --wait or `actorflow up`",
                    style="yellow",
                )
            return
        record = _watch(client, handle, timeout)
    if record.status is not RunStatus.SUCCEEDED:
        raise RunFailedError(record.run_id, record.status.value, record.node, record.error)
    out.print_json(json.dumps(record.outputs, default=str))


def _watch(client: Client, handle: Run, timeout: float | None) -> RunRecord:
    """A live table of the run's nodes (on stderr) until the run stops; where stderr is not
    a terminal, the final table only."""
    deadline = None if timeout is None else time.monotonic() + timeout
    title = f"run {handle.run_id}"
    table = show.nodes_table([], title)
    live = Live(table, console=err, refresh_per_second=8) if err.is_terminal else None
    with live or contextlib.nullcontext():
        while True:
            record: RunRecord | None = None
            with contextlib.suppress(NotFoundError):
                record = handle.status()
                nodes = handle.nodes()
                children = _children(client, nodes)
                table = show.nodes_table(nodes, f"{title}  {record.status}", children)
                if live:
                    live.update(table)
            if record is not None and record.status.finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeoutError(
                    f"run {handle.run_id} still running after {timeout}s (it goes on)"
                )
            time.sleep(_POLL)
    if live is None:
        err.print(table)
    return record


@runs_app.command("list")
def runs_list(
    *,
    status_: Annotated[
        RunStatus | None, typer.Option("--status", "-s", case_sensitive=False)
    ] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    key: Annotated[
        str | None, typer.Option("--key", "-k", help="Only runs of this concurrency key.")
    ] = None,
    output: OutputOption = Format.table,
    wide: WideOption = False,
) -> None:
    """Runs, newest first."""
    with _client() as client:
        records = client.runs(status_, workflow, key)[:limit]
    emit(out, output, records, lambda width: show.runs_table(records, width), wide=wide)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    output: OutputOption = Format.table,
    wide: WideOption = False,
    graph: Annotated[
        bool, typer.Option("--graph", help="The DAG: each node's status, attempts, duration.")
    ] = False,
) -> None:
    """A run's record and nodes: attempts, timings, errors and tracebacks (json / yaml:
    the whole run view, inputs, outputs and log lines included)."""
    with _client() as client:
        handle = client.get_run(run_id)
        if graph or output is not Format.table:
            view = handle.view()
            emit(out, output, view, lambda _width: graph_tree(view), wide=wide)
            return
        record, nodes = handle.status(), handle.nodes()
        children = _children(client, nodes)
    emit(
        out,
        output,
        record,
        lambda width: show.run_detail(record, nodes, children, width),
        wide=wide,
    )


@runs_app.command("watch")
def runs_watch(run_id: Annotated[str, typer.Argument(help="The run id.")]) -> None:
    """The DAG of `runs show --graph`, kept live until the run ends: exit 0 when it
    SUCCEEDED, 1 otherwise (Ctrl-C stops watching; the run goes on)."""
    with _client() as client:
        handle = client.get_run(run_id)
        view = handle.view(logs=False)
        live = (
            Live(graph_tree(view), console=out, refresh_per_second=4) if out.is_terminal else None
        )
        try:
            with live or contextlib.nullcontext():
                while not view.record.status.finished:
                    time.sleep(_POLL)
                    view = handle.view(logs=False)
                    if live:
                        live.update(graph_tree(view))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    if live is None:
        out.print(graph_tree(view))
    if view.record.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(1)


@runs_app.command("report")
def runs_report(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="The HTML file to write.")
    ] = Path("run.html"),
) -> None:
    """One self-contained HTML page (it needs no network): the DAG with statuses, a
    timeline of every attempt, each node's inputs, output, error, guidance and log lines."""
    with _client() as client:
        view = client.get_run(run_id).view()
    output.write_text(render_report(view, generated_at=datetime.now(UTC)), encoding="utf-8")
    out.print(f"wrote {output}", highlight=False)


_CHILD_LEVELS = 4  # sub-workflow levels folded into a table; deeper: `runs show CHILD`


def _children(client: Client, nodes: list[NodeInfo]) -> dict[str, list[NodeInfo]]:
    """The nodes of each child run the nodes started, and of theirs, a few levels down."""
    out: dict[str, list[NodeInfo]] = {}
    level = [n.child_run_id for n in nodes if n.child_run_id]
    for _ in range(_CHILD_LEVELS):
        found: list[str] = []
        for child in level:
            with contextlib.suppress(NotFoundError):  # not started yet
                out[child] = client.get_run(child).nodes()
                found += [n.child_run_id for n in out[child] if n.child_run_id]
        level = found
    return out


RunIdArg = Annotated[str, typer.Argument(help="The run id.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Recorded with the request.")]


@app.command()
def logs(
    run_id: RunIdArg,
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="Only this node's output.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line, with every tag.")
    ] = False,
) -> None:
    """What a run's steps wrote to stdout / stderr and logging, one line each:
    time, node[#attempt], stream or level, text."""
    with _client() as client:
        handle = client.get_run(run_id)
        if not follow:
            _print_log_lines(handle.logs(node), as_json)
            return
        # Closed here, while the client is still open: a generator left to the garbage
        # collector would clean up after the client's loop had stopped.
        with contextlib.closing(handle.follow_logs(node)) as following:
            try:
                _print_log_lines(following, as_json)
            except KeyboardInterrupt:
                raise typer.Exit(130) from None  # Ctrl-C while following: stop quietly


def _print_log_lines(lines: Iterable[LogLine], as_json: bool) -> None:
    for line in lines:
        if as_json:
            out.print(line.model_dump_json(), markup=False, highlight=False, soft_wrap=True)
        else:
            out.print(show.log_line(line), highlight=False, soft_wrap=True)


def _control(run_id: str, action: ControlAction, **options: Any) -> None:
    with _client() as client:
        client.control(run_id, action, **options)
        record = client.get_run(run_id).status()
    out.print(f"{action}: {run_id} is {record.status.value}", highlight=False)


@runs_app.command("pause")
def runs_pause(run_id: RunIdArg, reason: ReasonOption = "") -> None:
    """No new node starts; running nodes finish; then the run is PAUSED."""
    _control(run_id, "pause", reason=reason)


@runs_app.command("resume")
def runs_resume(
    run_id: RunIdArg,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Run every node again, not only failed ones.")
    ] = False,
    reason: ReasonOption = "",
) -> None:
    """Go on from the failed node(s) of an INTERRUPTED or PAUSED run."""
    _control(run_id, "resume", from_start=from_start, reason=reason)


@runs_app.command("cancel")
def runs_cancel(
    run_id: RunIdArg,
    reason: ReasonOption = "",
    compensate: Annotated[
        bool,
        typer.Option(
            "--compensate", help="Let running steps finish, undo the completed ones: COMPENSATED."
        ),
    ] = False,
) -> None:
    """Stop now: INTERRUPTED (cancelled), still resumable."""
    _control(run_id, "cancel", reason=reason, compensate=compensate)


@runs_app.command("terminate")
def runs_terminate(run_id: RunIdArg, reason: ReasonOption = "") -> None:
    """Stop for good: TERMINATED, not resumable."""
    _control(run_id, "terminate", reason=reason)


@runs_app.command("retry")
def runs_retry(
    run_id: RunIdArg,
    node: Annotated[str, typer.Option("--node", "-n", help="The failed node to run again.")],
    reason: ReasonOption = "",
) -> None:
    """Run one failed node again (fresh retry budget) and go on from there."""
    _control(run_id, "retry", node=node, reason=reason)


def _json_value(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}") from None


@runs_app.command("approve")
def runs_approve(
    run_id: RunIdArg,
    node: Annotated[str, typer.Option("--node", "-n", help="The approval node.")],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="The approval's input, as JSON.")
    ] = None,
    reason: ReasonOption = "",
) -> None:
    """Approve a waiting approval node; the input must match the node's schema."""
    _control(run_id, "approve", node=node, input=_json_value(data), reason=reason)


@app.command()
def signal(
    name: Annotated[str, typer.Argument(help="The signal a wait node names.")],
    key: Annotated[str, typer.Argument(help="The correlation key of the wait(s) to end.")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="The payload, as JSON.")] = None,
) -> None:
    """Publish a signal on af.signal.NAME.KEY: ends the waits registered for it."""
    payload = _json_value(data)
    with _client() as client:
        client.signal(name, key, payload)
    out.print(f"signalled {name} {key}", highlight=False)


# --- entry point ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    try:
        # Standalone mode: typer prints usage errors itself and exits 2.
        app(args=argv, prog_name="actorflow")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("aborted", style="red")
        return 130
    except Exception as exc:
        _report(exc)
        return 1
    return 0


def _report(exc: Exception) -> None:
    if _Options.debug:
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    # A definition error lists every issue, one a line; anything else is one line.
    first, *rest = (str(exc) or type(exc).__name__).splitlines() or [""]
    if not isinstance(exc, ActorflowError):
        first = f"{type(exc).__name__}: {first}"
    err.print(f"error: {first}", style="red", markup=False, highlight=False, soft_wrap=True)
    for line in rest:
        err.print(f"  {line}", style="red", markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
