"""Rich renderings for the `actorflow` command: tables of runs, nodes, definitions, pools.

Pure functions from data to renderables; the CLI decides where they are printed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from actorflow._tables import Cell, Column, fitted
from actorflow._views import AttemptInfo, NodeInfo
from actorflow.actors.controller.results import Applied
from actorflow.actors.functions.pools import PoolStatus
from actorflow.definitions.events import LogLine, NodeStatus, RunRecord, RunStatus
from actorflow.definitions.models import Connection, Function, StepTemplate, Workflow

_STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.INTERRUPTED: "red",
    RunStatus.TERMINATED: "red",
    RunStatus.COMPENSATING: "magenta",
    RunStatus.COMPENSATED: "magenta",
    RunStatus.RUNNING: "cyan",
    RunStatus.WAITING: "yellow",
    RunStatus.PAUSED: "yellow",
    RunStatus.PENDING: "yellow",
    NodeStatus.FAILED: "red",
    NodeStatus.SCHEDULED: "yellow",
}


def status_text(status: str) -> Text:
    return Text(str(status), style=_STATUS_STYLE.get(status, ""))  # type: ignore[call-overload]


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.2f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def when(value: datetime | None, *, short: bool = False) -> str:
    """Local time; `short` (what fits a narrow table) drops the year."""
    form = "%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S"
    return value.astimezone().strftime(form) if value else "-"


def run_duration(record: RunRecord) -> float | None:
    start = record.started_at or record.created_at
    end = record.finished_at or (None if not record.status.finished else record.updated_at)
    return (end - start).total_seconds() if end else None


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


# --- runs ---------------------------------------------------------------------------------
def runs_table(records: Iterable[RunRecord], width: int | None = None) -> Table:
    """`runs list`: `width` None shows every column whole (``--wide``); else the table fits
    in `width` cells: short dates, ids cut in the middle, the priority only with ``--wide``."""
    records = list(records)
    nested = any(r.parent_run_id for r in records)
    keyed = any(r.concurrency for r in records)
    short = width is not None
    columns = [
        Column("run", give="middle"),
        Column("workflow", give="end"),
        Column("status"),
        Column("priority", wide=True, justify="right"),  # 80 columns: no room
        Column("progress"),
        Column("created"),
        Column("duration", justify="right"),
        *([Column("key", give="end")] if keyed else []),
        *([Column("parent", give="middle")] if nested else []),
    ]
    rows: list[list[Cell]] = []
    for r in records:
        p = r.progress
        progress = f"{p.succeeded}/{p.total}" + (f" ({p.failed} failed)" if p.failed else "")
        rows.append(
            [
                r.run_id,
                f"{r.workflow}@{r.version}",
                status_text(r.status),
                str(r.priority),
                progress,
                when(r.created_at, short=short),
                seconds(run_duration(r)),
                *([queue_cell(r)] if keyed else []),
                *([r.parent_run_id or ""] if nested else []),
            ]
        )
    return fitted(columns, rows, width=width)


def queue_cell(record: RunRecord) -> str:
    """The run's concurrency key, and how many runs are ahead while it waits its turn."""
    if record.concurrency is None:
        return ""
    if record.queue_ahead is None:
        return record.concurrency.key
    return f"{record.concurrency.key} ({record.queue_ahead} ahead)"


def waiting_for(record: RunRecord) -> str | None:
    """Why a PENDING run has not started: its turn under its concurrency key."""
    ref = record.concurrency
    if ref is None or record.queue_ahead is None:
        return None
    runs = "run" if ref.limit == 1 else "runs"
    return (
        f"waiting for concurrency key {ref.key!r} (group {ref.group}, {ref.limit} {runs} "
        f"at a time): {record.queue_ahead} ahead"
    )


