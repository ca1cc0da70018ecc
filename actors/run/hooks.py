"""Workflow hooks: user code called before / after the run and each node.

Hooks run in the run actor, in a thread (a slow hook never stalls other runs' drivers),
bounded by a timeout. Each call is recorded in the history as `HookCalled` — with its
error when it failed — so a failing hook is reported on the run (`runs show`, the record's
``hook_failures``), and a hook already called is not called again when the run is
replayed. The run's history itself is the default hook: it is what `runs show` prints.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from actorflow.actors.functions.handlers import Handler, HandlerImportError
from actorflow.actors.run.state import RunState
from actorflow.definitions import events as ev
from actorflow.definitions.errors import ErrorCode
from actorflow.definitions.models import HookPoint, HookSpec

log = logging.getLogger(__name__)


class HookRunner:
    def __init__(self, state: RunState, timeout: float) -> None:
        self._state = state
        self._timeout = timeout
        self._hooks: list[HookSpec] = list(state.plan.hooks)
        self._loaded: dict[str, Handler] = {}

    def wants(self, point: HookPoint) -> bool:
        return any(h.on == point for h in self._hooks)

    async def fire(self, point: HookPoint, node: str | None = None) -> list[ev.HookCalled]:
        """Call the hooks for `point` not yet called; the events to append, in order."""
        out: list[ev.HookCalled] = []
        for hook in self._hooks:
            if hook.on != point or (node is not None and hook.nodes and node not in hook.nodes):
                continue
            if (point, node, hook.call) in self._state.hooks_called:
                continue
            error = await self._call(hook, point, node)
            out.append(
                ev.HookCalled(
                    run_id=self._state.started.run_id,
                    point=point,
                    node=node,
                    call=hook.call,
                    error=error,
                )
            )
        return out

    async def _call(self, hook: HookSpec, point: str, node: str | None) -> ev.ErrorInfo | None:
        try:
            handler = self._handler(hook.call)
            event = self._event(point, node)
            await asyncio.wait_for(asyncio.to_thread(handler.func, event), self._timeout)
        except Exception as exc:
            log.warning("hook %s at %s failed: %s", hook.call, point, exc)
            code = ErrorCode.HOOK_TIMEOUT if isinstance(exc, TimeoutError) else ErrorCode.HOOK_ERROR
            return ev.ErrorInfo(
                code=code,
                message=f"{type(exc).__name__}: {exc}",
                type=type(exc).__name__,
                traceback="".join(traceback.format_exception(exc)),
                retryable=False,
            )
        return None

    def _handler(self, call: str) -> Handler:
        if call not in self._loaded:
            resolved = self._state.started.hooks.get(call)
            if "@" in call and resolved is None:
                raise HandlerImportError(f"hook function {call!r} was not resolved")
            path = resolved["handler"] if resolved else call
            code_dir = resolved.get("code_dir") if resolved else None
            self._loaded[call] = Handler.load(path, code_dir)
        return self._loaded[call]

    def _event(self, point: str, node: str | None) -> dict[str, Any]:
        state = self._state
        stopped = state.stopped
        info: dict[str, Any] = {
            "point": point,
            "run_id": state.started.run_id,
            "workflow": state.started.workflow,
            "version": state.started.version,
            "status": state.status.value,
            "node": node,
            "outputs": stopped.outputs if stopped else {},
            "error": stopped.error.model_dump(mode="json") if stopped and stopped.error else None,
        }
        if node is not None:
            n = state.nodes[node]
            info["status"] = n.status.value
            info["output"] = n.output if n.status.done else None
            info["error"] = n.error.model_dump(mode="json") if n.error else None
        return info
