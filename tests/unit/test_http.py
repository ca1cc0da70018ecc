"""HTTP steps: the handler against a real local aiohttp server, and the definition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actorflow.actors.functions import http
from actorflow.builder import WorkflowBuilder
from actorflow.definitions.errors import StepError
from actorflow.definitions.models import Workflow
from actorflow.definitions.plan import builtin_functions, compile_plan, function_refs

SECRET = "s3cr3t-value"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, "headers": dict(request.headers)})
        if request.path == "/json":
            return web.json_response({"ok": True, "echo": await request.json()})
        if request.path == "/text":
            return web.Response(text="plain words", content_type="text/plain")
        if request.path == "/slow":
            await asyncio.sleep(2)
            return web.Response(text="late")
        status = int(request.path.strip("/"))
        return web.Response(status=status, text=f"status {status}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_json_is_decoded_text_is_kept_and_the_body_is_sent_as_json(
    server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = server
    reply = await http.run(url=f"{base}/json", method="POST", body={"n": 1})
    assert reply["status"] == 200
    assert reply["body"] == {"ok": True, "echo": {"n": 1}}
    text = await http.run(url=f"{base}/text")
    assert text["body"] == "plain words"


async def test_a_status_outside_the_condition_fails_with_http_status(
    server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = server
    with pytest.raises(StepError) as unavailable:
        await http.run(url=f"{base}/503")
    assert (unavailable.value.code, unavailable.value.retryable) == ("HTTP_503", True)
    assert "status 503" in unavailable.value.message
    with pytest.raises(StepError) as missing:
        await http.run(url=f"{base}/404")
    assert (missing.value.code, missing.value.retryable) == ("HTTP_404", False)
    accepted = await http.run(url=f"{base}/404", success_condition="response.status == 404")
    assert accepted["status"] == 404


async def test_timeouts_and_unreachable_servers_have_their_codes(
    server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = server
    with pytest.raises(StepError) as slow:
        await http.run(url=f"{base}/slow", timeout=0.2)
    assert slow.value.code == "TIMEOUT"
    with pytest.raises(StepError) as nobody:
        await http.run(url="http://127.0.0.1:9/")
    assert nobody.value.code == "HTTP_UNREACHABLE"


async def test_secret_headers_are_read_at_call_time_and_never_quoted(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = server
    monkeypatch.setenv("AF_TEST_TOKEN", SECRET)
    key = tmp_path / "key"
    key.write_text(SECRET + "-file\n")
    headers = {
        "Authorization": {"from_env": "AF_TEST_TOKEN", "prefix": "Bearer "},
        "X-Key": {"from_file": str(key)},
    }
    await http.run(url=f"{base}/text", headers=headers)
    assert seen[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert seen[-1]["headers"]["X-Key"] == f"{SECRET}-file"
    monkeypatch.delenv("AF_TEST_TOKEN")
    with pytest.raises(StepError) as caught:
        await http.run(url=f"{base}/text", headers=headers)
    assert caught.value.code == "SECRET_MISSING"
    assert SECRET not in caught.value.message


def test_an_http_node_keeps_secrets_as_references_in_its_task() -> None:
    b = WorkflowBuilder("w")
    b.input("item", type="string")
    b.http(
        "call",
        "https://example.test/items/${{ inputs.item }}",
        headers={"Authorization": {"from_env": "TOKEN"}},
        success_condition="${{ response.status == 201 }}",
    )
    wf = b.build()
    assert {f.ref for f in builtin_functions(wf)} <= function_refs(wf)
    plan = compile_plan(wf, dict.fromkeys(function_refs(wf), "1"))
    node = plan.nodes["call"]
    assert node.kind == "http"
    request = node.inputs.render({"inputs": {"item": "42"}, "nodes": {}})
    assert request["headers"]["Authorization"]["from_env"] == "TOKEN"
    assert request["success_condition"] == "response.status == 201"


def test_bad_http_nodes_are_refused() -> None:
    def wf(http_spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "actorflow/v1",
            "kind": "Workflow",
            "metadata": {"name": "w"},
            "spec": {"nodes": [{"id": "h", "http": http_spec}]},
        }

    with pytest.raises(ValueError, match="successCondition"):
        Workflow.model_validate(wf({"url": "http://x", "successCondition": "response.status >"}))
    with pytest.raises(ValueError, match="exactly one of fromEnv, fromFile"):
        Workflow.model_validate(wf({"url": "http://x", "headers": {"A": {"prefix": "x"}}}))
