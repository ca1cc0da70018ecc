"""What the fault-injection modules (``test_faults_*.py``) share: a private engine, the
workflows it runs, and the ways to observe it (ledger, history, records, named actors).

The tests run a private engine (own nats-server on a fixed port, own controller, run actors
and replicas in the Ray namespace ``faults``) on the session's Ray, so killing its processes
leaves the session's engine alone; each fault module gets a fresh one (the ``engine``
fixture in conftest.py). Every step appends its idempotency key to a ledger file when it
starts, so a step executed twice shows up as two ledger lines.

What the design promises, and what is asserted:

- every run completes with the right outputs (zero lost runs);
- every (node, attempt) has exactly one ``TaskCompleted`` and one scheduling decision in
  the history, and one SUCCEEDED attempt in ``run.nodes()`` (zero duplicate completions);
- a step that completed is never executed again by recovery; a step interrupted
  mid-execution runs again (at least once) with the same idempotency key;
- a stale run-actor incarnation cannot append decisions once a newer one has claimed the run.

Each test prints one JSON line of figures (`report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import nats
import pytest
import ray
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, StreamInfo
from nats.js.errors import NotFoundError as NatsNotFoundError

import actorflow
from actorflow.actors.config import TracingConfig
from actorflow.actors.run.history import replay
from actorflow.actors.store.streams import read_stream
from actorflow.cluster import nats_process
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev

NS = "faults"
STEPS_DIR = Path(__file__).parent / "steps"
_T = TypeVar("_T")


# --- definitions ------------------------------------------------------------------------------
def fn(name: str, handler: str, **spec: object) -> actorflow.Function:
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": name, "version": "1"},
            "spec": {
                "handler": f"af_fault_steps:{handler}",
                "codeDir": str(STEPS_DIR),
                "resources": {"cpus": 0.1},
                **spec,
            },
        }
    )


FUNCTIONS = [
    fn("fstep", "ledger_step", replicas=2, maxConcurrency=16),
    fn("fslow", "slow_step", replicas=2, maxConcurrency=1),  # test_replica_killed_mid_step
    fn("fheld", "held_step", replicas=1, maxConcurrency=4),  # test_stale_incarnation_is_fenced
    fn("fsolo", "ledger_step", replicas=1, maxConcurrency=4),  # test_pool_replaces_a_killed_…
]

# A diamond-ish DAG of ten ledger steps: node -> (needs, what it adds).
DAG: dict[str, tuple[list[str], int]] = {
    "n0": ([], 0),
    "n1": (["n0"], 1),
    "n2": (["n0"], 2),
    "n3": (["n0"], 3),
    "n4": (["n1", "n2"], 4),
    "n5": (["n2", "n3"], 5),
    "n6": (["n4", "n5"], 6),
    "n7": (["n6"], 7),
    "n8": (["n6"], 8),
    "n9": (["n7", "n8"], 9),
}


def _dag_workflow() -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("fdag", version="1")
    ledger = b.input("ledger", type="string")
    x = b.input("x", type="integer")
    delay = b.input("delay", type="number")
    handles: dict[str, actorflow.NodeHandle] = {}
    for node, (needs, add) in DAG.items():
        values = [handles[n].output for n in needs] if needs else [x]
        handles[node] = b.node(
            node,
            "fstep@1",
            inputs={"path": ledger, "values": values, "add": add, "delay": delay},
        )
    b.output("result", handles["n9"].output)
    return b.build()


def _dag_expected(x: int) -> dict[str, Any]:
    out: dict[str, int] = {}
    for node, (needs, add) in DAG.items():
        out[node] = (sum(out[n] for n in needs) if needs else x) + add
    return {"result": out["n9"]}


def _slow_workflow() -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("fslowrun", version="1")
    ledger = b.input("ledger", type="string")
    seconds = b.input("seconds", type="number")
    s = b.node("s", "fslow@1", inputs={"path": ledger, "seconds": seconds})
    t = b.node(
        "t", "fstep@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0}, needs=[s]
    )
    b.output("s", s.output)
    b.output("t", t.output)
    return b.build()


def _fence_workflow() -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("ffence", version="1")
    ledger = b.input("ledger", type="string")
    gate = b.input("gate", type="string")
    w0 = b.node("w0", "fstep@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0})
    w1 = b.node("w1", "fheld@1", inputs={"path": ledger, "gate": gate}, needs=[w0])
    w2 = b.node("w2", "fheld@1", inputs={"path": ledger, "gate": gate}, needs=[w1])
    w3 = b.node(
        "w3", "fstep@1", inputs={"path": ledger, "values": [], "add": 3, "delay": 0}, needs=[w2]
    )
    b.output("w0", w0.output)
    b.output("w1", w1.output)
    b.output("w2", w2.output)
    b.output("w3", w3.output)
    return b.build()


def _solo_workflow() -> actorflow.Workflow:
    b = actorflow.WorkflowBuilder("fsolorun", version="1")
    ledger = b.input("ledger", type="string")
    one = b.node("one", "fsolo@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0})
    b.output("one", one.output)
    return b.build()


# --- the private engine -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Engine:
    home: Path
    port: int
    settings: Settings
    client: actorflow.Client
    nats_pid: int
    _own: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: A JetStream cluster's servers (empty for one server) and each one's pid by name.
    members: list[nats_process.ClusterMember] = field(default_factory=list)
    member_pids: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Every server's URL, comma-separated (what the engine's settings hold)."""
        if self.members:
            return ",".join(f"nats://127.0.0.1:{m.port}" for m in self.members)
        return f"nats://127.0.0.1:{self.port}"

    def kill_member(self, name: str) -> None:
        """SIGKILL one server of the cluster (by pid); the others keep the streams."""
        pid = self.member_pids[name]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not nats_process.alive(pid), 10, f"nats-server {name} to die")

    def start_member(self, name: str) -> None:
        """Restart a killed server on its store dir and ports: it rejoins and catches up."""
        member = next(m for m in self.members if m.name == name)
        proc = nats_process.start_member(
            member, self.members, self.home / "jetstream-cluster", self.home / "run",
            detached=False, log_file=self.home / "run" / f"nats-server-{name}.log",
        )  # fmt: skip
        self.member_pids[name] = proc.pid

    def kill_nats(self) -> None:
        """SIGKILL: no shutdown, no flush — the store dir is all a restart gets."""
        os.kill(self.nats_pid, signal.SIGKILL)
        if self._own is not None:
            self._own.wait(timeout=10)
        wait_for(lambda: not nats_process.alive(self.nats_pid), 10, "nats-server to die")

    def start_nats(self) -> None:
        self.nats_pid, self._own = _start_nats(self.home, self.port)


