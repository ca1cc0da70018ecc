"""`actorflow runs report RUN -o run.html`: one self-contained page about one run.

The page must open anywhere — attached to a ticket, on a machine with no network — so it
is a single file with no script, font, image or stylesheet from outside: inline CSS, the
DAG and the timeline as inline SVG, in-page anchors (``#…``) as the only links. Every
piece of text that came from a run (ids, inputs, outputs, errors, log lines) goes through
`_e`; no other path puts text into the page.

Built from a `RunView` alone (a pure function): the DAG where the workflow layout puts
each node, a Gantt bar for every attempt that started, and per node its tasks' inputs,
output, error with traceback, guidance and log lines; child runs nested the same way.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from actorflow._display import run_duration, seconds
from actorflow._run_view import NodeView, RunView, TaskView
from actorflow._views import AttemptInfo

__all__ = ["render_report"]

#: The DAG's geometry, in SVG pixels.
NODE_H = 58
GAP_X = 36
GAP_Y = 46
PAD = 16
#: The Gantt's drawing width (the labels sit left of it).
GANTT_W = 760
GANTT_LABEL = 180
GANTT_ROW = 22

_CSS = """
:root { --ok:#1a7f37; --bad:#cf222e; --run:#0969da; --wait:#9a6700; --dim:#6e7781; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; } h4 { font-size: 14px; margin: 12px 0 4px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left;
  vertical-align: top; } th { color: var(--dim); font-weight: 600; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; margin: 4px 0;
  white-space: pre-wrap; word-break: break-word; }
