"""One real nats-server (JetStream) and one real local Ray for the whole session.

A fresh Ray worker costs ~0.5 s and ~90 MB on the CI machine, so every test shares these,
and the test functions below are registered once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

import actorflow
from actorflow.cluster import nats_process
from actorflow.cluster.settings import Settings

STEPS_DIR = Path(__file__).parent / "steps"


def _fn(name: str, handler: str, **spec: object) -> actorflow.Function:
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": name, "version": "1"},
            "spec": {
                "handler": f"af_test_steps:{handler}",
                "codeDir": str(STEPS_DIR),
                "resources": {"cpus": 0.1},
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


@pytest.fixture(scope="session")
def settings(home: Path, nats_server: nats_process.NatsProcess) -> Settings:
    return Settings(
        home=home,
        nats_url=nats_server.url,
        ray_num_cpus=8,
        ray_num_gpus=0,
        inline_limit=64 * 1024,
        run_actors=2,
    )


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[actorflow.Client]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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


StartRun = Callable[..., actorflow.Run]
WaitStatus = Callable[..., actorflow.RunRecord]


@pytest.fixture
def start_run(client: actorflow.Client) -> StartRun:
    """Apply a builder's workflow and start a run of it."""

    def start(b: actorflow.WorkflowBuilder, inputs: dict[str, Any] | None = None) -> actorflow.Run:
        wf = b.build()
        client.apply(wf)
        return client.run(wf.metadata.name, inputs or {}, version=wf.metadata.version)

    return start


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