def _start_nats(home: Path, port: int) -> tuple[int, subprocess.Popen[bytes] | None]:
    """nats-server on `port` with the store under `home`: a restart lands where it was."""
    proc = nats_process.start(home / "jetstream", home / "run", detached=False, port=port)
    assert proc.url.endswith(f":{port}")
    return proc.pid, None


def named(prefix: str = "") -> list[str]:
    """Names of the live named actors of the faults engine starting with `prefix`."""
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == NS and a["name"].startswith(prefix)
    )


def kill_named(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            ray.kill(ray.get_actor(name, namespace=NS), no_restart=True)


def new_client(settings: Settings) -> actorflow.Client:
    c = actorflow.Client(settings, log_to_driver=False)
    c.apply([*FUNCTIONS, _dag_workflow(), _slow_workflow(), _fence_workflow(), _solo_workflow()])
    return c


@contextlib.contextmanager
def private_engine(
    tmp_path_factory: pytest.TempPathFactory,
    tracing: TracingConfig | None = None,
    *,
    nats_servers: int = 1,
) -> Iterator[Engine]:
    """A fresh engine on the session's Ray (which must be up), torn down on exit.

    It is handed out warm: every replica of `FUNCTIONS` started. Ray starts only as many
    worker processes at once as the machine has cores, so on a small machine a test that
    starts an actor of its own (the fencing tests' run actor S) would otherwise queue
    behind the pools' replicas and miss the window its scenario needs.

    `nats_servers` above 1: its NATS is that many nats-servers on loopback as one
    JetStream cluster, every stream and bucket at ``min(nats_servers, 3)`` replicas."""
    assert ray.is_initialized()
    wait_for(lambda: not named(), 30, "the previous faults engine's actors to exit")
    home = tmp_path_factory.mktemp("faults-home")
    members: list[nats_process.ClusterMember] = []
    member_pids: dict[str, int] = {}
    if nats_servers > 1:
        members = nats_process.plan_cluster(nats_servers)
        procs = nats_process.start_cluster(
            home / "jetstream-cluster", home / "run", members, detached=False
        )
        member_pids = {p.name: p.pid for p in procs}
        port, nats_pid, own = members[0].port, procs[0].pid, None
    else:
        port = free_port()
        nats_pid, own = _start_nats(home, port)
    urls = [f"nats://127.0.0.1:{m.port}" for m in members] or [f"nats://127.0.0.1:{port}"]
    settings = Settings(
        home=home,
        nats_url=",".join(urls),
        namespace=NS,
        run_actors=2,
        task_ack_wait=3.0,
        stream_replicas=min(nats_servers, 3),
        metrics_port=free_port(),  # never 9464: another engine on this machine may have it
        tracing=tracing,
    )
    try:
        client = new_client(settings)
    except BaseException:
        for pid in member_pids.values() if members else [nats_pid]:
            nats_process.stop(pid)
        raise
    eng = Engine(home, port, settings, client, nats_pid, own, members, member_pids)
    try:
        wait_for(lambda: _warm(eng.client), 120, "every replica of the faults engine", 0.5)
        yield eng
    finally:
        kill_named(named())
        with contextlib.suppress(Exception):
            eng.client.close()
        for pid in eng.member_pids.values() if eng.members else [eng.nats_pid]:
            nats_process.stop(pid)
        if eng._own is not None:
            eng._own.wait(timeout=10)


def _warm(c: actorflow.Client) -> bool:
    pools = {p.function: p for p in c.pools()}
    return all(
        f.metadata.name in pools
        and pools[f.metadata.name].replicas == f.spec.replicas.min
        and not pools[f.metadata.name].starting
        for f in FUNCTIONS
    )


# --- observation --------------------------------------------------------------------------------
def wait_for(cond: Callable[[], _T], timeout: float, what: str, interval: float = 0.05) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def _first_server(url: str) -> nats.aio.client.Client:
    """A connection to the first server of a comma-separated list that answers (a
    cluster's killed member is skipped)."""
    servers = nats_process.urls(url)
    for server in servers[:-1]:
        with contextlib.suppress(Exception):
            return await nats.connect(server, connect_timeout=2, allow_reconnect=False)
    return await nats.connect(servers[-1], connect_timeout=2, allow_reconnect=False)


def _on_nats(url: str, fn: Callable[[JetStreamContext], Coroutine[Any, Any, _T]]) -> _T:
    """Run `fn` on a fresh connection, on a loop of its own (works across server restarts)."""

    async def main() -> _T:
        nc = await _first_server(url)
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=120)