.status { font-weight: 600; }
.s-SUCCEEDED, .s-COMPENSATED { color: var(--ok); }
.s-FAILED, .s-INTERRUPTED, .s-TERMINATED, .s-RETRYING { color: var(--bad); }
.s-RUNNING, .s-SCHEDULED, .s-REMEDIATING, .s-COMPENSATING { color: var(--run); }
.s-WAITING, .s-PAUSED, .s-PENDING { color: var(--wait); } .s-SKIPPED { color: var(--dim); }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
svg .box { fill: #fff; stroke-width: 2; }
svg .node.s-SUCCEEDED .box { stroke: var(--ok); fill: #dafbe1; }
svg .node.s-FAILED .box, svg .node.s-RETRYING .box { stroke: var(--bad); fill: #ffebe9; }
svg .node.s-RUNNING .box, svg .node.s-SCHEDULED .box { stroke: var(--run); fill: #ddf4ff; }
svg .node.s-WAITING .box, svg .node.s-REMEDIATING .box { stroke: var(--wait); fill: #fff8c5; }
svg .node.s-PENDING .box, svg .node.s-SKIPPED .box { stroke: var(--dim); fill: #f6f8fa; }
svg .edge { fill: none; stroke: #8c959f; stroke-width: 1.5; }
svg .id { font-weight: 600; } svg .code { fill: var(--bad); }
svg .bar { stroke: #fff; } svg .bar.s-SUCCEEDED { fill: var(--ok); }
svg .bar.s-FAILED, svg .bar.s-RETRYING { fill: var(--bad); }
svg .bar.s-RUNNING, svg .bar.s-SCHEDULED { fill: var(--run); }
svg .bar.s-WAITING, svg .bar.s-REMEDIATING { fill: var(--wait); } svg .bar { fill: var(--dim); }
svg .axis { stroke: #d0d7de; }
section.node { border-top: 1px solid #d0d7de; padding: 12px 0; }
section.node:target { background: #fff8c5; }
.error { color: var(--bad); } .guidance { background: #fff8c5; padding: 6px 8px; }
.child { border-left: 3px solid #d0d7de; padding-left: 14px; margin: 8px 0; }
.muted { color: var(--dim); }
"""


def render_report(view: RunView, *, generated_at: datetime | None = None) -> str:
    """The page, as one string of HTML."""
    record = view.record
    stamp = f" at {_when(generated_at)}" if generated_at else ""
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>run {_e(record.run_id)}</title><style>{_CSS}</style></head><body>",
            f"<h1>run {_e(record.run_id)} {_status(record.status.value)}</h1>",
            _body(view),
            f'<p class="muted">Written by actorflow runs report{_e(stamp)}.</p>',
            "</body></html>\n",
        ]
    )


def _body(view: RunView) -> str:
    return "".join(
        [
            _summary(view),
            "<h2>Graph</h2>",
            _dag(view),
            "<h2>Timeline</h2>",
            _gantt(view),
            "<h2>Nodes</h2>",
            *(_node(view, node) for node in view.nodes),
        ]
    )


def _summary(view: RunView) -> str:
    r = view.record
    p = r.progress
    rows: list[tuple[str, str]] = [
        ("workflow", _e(f"{r.workflow}@{r.version}")),
        ("status", _status(r.status.value)),
        ("created", _e(_when(r.created_at))),
        ("started", _e(_when(r.started_at))),
        ("finished", _e(_when(r.finished_at))),
        ("duration", _e(seconds(run_duration(r)))),
        ("progress", _e(f"{p.succeeded}/{p.total} succeeded, {p.failed} failed")),
    ]
    if r.parent_run_id:
        rows.append(("parent", _e(r.parent_run_id)))
    if r.error is not None:
        rows.append(
            (
                "error",
                f'<span class="error">{_e(f"{r.node}: [{r.error.code}] {r.error.message}")}</span>',
            )
        )
    if r.guidance:
        rows.append(("guidance", f'<div class="guidance">{_e(r.guidance)}</div>'))
    if r.outputs:
        rows.append(("outputs", _pre(r.outputs)))
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="summary">{cells}</table>'


# --- the DAG ----------------------------------------------------------------------------------
def _dag(view: RunView) -> str:
    if not view.nodes:
        return '<p class="muted">no nodes</p>'
    longest = max(len(n.id) for n in view.nodes)
    node_w = max(150, 8 * longest + 24)
    min_x = min(n.x for n in view.nodes)
    for edge in view.edges:
        min_x = min([min_x, *(x for x, _ in edge.points)])
    max_x = max([n.x for n in view.nodes] + [x for e in view.edges for x, _ in e.points])

    def left(x: float) -> float:
        return PAD + (x - min_x) * (node_w + GAP_X)

    def top(layer: float) -> float:
        return PAD + layer * (NODE_H + GAP_Y)

    width = left(max_x) + node_w + PAD
    height = top(view.layers - 1) + NODE_H + PAD
    parts = [
        f'<svg class="dag" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
    ]
    for edge in view.edges:
        points = [(left(x) + node_w / 2, top(y)) for x, y in edge.points]
        route = [(points[0][0], points[0][1] + NODE_H)]
        route += [(x, y + NODE_H / 2) for x, y in points[1:-1]]
        route.append(points[-1])
        d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(route))
        parts.append(
            f'<path class="edge" data-source="{_e(edge.source)}" '
            f'data-target="{_e(edge.target)}" d="{d}"/>'
        )
    for node in view.nodes:
        x, y = left(node.x), top(node.layer)
        anchor = _anchor(view, node.id)
        attempts = node.attempts
        second = f"{node.status.value}"
        if attempts:
            second += f" · {attempts} attempt{'s' if attempts != 1 else ''}"
        if node.duration is not None:
            second += f" · {seconds(node.duration)}"
        error = node.error
        third = f"[{error.code}]" if error is not None else (node.ref or node.kind)
        parts.append(
            f'<a href="#{_e(anchor)}"><g class="node s-{_e(node.status.value)}" '
            f'data-node="{_e(node.id)}" transform="translate({x:.1f},{y:.1f})">'
            f"<title>{_e(node.id)}: {_e(node.status.value)}</title>"
            f'<rect class="box" width="{node_w}" height="{NODE_H}" rx="6"/>'
            f'<text class="id" x="10" y="18">{_e(node.id)}</text>'
            f'<text x="10" y="35">{_e(second)}</text>'
            f'<text class="{"code" if error else "muted"}" x="10" y="51">{_e(third)}</text>'
            "</g></a>"
        )
    parts.append("</svg>")
    return "".join(parts)


# --- the Gantt --------------------------------------------------------------------------------
def _gantt(view: RunView) -> str:
    bars: list[tuple[str, AttemptInfo]] = [
        (task.key, a)
        for node in view.nodes
        for task in node.tasks
        for a in task.attempts
        if a.started_at is not None
    ]
    if not bars:
        return '<p class="muted">no attempt has started</p>'
    r = view.record
    starts = [a.started_at for _, a in bars if a.started_at]
    ends = [a.finished_at for _, a in bars if a.finished_at]
    t0 = min(starts)
    t1 = max([*ends, *starts, *([r.finished_at] if r.finished_at else [])])
    span = max((t1 - t0).total_seconds(), 1e-3)
    keys = list(dict.fromkeys(key for key, _ in bars))
    height = GANTT_ROW * len(keys) + 24
    width = GANTT_LABEL + GANTT_W + PAD
    parts = [
        f'<svg class="gantt" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
    ]
    for row, key in enumerate(keys):
        y = row * GANTT_ROW
        parts.append(f'<text x="0" y="{y + 15}">{_e(key)}</text>')
        parts.append(
            f'<line class="axis" x1="{GANTT_LABEL}" x2="{GANTT_LABEL + GANTT_W}" '
            f'y1="{y + GANTT_ROW - 1}" y2="{y + GANTT_ROW - 1}"/>'
        )
    for key, a in bars:
        assert a.started_at is not None
        end = a.finished_at or t1
        x = GANTT_LABEL + (a.started_at - t0).total_seconds() / span * GANTT_W
        w = max(2.0, (end - a.started_at).total_seconds() / span * GANTT_W)
        y = keys.index(key) * GANTT_ROW + 3
        tip = f"{key} attempt {a.attempt}: {a.status.value}, {seconds(a.duration)}"
        if a.error is not None:
            tip += f" [{a.error.code}]"
        parts.append(
            f'<rect class="bar s-{_e(a.status.value)}" data-node="{_e(key)}" '
            f'data-attempt="{a.attempt}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
            f'height="{GANTT_ROW - 6}"><title>{_e(tip)}</title></rect>'
        )
    axis_y = len(keys) * GANTT_ROW + 16
    parts.append(f'<text x="{GANTT_LABEL}" y="{axis_y}">0s</text>')
    parts.append(
        f'<text x="{GANTT_LABEL + GANTT_W}" y="{axis_y}" text-anchor="end">'
        f"{_e(seconds(span))}</text></svg>"
    )
    return "".join(parts)


# --- per node ---------------------------------------------------------------------------------
def _node(view: RunView, node: NodeView) -> str:
    what = node.ref or ""
    head = (
        f"<h3>{_e(node.id)} {_status(node.status.value)} "
        f'<span class="muted">{_e(node.kind)} {_e(what)}</span></h3>'
    )
    several = len(node.tasks) > 1
    body = "".join(_task(task, several) for task in node.tasks)
    return f'<section class="node" id="{_e(_anchor(view, node.id))}">{head}{body}</section>'


def _task(task: TaskView, several: bool) -> str:
    parts = [f"<h4>{_e(task.key)} {_status(task.status.value)}</h4>"] if several else []
    if task.note:
        parts.append(f'<p class="muted">{_e(task.note)}</p>')
    if task.attempts:
        parts.append(_attempts(task.attempts))
    if task.inputs is not None:
        parts.append(f"<h4>inputs</h4>{_pre(task.inputs)}")
    if task.output is not None:
        parts.append(f"<h4>output</h4>{_pre(task.output)}")
    if task.error is not None:
        err = task.error
        parts.append(f'<h4>error</h4><p class="error">[{_e(err.code)}] {_e(err.message)}</p>')
        if err.traceback:
            parts.append(f'<pre class="traceback">{_e(err.traceback)}</pre>')
    if task.guidance:
        parts.append(f'<h4>guidance</h4><div class="guidance">{_e(task.guidance)}</div>')
    if task.logs:
        rows = "".join(
            f"<tr><td>{_e(_when(line.at))}</td><td>#{line.attempt}</td>"
            f"<td>{_e(line.level or line.stream)}</td><td>{_e(line.text)}</td></tr>"
            for line in task.logs
        )
        parts.append(f'<h4>log</h4><table class="log">{rows}</table>')
    if task.child is not None:
        child = task.child
        parts.append(
            f'<div class="child"><h4>child run {_e(child.run_id)} '
            f"{_status(child.record.status.value)}</h4>{_body(child)}</div>"
        )
    elif task.child_run_id:
        parts.append(f'<p class="muted">child run {_e(task.child_run_id)}</p>')
    return "".join(parts)


def _attempts(attempts: list[AttemptInfo]) -> str:
    head = "<tr><th>attempt</th><th>status</th><th>started</th><th>duration</th>"
    head += "<th>replica</th><th>error</th></tr>"
    rows = "".join(
        f"<tr><td>{a.attempt}</td><td>{_status(a.status.value)}</td>"
        f"<td>{_e(_when(a.started_at))}</td><td>{_e(seconds(a.duration))}</td>"
        f"<td>{_e(a.replica or '-')}</td>"
        f'<td class="error">{_e(_error_line(a))}</td></tr>'
        for a in attempts
    )
    return f'<table class="attempts">{head}{rows}</table>'


def _error_line(a: AttemptInfo) -> str:
    return f"[{a.error.code}] {a.error.message}" if a.error else ""


# --- escaping and formats ---------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _status(status: str) -> str:
    return f'<span class="status s-{_e(status)}">{_e(status)}</span>'


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    return f"<pre>{_e(text)}</pre>"


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + value.astimezone().strftime(
        " %Z"
    )


def _anchor(view: RunView, node_id: str) -> str:
    """Unique across nested child runs: the run id is part of it."""
    return f"node-{view.run_id}-{node_id}"
