"""The blocking client: the asyncio client driven from a private event-loop thread."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Coroutine, Generator, Iterable
from typing import Any, TypeVar

from actorflow._client import AsyncClient, AsyncRun, Definitions, PublishResult, TriggerInfo
from actorflow._remote import RemoteClient
from actorflow._run_view import RunView
from actorflow._views import NodeInfo
from actorflow.actors.controller.results import Applied, ControlAccepted, EngineInfo
from actorflow.actors.functions.pools import PoolStatus
from actorflow.cluster import wiring
from actorflow.cluster.settings import Settings
from actorflow.definitions import events as ev
from actorflow.definitions.convert import ConvertOptions
from actorflow.definitions.models import (
    Connection,
    EventType,
    Function,
    RuntimeEnv,
    StepTemplate,
    Workflow,
)

_T = TypeVar("_T")


class Client:
    """Connects to (or starts) the cluster — or, with ``ACTORFLOW_API_URL`` and a token set
    (`Settings.api_url`, `api_token` / `api_token_file`), goes through that REST API: the
    same methods and results; those the API does not offer raise `UnsupportedError`.

    Example:
        ```python
        client = Client()
        client.apply("examples/hello/workflow.yaml")
        print(client.run("hello", {"name": "Ada"}).result(timeout=30))
        ```
    """

    def __init__(self, settings: Settings | None = None, *, log_to_driver: bool = True) -> None:
        settings = settings or Settings()
        remote = settings.api_access()  # a URL without a token: InputError, before anything
        self._async: AsyncClient
        if remote is not None:
            self._async = RemoteClient(settings, *remote)
        else:
            self._async = AsyncClient(settings, log_to_driver=log_to_driver)
            # An embedded nats-server dies with the thread that started it
            # (PR_SET_PDEATHSIG), so start it from the caller's thread, not the loop's.
            self._async.nats_url = wiring.nats_url(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="actorflow-client", daemon=True
        )
        self._thread.start()
        try:
            if remote is None:
                self._call(self._async.connect_nats())
                self._async.connect_ray()  # on the caller's thread: Ray installs handlers
            self._call(self._async.connect())
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def settings(self) -> Settings:
        return self._async.settings

    @property
    def nats_url(self) -> str:
        return self._async.nats_url

    @property
    def api_url(self) -> str | None:
        """The REST API this client goes through (``ACTORFLOW_API_URL``), or None when it
        connects to Ray and NATS itself."""
        return self._async.api_url if isinstance(self._async, RemoteClient) else None

    def close(self) -> None:
        if self._loop.is_running():
            self._call(self._async.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def apply(
        self, definitions: Definitions, *, convert: ConvertOptions | None = None
    ) -> list[Applied]:
        """Register definitions; see `AsyncClient.apply`."""
        return self._call(self._async.apply(definitions, convert=convert))

    def run(
        self,
        workflow: str | Workflow,
        inputs: dict[str, Any] | None = None,
        *,
        version: str | None = None,
        run_id: str | None = None,
        priority: int | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
    ) -> Run:
        """Start a run and return at once; see `AsyncClient.run` (`priority`: 0-9;
        `break_before` / `break_after`: nodes to stop the run at, docs/debugging.md)."""
        handle = self._call(
            self._async.run(
                workflow,
                inputs,
                version=version,
                run_id=run_id,
                priority=priority,
                break_before=break_before,
                break_after=break_after,
            )
        )
        return Run(self, handle)

    def control(
        self,
        run_id: str,
        action: ev.ControlAction,
        *,
        node: str | None = None,
        from_start: bool = False,
        reason: str = "",
        input: Any = None,
        compensate: bool = False,
    ) -> ControlAccepted:
        """Pause, resume, cancel, terminate, retry or approve; see `AsyncClient.control`."""
        return self._call(
            self._async.control(
                run_id,
                action,
                node=node,
                from_start=from_start,
                reason=reason,
                input=input,
                compensate=compensate,
            )
        )

    def signal(self, signal: str, key: str, payload: Any = None) -> None:
        """End the waits for (`signal`, `key`): publish on ``af.signal.<signal>.<key>``."""
        self._call(self._async.signal(signal, key, payload))

    def get_run(self, run_id: str) -> Run:
        return Run(self, self._async.get_run(run_id))

    def runs(
        self,
        status: ev.RunStatus | str | None = None,
        workflow: str | None = None,
        key: str | None = None,
    ) -> list[ev.RunRecord]:
        return self._call(self._async.runs(status, workflow, key))

    def workflows(self) -> list[Workflow]:
        return self._call(self._async.workflows())

    def templates(self) -> list[StepTemplate]:
        return self._call(self._async.templates())

    def connections(self) -> list[Connection]:
        """Every registered version of every connection (see `AsyncClient.connections`)."""
        return self._call(self._async.connections())

    def functions(self) -> list[Function]:
        return self._call(self._async.functions())

    def engine_info(self) -> EngineInfo:
        """Where the engine is and what it serves: its ``/metrics`` URL (or why there is
        none) and the Ray dashboard's."""
        return self._call(self._async.engine_info())

    def pools(self) -> list[PoolStatus]:
        return self._call(self._async.pools())

    def runtime_envs(self) -> list[RuntimeEnv]:
        return self._call(self._async.runtime_envs())

    def delete(self, kind: str, ref: str) -> None:
        """Delete one version of a Function or RuntimeEnv (see `AsyncClient.delete`)."""
        self._call(self._async.delete(kind, ref))

    def stream_stats(self) -> list[dict[str, Any]]:
        return self._call(self._async.stream_stats())

    # --- triggers and events (see AsyncClient) ---------------------------------------------
    def triggers(self) -> list[TriggerInfo]:
        return self._call(self._async.triggers())

    def trigger(self, name: str) -> TriggerInfo:
        return self._call(self._async.trigger(name))

    def enable_trigger(self, name: str) -> None:
        self._call(self._async.enable_trigger(name))

    def disable_trigger(self, name: str) -> None:
        self._call(self._async.disable_trigger(name))

    def delete_trigger(self, name: str) -> None:
        self._call(self._async.delete_trigger(name))

    def event_types(self) -> list[EventType]:
        return self._call(self._async.event_types())

    def delete_event_type(self, name: str) -> None:
        self._call(self._async.delete_event_type(name))

    def webhook_url(self, trigger: str | None = None) -> str:
        return self._call(self._async.webhook_url(trigger))

    def publish(
        self,
        subject: str,
        data: Any,
        *,
        event_type: str | None = None,
        msg_id: str | None = None,
    ) -> PublishResult:
        """Publish a JSON event; see `AsyncClient.publish`."""
        return self._call(self._async.publish(subject, data, event_type=event_type, msg_id=msg_id))


