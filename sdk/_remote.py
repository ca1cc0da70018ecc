"""The client's methods carried over the REST API, for a `Client` built with
``ACTORFLOW_API_URL`` and a token: the same methods and return types as the direct client,
one HTTP request (or a few) each, and the API's errors back as the same error classes.

`RemoteClient` is an `AsyncClient` whose every public method goes to the API; the blocking
`Client` drives it from its loop thread exactly as it drives the direct one. What the API
does not offer (templates, connections, pools, breakpoints, a run's full view …) raises
`UnsupportedError` naming the method; nothing here ever opens a NATS or Ray connection
(the direct client's connection methods raise too, so a path missed here fails loudly
instead of reaching for a local engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from actorflow._client import AsyncClient, AsyncRun, Definitions, PublishResult, TriggerInfo
from actorflow._remote_errors import error_from_answer
from actorflow._run_view import RunView
from actorflow._views import NodeInfo
from actorflow.actors.controller.results import Applied, ControlAccepted, EngineInfo
from actorflow.actors.functions.pools import PoolStatus
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev
from actorflow.definitions.convert import ConvertOptions
from actorflow.definitions.errors import (
    ClusterUnavailableError,
    InputError,
    NotFoundError,
    PayloadError,
    UnsupportedError,
    WaitTimeoutError,
)
from actorflow.definitions.loader import dump, load_path
from actorflow.definitions.models import (
    AnyDefinition,
    Connection,
    EventType,
    Function,
    RuntimeEnv,
    StepTemplate,
    Workflow,
)
from actorflow.definitions.priorities import check_priority

#: The run actions the API carries (``POST /api/v1/runs/{id}/{action}``).
API_ACTIONS = frozenset({"pause", "resume", "cancel", "terminate", "retry", "approve"})
#: Definition kinds the API lists, reads and deletes, and the path of each.
KIND_PATHS = {"Workflow": "workflows", "Function": "functions", "RuntimeEnv": "runtime-envs"}
#: How many times a request the API answered 429 is sent again (after its Retry-After).
RATE_RETRIES = 3
_MAX_RETRY_AFTER = 5.0
#: Definitions read at once when a listing needs each version's document.
_READ_CONCURRENCY = 8
#: `Run.wait` reads the record again after this long, then 1.5 times longer each time up
#: to a second: a short run is seen done soon, a long one costs a request a second.
_FIRST_POLL = 0.02
_LAST_POLL = 1.0
#: A request may take this long to be answered (an apply waits for the function pools).
_ANSWER_TIMEOUT = 180.0


def unsupported(operation: str) -> UnsupportedError:
    return UnsupportedError(
        operation,
        "not offered by the REST API this client goes through (ACTORFLOW_API_URL); "
        "run it where the engine is, without ACTORFLOW_API_URL",
    )


def _path(*parts: str) -> str:
    return "/api/v1/" + "/".join(quote(p, safe="") for p in parts)


def _body(payload: Any) -> bytes:
    try:
        return json.dumps(payload).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None


def _retry_after(answer: httpx.Response) -> float:
    try:
        return min(max(float(answer.headers.get("retry-after", "1")), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return 1.0


class RemoteClient(AsyncClient):
    """The `AsyncClient` protocol over ``ACTORFLOW_API_URL`` with a bearer token."""

    def __init__(self, settings: Settings, url: str, token: str) -> None:
        super().__init__(settings, log_to_driver=False)
        self.api_url = url
        self._token = token
        self._http: httpx.AsyncClient | None = None

    # --- the connection ------------------------------------------------------------------
    async def connect(self) -> RemoteClient:
        """Open the HTTP client and check that the URL answers (`/healthz` needs no token;
        a bad token is reported by the first call that needs it)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.api_url,
                headers={"authorization": f"Bearer {self._token}"},
                timeout=httpx.Timeout(_ANSWER_TIMEOUT, connect=self.settings.connect_timeout),
            )
        answer = await self._send("GET", "/healthz")
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            raise ClusterUnavailableError("REST API", self.api_url, "/healthz is not ok")
        return self

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def connect_nats(self) -> NoReturn:
        raise unsupported("a NATS connection")

    def connect_ray(self) -> NoReturn:
        raise unsupported("a Ray connection")

    @property
    def js(self) -> JetStreamContext:
        raise unsupported("JetStream")

    @property
    def nc(self) -> NatsClient:
        raise unsupported("a NATS connection")

    async def _jetstream(self) -> NoReturn:
        raise unsupported("JetStream")

    async def _engine(self) -> NoReturn:
        raise unsupported("the controller")

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("client is not connected: use `await client.connect()`")
        return self._http

    async def _send(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        content: bytes | None = None,
        content_type: str = "application/json",
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request: its JSON answer (None for an empty one), or the error it stands
        for; a 429 is sent again after its Retry-After, a few times."""
        sent = dict(headers or {})
        if payload is not None or content is not None:
            content = content if content is not None else _body(payload)
            sent["content-type"] = content_type
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(RATE_RETRIES + 1):
            try:
                answer = await self._client().request(
                    method, path, content=content, params=query, headers=sent
                )
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                raise ClusterUnavailableError("REST API", self.api_url, reason) from None
            if answer.status_code == 429 and attempt < RATE_RETRIES:
                await asyncio.sleep(_retry_after(answer))
                continue
            return self._answer(answer)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _answer(self, answer: httpx.Response) -> Any:
        try:
            body = answer.json() if answer.content else None
        except ValueError:
            body = answer.text
        if answer.is_success:
            return body
        raise error_from_answer(answer.status_code, body, self.api_url)

    async def _lines(self, path: str, params: dict[str, Any]) -> AsyncGenerator[str, None]:
        """The lines of a streamed answer (newline-delimited JSON), as they come."""
        query = {k: v for k, v in params.items() if v is not None}
        timeout = httpx.Timeout(None, connect=self.settings.connect_timeout)
        try:
            async with self._client().stream("GET", path, params=query, timeout=timeout) as answer:
                if not answer.is_success:
                    await answer.aread()
                    self._answer(answer)
                async for line in answer.aiter_lines():
                    if line.strip():
                        yield line
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ClusterUnavailableError("REST API", self.api_url, reason) from None

    # --- definitions -----------------------------------------------------------------------
    async def apply(
        self, definitions: Definitions, *, convert: ConvertOptions | None = None
    ) -> list[Applied]:
        """Register definitions through ``POST /api/v1/definitions`` (see
        `AsyncClient.apply`). A path is loaded here first, checked against the functions and
        workflows the API lists, so an unknown reference names the file and line; relative
        code folders become absolute, and must exist where the engine runs."""
        if isinstance(definitions, str | Path):
            functions, workflows = await asyncio.gather(
                self._refs("Function"), self._refs("Workflow")
            )
            models = load_path(
                definitions,
                known_functions=functions,
                known_workflows=workflows,
                convert=convert,
            )
        elif isinstance(definitions, AnyDefinition):
            models = [definitions]
        else:
            models = list(definitions)
        if not models:
            return []
        answer = await self._send(
            "POST",
            _path("definitions"),
            content=dump(models).encode(),
            content_type="application/yaml",
        )
        return [Applied.model_validate(a) for a in answer["applied"]]

    async def _versions(self, kind: str) -> list[tuple[str, str]]:
        """(name, version) of every version of `kind` the caller may see."""
        answer = await self._send("GET", _path(KIND_PATHS[kind]))
        return [(i["name"], v) for i in answer["items"] for v in i["versions"]]

    async def _refs(self, kind: str) -> set[str]:
        return {f"{name}@{version}" for name, version in await self._versions(kind)}

    async def _documents(self, kind: str) -> list[Any]:
        versions = await self._versions(kind)
        limit = asyncio.Semaphore(_READ_CONCURRENCY)

        async def read(name: str, version: str) -> Any:
            async with limit:
                return await self._send("GET", _path(KIND_PATHS[kind], name, "versions", version))

        return list(await asyncio.gather(*(read(n, v) for n, v in versions)))

    async def workflows(self) -> list[Workflow]:
        return [Workflow.model_validate(d) for d in await self._documents("Workflow")]

    async def functions(self) -> list[Function]:
        return [Function.model_validate(d) for d in await self._documents("Function")]

    async def runtime_envs(self) -> list[RuntimeEnv]:
        return [RuntimeEnv.model_validate(d) for d in await self._documents("RuntimeEnv")]

    async def delete(self, kind: str, ref: str) -> None:
        """Delete one version of a Workflow, Function or RuntimeEnv (see
        `AsyncClient.delete`); templates and connections are not offered by the API."""
        if kind not in KIND_PATHS:
            raise unsupported(f"delete({kind!r}, …)")
        name, _, version = ref.partition("@")
        if not name or not version:
            raise InputError(f"{ref!r} is not NAME@VERSION")
        await self._send("DELETE", _path(KIND_PATHS[kind], name, "versions", version))

    async def templates(self) -> list[StepTemplate]:
        raise unsupported("templates()")

    async def _template_catalog(self) -> dict[str, StepTemplate]:
        raise unsupported("templates()")

    async def connections(self) -> list[Connection]:
        raise unsupported("connections()")

    async def engine_info(self) -> EngineInfo:
        raise unsupported("engine_info()")

    async def pools(self) -> list[PoolStatus]:
        raise unsupported("pools()")

    async def stream_stats(self) -> list[dict[str, Any]]:
        raise unsupported("stream_stats()")

    # --- runs --------------------------------------------------------------------------------
    async def run(
        self,
        workflow: str | Workflow,
        inputs: dict[str, Any] | None = None,
        *,
        version: str | None = None,
        run_id: str | None = None,
        priority: int | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
    ) -> RemoteRun:
        """Start a run through ``POST /api/v1/workflows/{name}/runs`` (see
        `AsyncClient.run`). `run_id` is sent as the ``Idempotency-Key``: starting twice with
        it starts one run, whose id (`Run.run_id`) the API derives from it. Breakpoints
        at the start are not offered by the API."""
        priority = check_priority(priority)
        if run_id is not None and (problem := ev.run_id_problem(run_id)):
            raise InputError(problem)
        if list(break_before) or list(break_after):
            raise unsupported("run(…, break_before / break_after)")
        if isinstance(workflow, Workflow):
            await self.apply(workflow)
            name, version = workflow.metadata.name, workflow.metadata.version
        else:
            name = workflow
        body = {"inputs": dict(inputs or {}), "version": version, "priority": priority}
        answer = await self._send(
            "POST",
            _path("workflows", name, "runs"),
            payload=body,
            headers={"idempotency-key": run_id} if run_id else None,
        )
        return RemoteRun(self, str(answer["run_id"]))

    async def control(
        self,
        run_id: str,
        action: ev.ControlAction,
        *,
        node: str | None = None,
        from_start: bool = False,
        reason: str = "",
        input: Any = None,
        compensate: bool = False,
        position: ev.BreakPosition = "before",
    ) -> ControlAccepted:
        """``POST /api/v1/runs/{id}/{action}`` (see `AsyncClient.control`); the debugging
        actions (break, override, step …) are not offered by the API."""
        if action not in API_ACTIONS:
            raise unsupported(f"the {action!r} action")
        body = {
            "reason": reason,
            "node": node,
            "input": input,
            "from_start": from_start,
            "compensate": compensate,
        }
        answer = await self._send("POST", _path("runs", run_id, action), payload=body)
        return ControlAccepted.model_validate(answer)

    async def signal(self, signal: str, key: str, payload: Any = None) -> None:
        await self._send("POST", _path("signals", signal, key), payload={"payload": payload})

    def get_run(self, run_id: str) -> RemoteRun:
        return RemoteRun(self, run_id)

    async def runs(
        self,
        status: ev.RunStatus | str | None = None,
        workflow: str | None = None,
        key: str | None = None,
    ) -> list[ev.RunRecord]:
        """Every run the caller may see, newest first, read page by page (`key` is
        filtered here: the API has no concurrency-key filter)."""
        wanted = ev.RunStatus(status.upper()) if isinstance(status, str) else status
        params: dict[str, Any] = {
            "status": wanted.value if wanted else None,
            "workflow": workflow,
            "page_size": 500,
        }
        records: list[ev.RunRecord] = []
        while True:
            answer = await self._send("GET", _path("runs"), params=params)
            records += [ev.RunRecord.model_validate(r) for r in answer["runs"]]
            if not answer.get("next_page_token"):
                break
            params["page_token"] = answer["next_page_token"]
        if key is not None:
            records = [r for r in records if r.concurrency is not None and r.concurrency.key == key]
        return records

    async def _run_detail(self, run_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._send("GET", _path("runs", run_id))
        return answer

    async def record(self, run_id: str) -> ev.RunRecord:
        return ev.RunRecord.model_validate((await self._run_detail(run_id))["record"])

    # --- triggers and events -------------------------------------------------------------
    async def triggers(self) -> list[TriggerInfo]:
        return [TriggerInfo.model_validate(t) for t in await self._send("GET", _path("triggers"))]

    async def trigger(self, name: str) -> TriggerInfo:
        return TriggerInfo.model_validate(await self._send("GET", _path("triggers", name)))

    async def enable_trigger(self, name: str) -> None:
        raise unsupported("enable_trigger()")

    async def disable_trigger(self, name: str) -> None:
        raise unsupported("disable_trigger()")

    async def delete_trigger(self, name: str) -> None:
        raise unsupported("delete_trigger()")

    async def event_types(self) -> list[EventType]:
        return [EventType.model_validate(t) for t in await self._send("GET", _path("event-types"))]

    async def delete_event_type(self, name: str) -> None:
        raise unsupported("delete_event_type()")

    async def webhook_url(self, trigger: str | None = None) -> str:
        raise unsupported("webhook_url()")

    async def publish(
        self,
        subject: str,
        data: Any,
        *,
        event_type: str | None = None,
        msg_id: str | None = None,
    ) -> PublishResult:
        body = {"subject": subject, "data": data, "event_type": event_type, "msg_id": msg_id}
        return PublishResult.model_validate(await self._send("POST", _path("events"), payload=body))


class RemoteRun(AsyncRun):
    """A run handle whose reads go to ``GET /api/v1/runs/{id}`` and its logs."""

    _client: RemoteClient

    def __init__(self, client: RemoteClient, run_id: str) -> None:
        super().__init__(client, run_id)

    def __repr__(self) -> str:
        return f"RemoteRun({self.run_id!r})"

    async def wait(self, timeout: float | None = None) -> ev.RunRecord:
        """Until the run stops (see `AsyncRun.wait`): the record is read again, at growing
        intervals (20 ms, then 1.5 times longer each time, up to a second), since no run
        events reach a client of the API."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = _FIRST_POLL
        while True:
            with contextlib.suppress(NotFoundError):  # not recorded yet
                record = await self.status()
                if record.status.finished:
                    return record
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise WaitTimeoutError(f"run {self.run_id} still running after {timeout}s")
            await asyncio.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 1.5, _LAST_POLL)

    async def nodes(self) -> list[NodeInfo]:
        detail = await self._client._run_detail(self.run_id)
        return [NodeInfo.model_validate(n) for n in detail["nodes"]]

    async def logs(self, node: str | None = None) -> list[ev.LogLine]:
        answer = await self._client._send(
            "GET", _path("runs", self.run_id, "logs"), params={"node": node}
        )
        return [ev.LogLine.model_validate(line) for line in answer["lines"]]

    async def follow_logs(
        self, node: str | None = None, *, poll: float = 0.5
    ) -> AsyncGenerator[ev.LogLine, None]:
        """The run's lines so far, then each new one, until the run has finished: the
        API's streamed answer (``follow=true``)."""
        path = _path("runs", self.run_id, "logs")
        lines = self._client._lines(path, {"node": node, "follow": "true"})
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield ev.LogLine.model_validate_json(line)

    async def rerun(self, from_node: str, inputs: dict[str, Any] | None = None) -> AsyncRun:
        raise unsupported("rerun()")

    async def paused_at(self) -> list[ev.BreakpointHit]:
        raise unsupported("paused_at()")

    async def view(self, *, depth: int = 4, logs: bool = True) -> RunView:
        raise unsupported("a run's view (runs show --graph / -o json, runs watch, report)")
