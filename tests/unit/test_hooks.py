"""Workflow hooks (HookRunner) without Ray or NATS: which hooks a point calls, what they
get, what is recorded, and that a hook recorded in the history is not called again.

The hooks are functions of a throw-away module put in `sys.modules` for the test (or, for
function-reference hooks, a file in a code directory), so the runner imports them the way
it imports users' hooks.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actorflow.actors.run.hooks import HookRunner
from actorflow.actors.run.state import RunState, Schedule
from actorflow.builder import WorkflowBuilder
from actorflow.definitions import events as ev
from actorflow.definitions.models import HookPoint

LONG = 30.0  # seconds: no hook here comes near it


class Hooks:
    """A module of hook functions that record what they were called with."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = types.ModuleType(name)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.threads: list[int] = []
        self.release = threading.Event()

        def note(func: str, event: dict[str, Any]) -> None:
            self.calls.append((func, event))
            self.threads.append(threading.get_ident())

        def record(event: dict[str, Any]) -> None:
            note("record", event)

        def other(event: dict[str, Any]) -> None:
            note("other", event)

        def explode(event: dict[str, Any]) -> None:
            note("explode", event)
            raise RuntimeError(f"hook exploded at {event['point']}")

        def stall(event: dict[str, Any]) -> None:
            note("stall", event)
            self.release.wait(10)

        for func in (record, other, explode, stall):
            setattr(self.module, func.__name__, func)

    def ref(self, func: str) -> str:
        return f"{self.name}:{func}"

    def called(self) -> list[tuple[str, str, str | None]]:
        """(function, point, node) of each call, in order."""
        return [(func, e["point"], e["node"]) for func, e in self.calls]


@pytest.fixture
def mod(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooks]:
    h = Hooks(f"af_unit_hooks_{uuid.uuid4().hex[:8]}")
    monkeypatch.setitem(sys.modules, h.name, h.module)
    yield h
    h.release.set()  # a stalled hook's thread ends with the test


def _state(
    hook_list: list[tuple[HookPoint, str, list[str]]],
    resolved: dict[str, dict[str, Any]] | None = None,
) -> RunState:
    """A run of a -> b (functions f@1, g@1) with these hooks, just started."""
    b = WorkflowBuilder("hooked", version="3")
    a = b.node("a", "f@1", inputs={"x": 1})
    b.node("b", "g@1", inputs={"y": a.output})
    b.output("y", "${{ nodes.b.output }}")
    for on, call, nodes in hook_list:
        b.hook(on, call, nodes=nodes)
    wf = b.build()
    started = ev.RunStarted(
        run_id="r1",
        workflow=wf.metadata.name,
        version=wf.metadata.version,
        plan=wf.model_dump(mode="json", by_alias=True),
        functions={"f@1": "1", "g@1": "1"},
        hooks=resolved or {},
        inputs={},
    )
    return RunState(started)


def _complete_a(state: RunState, value: Any) -> None:
    [decision] = state.decide(state.started.at)
    assert isinstance(decision, Schedule)
    [task] = decision.tasks
    state.apply(ev.TasksScheduled(run_id="r1", tasks=[task.ref]))
    now = ev.now()
    state.apply(
        ev.TaskCompleted(
            run_id="r1",
            task=task.ref,
            output=ev.Payload(inline=value),
            execution=ev.Execution(started_at=now, finished_at=now),
        ),
        value,
    )


def test_wants_says_which_points_have_hooks(mod: Hooks) -> None:
    runner = HookRunner(
        _state([("after_run", mod.ref("record"), []), ("before_node", "m:f", [])]), timeout=LONG
    )
    assert runner.wants("after_run")
    assert runner.wants("before_node")
    assert not runner.wants("before_run")
    assert not runner.wants("after_node")
    assert not HookRunner(_state([]), timeout=LONG).wants("after_run")


