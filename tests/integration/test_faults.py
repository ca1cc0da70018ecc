"""Fault injection: processes are really killed, frozen and restarted; nothing may be lost.

The tests run a private engine (own nats-server on a fixed port, own controller, run actors
and replicas in the Ray namespace ``faults``) on the session's Ray, so killing its processes
leaves the session's engine alone. Every step appends its idempotency key to a ledger file
when it starts, so a step executed twice shows up as two ledger lines.

What the design promises, and what is asserted:

- every run completes with the right outputs (zero lost runs);
- every (node, attempt) has exactly one ``TaskCompleted`` and one scheduling decision in
  the history, and one SUCCEEDED attempt in ``run.nodes()`` (zero duplicate completions);
- a step that completed is never executed again by recovery; a step interrupted
  mid-execution runs again (at least once) with the same idempotency key;
- a stale run-actor incarnation cannot append decisions once a newer one has claimed the run.

Each test prints one JSON line of figures.
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
from typing import Any, TypeVar

import nats
import pytest
import ray
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

import actorflow
from actorflow.actors.run.actor import RunActor
from actorflow.actors.run.history import replay
from actorflow.actors.store.streams import read_stream
from actorflow.cluster import nats_process
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev

NS = "faults"
STEPS_DIR = Path(__file__).parent / "steps"
_T = TypeVar("_T")


# --- definitions ------------------------------------------------------------------------------
def _fn(name: str, handler: str, **spec: object) -> actorflow.Function:
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
    _fn("fstep", "ledger_step", replicas=2, maxConcurrency=16),
    _fn("fslow", "slow_step", replicas=2, maxConcurrency=1),  # test_replica_killed_mid_step
    _fn("fwait", "slow_step", replicas=1, maxConcurrency=4),  # test_stale_incarnation_is_fenced
    _fn("fsolo", "ledger_step", replicas=1, maxConcurrency=4),  # test_pool_replaces_a_killed_…
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
    seconds = b.input("seconds", type="number")
    w0 = b.node("w0", "fstep@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0})
    w1 = b.node("w1", "fwait@1", inputs={"path": ledger, "seconds": seconds}, needs=[w0])
    w2 = b.node("w2", "fwait@1", inputs={"path": ledger, "seconds": seconds}, needs=[w1])
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
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Engine:
    home: Path
    port: int
    settings: Settings
    client: actorflow.Client
    nats_pid: int
    _own: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def kill_nats(self) -> None:
        """SIGKILL: no shutdown, no flush — the store dir is all a restart gets."""
        os.kill(self.nats_pid, signal.SIGKILL)
        if self._own is not None:
            self._own.wait(timeout=10)
        _wait_for(lambda: not nats_process.alive(self.nats_pid), 10, "nats-server to die")

    def start_nats(self) -> None:
        self.nats_pid, self._own = _start_nats(self.home, self.port)


def _start_nats(home: Path, port: int) -> tuple[int, subprocess.Popen[bytes] | None]:
    """nats-server on `port` with the store under `home`: a restart lands where it was."""
    proc = nats_process.start(home / "jetstream", home / "run", detached=False, port=port)
    assert proc.url.endswith(f":{port}")
    return proc.pid, None


def _named(prefix: str = "") -> list[str]:
    """Names of the live named actors of the faults engine starting with `prefix`."""
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == NS and a["name"].startswith(prefix)
    )


def _kill_named(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            ray.kill(ray.get_actor(name, namespace=NS), no_restart=True)


def _new_client(settings: Settings) -> actorflow.Client:
    c = actorflow.Client(settings, log_to_driver=False)
    c.apply([*FUNCTIONS, _dag_workflow(), _slow_workflow(), _fence_workflow(), _solo_workflow()])
    return c


@pytest.fixture(scope="module")
def engine(client: actorflow.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Depends on the session `client` so the session's Ray (8 CPUs) is up first."""
    assert ray.is_initialized()
    home = tmp_path_factory.mktemp("faults-home")
    port = _free_port()
    pid, own = _start_nats(home, port)
    settings = Settings(
        home=home,
        nats_url=f"nats://127.0.0.1:{port}",
        namespace=NS,
        run_actors=2,
        task_ack_wait=3.0,
    )
    eng = Engine(home, port, settings, _new_client(settings), pid, own)
    try:
        yield eng
    finally:
        _kill_named(_named())
        with contextlib.suppress(Exception):
            eng.client.close()
        nats_process.stop(eng.nats_pid)
        if eng._own is not None:
            eng._own.wait(timeout=10)