def nodes_table(
    nodes: Iterable[NodeInfo],
    title: str | None = None,
    children: Mapping[str, list[NodeInfo]] | None = None,
    width: int | None = None,
) -> Table:
    """One row per node, a template group's nodes indented under the group's row (which
    shows how the group ended), and a sub-workflow node's child run folded under it when
    `children` (child run id → its nodes) has it; a skipped node says why."""
    columns = [
        Column("node", give="end"),
        Column("status"),
        Column("attempt", justify="right"),
        Column("duration", justify="right"),
        Column("replica", give="middle"),
        Column("detail", give="wrap"),
    ]
    rows: list[list[Cell]] = []
    _node_rows(rows, list(nodes), children or {}, 0)
    return fitted(columns, rows, width=width, title=title)


def _node_rows(
    rows: list[list[Cell]],
    nodes: list[NodeInfo],
    children: Mapping[str, list[NodeInfo]],
    indent: int,
) -> None:
    for n, depth, group in grouped(nodes):
        detail = f"[{n.error.code}] {n.error.message}" if n.error else n.note
        if n.child_run_id:
            detail = f"child {n.child_run_id}" + (f" — {detail}" if detail else "")
        if n.compensation is not None:
            detail = (detail + " — " if detail else "") + _undo(n.compensation)
        name = n.key.rpartition(".")[2] if depth else n.key
        label = "  " * (indent + depth) + (f"{name} (template)" if group else name)
        rows.append(
            [
                label,
                status_text(n.status),
                str(n.attempt or "-") if n.kind != "value" else "-",
                seconds(n.duration),
                n.replica or "-",
                detail,
            ]
        )
        if n.child_run_id and n.child_run_id in children:
            _node_rows(rows, children[n.child_run_id], children, indent + depth + 1)


def _undo(undo: AttemptInfo) -> str:
    if undo.status is NodeStatus.SUCCEEDED:
        return "compensated"
    if undo.status is NodeStatus.FAILED and undo.error is not None:
        return f"compensation failed: [{undo.error.code}] {undo.error.message}"
    return f"compensation {undo.status.value.lower()} (try {undo.attempt})"


def grouped(nodes: list[NodeInfo]) -> list[tuple[NodeInfo, int, bool]]:
    """Rows in display order: (node, depth, is a template group). A group's row — its
    exit value node, which ends as the group does — stands where its entry value node
    (``<group>.inputs``) was, and its nodes follow, one level deeper."""
    by_id = {n.node: n for n in nodes if n.index is None}
    groups = {
        g
        for n in nodes
        if n.kind == "value" and n.node.endswith(".inputs")
        for g in [n.node.removesuffix(".inputs")]
        if g in by_id
    }
    out: list[tuple[NodeInfo, int, bool]] = []
    for n in nodes:
        if n.node in groups:
            continue
        if n.node.endswith(".inputs") and n.node.removesuffix(".inputs") in groups:
            group = n.node.removesuffix(".inputs")
            out.append((by_id[group], group.count("."), True))
            continue
        out.append((n, n.node.count("."), False))
    return out


