"""The web page (``/ui``): one HTML page and one script, no build step, no network beyond
this API. It signs in with a token (kept in the tab's sessionStorage), lists workflows and
runs, draws a run's DAG with live statuses and its logs, controls runs, and edits a
workflow's graph through the graph-edit endpoints (drawn with the server's layout).

Everything user-controlled is put on the page as text (``textContent``), never as markup;
the page's Content-Security-Policy allows only this server's own script."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>actorflow</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
body{font:14px system-ui,sans-serif;margin:0;color:#222} [hidden]{display:none !important}
header{background:#1f2937;color:#fff;padding:8px 16px;display:flex;gap:12px;align-items:center}
main{display:grid;grid-template-columns:340px 1fr;gap:16px;padding:16px}
section{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin-bottom:12px}
h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%} td,th{padding:2px 6px;text-align:left;font-size:13px}
tr.pick{cursor:pointer} tr.pick:hover{background:#f3f4f6}
.SUCCEEDED{fill:#16a34a;color:#16a34a}
.FAILED,.INTERRUPTED,.TERMINATED{fill:#dc2626;color:#dc2626}
.RUNNING,.SCHEDULED{fill:#2563eb;color:#2563eb}
.WAITING,.PAUSED,.PENDING{fill:#d97706;color:#d97706}
.SKIPPED{fill:#9ca3af;color:#9ca3af} .none{fill:#6b7280}
pre{background:#111827;color:#e5e7eb;padding:8px;max-height:240px;overflow:auto;font-size:12px}
#error{color:#b91c1c;min-height:1em} button{margin:2px}
input,select,textarea{margin:2px;font-size:13px}
svg text{font-size:12px;fill:#fff}
</style></head><body>
<header><b>actorflow</b><span id="who"></span></header>
<div id="error" role="alert"></div>
<form id="login"><label>Token
<input id="token" type="password" size="60" autocomplete="off"></label>
<button id="signin" type="submit">Sign in</button></form>
<main id="app" hidden>
<div>
<section><h2>Workflows</h2><table><tbody id="workflows"></tbody></table>
<label>Inputs (JSON) <input id="inputs" value="{}" size="20"></label></section>
<section><h2>Runs</h2><table><tbody id="runs"></tbody></table></section>
</div>
<div>
<section id="runview" hidden><h2>Run <span id="run-id"></span> <span id="run-status"></span></h2>
<button data-action="pause">Pause</button><button data-action="resume">Resume</button>
<button data-action="cancel">Cancel</button>
<select id="retry-node"></select><button data-action="retry">Retry node</button>
<svg id="run-dag" width="100%" height="10"></svg><h2>Logs</h2><pre id="logs"></pre></section>
<section id="graphview" hidden>
<h2>Graph of <span id="graph-name"></span>@<span id="graph-version"></span></h2>
<svg id="graph-dag" width="100%" height="10"></svg>
<form id="add-node">Add node <input id="node-id" placeholder="id" size="8">
<input id="node-function" placeholder="function@version" size="14">
<input id="node-needs" placeholder="needs (a,b)" size="10"><button type="submit">Add</button></form>
<form id="remove-node">Remove node <select id="remove-id"></select>
<button type="submit">Remove</button></form>
<form id="add-edge">Dependency <select id="edge-node"></select>
needs <select id="edge-needs"></select>
<button id="add-edge-btn" type="submit">Add</button>
<button id="remove-edge-btn" type="button">Remove</button></form>
</section>
</div>
</main>
<script src="/ui/app.js"></script>
</body></html>
"""