# --- observation --------------------------------------------------------------------------------
def _wait_for(cond: Callable[[], _T], timeout: float, what: str, interval: float = 0.05) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _on_nats(url: str, fn: Callable[[JetStreamContext], Coroutine[Any, Any, _T]]) -> _T:
    """Run `fn` on a fresh connection, on a loop of its own (works across server restarts)."""

    async def main() -> _T:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
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


def _records(url: str) -> dict[str, ev.RunRecord]:
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


def _history(url: str) -> dict[str, list[Rec]]:
    return _on_nats(url, _read_history)


@dataclass(frozen=True)
class Note:
    what: str
    key: str
    pid: int
    at: float


def _ledger(path: Path) -> list[Note]:
    if not path.exists():
        return []
    notes = []
    for line in path.read_text().splitlines():
        what, key, pid, at = line.split()
        notes.append(Note(what, key, int(pid), float(at)))
    return notes


def _starts(path: Path) -> Counter[str]:
    return Counter(n.key for n in _ledger(path) if n.what == "start")


def _finished(url: str, run_ids: set[str]) -> dict[str, ev.RunRecord]:
    try:
        records = _records(url)
    except Exception:  # the server is restarting: not yet
        return {}
    return {r: records[r] for r in run_ids if r in records and records[r].status.finished}


def _wait_finished(url: str, run_ids: set[str], timeout: float) -> dict[str, ev.RunRecord]:
    """The records of the runs that finished within `timeout` (all of them, normally)."""
    deadline = time.monotonic() + timeout
    done: dict[str, ev.RunRecord] = {}
    while time.monotonic() < deadline:
        done = _finished(url, run_ids)
        if len(done) == len(run_ids):
            break
        time.sleep(0.2)
    return done


async def _replay_run(js: JetStreamContext, run_id: str) -> list[Any]:
    return [rec.event for rec in await replay(js, run_id)]


def _replay(url: str, run_id: str) -> list[Any]:
    """One run's events, in order, through the engine's own `replay`."""
    return _on_nats(url, lambda js: _replay_run(js, run_id))


def _incarnation(rec: Rec) -> str:
    """Decision Msg-Ids are ``<run_id>.d.<last seq>.<incarnation>`` (RunStarted: ``.d.0``)."""
    return rec.msg_id.rsplit(".", 1)[-1]


def _audit(
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
                stale_decisions += _incarnation(rec) != e.incarnation
            elif owner is None:
                owner = _incarnation(rec)  # the first incarnation, before any claim
            elif _incarnation(rec) != owner:
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


def _nodes_ok(c: actorflow.Client, run_ids: set[str], nodes_per_run: int) -> int:
    """Runs whose `run.nodes()` shows each node once: SUCCEEDED, attempt 1."""
    ok = 0
    for run_id in run_ids:
        nodes = c.get_run(run_id).nodes()
        if len(nodes) == nodes_per_run and all(
            n.status == "SUCCEEDED" and n.attempt == 1 for n in nodes
        ):
            ok += 1
    return ok


def _report(figures: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in figures.items() if not k.startswith("_")}))


def _run_actor(name: str) -> Any:
    return ray.get_actor(name, namespace=NS)


def _active(name: str) -> list[str] | None:
    try:
        return list(ray.get(_run_actor(name).active.remote(), timeout=5))
    except Exception:
        return None


def _lets_go(name: str, run_id: str) -> bool:
    active = _active(name)
    return active is not None and run_id not in active


def _pid(actor: Any) -> int:
    return int(ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=30))


def _submit_dags(
    c: actorflow.Client, ledger: Path, xs: range, delay: float, expected: dict[str, Any]
) -> None:
    for x in xs:
        run = c.run("fdag", {"ledger": str(ledger), "x": x, "delay": delay}, version="1")
        expected[run.run_id] = _dag_expected(x)


def _invariants(figures: dict[str, Any], runs: int, url: str, lost: set[str]) -> None:
    """History first (the truth), then the records; a lost run must be the known bug."""
    assert figures["completed"] == runs
    assert figures["duplicate_completions"] == 0
    assert figures["duplicate_schedules"] == 0
    assert figures["stale_decisions"] == 0
    assert figures["decisions_after_finish"] == 0
    assert figures["extra_finishes"] == 0
    assert figures["failed_tasks"] == 0
    assert figures["lost_runs"] == 0