class Run:
    """A handle on one run."""

    def __init__(self, client: Client, handle: AsyncRun) -> None:
        self._client = client
        self._handle = handle
        self.run_id = handle.run_id

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"

    def status(self) -> ev.RunRecord:
        return self._client._call(self._handle.status())

    def wait(self, timeout: float | None = None) -> ev.RunRecord:
        return self._client._call(self._handle.wait(timeout))

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        return self._client._call(self._handle.result(timeout))

    def nodes(self) -> list[NodeInfo]:
        return self._client._call(self._handle.nodes())

    def view(self, *, depth: int = 4, logs: bool = True) -> RunView:
        """The run as a picture: see `AsyncRun.view`."""
        return self._client._call(self._handle.view(depth=depth, logs=logs))

    def logs(self, node: str | None = None) -> list[ev.LogLine]:
        """The run's captured output so far; see `AsyncRun.logs`."""
        return self._client._call(self._handle.logs(node))

    def follow_logs(self, node: str | None = None) -> Generator[ev.LogLine, None, None]:
        """The run's lines so far, then new ones until the run has finished.

        A task on the client's loop thread pumps the lines into a queue; leaving early
        (`break`, Ctrl-C) cancels it and waits until it has removed its consumer, so the
        client can close without a pending task left behind.
        """
        lines: queue.Queue[ev.LogLine | None] = queue.Queue()

        async def pump() -> None:
            try:
                async with contextlib.aclosing(self._handle.follow_logs(node)) as following:
                    async for line in following:
                        lines.put(line)
            finally:
                lines.put(None)

        async def start() -> asyncio.Task[None]:
            return asyncio.create_task(pump())

        async def finish(task: asyncio.Task[None], *, cancel: bool) -> None:
            if cancel:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            else:
                await task  # raises what the pump raised (an unknown run, say)

        pumping = self._client._call(start())
        ended = False
        try:
            while (line := lines.get()) is not None:
                yield line
            ended = True
            self._client._call(finish(pumping, cancel=False))
        finally:
            # (A loop already stopped — the client closed first — has nothing to clean.)
            if not ended and self._client._loop.is_running():
                self._client._call(finish(pumping, cancel=True))

    def pause(self, reason: str = "") -> None:
        """No new node starts; running ones finish; then the run is PAUSED."""
        self._client._call(self._handle.pause(reason))

    def resume(self, *, from_start: bool = False, reason: str = "") -> None:
        """Go on from the failed node(s) — or, `from_start`, run every node again."""
        self._client._call(self._handle.resume(from_start=from_start, reason=reason))

    def cancel(self, reason: str = "", *, compensate: bool = False) -> None:
        """Stop now: INTERRUPTED (cancelled), still resumable; see `AsyncRun.cancel`."""
        self._client._call(self._handle.cancel(reason, compensate=compensate))

    def terminate(self, reason: str = "") -> None:
        """Stop for good: TERMINATED, not resumable."""
        self._client._call(self._handle.terminate(reason))

    def approve(self, node: str, input: Any = None, reason: str = "") -> None:
        """Approve a waiting approval node; `input` becomes its output."""
        self._client._call(self._handle.approve(node, input, reason))

    def break_at(self, node: str, *, after: bool = False) -> None:
        """See `AsyncRun.break_at`."""
        self._client._call(self._handle.break_at(node, after=after))

    def clear_break(self, node: str, *, after: bool = False) -> None:
        self._client._call(self._handle.clear_break(node, after=after))

    def rerun(self, from_node: str, inputs: dict[str, Any] | None = None) -> Run:
        """See `AsyncRun.rerun`."""
        return Run(self._client, self._client._call(self._handle.rerun(from_node, inputs)))

    def paused_at(self) -> list[ev.BreakpointHit]:
        """See `AsyncRun.paused_at`."""
        return self._client._call(self._handle.paused_at())

    def override(self, node: str, inputs: dict[str, Any]) -> None:
        self._client._call(self._handle.override(node, inputs))

    def step(self) -> None:
        self._client._call(self._handle.step())

    def continue_(self) -> None:
        self._client._call(self._handle.continue_())

    def retry(self, node: str, reason: str = "") -> None:
        """Run a failed node again (with a fresh retry budget) and go on from there."""
        self._client._call(self._handle.retry(node, reason))