async def _read_records(js: JetStreamContext) -> dict[str, ev.RunRecord]:
    out: dict[str, ev.RunRecord] = {}
    async for msg in read_stream(
        js, f"KV_{ev.KV_RUNS}", f"$KV.{ev.KV_RUNS}.>", DeliverPolicy.LAST_PER_SUBJECT
    ):
        if msg.headers and msg.headers.get("KV-Operation"):
            continue
        record = ev.decode(ev.RunRecord, msg.data)
        out[record.run_id] = record
    return out


def stream_infos(url: str, streams: list[str]) -> dict[str, StreamInfo]:
    """Each named stream's info (config, state, and on a cluster its leader and peers);
    a stream that does not exist is left out."""

    async def infos(js: JetStreamContext) -> dict[str, StreamInfo]:
        out = {}
        for name in streams:
            with contextlib.suppress(NatsNotFoundError):
                out[name] = await js.stream_info(name)
        return out

    return _on_nats(url, infos)


def records(url: str) -> dict[str, ev.RunRecord]:
    return _on_nats(url, _read_records)


@dataclass(frozen=True)
class Rec:
    """One history event with what `replay` drops: its subject kind and Nats-Msg-Id."""

    event: Any
    decision: bool
    seq: int
    msg_id: str
    stored_at: float


