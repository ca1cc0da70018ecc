"""HTTP steps end to end against a local server: a 5xx then a 200 under a retry policy, a
non-JSON body, and a secret header that reaches the server but never the history."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp import web

import actorflow
from actorflow import WorkflowBuilder
from actorflow.actors.run.history import replay
from actorflow.definitions import events as ev

RunInterrupted = Callable[..., tuple[actorflow.Run, actorflow.ErrorInfo]]  # the conftest fixture
TIMEOUT = 120
SECRET = "not-for-the-history-9f3a"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A real aiohttp server on its own loop and thread, for the replicas to call."""
    state: dict[str, Any] = {"flaky": 0, "keys": []}
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}

    async def flaky(_: web.Request) -> web.Response:
        state["flaky"] += 1
        if state["flaky"] == 1:
            return web.Response(status=503, text="warming up")
        return web.json_response({"attempt": state["flaky"]})

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>", content_type="text/html")

    async def keyed(request: web.Request) -> web.Response:
        state["keys"].append(request.headers.get("X-Key"))
        return web.json_response({"ok": True})

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/flaky", flaky)
        app.router.add_get("/text", text)
        app.router.add_post("/keyed", keyed)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["port"] = runner, runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    yield f"http://127.0.0.1:{box['port']}", state
    asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


async def _history_text(url: str, run_id: str) -> str:
    nc = await nats.connect(url)
    try:
        return "\n".join(ev.encode(r.event).decode() for r in await replay(nc.jetstream(), run_id))
    finally:
        await nc.close()


def test_http_steps_retry_a_5xx_keep_text_and_keep_secrets_out_of_the_history(
    client: actorflow.Client, server: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    base, state = server
    key = tmp_path / "key"
    key.write_text(SECRET)
    b = WorkflowBuilder("http-steps", version="1")
    flaky = b.http("flaky", f"{base}/flaky", retry={"max_attempts": 3, "initial_delay": 0.1})
    page = b.http("page", f"{base}/text")
    keyed = b.http(
        "keyed",
        f"{base}/keyed",
        method="POST",
        body={"attempt": "${{ nodes.flaky.output.body.attempt }}"},
        headers={"X-Key": {"from_file": str(key)}},
        needs=[flaky, page],
    )
    b.output("flaky", "${{ nodes.flaky.output.body }}")
    b.output("page", "${{ nodes.page.output.body }}")
    b.output("keyed", keyed.output)
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, version="1")
    result = run.result(timeout=TIMEOUT)
    assert result["flaky"] == {"attempt": 2}
    assert result["page"] == "<html>not json</html>"
    assert result["keyed"]["status"] == 200
    assert state["keys"] == [SECRET]
    nodes = {n.node: n for n in run.nodes()}
    assert nodes["flaky"].attempt == 2
    assert nodes["flaky"].history[0].error is not None
    assert nodes["flaky"].history[0].error.code == "HTTP_503"
    history = asyncio.run(_history_text(client.nats_url, run.run_id))
    assert str(key) in history  # the reference is recorded …
    assert SECRET not in history  # … the value never


def test_a_4xx_fails_the_node_with_its_status(
    server: tuple[str, dict[str, Any]], run_interrupted: RunInterrupted
) -> None:
    base, _ = server
    b = WorkflowBuilder("http-404", version="1")
    b.http("missing", f"{base}/nowhere", retry={"max_attempts": 3, "initial_delay": 0.1})
    run, error = run_interrupted(b)
    assert error.code == "HTTP_404"
    (node,) = run.nodes()
    assert node.attempt == 1  # a 404 is not retried
