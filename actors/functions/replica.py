"""A function-pool replica: pulls tasks from its pool's durable consumer and runs them.

Every replica of a pool pulls from the same durable consumer, so NATS balances the load and
a task whose replica dies is redelivered (it was never acked). A result is made durable in
the history *before* the task is acked: a crash between the two runs the step again with the
same idempotency key, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ray
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actorflow.actors.config import EngineConfig
from actorflow.actors.functions import capture, engine_link
from actorflow.actors.functions.accounting import CpuMeter, RssSampler, gpu_ids
from actorflow.actors.functions.context import StepContext
from actorflow.actors.functions.handlers import Handler
from actorflow.actors.functions.intake import WATCH_TIMEOUT, Intake
from actorflow.actors.functions.log_shipper import LogShipper
from actorflow.actors.functions.subworkflow import HANDLER as SUBWORKFLOW_HANDLER
from actorflow.actors.store.blobs import BlobStore
from actorflow.actors.store.errors import NOT_FOUND
from actorflow.actors.store.jetstream import connect
from actorflow.actors.store.retry import with_retries
from actorflow.actors.store.tracing import RunSpans, fail, handling, inject, start_process
from actorflow.actors.store.tracing import flush as flush_traces
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ErrorCode, PayloadError, StepError
from actorflow.definitions.models import Function
from actorflow.definitions.schemas import Checker

log = logging.getLogger(__name__)

_DRAIN_WAIT = WATCH_TIMEOUT * 2 + 1.0  # the pull loop notices a stop and closes its fetches


class FunctionReplica:
    """One replica; wrapped by `ray.remote` with the function's resources in `pools.py`."""

    def __init__(
        self, function: dict[str, Any], config: EngineConfig, name: str, serial: int = 0
    ) -> None:
        self._function = Function.model_validate(function)
        self._checks = _Checks.of(self._function)
        self._children_report = self._function.spec.handler == SUBWORKFLOW_HANDLER
        self._config = config
        self._name = name
        self._serial = serial
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._blobs: BlobStore | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._reports: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._slots = asyncio.Semaphore(self._function.spec.max_concurrency)
        self._pool = ThreadPoolExecutor(
            max_workers=self._function.spec.max_concurrency, thread_name_prefix=name
        )
        self._node_id = ""
        self._since = datetime.now(UTC)
        self._handler: Handler | None = None
        self._done = 0
        self._failed = 0
        # Accounting and output capture (see accounting.py, capture.py, log_shipper.py).
        capture.install()
        self._rss = RssSampler()
        self._gpu_ids: list[str] | None = None
        self._shipper: LogShipper | None = None

    def __repr__(self) -> str:
        meta = self._function.metadata
        return f"Replica({meta.name}@{meta.version} #{self._serial})"

    async def start(self) -> dict[str, Any]:
        """Import the handler (an import error surfaces to `apply`), then start pulling."""
        spec = self._function.spec
        start_process(self._config.tracing, "replica")
        self._handler = Handler.load(spec.handler, spec.code_dir)
        self._node_id = ray.get_runtime_context().get_node_id()
        self._since = datetime.now(UTC)
        self._nc = await connect(
            self._config.nats_url, name=self._name, on_reconnect=self._reconnected
        )
        self._js = self._nc.jetstream()
        engine_link.connect(self._nc, self._config)
        self._blobs = BlobStore(self._js, self._config.inline_limit)
        intake = Intake(self._js, self._function, self._config)
        await intake.open()
        self._loop_task = asyncio.create_task(self._pull_loop(intake))
        return {"replica": self._name, "node_id": self._node_id, "pid": os.getpid()}

    async def _reconnected(self) -> None:
        # The server may have restarted and forgotten acks it had not yet persisted.
        self._since = datetime.now(UTC)

    async def serve(self) -> None:
        """Returns when the replica is stopped; its pool's watcher awaits it to learn of a
        death (a dead actor's call raises)."""
        await self._stopped.wait()

    async def stats(self) -> dict[str, Any]:
        return {
            "replica": self._name,
            "node_id": self._node_id,
            "in_flight": len(self._inflight),
            "done": self._done,
            "failed": self._failed,
        }

    async def stop(self) -> None:
        """Drain: stop pulling, hand back anything fetched but not started, let in-flight
        tasks finish, then close. The pull loop is left to notice (within one fetch
        timeout) rather than cancelled: a fetch cancelled mid-way can swallow messages that
        would then wait out the ack timeout before anyone else gets them."""
        self._stopped.set()
        if self._loop_task:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), _DRAIN_WAIT)
            except TimeoutError:
                self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._inflight:
            await asyncio.wait(self._inflight)
        if self._nc:
            # Results are acknowledged publishes and acks are sent: flushing is all that is
            # left. (`drain()` waits out its 30 s timeout on a pull subscription.)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.flush(), 5.0)
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._pool.shutdown(wait=False)
        await asyncio.to_thread(flush_traces)  # the last attempts' spans

    async def _pull_loop(self, intake: Intake) -> None:
        """Pull as many tasks as there are free slots while a backlog is known, else one;
        the intake picks which priority each comes from (`intake.py`).

        A pull for one task returns the moment it arrives; a pull for several first probes
        the server and then waits for more, which costs a chain of short steps a round trip
        each. The last message's `num_pending` says whether more are already queued.
        """
        capacity = self._function.spec.max_concurrency
        try:
            while not self._stopped.is_set():
                await self._slots.acquire()
                free = 1
                while intake.backlog and free < capacity and not self._slots.locked():
                    await self._slots.acquire()
                    free += 1
                try:
                    msgs = await intake.pull(free)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # reconnecting, server restarting: back off briefly
                    log.debug("pull failed on %s: %s", self._name, exc)
                    msgs = []
                    await asyncio.sleep(0.2)
                if self._stopped.is_set():  # draining: somebody else runs these, now
                    await asyncio.gather(*(m.nak() for m in msgs), return_exceptions=True)
                    msgs = []
                for _ in range(free - len(msgs)):
                    self._slots.release()
                for msg in msgs:
                    task = asyncio.create_task(self._run(msg))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
        finally:
            await intake.close()

    async def _run(self, msg: Msg) -> None:
        done = False
        try:
            done = await self._execute(msg)
        except Exception:
            log.exception("replica %s could not process a task; it will be redelivered", self._name)
        finally:
            self._slots.release()
        if done:
            # The result is durable; the ack can wait one turn of the loop, for the pull
            # loop to ask for the next task: one socket write then carries both.
            await asyncio.sleep(0)
            with contextlib.suppress(Exception):  # unacked, it is redelivered and skipped
                await msg.ack()

    async def _execute(self, msg: Msg) -> bool:
        """Run one task; True when its result is durable and the task is to be acked."""
        assert self._js is not None and self._nc is not None and self._blobs is not None
        assert self._handler is not None
        try:
            task = ev.decode(ev.TaskScheduled, msg.data)
        except ev.DecodeError:
            log.error("dropping a malformed task message on %s", msg.subject)
            await msg.term()
            return False
        results = ev.result_subject(task.run_id, task.task)
        meta = msg.metadata
        # Only a task that may have run before — redelivered, or queued before this replica
        # started or before nats-server came back — costs a look at the history.
        suspect = meta.num_delivered > 1 or meta.timestamp <= self._since
        if suspect and await self._already_done(results):
            # Its result is durable but the ack was lost (e.g. nats-server restarted before
            # persisting it): running it again would repeat a completed step's effects.
            log.info("task %s already has a result; not running it again", task.idempotency_key)
            return True
        with handling(
            f"execute {self._function.metadata.name}",
            msg.headers,
            msg.subject,
            root=False,  # a task queued without a trace (tracing was off) starts none
            actorflow__run_id=task.run_id,
            actorflow__node=task.task.node,
            actorflow__attempt=task.task.attempt,
        ) as span:
            event = await self._attempt(task, msg)
            if isinstance(event, ev.TaskFailed):
                fail(span, event.error.code, event.error.message)
            # The result carries the execution's context; the execution ends before the
            # result is stored, so the run (which ends after it) contains the attempt.
            headers = inject({ev.MSG_ID: ev.result_msg_id(task.idempotency_key)}) or {}
        ended = ev.now()
        js, data = self._js, ev.encode(event)
        ack = await with_retries(
            lambda: js.publish(results, data, headers=headers), "publish result"
        )
        spans = RunSpans.of_task(task, msg.headers)
        # A result stored before was a finished attempt's, whose span was written then —
        # except a `workflow:` node's, whose child run stores it first (it ran here).
        if spans is not None and (not ack.duplicate or self._children_report):
            spans.emit_attempt(task, event, msg.subject, ended)
        return True

    async def _attempt(self, task: ev.TaskScheduled, msg: Msg) -> ev.TaskCompleted | ev.TaskFailed:
        """Run the handler (heartbeats, accounting, captured output): its result."""
        assert self._js is not None
        started_at = datetime.now(UTC)
        heartbeat = asyncio.create_task(self._keep_alive(msg, task, started_at))
        cpu, peak = CpuMeter(), self._rss.begin()
        shipper = self._log_shipper()
        output = shipper.open(self._log_tag(task))
        try:
            outcome = await self._invoke(task, output, cpu)
        finally:
            heartbeat.cancel()
            peak_rss = self._rss.end(peak)
            # Before the result: once the run shows the step done, its output is stored.
            await shipper.close(output)
        execution = ev.Execution(
            replica=self._name,
            ray_node=self._node_id,
            workflow=task.workflow,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            cpu_seconds=cpu.seconds,
            peak_rss_bytes=peak_rss,
            gpu_ids=self._assigned_gpus(),
        )
        event: ev.TaskCompleted | ev.TaskFailed
        if isinstance(outcome, ev.ErrorInfo):
            self._failed += 1
            event = ev.TaskFailed(
                run_id=task.run_id, task=task.task, error=outcome, execution=execution
            )
        else:
            self._done += 1
            event = ev.TaskCompleted(
                run_id=task.run_id, task=task.task, output=outcome, execution=execution
            )
        return event

    async def _already_done(self, subject: str) -> bool:
        """Is the task's result in the history? Asked of the stream's leader, not with a
        direct get: on a replicated stream any follower answers those, and one that has
        not applied the result yet would say "no" — and the step would run again."""
        assert self._js is not None
        try:
            await self._js.get_last_msg(ev.STREAM_HISTORY, subject)
        except NOT_FOUND:
            return False
        return True

    def _log_shipper(self) -> LogShipper:
        assert self._js is not None
        if self._shipper is None:
            self._shipper = LogShipper(self._js, interval=self._config.log_flush_interval)
        return self._shipper

    def _log_tag(self, task: ev.TaskScheduled) -> capture.LogTag:
        return capture.LogTag(
            run_id=task.run_id,
            workflow=task.workflow,
            node=task.task.node,
            index=task.task.index,
            attempt=task.task.attempt,
            replica=self._name,
        )

    def _assigned_gpus(self) -> list[str]:
        if self._gpu_ids is None:
            self._gpu_ids = gpu_ids()
        return self._gpu_ids

    async def _invoke(
        self, task: ev.TaskScheduled, output: capture.TaskLog, cpu: CpuMeter
    ) -> ev.Payload | ev.ErrorInfo:
        assert self._handler is not None and self._blobs is not None
        ctx = StepContext(
            run_id=task.run_id,
            workflow=task.workflow,
            node=task.task.node,
            index=task.task.index,
            attempt=task.task.attempt,
            idempotency_key=task.idempotency_key,
            logger=logging.getLogger(f"actorflow.step.{task.workflow}.{task.task.node}"),
            _report=self._reporter(task),
        )
        timeout = self._function.spec.timeout
        try:
            inputs = await self._blobs.value(task.inputs)
            if self._checks.inputs and (problem := self._checks.inputs.problem(inputs)):
                return _schema_error(ErrorCode.INPUT_INVALID, "inputSchema", problem)
            # What the handler writes — on the loop, on its pool thread, in tasks it
            # spawns — is routed to this request's log (they all run in, or copy, this
            # task's context). `timeout` rather than `wait_for`: no extra task per step.
            with capture.routed(output):
                call = self._handler.call(inputs, ctx, self._pool, cpu)
                async with asyncio.timeout(timeout):
                    result = await call
        except TimeoutError as exc:
            return _error_info(
                exc, code=ErrorCode.TIMEOUT, message=f"step exceeded its {timeout}s timeout"
            )
        except StepError as exc:
            return _error_info(
                exc,
                code=exc.code,
                message=exc.message,
                retryable=exc.retryable,
                details=exc.details,
            )
        except Exception as exc:
            return _error_info(exc, code=ErrorCode.HANDLER_ERROR)
        if self._checks.output and (problem := self._checks.output.problem(result)):
            return _schema_error(ErrorCode.OUTPUT_INVALID, "outputSchema", problem)
        try:
            return await self._blobs.to_payload(result)
        except PayloadError as exc:
            return _error_info(exc, code=ErrorCode.OUTPUT_NOT_JSON, retryable=False)

    def _reporter(self, task: ev.TaskScheduled) -> Callable[[float, str], None]:
        """`ctx.progress` for one task: safe to call from the handler's thread."""
        loop = asyncio.get_running_loop()
        subject = ev.run_subject(task.run_id, ev.PROGRESS)

        def report(percent: float, message: str) -> None:
            assert self._nc is not None
            event = ev.StepProgress(
                run_id=task.run_id,
                node=task.task.node,
                index=task.task.index,
                percent=percent,
                message=message,
            )
            coro = self._nc.publish(subject, ev.encode(event), headers=inject())
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                sent = loop.create_task(coro)
                self._reports.add(sent)
                sent.add_done_callback(self._reports.discard)
            else:
                asyncio.run_coroutine_threadsafe(coro, loop)

        return report

    async def _keep_alive(self, msg: Msg, task: ev.TaskScheduled, started_at: datetime) -> None:
        """A step that outlasts `task_started_after` is announced started (most steps end
        sooner: their result says when they started); a long one then tells the server it is
        alive, so its task is not redelivered."""
        assert self._nc is not None
        await asyncio.sleep(self._config.task_started_after)
        started = ev.TaskStarted(
            run_id=task.run_id,
            task=task.task,
            replica=self._name,
            ray_node=self._node_id,
            at=started_at,
        )
        with contextlib.suppress(Exception):  # a view: the result carries the same facts
            await self._nc.publish(
                ev.result_subject(task.run_id, task.task, started=True),
                ev.encode(started),
                headers=inject(),
            )
        interval = max(self._config.task_ack_wait / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()


@dataclass(frozen=True)
class _Checks:
    """The function's schemas, compiled once per replica."""

    inputs: Checker | None
    output: Checker | None

    @classmethod
    def of(cls, function: Function) -> _Checks:
        spec = function.spec
        return cls(
            Checker(spec.input_schema) if spec.input_schema is not None else None,
            Checker(spec.output_schema) if spec.output_schema is not None else None,
        )


def _schema_error(code: ErrorCode, schema: str, problem: str) -> ev.ErrorInfo:
    """Not retryable: the same value would not fit the next time either."""
    field = problem.split(": ", 1)[0] if ": " in problem else ""
    return ev.ErrorInfo(
        code=code,
        message=f"the function's {schema} refuses it: {problem}",
        retryable=False,
        details={"field": field} if field else {},
    )


def _error_info(
    exc: BaseException,
    *,
    code: str,
    message: str | None = None,
    retryable: bool = True,
    details: dict[str, Any] | None = None,
) -> ev.ErrorInfo:
    try:
        safe_details = ev.ErrorInfo(code=code, message="", details=details or {}).details
    except Exception:
        safe_details = {"repr": repr(details)}
    return ev.ErrorInfo(
        code=code,
        message=message or f"{type(exc).__name__}: {exc}",
        type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
        retryable=retryable,
        details=safe_details,
    )