async def _read_history(js: JetStreamContext) -> dict[str, list[Rec]]:
    out: dict[str, list[Rec]] = defaultdict(list)
    async for msg in read_stream(js, ev.STREAM_HISTORY, ev.HISTORY_SUBJECTS):
        run_id = msg.subject.split(".")[2]
        out[run_id].append(
            Rec(
                event=ev.decode_history(msg.data),
                decision=msg.subject.endswith(f".{ev.DECISIONS}"),
                seq=msg.metadata.sequence.stream,
                msg_id=(msg.headers or {}).get(ev.MSG_ID, ""),
                stored_at=msg.metadata.timestamp.timestamp(),
            )
        )
    return dict(out)


def history(url: str) -> dict[str, list[Rec]]:
    return _on_nats(url, _read_history)


@dataclass(frozen=True)
class Note:
    what: str
    key: str
    pid: int
    at: float


def ledger(path: Path) -> list[Note]:
    if not path.exists():
        return []
    notes = []
    for line in path.read_text().splitlines():
        what, key, pid, at = line.split()
        notes.append(Note(what, key, int(pid), float(at)))
    return notes


def starts(path: Path) -> Counter[str]:
    return Counter(n.key for n in ledger(path) if n.what == "start")


def finished(url: str, run_ids: set[str]) -> dict[str, ev.RunRecord]:
    try:
        recs = records(url)
    except Exception:  # the server is restarting: not yet
        return {}
    return {r: recs[r] for r in run_ids if r in recs and recs[r].status.finished}


def wait_finished(url: str, run_ids: set[str], timeout: float) -> dict[str, ev.RunRecord]:
    """The records of the runs that finished within `timeout` (all of them, normally)."""
    deadline = time.monotonic() + timeout
    done: dict[str, ev.RunRecord] = {}
    while time.monotonic() < deadline:
        done = finished(url, run_ids)
        if len(done) == len(run_ids):
            break
        time.sleep(0.2)
    return done


async def _replay_run(js: JetStreamContext, run_id: str) -> list[Any]:
    return [rec.event for rec in await replay(js, run_id)]


def replayed(url: str, run_id: str) -> list[Any]:
    """One run's events, in order, through the engine's own `replay`."""
    return _on_nats(url, lambda js: _replay_run(js, run_id))


def incarnation(rec: Rec) -> str:
    """Decision Msg-Ids are ``<run_id>.d.<last seq>.<incarnation>`` (RunStarted: ``.d.0``)."""
    return rec.msg_id.rsplit(".", 1)[-1]


def audit(
    history: dict[str, list[Rec]],
    expected: dict[str, dict[str, Any]],
    nodes_per_run: int,
) -> dict[str, Any]:
    """Check every run's history against the invariants; returns the figures."""
    completed = duplicate_completions = duplicate_schedules = 0
    stale_decisions = decisions_after_finish = extra_finishes = failed_tasks = 0
    claims = 0
    completed_keys: dict[str, float] = {}
    for run_id, outputs in expected.items():
        events = history.get(run_id, [])
        done: Counter[tuple[str, int | None, int]] = Counter()
        scheduled: Counter[tuple[str, int | None, int]] = Counter()
        finishes = []
        owner: str | None = None
        finished = False
        for rec in events:
            e = rec.event
            if isinstance(e, ev.TaskCompleted):
                done[(e.task.node, e.task.index, e.task.attempt)] += 1
                completed_keys.setdefault(e.task.idempotency_key(run_id), rec.stored_at)
            elif isinstance(e, ev.TaskFailed):
                failed_tasks += 1
            if not rec.decision or isinstance(e, ev.RunStarted):
                continue
            if finished:
                decisions_after_finish += 1
            if isinstance(e, ev.RunClaimed):
                claims += 1
                owner = e.incarnation
                stale_decisions += incarnation(rec) != e.incarnation
            elif owner is None:
                owner = incarnation(rec)  # the first incarnation, before any claim
            elif incarnation(rec) != owner:
                stale_decisions += 1
            if isinstance(e, ev.TasksScheduled):
                scheduled.update((t.node, t.index, t.attempt) for t in e.tasks)
            elif isinstance(e, ev.RunStopped) and e.status.finished:
                finishes.append(e)
                finished = True
        duplicate_completions += sum(c - 1 for c in done.values())
        duplicate_schedules += sum(c - 1 for c in scheduled.values())
        extra_finishes += max(0, len(finishes) - 1)
        if (
            len(finishes) >= 1
            and finishes[0].status is ev.RunStatus.SUCCEEDED
            and finishes[0].outputs == outputs
            and len(done) == nodes_per_run
            and all(attempt == 1 for _, _, attempt in done)
        ):
            completed += 1
    return {
        "completed": completed,
        "duplicate_completions": duplicate_completions,
        "duplicate_schedules": duplicate_schedules,
        "stale_decisions": stale_decisions,
        "decisions_after_finish": decisions_after_finish,
        "extra_finishes": extra_finishes,
        "failed_tasks": failed_tasks,
        "claims": claims,
        "_completed_keys": completed_keys,
    }