def run_detail(
    record: RunRecord,
    nodes: list[NodeInfo],
    children: Mapping[str, list[NodeInfo]] | None = None,
    width: int | None = None,
) -> RenderableType:
    """`runs show`: the record, the nodes (child runs folded under their nodes), then
    every failed node's error and traceback."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", record.run_id)
    head.add_row("workflow", f"{record.workflow}@{record.version}")
    if record.parent_run_id:
        head.add_row("parent", record.parent_run_id)
    head.add_row("status", status_text(record.status))
    head.add_row("priority", str(record.priority))
    if record.concurrency is not None:
        ref = record.concurrency
        head.add_row("concurrency", f"key {ref.key!r}, group {ref.group}, limit {ref.limit}")
    why = waiting_for(record)
    if why:
        head.add_row("waiting", Text(why, style="yellow"))
    head.add_row("created", when(record.created_at))
    head.add_row("started", when(record.started_at))
    head.add_row("finished", when(record.finished_at))
    head.add_row("duration", seconds(run_duration(record)))
    p = record.progress
    head.add_row("progress", f"{p.succeeded}/{p.total} succeeded, {p.failed} failed")
    for step, report in p.steps.items():
        head.add_row(f"  {step}", f"{report.percent:.0f}% {report.message}")
    if record.outputs:
        head.add_row("outputs", Text(as_json(record.outputs)))
    if record.reason:
        head.add_row("reason", record.reason.value)
    if record.error:
        head.add_row("error", Text(f"{record.node}: [{record.error.code}] {record.error.message}"))
    if record.guidance:
        head.add_row("guidance", Text(record.guidance, style="bold yellow"))
    if record.wake_at:
        head.add_row("wakes at", when(record.wake_at))
    for failure in record.hook_failures:
        head.add_row("hook failed", Text(failure, style="red"))
    parts: list[RenderableType] = [head, nodes_table(nodes, "nodes", children, width)]
    if any(n.attempts for n in nodes):
        parts.append(executions_table(nodes, width))
    for n in nodes:
        failures = [(a.attempt, a.error) for a in n.history] + [(n.attempt, n.error)]
        for number, err in failures:
            if err is None:
                continue
            parts.append(Text(f"\n{n.key} (attempt {number}): [{err.code}] {err.message}"))
            if err.traceback:
                parts.append(Text(err.traceback.rstrip(), style="dim"))
    return Group(*parts)


def executions_table(nodes: Iterable[NodeInfo], width: int | None = None) -> Table:
    """Every attempt of every node: where it ran and what it cost. CPU is the handler
    thread's CPU time; memory the replica process's peak RSS while the attempt ran (the
    Ray node and GPUs only with ``--wide``)."""
    columns = [
        Column("node", give="end"),
        Column("attempt", justify="right"),
        Column("status"),
        Column("replica", give="middle"),
        Column("ray node", wide=True),
        Column("duration", justify="right"),
        Column("cpu", justify="right"),
        Column("peak mem", justify="right"),
        Column("gpus", wide=True),
    ]
    rows: list[list[Cell]] = []
    for n in nodes:
        if n.kind == "value":
            continue  # computed in the run, never executed
        for a in n.attempts:
            rows.append(
                [
                    n.key,
                    str(a.attempt),
                    status_text(a.status),
                    a.replica or "-",
                    a.ray_node[:12] or "-",
                    seconds(a.duration),
                    seconds(a.cpu_seconds),
                    "-" if a.peak_rss_bytes is None else _bytes(a.peak_rss_bytes),
                    ",".join(a.gpu_ids) or "-",
                ]
            )
    return fitted(columns, rows, width=width, title="executions")


def log_line(line: LogLine) -> Text:
    """`actorflow logs`: time, node[#attempt], stream (or level for logging), text."""
    stamp = line.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
    label = line.level or line.stream
    style = {"stderr": "yellow", "ERROR": "red", "CRITICAL": "red", "WARNING": "yellow"}
    text = Text(f"{stamp} ", style="dim")
    text.append(f"{line.key}#{line.attempt} ", style="cyan")
    text.append(f"{label:<7} ", style=style.get(label, "dim"))
    text.append(line.text)
    return text


def status_counts(records: Iterable[RunRecord]) -> Table:
    counts = Counter(r.status for r in records)
    rows: list[list[Cell]] = [
        [status_text(status), str(counts[status])] for status in RunStatus if counts[status]
    ]
    return fitted(
        [Column("status"), Column("runs", justify="right")], rows, width=None, title="runs"
    )


# --- definitions and pools ------------------------------------------------------------------
def applied_table(results: list[Applied], existed: Collection[tuple[str, str, str]]) -> Table:
    table = Table("kind", "name", "version", "result")
    for r in results:
        result = ("changed" if r.key in existed else "created") if r.changed else "unchanged"
        style = "dim" if result == "unchanged" else "green"
        if r.error:
            result, style = f"{result}; pool failed: {r.error}", "red"
        table.add_row(r.kind, r.name, r.version, Text(result, style=style))
    return table


def workflows_table(workflows: Iterable[Workflow], width: int | None = None) -> Table:
    return _graphs_table("workflow", workflows, width)


def templates_table(templates: Iterable[StepTemplate], width: int | None = None) -> Table:
    return _graphs_table("template", templates, width)


def _graphs_table(
    kind: str, definitions: Iterable[Workflow | StepTemplate], width: int | None
) -> Table:
    columns = [
        Column(kind, give="end"),
        Column("version"),
        Column("nodes", justify="right"),
        Column("inputs", give="wrap"),
        Column("description", give="wrap"),
    ]
    rows: list[list[Cell]] = [
        [
            d.metadata.name,
            d.metadata.version,
            str(len(d.spec.nodes)),
            ", ".join(d.spec.inputs) or "-",
            d.metadata.description,
        ]
        for d in sorted(definitions, key=lambda d: (d.metadata.name, d.metadata.version))
    ]
    return fitted(columns, rows, width=width)


def connections_table(connections: Iterable[Connection], width: int | None = None) -> Table:
    """The URL (it holds no password) and where the password is read from, never a value."""
    columns = [
        Column("connection", give="end"),
        Column("version"),
        Column("url", give="wrap"),
        Column("password from", give="wrap"),
        Column("description", give="wrap"),
    ]
    rows: list[list[Cell]] = []
    for c in sorted(connections, key=lambda c: (c.metadata.name, c.metadata.version)):
        secret = c.spec.password
        where = (
            "-"
            if secret is None
            else f"env {secret.from_env}"
            if secret.from_env
            else (f"file {secret.from_file}")
        )
        rows.append(
            [c.metadata.name, c.metadata.version, c.spec.url, where, c.metadata.description]
        )
    return fitted(columns, rows, width=width)


def functions_table(
    functions: Iterable[Function], pools: list[PoolStatus], width: int | None = None
) -> Table:
    """One row per version: replicas as ready/desired and the autoscaler's bounds, the
    queue behind them, and why a pool cannot serve when it cannot (environment and
    resources only with ``--wide``)."""
    by_ref = {p.ref: p for p in pools}
    columns = [
        Column("function", give="end"),
        Column("version"),
        Column("replicas"),
        Column("min-max"),
        Column("pending"),
        Column("in flight", justify="right"),
        Column("env / level", wide=True),
        Column("resources", wide=True),
        Column("status", give="wrap"),
    ]
    rows: list[list[Cell]] = []
    for fn in sorted(functions, key=lambda f: (f.metadata.name, f.metadata.version)):
        pool = by_ref.get(fn.ref)
        bounds = f"{fn.spec.replicas.min}-{fn.spec.replicas.max}"
        if pool is None:
            rows.append(
                [
                    fn.metadata.name,
                    fn.metadata.version,
                    "-",
                    bounds,
                    "-",
                    "-",
                    "-",
                    "-",
                    Text("no pool", style="red"),
                ]
            )
            continue
        replicas = f"{pool.replicas}/{pool.desired}"
        if pool.starting:
            replicas += f" (+{pool.starting} starting)"
        if pool.draining:
            replicas += f" ({pool.draining} draining)"
        env = fn.spec.runtime_env or "-"
        if pool.level:
            env += f" / {pool.level}"
        status = (
            Text(f"failed: {pool.error}", style="red")
            if pool.error
            else Text("serving" if pool.replicas else "idle", style="green")
        )
        rows.append(
            [
                fn.metadata.name,
                fn.metadata.version,
                replicas,
                bounds,
                pending_text(pool),
                str(pool.in_flight),
                env,
                _resources(fn.spec.resources.model_dump(exclude_defaults=True)),
                status,
            ]
        )
    return fitted(columns, rows, width=width)


def pending_text(pool: PoolStatus) -> str:
    """Tasks waiting; by priority (most urgent first) when more than one has some."""
    by = pool.pending_by_priority
    if len(by) < 2:
        return str(pool.pending)
    return f"{pool.pending} (" + " ".join(f"p{p}:{by[p]}" for p in sorted(by, reverse=True)) + ")"


def pools_table(pools: list[PoolStatus], width: int | None = None) -> Table:
    columns = [
        Column("pool", give="end"),
        Column("replicas"),
        Column("pending"),
        Column("in flight", justify="right"),
        Column("nodes", justify="right"),
    ]
    rows: list[list[Cell]] = [
        [
            p.ref,
            f"{p.replicas}/{p.desired} ({p.min}-{p.max})",
            pending_text(p),
            str(p.in_flight),
            str(len(p.nodes)),
        ]
        for p in sorted(pools, key=lambda p: (p.function, p.version))
    ]
    return fitted(columns, rows, width=width, title="function pools")


def runtime_envs_table(envs: list[dict[str, Any]], width: int | None = None) -> Table:
    columns = [
        Column("runtime env", give="end"),
        Column("version"),
        Column("pip", give="wrap"),
        Column("env vars", give="wrap"),
        Column("level", give="end"),
        Column("bundles", give="wrap"),
        Column("strategy", wide=True),
    ]
    rows: list[list[Cell]] = []
    for env in sorted(envs, key=lambda e: (e["metadata"]["name"], e["metadata"]["version"])):
        spec = env.get("spec", {})
        level = spec.get("level") or {}
        bundles = "; ".join(
            f"{b.get('count', 1)}x {_resources({k: v for k, v in b.items() if k != 'count'})}"
            for b in level.get("bundles", [])
        )
        rows.append(
            [
                env["metadata"]["name"],
                env["metadata"]["version"],
                ", ".join(spec.get("pip", [])) or "-",
                ", ".join(spec.get("envVars", {})) or "-",
                level.get("name", "-"),
                bundles or "-",
                level.get("strategy", "-") if level else "-",
            ]
        )
    return fitted(columns, rows, width=width)


def streams_table(stats: list[dict[str, Any]], width: int | None = None) -> Table:
    columns = [
        Column("stream", give="end"),
        Column("messages", justify="right"),
        Column("bytes", justify="right"),
        Column("consumers", justify="right"),
        Column("replicas", justify="right"),
        Column("leader", give="end"),
    ]
    rows: list[list[Cell]] = [
        [
            s["stream"],
            str(s["messages"]),
            _bytes(s["bytes"]),
            str(s["consumers"]),
            str(s.get("replicas", 1)),
            s.get("leader") or "-",
        ]
        for s in stats
    ]
    return fitted(columns, rows, width=width, title="JetStream")


def ray_nodes_table(nodes: list[dict[str, Any]], width: int | None = None) -> Table:
    columns = [
        Column("ray node", give="end"),
        Column("address", give="end"),
        Column("alive"),
        Column("CPU", justify="right"),
        Column("GPU", justify="right"),
        Column("memory", justify="right"),
        Column("other", give="wrap"),
    ]
    rows: list[list[Cell]] = []
    for n in nodes:
        res = dict(n.get("Resources", {}))
        other = {
            k: v
            for k, v in res.items()
            if k not in ("CPU", "GPU", "memory", "object_store_memory")
            and not k.startswith("node:")
            and not k.startswith("bundle_group")
        }
        rows.append(
            [
                str(n.get("NodeID", ""))[:12],
                str(n.get("NodeManagerAddress", "")),
                Text("yes", "green") if n.get("Alive") else Text("no", "red"),
                f"{res.get('CPU', 0):g}",
                f"{res.get('GPU', 0):g}",
                _bytes(int(res.get("memory", 0))),
                _resources(other),
            ]
        )
    return fitted(columns, rows, width=width, title="Ray")


def _resources(res: dict[str, Any]) -> str:
    flat: dict[str, Any] = {k: v for k, v in res.items() if k != "custom"}
    flat.update(res.get("custom") or {})
    return (
        ", ".join(f"{k}={_bytes(v) if k == 'memory' else format(v, 'g')}" for k, v in flat.items())
        or "-"
    )


def _bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}TiB"
