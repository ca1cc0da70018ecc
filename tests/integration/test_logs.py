"""Per-request accounting and captured output, on the session's real Ray and nats-server."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import actorflow
from actorflow import LogLine, WorkflowBuilder

TIMEOUT = 120
StartRun = Callable[..., actorflow.Run]


def _talk(name: str, tag: str, **inputs: object) -> WorkflowBuilder:
    b = WorkflowBuilder(name, version="1")
    b.node("talk", "chatty@1", inputs={"tag": tag, **inputs})  # type: ignore[dict-item]
    return b


def _texts(lines: list[LogLine], stream: str | None = None) -> list[str]:
    return [x.text for x in lines if stream is None or x.stream == stream]


def test_stdout_stderr_and_logging_are_kept_per_node(start_run: StartRun) -> None:
    b = WorkflowBuilder("logs-two-nodes", version="1")
    first = b.node("first", "chatty@1", inputs={"tag": "one"})
    b.node("second", "chatty@1", inputs={"tag": "two"}, needs=[first])
    run = start_run(b)
    run.result(timeout=TIMEOUT)

    everything = run.logs()
    assert {(x.run_id, x.workflow) for x in everything} == {(run.run_id, "logs-two-nodes")}
    lines = run.logs("first")
    assert {x.node for x in lines} == {"first"}
    assert _texts(lines, "stdout") == ["one out 0", "one out 1", "one out 2"]
    assert _texts(lines, "stderr") == ["one err 0", "one err 1", "one err 2"]
    logged = [(x.level, x.text) for x in lines if x.stream == "log"]
    assert logged == [("INFO", "one info"), ("WARNING", "one warning"), ("ERROR", "one error")]
    assert {x.logger for x in lines if x.level == "ERROR"} == {"af_test_steps"}
    assert [x.seq for x in lines] == sorted(x.seq for x in lines)
    assert all(x.replica and x.attempt == 1 for x in lines)
    assert set(_texts(run.logs("second"))) == {t.replace("one", "two") for t in _texts(lines)}
    assert run.logs("nobody") == []


def test_accounting_is_recorded_per_attempt(start_run: StartRun) -> None:
    b = WorkflowBuilder("logs-cpu", version="1")
    b.node("burn", "burn@1", inputs={"seconds": 0.3})
    b.node("nap", "sleep@1", inputs={"seconds": 0.3})
    run = start_run(b)
    run.result(timeout=TIMEOUT)
    nodes = {n.node: n for n in run.nodes()}
    burned, napped = nodes["burn"], nodes["nap"]
    assert burned.cpu_seconds is not None
    assert burned.cpu_seconds >= 0.25
    assert napped.cpu_seconds is not None
    assert napped.cpu_seconds < 0.1
    for n in (burned, napped):
        assert n.replica
        assert n.ray_node
        assert n.peak_rss_bytes is not None
        assert n.peak_rss_bytes > 10 * 1024 * 1024
        assert n.gpu_ids == []  # the session's Ray has no GPUs
        [attempt] = n.attempts
        assert (attempt.replica, attempt.cpu_seconds) == (n.replica, n.cpu_seconds)


@pytest.mark.parametrize("function", ["chatty@1", "async-chatty@1"])
def test_workflows_sharing_a_pool_stay_separable(
    client: actorflow.Client, function: str, tmp_path: Path
) -> None:
    """Two workflows' requests run at the same time in one replica (they wait for each
    other before writing) with interleaved output; each run's logs hold only its own."""
    runs: dict[str, actorflow.Run] = {}
    for tag in ("left", "right"):
        b = WorkflowBuilder(f"logs-share-{tag}", version="1")
        inputs = {"tag": tag, "lines": 20, "pause": 0.01, "meet": str(tmp_path)}
        b.node("talk", function, inputs=inputs)  # type: ignore[arg-type]
        wf = b.build()
        client.apply(wf)
        runs[tag] = client.run(wf.metadata.name, {}, version="1")
    for run in runs.values():
        run.result(timeout=TIMEOUT)
    replicas = {tag: run.nodes()[0].replica for tag, run in runs.items()}
    assert replicas["left"] == replicas["right"]  # one pool, one replica: really shared
    for tag, run in runs.items():
        lines = run.logs()
        assert {(x.run_id, x.workflow) for x in lines} == {(run.run_id, f"logs-share-{tag}")}
        assert all(x.text.startswith(f"{tag} ") for x in lines), _texts(lines)
        assert _texts(lines, "stdout") == [f"{tag} out {i}" for i in range(20)]
        assert _texts(lines, "stderr") == [f"{tag} err {i}" for i in range(20)]
    # They really overlapped: each started writing before the other finished.
    spans = {tag: (run.logs()[0].at, run.logs()[-1].at) for tag, run in runs.items()}
    assert spans["left"][0] < spans["right"][1]
    assert spans["right"][0] < spans["left"][1]