SCRIPT = r"""'use strict';
const $ = (id) => document.getElementById(id);
const state = {token: sessionStorage.getItem('af-token') || '', run: null, workflow: null};

async function api(method, path, body) {
  const init = {method, headers: {authorization: 'Bearer ' + state.token}};
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch('/api/v1' + path, init);
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const error = (data && data.error) || {message: response.statusText};
    throw new Error(error.message);
  }
  return data;
}

function say(error) { $('error').textContent = error ? String(error.message || error) : ''; }

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function options(select, values) {
  select.replaceChildren(...values.map((v) => {
    const o = document.createElement('option'); o.value = v; o.textContent = v; return o;
  }));
}

const SVG = 'http://www.w3.org/2000/svg';
function draw(svg, layout, statuses) {
  const w = 120, h = 34, gx = 150, gy = 70;
  const min = Math.min(0, ...layout.nodes.map((n) => n.x));
  const px = (n) => 20 + (n.x - min) * gx, py = (n) => 10 + n.y * gy;
  const at = Object.fromEntries(layout.nodes.map((n) => [n.id, n]));
  svg.replaceChildren();
  for (const e of layout.edges) {
    const a = at[e.source], b = at[e.target];
    if (!a || !b) continue;
    const line = document.createElementNS(SVG, 'line');
    line.setAttribute('x1', px(a) + w / 2); line.setAttribute('y1', py(a) + h);
    line.setAttribute('x2', px(b) + w / 2); line.setAttribute('y2', py(b));
    line.setAttribute('stroke', '#9ca3af'); line.setAttribute('stroke-width', '2');
    svg.appendChild(line);
  }
  for (const n of layout.nodes) {
    const g = document.createElementNS(SVG, 'g');
    g.setAttribute('data-node', n.id);
    const status = statuses ? (statuses[n.id] || 'none') : 'none';
    g.setAttribute('data-status', status);
    const rect = document.createElementNS(SVG, 'rect');
    rect.setAttribute('x', px(n)); rect.setAttribute('y', py(n));
    rect.setAttribute('width', w); rect.setAttribute('height', h); rect.setAttribute('rx', 6);
    rect.setAttribute('class', status);
    const label = document.createElementNS(SVG, 'text');
    label.setAttribute('x', px(n) + 8); label.setAttribute('y', py(n) + 21);
    label.textContent = statuses ? n.id + ' ' + status.toLowerCase() : n.id;
    g.append(rect, label);
    svg.appendChild(g);
  }
  const rows = Math.max(1, ...layout.nodes.map((n) => n.y + 1));
  svg.setAttribute('height', 20 + rows * gy);
}

async function loadWorkflows() {
  const listed = await api('GET', '/workflows');
  $('workflows').replaceChildren(...listed.items.map((wf) => {
    const row = document.createElement('tr');
    row.className = 'pick'; row.dataset.workflow = wf.name;
    cell(row, wf.name + '@' + wf.latest).onclick = () => showGraph(wf.name).catch(say);
    cell(row, wf.ownership ? wf.ownership.visibility : '');
    const go = document.createElement('button'); go.textContent = 'Run';
    go.dataset.run = wf.name;
    go.onclick = () => startRun(wf.name).catch(say);
    row.appendChild(document.createElement('td')).appendChild(go);
    return row;
  }));
}

async function loadRuns() {
  const page = await api('GET', '/runs?page_size=50');
  $('runs').replaceChildren(...page.runs.map((r) => {
    const row = document.createElement('tr');
    row.className = 'pick'; row.dataset.run = r.run_id;
    row.onclick = () => { state.run = r.run_id; showRun().catch(say); };
    cell(row, r.run_id); cell(row, r.status, r.status).dataset.status = r.status;
    return row;
  }));
}

async function startRun(name) {
  const inputs = JSON.parse($('inputs').value || '{}');
  const started = await api('POST', '/workflows/' + encodeURIComponent(name) + '/runs', {inputs});
  state.run = started.run_id;
  await loadRuns();
  await showRun();
}

async function showRun() {
  if (!state.run) return;
  const id = encodeURIComponent(state.run);
  const detail = await api('GET', '/runs/' + id);
  const record = detail.record;
  const layout = await api('GET', '/workflows/' + encodeURIComponent(record.workflow) +
                           '/graph?version=' + encodeURIComponent(record.version));
  const statuses = Object.fromEntries(detail.nodes.map((n) => [n.node, n.status]));
  $('runview').hidden = false;
  $('run-id').textContent = record.run_id;
  $('run-status').textContent = record.status;
  $('run-status').className = record.status;
  draw($('run-dag'), layout, statuses);
  options($('retry-node'), detail.nodes.map((n) => n.node));
  const logs = await api('GET', '/runs/' + id + '/logs');
  $('logs').textContent = logs.lines.map((l) => l.key + ' ' + l.text).join('\n');
}

async function control(action) {
  const body = action === 'retry' ? {node: $('retry-node').value} : {};
  await api('POST', '/runs/' + encodeURIComponent(state.run) + '/' + action, body);
  await showRun();
}

async function showGraph(name) {
  state.workflow = name;
  const layout = await api('GET', '/workflows/' + encodeURIComponent(name) + '/graph');
  $('graphview').hidden = false;
  $('graph-name').textContent = name;
  $('graph-version').textContent = layout.version;
  draw($('graph-dag'), layout, null);
  const ids = layout.nodes.map((n) => n.id);
  for (const select of ['remove-id', 'edge-node', 'edge-needs']) options($(select), ids);
}

async function edit(method, path, body) {
  await api(method, '/workflows/' + encodeURIComponent(state.workflow) + path, body);
  await showGraph(state.workflow);
  await loadWorkflows();
}

async function signIn() {
  state.token = $('token').value.trim() || state.token;
  await loadWorkflows();
  sessionStorage.setItem('af-token', state.token);
  $('login').hidden = true; $('app').hidden = false;
  await loadRuns();
  setInterval(() => {
    loadRuns().then(() => (state.run ? showRun() : null)).catch(say);
  }, 1000);
}

$('login').onsubmit = (e) => { e.preventDefault(); say(''); signIn().catch(say); };
for (const b of document.querySelectorAll('button[data-action]')) {
  b.onclick = () => control(b.dataset.action).catch(say);
}
$('add-node').onsubmit = (e) => {
  e.preventDefault();
  const needs = $('node-needs').value.split(',').map((s) => s.trim()).filter(Boolean);
  const node = {id: $('node-id').value.trim(), function: $('node-function').value.trim()};
  if (needs.length) node.needs = needs;
  edit('POST', '/nodes', {node}).catch(say);
};
$('remove-node').onsubmit = (e) => {
  e.preventDefault();
  edit('DELETE', '/nodes/' + encodeURIComponent($('remove-id').value)).catch(say);
};
$('add-edge').onsubmit = (e) => {
  e.preventDefault();
  edit('POST', '/edges', {node: $('edge-node').value, needs: $('edge-needs').value}).catch(say);
};
$('remove-edge-btn').onclick = () => {
  const path = '/edges/' + encodeURIComponent($('edge-node').value) + '/' +
               encodeURIComponent($('edge-needs').value);
  edit('DELETE', path).catch(say);
};
if (state.token) signIn().catch(say);
"""


@router.get("/ui")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": _CSP})


@router.get("/ui/app.js")
async def script() -> Response:
    return Response(SCRIPT, media_type="text/javascript")
