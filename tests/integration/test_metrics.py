"""The controller's Prometheus endpoint, scraped over HTTP after known runs — on the
session engine, and on a private one whose controller and run actors are SIGKILLed (the
counts must stay exact: they are folded from the history, and a ledger the steps write is
the witness)."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import faults_support as fs
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

import actorflow
from actorflow.actors.controller import CONTROLLER_NAME
from actorflow.actors.metrics import CATALOGUE, PREFIX

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((PREFIX + name, frozenset(labels.items())), 0.0)


def scrape_until(url: str, ready: Any, what: str, timeout: float = 30.0) -> Samples:
    """The fold follows the history a moment behind the runs: wait for it (a bound, not a
    sleep — it returns as soon as `ready` holds)."""
    return fs.wait_for(lambda: (s := _try(url)) is not None and ready(s) and s, timeout, what, 0.2)


def _try(url: str) -> Samples | None:
    try:
        return scrape(url)
    except OSError:
        return None  # the controller is restarting


@pytest.mark.timeout(120)
def test_known_runs_show_as_exact_counts_on_the_endpoint(client: actorflow.Client) -> None:
    info = client.engine_info()
    assert info.metrics_url.startswith("http://127.0.0.1:"), info
    assert info.metrics_error == ""
    b = actorflow.WorkflowBuilder("metrics-known", version="1")
    x = b.input("x", type="integer")
    a = b.node("a", "echo@1", inputs={"value": x})
    c = b.node("c", "echo@1", inputs={"value": a.output}, needs=[a])
    b.output("c", c.output)
    broken = actorflow.WorkflowBuilder("metrics-broken", version="1")
    broken.node("f", "fail@1", inputs={"message": "no"})
    client.apply([b.build(), broken.build()])
    for i in range(2):
        assert client.run("metrics-known", {"x": i}, version="1").result(timeout=60) == {"c": i}
    failing = client.run("metrics-broken", {}, version="1")
    with pytest.raises(actorflow.RunFailedError):
        failing.result(timeout=60)
    [f] = failing.nodes()
    attempts = f.attempt  # the engine's own record of how often it tried

    s = scrape_until(
        info.metrics_url,
        lambda s: (
            value(s, "runs_total", workflow="metrics-known", status="SUCCEEDED") == 2
            and value(s, "runs_total", workflow="metrics-broken", status="INTERRUPTED") == 1
        ),
        "the three runs on /metrics",
    )
    assert value(s, "runs_started_total", workflow="metrics-known") == 2
    for node in ("a", "c"):
        assert (
            value(s, "node_attempts_total", workflow="metrics-known", node=node, status="succeeded")
            == 2
        )
    assert (
        value(s, "node_attempts_total", workflow="metrics-broken", node="f", status="failed")
        == attempts
    )
    assert value(s, "runs_active", workflow="metrics-known") == 0  # reported, as 0
    assert value(s, "node_duration_seconds_count", workflow="metrics-known", node="a") == 2
    assert value(s, "run_duration_seconds_count", workflow="metrics-known", status="SUCCEEDED") == 2
    assert value(s, "task_queue_wait_seconds_count", function="echo@1") >= 4
    assert value(s, "pool_replicas", function="echo@1", state="ready") >= 1
    assert value(s, "pool_replicas", function="echo@1", state="draining") == 0
    assert value(s, "pool_slots_available", function="echo@1") >= 1
    assert ("actorflow_function_queue_depth", frozenset({("function", "echo@1")})) in s
    labels = {k for _, pairs in s for k, _ in pairs}
    assert "run_id" not in labels
    assert "attempt" not in labels
    for name, (kind, _, _) in CATALOGUE.items():
        if kind == "counter" and name == "trigger_events_total":
            continue  # only once a trigger has counted something (test_triggers' module)
        expected = PREFIX + name + ("_count" if kind == "histogram" else "")
        assert any(n == expected for n, _ in s), expected


def _done_per_node(ledger: Path) -> Counter[str]:
    """The witness: how often each node's step really finished, by the steps' own ledger."""
    return Counter(n.key.split(".")[1] for n in fs.ledger(ledger) if n.what == "done")


def _controller_pid() -> int:
    return fs.pid(ray.get_actor(CONTROLLER_NAME, namespace=fs.NS))


def _sigkill_controller(engine: fs.Engine) -> None:
    os.kill(_controller_pid(), signal.SIGKILL)
    fs.wait_for(lambda: _alive_info(engine) is not None, 60, "the controller to come back", 0.2)


def _alive_info(engine: fs.Engine) -> actorflow.EngineInfo | None:
    try:
        return engine.client.engine_info()
    except Exception:
        return None


@pytest.mark.timeout(240)
def test_counts_stay_exact_when_controller_and_run_actors_are_killed(
    engine: fs.Engine, tmp_path: Path
) -> None:
    c = engine.client
    url = c.engine_info().metrics_url
    ledger = tmp_path / "ledger"
    first = fs.submit_dags(c, ledger, range(3), 0.0)
    assert len(fs.wait_finished(engine.url, set(first), 60)) == 3

    def succeeded(n: int) -> Any:
        return lambda s: value(s, "runs_total", workflow="fdag", status="SUCCEEDED") == n

    s = scrape_until(url, succeeded(3), "three DAG runs counted")
    for node in fs.DAG:
        assert value(s, "node_attempts_total", workflow="fdag", node=node, status="succeeded") == 3

    # The controller SIGKILLed by pid: its successor resumes from the stored fold.
    _sigkill_controller(engine)
    url = c.engine_info().metrics_url
    s = scrape_until(url, succeeded(3), "the same counts after the controller's restart", 60)
    assert value(s, "runs_started_total", workflow="fdag") == 3

    # Runs in flight while their run actors are SIGKILLed (the steps take 0.3 s each).
    second = fs.submit_dags(c, ledger, range(10, 14), 0.3)
    fs.wait_for(lambda: any(fs.active(n) for n in fs.named("af-run-actor-")), 30, "runs in flight")
    for name in fs.named("af-run-actor-"):
        os.kill(fs.pid(fs.run_actor(name)), signal.SIGKILL)
    done = fs.wait_finished(engine.url, set(second), 120)
    assert {r.status for r in done.values()} == {actorflow.RunStatus.SUCCEEDED}
    s = scrape_until(url, succeeded(7), "seven DAG runs counted", 60)
    witness = _done_per_node(ledger)
    for node in fs.DAG:
        counted = value(s, "node_attempts_total", workflow="fdag", node=node, status="succeeded")
        assert counted == witness[node] == 7, (node, counted, witness[node])
    assert value(s, "runs_active", workflow="fdag") == 0


@pytest.mark.timeout(180)
def test_a_taken_metrics_port_is_one_line_and_runs_go_on(engine: fs.Engine, tmp_path: Path) -> None:
    """The controller restarts while someone else holds its port: it says so, in one line,
    and serves runs all the same."""
    port = engine.settings.metrics_port
    os.kill(_controller_pid(), signal.SIGKILL)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        deadline = time.monotonic() + 10
        while True:  # the dead process's port is free at once; take it before the successor
            try:
                squatter.bind(("127.0.0.1", port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the port never came free"
                time.sleep(0.05)
        squatter.listen()
        info = fs.wait_for(lambda: _alive_info(engine), 60, "the controller to come back", 0.2)
        assert info.metrics_url == ""
        assert f"127.0.0.1:{port} is taken" in info.metrics_error
        assert "\n" not in info.metrics_error
        runs = fs.submit_dags(engine.client, tmp_path / "ledger", range(1), 0.0)
        assert len(fs.wait_finished(engine.url, set(runs), 60)) == 1
    # Leave the engine as the module found it: a controller with its endpoint.
    _sigkill_controller(engine)
    assert fs.wait_for(lambda: (i := _alive_info(engine)) and i.metrics_url, 30, "the endpoint")