# --- the tests ----------------------------------------------------------------------------------
def test_nats_process_start_honours_port(tmp_path: Path) -> None:
    port = _free_port()
    proc = nats_process.start(tmp_path / "js", tmp_path / "run", detached=False, port=port)
    try:
        assert proc.url == f"nats://127.0.0.1:{port}"
    finally:
        nats_process.stop(proc.pid)


@pytest.mark.timeout(90)
def test_replica_killed_mid_step(engine: Engine, tmp_path: Path) -> None:
    """SIGKILL (ray.kill) the replica running a 2 s step: the task is redelivered to the
    pool's other replica after the ack wait and runs again, same key, attempt 1."""
    c = engine.client
    ledger = tmp_path / "ledger"
    t0 = time.monotonic()
    run = c.run("fslowrun", {"ledger": str(ledger), "seconds": 2.0}, version="1")
    key = f"{run.run_id}.s.1"

    def runner() -> str | None:
        for e in _replay(engine.url, run.run_id):
            if isinstance(e, ev.TaskStarted) and e.task.node == "s":
                return str(e.replica)
        return None

    victim = _wait_for(runner, 30, "step s to start on a replica")
    _wait_for(lambda: _starts(ledger)[key] == 1, 10, "the step's body to start")
    killed_at = time.time()
    ray.kill(ray.get_actor(victim, namespace=NS), no_restart=True)
    outputs = run.result(timeout=45)
    seconds = time.monotonic() - t0

    notes = [n for n in _ledger(ledger) if n.key == key]
    starts = [n for n in notes if n.what == "start"]
    events = _replay(engine.url, run.run_id)
    completions = [e for e in events if isinstance(e, ev.TaskCompleted) and e.task.node == "s"]
    nodes = {n.key: n for n in run.nodes()}
    figures = {
        "test": "kill_replica_mid_step",
        "runs": 1,
        "kills": 1,
        "completed": int(outputs == {"s": "slept:s", "t": 1}),
        "executions_of_killed_step": len(starts),
        "finished_executions": sum(n.what == "done" for n in notes),
        "completions_in_history": len(completions),
        "attempt": nodes["s"].attempt,
        "redelivered_after_s": round(starts[-1].at - killed_at, 2) if len(starts) > 1 else None,
        "replicas_alive_after": len(_named("af-fn-fslow-1-")),
        "seconds": round(seconds, 1),
    }
    _report(figures)
    assert outputs == {"s": "slept:s", "t": 1}
    assert len(starts) == 2  # interrupted once, run again: at least once, here exactly twice
    assert len({n.pid for n in starts}) == 2  # the second execution ran on the other replica
    assert figures["finished_executions"] == 1
    assert len(completions) == 1
    assert nodes["s"].status == "SUCCEEDED"
    assert nodes["s"].attempt == 1
    assert nodes["s"].replica != victim
    assert nodes["t"].status == "SUCCEEDED"
    assert nodes["t"].attempt == 1
    assert not any(isinstance(e, ev.TaskFailed) for e in events)


@pytest.mark.timeout(60)
def test_pool_replaces_a_killed_replica(engine: Engine, tmp_path: Path) -> None:
    c = engine.client
    ledger = tmp_path / "ledger"
    warm = c.run("fsolorun", {"ledger": str(ledger)}, version="1")
    assert warm.result(timeout=30) == {"one": 1}
    [victim] = _named("af-fn-fsolo-1-")
    ray.kill(ray.get_actor(victim, namespace=NS), no_restart=True)
    _wait_for(lambda: victim not in _named("af-fn-fsolo-"), 10, "the replica to die")
    run = c.run("fsolorun", {"ledger": str(ledger)}, version="1")
    assert run.result(timeout=30) == {"one": 1}


@dataclass
class FenceScenario:
    run_id: str
    s_inc: str
    result_s: dict[str, Any]
    result_b: dict[str, Any]
    record_before: ev.RunRecord  # when B, the live incarnation, returned
    record_after: ev.RunRecord  # when S, the zombie, returned
    frozen: float
    seconds: float