def test_sdk_follow_ends_when_the_run_finishes(start_run: StartRun) -> None:
    run = start_run(_talk("logs-follow", "live", lines=5, pause=0.2))
    followed = list(run.follow_logs())
    assert run.status().status is actorflow.RunStatus.SUCCEEDED
    assert _texts(followed, "stdout") == [f"live out {i}" for i in range(5)]
    assert len(followed) == len(run.logs())


async def test_async_logs(settings: actorflow.Settings, client: actorflow.Client) -> None:
    b = _talk("logs-async-sdk", "asy")
    wf = b.build()
    async with actorflow.AsyncClient(settings) as ac:
        await ac.apply(wf)
        run = await ac.run(wf.metadata.name, {}, version="1")
        followed = [line async for line in run.follow_logs("talk")]
        assert _texts(followed, "stdout") == ["asy out 0", "asy out 1", "asy out 2"]
        assert await run.logs() == followed
        with pytest.raises(actorflow.NotFoundError):
            await ac.get_run("no-such-run").logs()


def test_unknown_run_is_not_found(client: actorflow.Client) -> None:
    with pytest.raises(actorflow.NotFoundError):
        client.get_run("no-such-run").logs()
    with pytest.raises(actorflow.NotFoundError):
        list(client.get_run("no-such-run").follow_logs())


# --- the CLI ----------------------------------------------------------------------------
def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_cli_logs_and_runs_show(start_run: StartRun, cli_env: dict[str, str]) -> None:
    b = WorkflowBuilder("logs-cli", version="1")
    first = b.node("first", "chatty@1", inputs={"tag": "uno"})
    b.node("second", "chatty@1", inputs={"tag": "dos"}, needs=[first])
    run = start_run(b)
    run.result(timeout=TIMEOUT)

    result = _cli(cli_env, "logs", run.run_id)
    assert result.returncode == 0, result.stderr
    assert "first#1 stdout  uno out 0" in result.stdout
    assert "second#1 ERROR   dos error" in result.stdout
    only = _cli(cli_env, "logs", run.run_id, "--node", "second")
    assert only.returncode == 0, only.stderr
    assert "dos out 2" in only.stdout
    assert "uno" not in only.stdout
    as_json = _cli(cli_env, "logs", run.run_id, "-n", "first", "--json")
    parsed = [LogLine.model_validate_json(x) for x in as_json.stdout.splitlines()]
    assert {(x.run_id, x.node) for x in parsed} == {(run.run_id, "first")}

    shown = _cli(cli_env, "runs", "show", run.run_id)
    assert shown.returncode == 0, shown.stderr
    assert "executions" in shown.stdout
    assert "peak mem" in shown.stdout
    assert "MiB" in shown.stdout  # the peak RSS of each attempt


def test_cli_logs_of_an_unknown_run(client: actorflow.Client, cli_env: dict[str, str]) -> None:
    result = _cli(cli_env, "logs", "no-such-run")
    assert result.returncode == 1
    assert "run 'no-such-run' not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_follow_prints_lines_until_the_run_ends(
    start_run: StartRun, cli_env: dict[str, str]
) -> None:
    run = start_run(_talk("logs-cli-follow", "tail", lines=6, pause=0.2))
    result = _cli(cli_env, "logs", run.run_id, "--follow")
    assert result.returncode == 0, result.stderr
    assert run.status().status is actorflow.RunStatus.SUCCEEDED
    for i in range(6):
        assert f"tail out {i}" in result.stdout


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"never printed {text!r}: {seen!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            seen += os.read(proc.stdout.fileno(), 65536).decode()
    return seen


def test_cli_follow_stops_cleanly_on_ctrl_c(
    client: actorflow.Client, start_run: StartRun, cli_env: dict[str, str]
) -> None:
    """A run that waits (a durable 10-minute timer) never ends by itself; Ctrl-C does."""
    b = WorkflowBuilder("logs-ctrl-c", version="1")
    b.sleep("hold", "10m", needs=[b.node("talk", "chatty@1", inputs={"tag": "held"})])
    run = start_run(b)
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "logs", run.run_id, "--follow"],
        env={**cli_env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _read_until(proc, "held error", TIMEOUT)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        run.terminate()


def test_concurrent_readers_do_not_disturb_each_other(start_run: StartRun) -> None:
    run = start_run(_talk("logs-readers", "many", lines=10))
    run.result(timeout=TIMEOUT)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: len(run.logs()), range(8)))
    assert set(results) == {23}  # 10 stdout, 10 stderr, 3 logging records
