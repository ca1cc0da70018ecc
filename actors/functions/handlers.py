"""Import a function's handler and call it the way its signature asks."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from actorflow.actors.functions.accounting import CpuMeter, in_thread
from actorflow.actors.functions.context import StepContext


class HandlerImportError(Exception):
    """The handler's `module:callable` path does not import; raised at pool start."""


@dataclass(frozen=True)
class Handler:
    func: Callable[..., Any]
    is_async: bool
    wants_ctx: bool

    @classmethod
    def load(cls, path: str, code_dir: str | None = None) -> Handler:
        module_name, _, attr = path.partition(":")
        if code_dir and code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            raise HandlerImportError(
                f"handler {path!r} does not import: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(obj):
            raise HandlerImportError(f"handler {path!r} is not callable")
        params = inspect.signature(obj).parameters
        return cls(obj, inspect.iscoroutinefunction(obj), "ctx" in params)

    async def call(
        self,
        inputs: Any,
        ctx: StepContext,
        pool: ThreadPoolExecutor,
        cpu: CpuMeter | None = None,
    ) -> Any:
        """Async handlers run on the loop; sync ones on the pool so the loop keeps serving.

        A sync handler runs in a copy of the caller's context (`run_in_executor` alone
        would drop it), so the request's output routing (`capture.routed`) follows it onto
        the pool thread. `cpu`, when given, counts the handler's own CPU time.
        """
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        if isinstance(inputs, dict):
            kwargs = dict(inputs)
        elif inputs is not None:
            args = (inputs,)
        if self.wants_ctx:
            kwargs["ctx"] = ctx
        if self.is_async:
            coro = self.func(*args, **kwargs)
            return await (cpu.run(coro) if cpu is not None else coro)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, in_thread(lambda: self.func(*args, **kwargs), cpu))