def _get(ref: Any, timeout: float, what: str) -> Any:
    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def _fence_scenario(engine: Engine, ledger: Path) -> FenceScenario:
    """Three incarnations drive one run in turn: A (the controller's choice); S, a run actor
    of ours that claims the run by replay while A waits for w1; then, while S is frozen with
    SIGSTOP during w2, B — another run actor of the engine — claims it and finishes it. Then
    S is let go on (SIGCONT)."""
    url = engine.url
    t0 = time.monotonic()
    run = engine.client.run("ffence", {"ledger": str(ledger), "seconds": 2.5}, version="1")
    rid = run.run_id
    a_name = _wait_for(
        lambda: next((n for n in _named("af-run-actor-") if rid in (_active(n) or [])), None),
        10,
        "the controller's driver of the run",
    )
    _wait_for(lambda: _starts(ledger)[f"{rid}.w1.1"] == 1, 20, "w1 to start")

    remote: Any = ray.remote(RunActor)
    zombie = remote.options(
        name="af-test-zombie", namespace=NS, num_cpus=0, max_concurrency=1000
    ).remote(engine.settings.engine(url), "af-test-zombie")
    zombie_pid = 0
    try:
        _get(zombie.start.remote(), 60, "our run actor S to start")
        zombie_pid = _pid(zombie)
        ref_s = zombie.drive.remote(rid)  # recovery mode: replay, claim, carry on
        s_inc = _wait_for(
            lambda: next(
                (e.incarnation for e in _replay(url, rid) if isinstance(e, ev.RunClaimed)), None
            ),
            20,
            "S to claim the run",
        )
        # S claimed while w1 still ran, so A was idle: its next append meets the fence.
        assert f"{rid}.w1.1" not in {n.key for n in _ledger(ledger) if n.what == "done"}
        _wait_for(lambda: _lets_go(a_name, rid), 20, "A to let go of the run")
        _wait_for(lambda: _starts(ledger)[f"{rid}.w2.1"] == 1, 20, "w2 to start", 0.005)

        os.kill(zombie_pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            b_name = next(n for n in _named("af-run-actor-") if n != a_name)
            result_b = _get(_run_actor(b_name).drive.remote(rid), 40, "B to drive the run")
            record_before = _records(url)[rid]
        finally:
            os.kill(zombie_pid, signal.SIGCONT)
        frozen = time.monotonic() - stopped_at
        result_s = _get(ref_s, 30, "S, unfrozen, to return")
        record_after = _records(url)[rid]
    finally:
        if zombie_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(zombie_pid, signal.SIGCONT)
        ray.kill(zombie, no_restart=True)
    return FenceScenario(
        rid,
        s_inc,
        result_s,
        result_b,
        record_before,
        record_after,
        frozen,
        time.monotonic() - t0,
    )


_FENCE_OUTPUTS = {"w0": 1, "w1": "slept:w1", "w2": "slept:w2", "w3": 3}


@pytest.mark.timeout(90)
def test_stale_incarnation_is_fenced(engine: Engine, tmp_path: Path) -> None:
    """Unfrozen, the zombie S finds its append refused (FENCED); no decision of A after S's
    claim, or of S after B's, is in the history; nothing ran twice."""
    ledger = tmp_path / "ledger"
    sc = _fence_scenario(engine, ledger)
    rid = sc.run_id
    history = _history(engine.url)
    audit = _audit(history, {rid: _FENCE_OUTPUTS}, 4)
    claims = [r for r in history[rid] if isinstance(r.event, ev.RunClaimed)]
    b_inc = claims[-1].event.incarnation
    after_b = [r for r in history[rid] if r.decision and r.seq > claims[-1].seq]
    starts = _starts(ledger)
    keys = [f"{rid}.{n}.1" for n in _FENCE_OUTPUTS]
    figures = {
        "test": "fence_stale_incarnation",
        "runs": 1,
        "incarnations": 3,
        "claims": audit["claims"],
        "stale_result": sc.result_s["status"],
        "new_result": sc.result_b["status"],
        "frozen_s": round(sc.frozen, 1),
        "stale_decisions": audit["stale_decisions"],
        "decisions_after_new_claim_by_others": sum(_incarnation(r) != b_inc for r in after_b),
        "duplicate_schedules": audit["duplicate_schedules"],
        "duplicate_completions": audit["duplicate_completions"],
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "record_when_new_one_returned": sc.record_before.status.value,
        "record_after_stale_one_returned": sc.record_after.status.value,
        "seconds": round(sc.seconds, 1),
    }
    _report(figures)
    assert sc.result_b["status"] == "SUCCEEDED"
    assert sc.result_s["status"] == "FENCED"
    assert [c.event.incarnation for c in claims] == [sc.s_inc, b_inc]
    assert all(_incarnation(c) == c.event.incarnation for c in claims)
    assert sc.s_inc != b_inc
    assert figures["decisions_after_new_claim_by_others"] == 0
    assert audit["completed"] == 1
    assert audit["stale_decisions"] == audit["decisions_after_finish"] == 0
    assert audit["duplicate_schedules"] == audit["duplicate_completions"] == 0
    assert audit["extra_finishes"] == 0
    assert all(starts[k] == 1 for k in keys)  # a claim re-publishes; the server dedupes
    assert sc.record_before.status is ev.RunStatus.SUCCEEDED
    assert sc.record_before.outputs == _FENCE_OUTPUTS


@pytest.mark.timeout(90)
def test_stale_incarnation_cannot_set_back_the_run_record(engine: Engine, tmp_path: Path) -> None:
    sc = _fence_scenario(engine, tmp_path / "ledger")
    assert sc.result_s["status"] == "FENCED"
    assert sc.record_before.status is ev.RunStatus.SUCCEEDED
    assert sc.record_after.status is ev.RunStatus.SUCCEEDED
    assert sc.record_after.outputs == _FENCE_OUTPUTS


@pytest.mark.timeout(90)
def test_nats_server_killed_and_restarted(engine: Engine, tmp_path: Path) -> None:
    """SIGKILL nats-server four times while 60 runs are in flight, restarting it each time on
    the same port with the same store dir: every run completes, once per step."""
    c = engine.client
    url = engine.url
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    restarts = 0
    for wave in range(4):
        _submit_dags(c, ledger, range(wave * 1000, wave * 1000 + 15), 0.05, expected)
        mark = sum(_starts(ledger).values())
        _wait_for(
            lambda: sum(_starts(ledger).values()) >= mark + 20,  # noqa: B023
            30,
            "steps to run since the last restart",
        )
        engine.kill_nats()
        engine.start_nats()
        restarts += 1
    done = _wait_finished(url, set(expected), 50)
    seconds = time.monotonic() - t0

    audit = _audit(_history(url), expected, len(DAG))
    keys: dict[str, float] = audit.pop("_completed_keys")
    notes = _ledger(ledger)
    starts = Counter(n.key for n in notes if n.what == "start")
    # An execution that began after the step's result was already in the history.
    completed_step_reruns = sum(
        1 for n in notes if n.what == "start" and n.key in keys and n.at > keys[n.key]
    )
    figures = {
        "test": "kill_nats_server",
        "runs": len(expected),
        "kills": restarts,
        "lost_runs": len(expected) - len(done),
        **audit,
        "succeeded_records": sum(
            r.status is ev.RunStatus.SUCCEEDED and r.outputs == expected[k] for k, r in done.items()
        ),
        "nodes_ok": _nodes_ok(c, set(done), len(DAG)),
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "completed_step_reruns": completed_step_reruns,
        "missing_side_effects": sum(starts[k] == 0 for k in keys),
        "seconds": round(seconds, 1),
    }
    _report(figures)
    _invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert figures["missing_side_effects"] == 0
    # Steps whose result publish met a dead server run again (at least once, same key). A
    # step whose result was already durable runs again too (`completed_step_reruns`): see
    # test_completed_step_is_not_run_again_after_nats_server_crash.


def _completed_step_reruns(url: str, ledger: Path, run_ids: set[str]) -> tuple[int, int]:
    """(executions that began after their step's result was in the history, completions)."""
    history = _history(url)
    completed: dict[str, float] = {}
    for run_id in run_ids:
        for rec in history.get(run_id, []):
            if isinstance(rec.event, ev.TaskCompleted):
                completed.setdefault(rec.event.task.idempotency_key(run_id), rec.stored_at)
    reruns = sum(
        1
        for n in _ledger(ledger)
        if n.what == "start" and n.key in completed and n.at > completed[n.key]
    )
    return reruns, len(completed)


@pytest.mark.timeout(60)
def test_completed_step_is_not_run_again_after_nats_server_crash(
    engine: Engine, tmp_path: Path
) -> None:
    c = engine.client
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    _submit_dags(c, ledger, range(20), 0.02, expected)
    _wait_for(
        lambda: sum(n.what == "done" for n in _ledger(ledger)) >= 60, 30, "steps to finish", 0.005
    )
    engine.kill_nats()  # while results are being published and tasks acked
    engine.start_nats()
    restarted = time.monotonic()
    _wait_for(lambda: len(_finished(engine.url, set(expected))) == 20, 40, "the runs")
    # A redelivery comes at once (forgotten delivery) or after the ack wait (forgotten ack).
    _wait_for(lambda: time.monotonic() - restarted > 4.0, 10, "the ack wait to pass")
    reruns, completions = _completed_step_reruns(engine.url, ledger, set(expected))
    _report({"test": "nats_crash_reruns", "completions": completions, "reruns": reruns})
    assert completions == 20 * len(DAG)
    assert reruns == 0


@pytest.mark.timeout(90)
def test_whole_engine_killed_and_restarted(engine: Engine, tmp_path: Path) -> None:
    """With 40 runs in flight, SIGKILL nats-server and kill the controller, the run actors
    and the replicas (no restart); then restart nats-server (same dir, same port) and start
    a fresh client: every unfinished run resumes by itself and completes, once per step."""
    c = engine.client
    url = engine.url
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    _submit_dags(c, ledger, range(40), 0.25, expected)
    _wait_for(lambda: sum(_starts(ledger).values()) >= 100, 60, "a quarter of the steps")
    c.close()  # the program that started the runs goes away too

    victims = _named()
    engine.kill_nats()
    _kill_named(victims)  # controller, run actors, replicas
    _wait_for(lambda: not _named(), 30, "every actor of the engine to die")
    engine.start_nats()
    crash = _history(url)
    before = _audit(crash, expected, len(DAG))
    completed_before: dict[str, float] = before["_completed_keys"]
    unfinished = len(expected) - sum(
        any(isinstance(r.event, ev.RunStopped) and r.event.status.finished for r in crash[k])
        for k in expected
    )
    starts_before = _starts(ledger)

    restarted = time.monotonic()
    engine.client = _new_client(engine.settings)  # its controller recovers the runs
    client_ready = time.monotonic() - restarted
    done = _wait_finished(url, set(expected), 45)
    seconds = time.monotonic() - t0
    recovery_seconds = time.monotonic() - restarted

    audit = _audit(_history(url), expected, len(DAG))
    keys = audit.pop("_completed_keys")
    starts = _starts(ledger)
    figures = {
        "test": "kill_everything",
        "runs": len(expected),
        "unfinished_at_crash": unfinished,
        "steps_completed_at_crash": len(completed_before),
        "lost_runs": len(expected) - len(done),
        **audit,
        "succeeded_records": sum(
            r.status is ev.RunStatus.SUCCEEDED and r.outputs == expected[k] for k, r in done.items()
        ),
        "nodes_ok": _nodes_ok(engine.client, set(done), len(DAG)),
        "completed_steps_rerun": sum(starts[k] != starts_before[k] for k in completed_before),
        "unfinished_records": _explain_unfinished(url, set(expected) - set(done)),
        "new_client_s": round(client_ready, 1),
        "recovery_s": round(recovery_seconds, 1),
        "interrupted_steps_rerun": sum(starts[k] - 1 for k in keys if starts[k] > 1),
        "missing_side_effects": sum(starts[k] == 0 for k in keys),
        "seconds": round(seconds, 1),
    }
    _report(figures)
    assert unfinished > 0
    assert len(completed_before) > 0
    _invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert figures["missing_side_effects"] == 0
    assert figures["completed_steps_rerun"] == 0  # never executed again by recovery
    assert max(starts[k] for k in keys) <= 2  # interrupted ones: once more, same key


def _explain_unfinished(url: str, run_ids: set[str]) -> list[str]:
    """For a run whose record is not finished: record status and times vs its history."""
    if not run_ids:
        return []
    records, history = _records(url), _history(url)
    drivers = {name: _active(name) or [] for name in _named("af-run-actor-")}
    out = []
    for run_id in sorted(run_ids):
        rec = records.get(run_id)
        stops = [r.event for r in history.get(run_id, []) if isinstance(r.event, ev.RunStopped)]
        out.append(
            f"{run_id}: record {rec.status.value if rec else None} "
            f"updated {rec.updated_at.time() if rec else None} progress "
            f"{rec.progress.succeeded if rec else None}; history "
            f"{[(s.status.value, str(s.at.time())) for s in stops]}; still driven by "
            f"{[name for name, runs in drivers.items() if run_id in runs]}"
        )
    return out


@pytest.mark.timeout(90)
def test_run_actors_killed_repeatedly(engine: Engine, tmp_path: Path) -> None:
    """Kill the busiest run actor (the originals, then their replacements) eight times while
    120 runs of a ten-node DAG are in flight: every run completes, exactly once per step."""
    c = engine.client
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    kills = interrupted = max_run_actors = 0
    t0 = time.monotonic()
    for wave in range(8):
        _submit_dags(c, ledger, range(wave * 1000, wave * 1000 + 15), 0.05, expected)
        before = _named("af-run-actor-")
        max_run_actors = max(max_run_actors, len(before))
        load = {name: _active(name) or [] for name in before}
        victim = max(load, key=lambda n: len(load[n]))
        if load[victim]:
            ray.kill(_run_actor(victim), no_restart=True)
            kills += 1
            interrupted += len(load[victim])
            # The controller learns of the death from the drivers it awaits, and starts a
            # replacement under a fresh name.
            _wait_for(
                lambda: set(_named("af-run-actor-")) - set(before),  # noqa: B023
                30,
                "a replacement run actor",
            )
            max_run_actors = max(max_run_actors, len(_named("af-run-actor-")))
    done = _wait_finished(engine.url, set(expected), 40)
    seconds = time.monotonic() - t0

    audit = _audit(_history(engine.url), expected, len(DAG))
    keys = audit.pop("_completed_keys")
    starts = _starts(ledger)
    figures = {
        "test": "kill_run_actors",
        "runs": len(expected),
        "kills": kills,
        "runs_on_killed_actors": interrupted,
        "lost_runs": len(expected) - len(done),
        **audit,
        "succeeded_records": sum(
            r.status is ev.RunStatus.SUCCEEDED and r.outputs == expected[k] for k, r in done.items()
        ),
        "nodes_ok": _nodes_ok(c, set(done), len(DAG)),
        "reexecuted_steps": sum(max(0, starts[k] - 1) for k in keys),
        "missing_side_effects": sum(starts[k] == 0 for k in keys),
        "max_run_actors_alive": max_run_actors,
        "seconds": round(seconds, 1),
    }
    _report(figures)
    assert kills >= 3  # repeated kills, of originals and of replacements
    assert interrupted > 0
    _invariants(figures, len(expected), engine.url, set(expected) - set(done))
    assert figures["succeeded_records"] == figures["nodes_ok"] == len(expected)
    assert len(keys) == len(expected) * len(DAG)
    assert figures["missing_side_effects"] == 0
    assert figures["reexecuted_steps"] == 0  # no replica died: no step may run twice


@pytest.mark.timeout(60)
def test_run_actor_death_is_replaced_once_and_loses_no_run(engine: Engine, tmp_path: Path) -> None:
    """The minimal case of the bug above: one kill of a run actor driving a dozen runs."""
    c = engine.client
    ledger = tmp_path / "ledger"
    expected: dict[str, dict[str, Any]] = {}
    _submit_dags(c, ledger, range(24), 0.3, expected)
    load = {name: _active(name) or [] for name in _named("af-run-actor-")}
    victim = max(load, key=lambda n: len(load[n]))
    assert len(load[victim]) >= 6
    index = victim.split("-")[3]
    before = set(_named("af-run-actor-"))
    ray.kill(_run_actor(victim), no_restart=True)
    replacements: set[str] = set()
    deadline = time.monotonic() + 30
    done: dict[str, ev.RunRecord] = {}
    while time.monotonic() < deadline and len(done) < len(expected):
        replacements |= {
            n for n in _named(f"af-run-actor-{index}-") if n not in before and n != victim
        }
        done = _finished(engine.url, set(expected))
    _report(
        {
            "test": "run_actor_replaced_once",
            "runs": len(expected),
            "runs_on_killed_actor": len(load[victim]),
            "replacements": len(replacements),
            "lost_runs": len(expected) - len(done),
        }
    )
    assert len(replacements) == 1
    assert len(done) == len(expected)


@pytest.mark.timeout(90)
def test_durable_timers_survive_a_full_stop(engine: Engine) -> None:
    """Sleeping runs (an 8 s timer, so they are unloaded: WAITING) outlive a stop of the
    whole engine; after the restart each timer fires exactly once and never early."""
    c = engine.client
    url = engine.url
    b = actorflow.WorkflowBuilder("timer-restart", version="1")
    nap = b.sleep("nap", "8s")
    b.output("done", f"${{{{ nodes.{nap.id}.output == null }}}}")
    c.apply(b.build())
    runs = [c.run("timer-restart") for _ in range(5)]
    _wait_for(
        lambda: all(r.status().status is ev.RunStatus.WAITING for r in runs), 30, "WAITING runs"
    )
    c.close()
    victims = _named()
    engine.kill_nats()
    _kill_named(victims)
    _wait_for(lambda: not _named(), 30, "every actor of the engine to die")
    engine.start_nats()
    engine.client = _new_client(engine.settings)
    done = _wait_finished(url, {r.run_id for r in runs}, 60)
    history = _history(url)
    fired = {
        run_id: [r.event for r in history[run_id] if isinstance(r.event, ev.WaitEnded)]
        for run_id in done
    }
    early = 0
    for run_id, ends in fired.items():
        started = next(r.event for r in history[run_id] if isinstance(r.event, ev.WaitsStarted))
        early += sum((e.at - started.at).total_seconds() < 8 for e in ends)
    figures = {
        "test": "timers_survive_full_stop",
        "runs": len(runs),
        "completed": sum(r.status is ev.RunStatus.SUCCEEDED for r in done.values()),
        "timer_firings": sum(len(e) for e in fired.values()),
        "early_firings": early,
    }
    _report(figures)
    assert figures["completed"] == len(runs)
    assert figures["timer_firings"] == len(runs)  # once each
    assert early == 0


@pytest.mark.timeout(180)
def test_controller_restart_keeps_one_reservation_per_level(engine: Engine, tmp_path: Path) -> None:
    """A killed controller's successor finds the level's detached placement group instead
    of reserving the capacity twice, and brings back a pool that had scaled to zero."""
    from ray.util import placement_group_table

    from actorflow.actors.controller import CONTROLLER_NAME

    env = actorflow.RuntimeEnv.model_validate(
        {
            "metadata": {"name": "faults-env"},
            "spec": {"level": {"name": "faults-level", "bundles": [{"cpus": 0.5, "count": 2}]}},
        }
    )
    lazy = _fn(
        "flazy",
        "ledger_step",
        runtimeEnv="faults-env@1",
        replicas={"min": 0, "max": 2, "downDelay": "1s"},
    )
    b = actorflow.WorkflowBuilder("flazyrun", version="1")
    ledger = b.input("ledger", type="string")
    one = b.node("one", "flazy@1", inputs={"path": ledger, "values": [], "add": 1, "delay": 0})
    b.output("one", one.output)

    def groups() -> list[dict[str, Any]]:
        return [
            g
            for g in placement_group_table().values()
            if g["name"].startswith("af-level-faults-level-") and g["state"] != "REMOVED"
        ]

    engine.client.apply([env, lazy, b.build()])
    assert len(groups()) == 1

    def lazy_replicas() -> int:
        return int(next(p for p in engine.client.pools() if p.function == "flazy").replicas)

    _wait_for(lambda: lazy_replicas() == 0, 30, "the pool to scale to zero", interval=0.2)
    _wait_for(lambda: not _named("af-fn-flazy-1-"), 30, "its replica to exit", interval=0.5)
    ray.kill(ray.get_actor(CONTROLLER_NAME, namespace=NS), no_restart=True)
    _wait_for(lambda: CONTROLLER_NAME not in _named(), 30, "the controller to die")
    with contextlib.suppress(Exception):
        engine.client.close()
    engine.client = _new_client(engine.settings)
    run = engine.client.run("flazyrun", {"ledger": str(tmp_path / "ledger")}, version="1")
    assert run.result(timeout=60) == {"one": 1}
    [group] = groups()
    assert group["state"] == "CREATED"
    _report({"test": "controller_restart_levels", "placement_groups": len(groups())})