class DagAudit(NamedTuple):
    figures: dict[str, Any]  # what every test of many DAG runs reports (see `dag_audit`)
    keys: dict[str, float]  # completed idempotency keys -> when their result was stored
    notes: list[Note]  # the whole ledger
    starts: Counter[str]  # its "start" lines per key


def dag_audit(
    c: actorflow.Client,
    url: str,
    path: Path,
    expected: dict[str, dict[str, Any]],
    done: dict[str, ev.RunRecord],
) -> DagAudit:
    """The history first (the truth), then the ledger at `path`: lost runs, `audit`'s
    figures, the records and `run.nodes()` that are right, and completed steps that never
    ran (``missing_side_effects``)."""
    figures = audit(history(url), expected, len(DAG))
    keys: dict[str, float] = figures.pop("_completed_keys")
    notes = ledger(path)
    started = Counter(n.key for n in notes if n.what == "start")
    common = {
        "runs": len(expected),
        "lost_runs": len(expected) - len(done),
        **figures,
        "succeeded_records": sum(
            r.status is ev.RunStatus.SUCCEEDED and r.outputs == expected[k] for k, r in done.items()
        ),
        "nodes_ok": nodes_ok(c, set(done), len(DAG)),
        "missing_side_effects": sum(started[k] == 0 for k in keys),
    }
    return DagAudit(common, keys, notes, started)


def completed_step_reruns(notes: list[Note], completed: dict[str, float]) -> int:
    """Executions that began after the step's result was already in the history (by
    `dag_audit`'s ledger notes and completion times): the re-runs no fault excuses."""
    return sum(
        1 for n in notes if n.what == "start" and n.key in completed and n.at > completed[n.key]
    )


def nodes_ok(c: actorflow.Client, run_ids: set[str], nodes_per_run: int) -> int:
    """Runs whose `run.nodes()` shows each node once: SUCCEEDED, attempt 1."""
    ok = 0
    for run_id in run_ids:
        nodes = c.get_run(run_id).nodes()
        if len(nodes) == nodes_per_run and all(
            n.status == "SUCCEEDED" and n.attempt == 1 for n in nodes
        ):
            ok += 1
    return ok


def report(figures: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in figures.items() if not k.startswith("_")}))


def run_actor(name: str) -> Any:
    return ray.get_actor(name, namespace=NS)


def active(name: str) -> list[str] | None:
    try:
        return list(ray.get(run_actor(name).active.remote(), timeout=5))
    except Exception:
        return None


def lets_go(name: str, run_id: str) -> bool:
    runs = active(name)
    return runs is not None and run_id not in runs


def pid(actor: Any) -> int:
    return int(ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=30))


def submit_dags(
    c: actorflow.Client,
    ledger: Path,
    xs: range,
    delay: float,
    expected: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Start a DAG run per `x`; `expected` (returned, new if not given) gains their outputs."""
    expected = {} if expected is None else expected
    for x in xs:
        run = c.run("fdag", {"ledger": str(ledger), "x": x, "delay": delay}, version="1")
        expected[run.run_id] = _dag_expected(x)
    return expected


def invariants(figures: dict[str, Any], runs: int, url: str, lost: set[str]) -> None:
    """History first (the truth), then the records; a lost run must be the known bug."""
    assert figures["completed"] == runs
    assert figures["duplicate_completions"] == 0
    assert figures["duplicate_schedules"] == 0
    assert figures["stale_decisions"] == 0
    assert figures["decisions_after_finish"] == 0
    assert figures["extra_finishes"] == 0
    assert figures["failed_tasks"] == 0
    assert figures["lost_runs"] == 0
