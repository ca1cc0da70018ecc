"""One real nats-server (JetStream) and one real local Ray for the whole session.

A fresh Ray worker costs ~0.5 s and ~90 MB on the CI machine, so every test shares these,
and the test functions below are registered once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

import actorflow
from actorflow.cluster import nats_process
from actorflow.cluster.settings import Settings

STEPS_DIR = Path(__file__).parent / "steps"
# The test_faults_* modules share faults_support; importlib mode puts no test folder on the path.
sys.path.append(str(Path(__file__).parent))

from otlp_support import Collector  # noqa: E402 - found through the line above


def _fn(name: str, handler: str, **spec: object) -> actorflow.Function:
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": name, "version": "1"},
            "spec": {
                "handler": f"af_test_steps:{handler}",
                "codeDir": str(STEPS_DIR),
                "resources": {"cpus": 0.1},
                "nodeLabels": {"af-role": "head"},  # the other nodes are for placement tests
                **spec,
            },
        }
    )


TEST_FUNCTIONS = [
    _fn("echo", "echo", maxConcurrency=64),
    _fn("noop", "noop", maxConcurrency=64),
    _fn("add", "add", maxConcurrency=16),
    _fn("total", "total"),
    _fn("big", "big"),
    _fn("length", "length"),
    _fn("fail", "fail"),
    _fn("coded-fail", "coded_fail"),
    _fn("not-json", "not_json"),
    _fn("whoami", "whoami"),
    _fn("async-echo", "async_echo", maxConcurrency=16),
    _fn("sleep", "sleep", maxConcurrency=8),
    _fn("flaky", "flaky", maxConcurrency=8),
    _fn("fix", "fix", maxConcurrency=8),
    _fn("poison", "poison", maxConcurrency=8),
    _fn("slow-report", "slow_report", maxConcurrency=4),
    _fn("where", "where", maxConcurrency=8),
    _fn("chatty", "chatty", maxConcurrency=8),
    _fn("async-chatty", "async_chatty", maxConcurrency=8),
    _fn("burn", "burn", maxConcurrency=2),
]


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("actorflow-home")


@pytest.fixture(scope="session")
def nats_server(home: Path) -> Iterator[nats_process.NatsProcess]:
    proc = nats_process.start(home / "jetstream", home / "run", detached=False)
    yield proc
    nats_process.stop(proc.pid)


GiB = 2**30
# Three Ray nodes on this machine: a head that runs most things, a node with two logical
# GPUs (no physical GPU needed) and a node with a lot of memory and a zone label — enough to
# prove that replicas land only where their resources and labels say.
NODE_ROLES: dict[str, dict[str, Any]] = {
    "head": {"num_cpus": 8, "memory": 4 * GiB, "labels": {"af-role": "head"}},
    "gpu": {"num_cpus": 2, "num_gpus": 2, "memory": 2 * GiB, "labels": {"af-role": "gpu"}},
    "big": {
        "num_cpus": 2,
        "memory": 16 * GiB,
        "labels": {"af-role": "big", "zone": "east"},
    },
}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # CLI subprocesses join it too
    # Ray builds a failing runtime env three times (a virtualenv and a pip run each, 15-20 s
    # here) before it reports the failure: once is enough for the test that expects one
    # within `apply`'s 60 s wait.
    os.environ.setdefault("RUNTIME_ENV_RETRY_TIMES", "1")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**NODE_ROLES["head"], "include_dashboard": False},
    )
    for role in ("gpu", "big"):
        cluster.add_node(**NODE_ROLES[role])
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="session")
def node_ids(client: actorflow.Client) -> dict[str, str]:
    """Role → Ray node id of the session's cluster."""
    return {
        n["Labels"]["af-role"]: n["NodeID"]
        for n in ray.nodes()
        if n["Alive"] and "af-role" in n.get("Labels", {})
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def otlp() -> Iterator[Collector]:
    """The OTLP collector every engine of the session sends its spans to: the suite runs
    traced, so every test also proves tracing breaks nothing (test_tracing reads them)."""
    collector = Collector().start()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def settings(
    home: Path, nats_server: nats_process.NatsProcess, ray_cluster: Cluster, otlp: Collector
) -> Settings:
    return Settings(
        home=home,
        nats_url=nats_server.url,
        ray_address=ray_cluster.address,
        inline_limit=64 * 1024,
        run_actors=2,
        webhook_port=0,  # parallel sessions on one machine: never a fixed port
        metrics_port=_free_port(),
        trigger_ack_wait=3.0,  # a killed trigger host's held events come back quickly
        tracing=otlp.config,
    )


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[actorflow.Client]:
    c = actorflow.Client(settings, log_to_driver=False)
    c.apply(TEST_FUNCTIONS)
    yield c
    c.close()
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_address(client: actorflow.Client) -> str:
    return str(ray.get_runtime_context().gcs_address)


@pytest.fixture
def cli_env(settings: Settings, ray_address: str) -> dict[str, str]:
    """Environment for `actorflow` subprocesses joining the session's cluster."""
    env = dict(os.environ)
    env.update(
        ACTORFLOW_HOME=str(settings.home),
        ACTORFLOW_NATS_URL=settings.nats_url or "",
        ACTORFLOW_RAY_ADDRESS=ray_address,
        RAY_USAGE_STATS_ENABLED="0",
    )
    return env


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    """`actorflow ARGS…` in a subprocess on the session's cluster, 250 columns wide."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "actorflow.cli", *args],
            env={**cli_env, "COLUMNS": "250"},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return run


StartRun = Callable[..., actorflow.Run]
WaitStatus = Callable[..., actorflow.RunRecord]
RunInterrupted = Callable[..., tuple[actorflow.Run, actorflow.ErrorInfo]]


@pytest.fixture
def start_run(client: actorflow.Client) -> StartRun:
    """Apply a builder's workflow and start a run of it."""

    def start(b: actorflow.WorkflowBuilder, inputs: dict[str, Any] | None = None) -> actorflow.Run:
        wf = b.build()
        client.apply(wf)
        return client.run(wf.metadata.name, inputs or {}, version=wf.metadata.version)

    return start


@pytest.fixture
def run_interrupted(start_run: StartRun) -> RunInterrupted:
    """Start a builder's workflow, wait for it to stop, check that it was INTERRUPTED with
    an error, and hand back the run and that error."""

    def run(b: actorflow.WorkflowBuilder) -> tuple[actorflow.Run, actorflow.ErrorInfo]:
        started = start_run(b)
        record = started.wait(timeout=120)
        assert record.status is actorflow.RunStatus.INTERRUPTED, record
        assert record.error is not None
        return started, record.error

    return run


@pytest.fixture
def wait_status() -> WaitStatus:
    """Poll a run's record until it shows `wanted` (bounded)."""

    def wait(
        run: actorflow.Run, wanted: actorflow.RunStatus, timeout: float = 60
    ) -> actorflow.RunRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = run.status()
            if record.status is wanted:
                return record
            time.sleep(0.05)
        raise AssertionError(f"{run.run_id} never became {wanted}: {run.status().status}")

    return wait


def _removing_new_definitions(client: actorflow.Client) -> Iterator[None]:
    """Delete the workflows, templates, then the functions, connections and environments
    registered meanwhile: their replicas hold logical CPUs of the session's shared
    cluster, which every later test needs for its own pools."""
    kinds = ("Workflow", "Template", "Function", "Connection", "RuntimeEnv")

    def registered() -> list[tuple[str, str]]:
        listed = (
            client.workflows(),
            client.templates(),
            client.functions(),
            client.connections(),
            client.runtime_envs(),
        )
        return [(kind, d.ref) for kind, defs in zip(kinds, listed, strict=True) for d in defs]

    before = set(registered())
    yield
    for kind, ref in registered():  # in `kinds` order: users before what they use
        if (kind, ref) not in before:
            with contextlib.suppress(actorflow.ActorflowError):
                client.delete(kind, ref)


@pytest.fixture
def remove_applied(client: actorflow.Client) -> Iterator[None]:
    """Per test, for modules whose tests each start pools of their own."""
    yield from _removing_new_definitions(client)


@pytest.fixture(scope="module", autouse=True)
def _module_removes_what_it_applied(client: actorflow.Client) -> Iterator[None]:
    yield from _removing_new_definitions(client)


@pytest.fixture(scope="module")
def engine(
    client: actorflow.Client, tmp_path_factory: pytest.TempPathFactory, otlp: Collector
) -> Iterator[Any]:
    """A private engine (`faults_support.Engine`) for each fault module; depends on the
    session `client` so the session's Ray (8 CPUs) is up first. Traced, like the session's."""
    from faults_support import private_engine

    with private_engine(tmp_path_factory, otlp.config) as eng:
        yield eng