async def test_a_run_hook_gets_the_run_and_is_recorded(mod: Hooks) -> None:
    state = _state([("before_run", mod.ref("record"), [])])
    events = await HookRunner(state, timeout=LONG).fire("before_run")
    assert events == [
        ev.HookCalled(
            run_id="r1", point="before_run", node=None, call=mod.ref("record"), at=events[0].at
        )
    ]
    assert mod.calls == [
        (
            "record",
            {
                "point": "before_run",
                "run_id": "r1",
                "workflow": "hooked",
                "version": "3",
                "status": "RUNNING",
                "node": None,
                "outputs": {},
                "error": None,
            },
        )
    ]


async def test_only_the_points_hooks_are_called_in_the_order_declared(mod: Hooks) -> None:
    state = _state(
        [
            ("after_run", mod.ref("other"), []),
            ("before_run", mod.ref("record"), []),
            ("after_run", mod.ref("record"), []),
        ]
    )
    events = await HookRunner(state, timeout=LONG).fire("after_run")
    assert [e.call for e in events] == [mod.ref("other"), mod.ref("record")]
    assert mod.called() == [("other", "after_run", None), ("record", "after_run", None)]


async def test_node_hooks_are_called_for_their_nodes_only(mod: Hooks) -> None:
    state = _state(
        [("before_node", mod.ref("record"), []), ("before_node", mod.ref("other"), ["b"])]
    )
    runner = HookRunner(state, timeout=LONG)
    on_a = await runner.fire("before_node", "a")
    on_b = await runner.fire("before_node", "b")
    assert [(e.node, e.call) for e in on_a] == [("a", mod.ref("record"))]
    assert [(e.node, e.call) for e in on_b] == [("b", mod.ref("record")), ("b", mod.ref("other"))]
    assert mod.called() == [
        ("record", "before_node", "a"),
        ("record", "before_node", "b"),
        ("other", "before_node", "b"),
    ]


async def test_a_node_hook_sees_the_nodes_status_and_output(mod: Hooks) -> None:
    state = _state([("after_node", mod.ref("record"), []), ("before_node", mod.ref("other"), [])])
    runner = HookRunner(state, timeout=LONG)
    await runner.fire("before_node", "b")
    _complete_a(state, {"rows": 3})
    await runner.fire("after_node", "a")
    [(_, pending), (_, done)] = mod.calls
    assert (pending["node"], pending["status"], pending["output"]) == ("b", "PENDING", None)
    assert (done["node"], done["status"], done["output"]) == ("a", "SUCCEEDED", {"rows": 3})
    assert done["error"] is None
    assert done["run_id"] == "r1"


async def test_after_run_sees_how_the_run_ended(mod: Hooks) -> None:
    state = _state([("after_run", mod.ref("record"), [])])
    error = ev.ErrorInfo(code="BOOM", message="it broke", type="ValueError")
    state.apply(
        ev.RunStopped(
            run_id="r1",
            status=ev.RunStatus.INTERRUPTED,
            reason=ev.StopReason.FAILED,
            outputs={"partial": 1},
            node="b",
            error=error,
        )
    )
    await HookRunner(state, timeout=LONG).fire("after_run")
    [(_, event)] = mod.calls
    assert event["status"] == "INTERRUPTED"
    assert event["outputs"] == {"partial": 1}
    assert event["error"] == error.model_dump(mode="json")


async def test_a_hook_recorded_in_the_history_is_not_called_again(mod: Hooks) -> None:
    state = _state([("after_node", mod.ref("record"), []), ("after_run", mod.ref("other"), [])])
    runner = HookRunner(state, timeout=LONG)
    first = await runner.fire("after_node", "a")
    for event in first:
        state.apply(event)
    assert await runner.fire("after_node", "a") == []
    # A new incarnation replays the same history: it does not call the hook either.
    replayed = _state([("after_node", mod.ref("record"), []), ("after_run", mod.ref("other"), [])])
    for event in first:
        replayed.apply(event)
    assert await HookRunner(replayed, timeout=LONG).fire("after_node", "a") == []
    # The same hook at another node, and other points, are still due.
    assert [e.node for e in await HookRunner(replayed, timeout=LONG).fire("after_node", "b")] == [
        "b"
    ]
    assert [e.call for e in await HookRunner(replayed, timeout=LONG).fire("after_run")] == [
        mod.ref("other")
    ]
    assert mod.called() == [
        ("record", "after_node", "a"),
        ("record", "after_node", "b"),
        ("other", "after_run", None),
    ]


async def test_until_recorded_a_hook_is_called_each_time(mod: Hooks) -> None:
    """The guard is the history, not the runner: a fired hook whose `HookCalled` was never
    appended (the actor died first) is called again."""
    runner = HookRunner(_state([("before_run", mod.ref("record"), [])]), timeout=LONG)
    await runner.fire("before_run")
    await runner.fire("before_run")
    assert mod.called() == [("record", "before_run", None)] * 2


async def test_a_failing_hook_is_recorded_and_the_next_one_still_runs(mod: Hooks) -> None:
    state = _state(
        [("after_node", mod.ref("explode"), ["a"]), ("after_node", mod.ref("record"), ["a"])]
    )
    failed, ok = await HookRunner(state, timeout=LONG).fire("after_node", "a")
    assert failed.error is not None
    assert failed.error.code == "HOOK_ERROR"
    assert failed.error.message == "RuntimeError: hook exploded at after_node"
    assert failed.error.type == "RuntimeError"
    assert "raise RuntimeError" in failed.error.traceback
    assert failed.error.retryable is False
    assert ok.error is None
    assert mod.called() == [("explode", "after_node", "a"), ("record", "after_node", "a")]
    state.apply(failed)
    state.apply(ok)
    assert state.hook_failures == [
        f"after_node a {mod.ref('explode')}: RuntimeError: hook exploded at after_node"
    ]


async def test_a_hook_past_its_timeout_is_recorded_as_timed_out(
    mod: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _state([("before_run", mod.ref("stall"), []), ("before_run", mod.ref("record"), [])])
    stalled, ok = await HookRunner(state, timeout=0.2).fire("before_run")
    assert stalled.error is not None
    assert stalled.error.code == "HOOK_TIMEOUT"
    assert stalled.error.retryable is False
    assert ok.error is None
    assert [func for func, _ in mod.calls] == ["stall", "record"]


async def test_hooks_run_off_the_event_loop(mod: Hooks) -> None:
    """In a thread: the loop (which drives other runs) goes on while a hook works. The hook
    waits for the loop to let it go; run on the loop itself, it would wait its full 10 s."""
    state = _state([("before_run", mod.ref("stall"), [])])
    loop_thread = threading.get_ident()

    async def let_go() -> None:
        await asyncio.sleep(0.05)
        mod.release.set()

    helper = asyncio.create_task(let_go())
    try:
        [event] = await HookRunner(state, timeout=LONG).fire("before_run")
    finally:
        helper.cancel()
    assert event.error is None
    assert len(mod.threads) == 1
    assert mod.threads[0] != loop_thread


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("no_such_module_af_unit:f", "does not import"),
        ("hook-fn@1", "hook function 'hook-fn@1' was not resolved"),
    ],
)
async def test_a_hook_that_cannot_be_loaded_is_recorded_as_failed(call: str, message: str) -> None:
    [event] = await HookRunner(_state([("before_run", call, [])]), timeout=LONG).fire("before_run")
    assert event.call == call
    assert event.error is not None
    assert event.error.code == "HOOK_ERROR"
    assert event.error.type == "HandlerImportError"
    assert message in event.error.message


async def test_a_function_reference_hook_runs_its_resolved_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``name@version`` hooks run the handler the run resolved when it started, imported
    from the function's code directory."""
    module = f"af_unit_hook_fn_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "SEEN = []\n\ndef handle(event):\n    SEEN.append((event['point'], event['node']))\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # the runner adds the code dir
    resolved = {"hook-fn@1": {"handler": f"{module}:handle", "code_dir": str(tmp_path)}}
    state = _state([("after_node", "hook-fn@1", ["b"])], resolved)
    try:
        [event] = await HookRunner(state, timeout=LONG).fire("after_node", "b")
        assert event.error is None
        assert event.call == "hook-fn@1"
        assert sys.modules[module].SEEN == [("after_node", "b")]
        assert str(tmp_path) in sys.path
    finally:
        sys.modules.pop(module, None)
