"""Route what a step writes — `print`, `sys.stdout` / `sys.stderr`, `logging` — to the
request that wrote it.

A replica runs several requests at once: sync handlers on pool threads, async handlers as
tasks on the event loop, all in one process with one `sys.stdout`. So the process's
streams are replaced once (`install`) by proxies that still write everything through to
the original stream (Ray's worker log keeps working) and also hand it to the `TaskLog` of
the request that is current *in the writer's context*: a `ContextVar` that the replica sets
around each handler call (`routed`). asyncio tasks copy the context they are created in,
and the replica runs sync handlers under `contextvars.copy_context().run`, so the variable
follows a request onto its thread and into the tasks it spawns. Output written outside any
request — or from a thread the handler started itself, which does not inherit the context
— passes through untagged.

Nothing here imports Ray or NATS: shipping the lines is `log_shipper.py`'s job.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from actorflow.definitions import events as ev

MAX_LINE_CHARS = 16 * 1024
"""A longer line is cut (a progress bar without newlines must not grow without bound)."""

MAX_PENDING_CHARS = 4 * 1024 * 1024
"""Lines not yet shipped, per request; beyond this new lines are dropped and counted."""

_current: ContextVar[TaskLog | None] = ContextVar("actorflow_task_log", default=None)


@dataclass(frozen=True)
class LogTag:
    """Who wrote the lines: enough to keep requests of different workflows apart."""

    run_id: str
    workflow: str
    node: str
    index: int | None
    attempt: int
    replica: str


class TaskLog:
    """The lines one execution wrote, waiting to be shipped.

    Thread-safe: a sync handler's thread writes while the event loop takes batches.
    Writes arrive in arbitrary pieces (`print` writes the text, then the newline), so each
    stream keeps its unfinished line until a newline (or `take(final=True)`) completes it.
    """

    def __init__(
        self,
        tag: LogTag,
        *,
        max_pending: int = MAX_PENDING_CHARS,
        clock: Callable[[], datetime] = ev.now,
    ) -> None:
        self.tag = tag
        self._max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: list[ev.LogLine] = []
        self._partial: dict[ev.LogStream, str] = {}
        self._pending = 0
        self._seq = 0
        self._dropped = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, stream: ev.LogStream, text: str) -> None:
        """A piece of text written to stdout or stderr."""
        with self._lock:
            if self._closed or not text:
                return
            buffered = self._partial.get(stream, "") + text
            *complete, rest = buffered.split("\n")
            for line in complete:
                self._add(stream, line.removesuffix("\r"))
            while len(rest) > MAX_LINE_CHARS:
                self._add(stream, rest[:MAX_LINE_CHARS])
                rest = rest[MAX_LINE_CHARS:]
            self._partial[stream] = rest

    def record(self, level: str, logger: str, text: str) -> None:
        """One `logging` record, already formatted (a traceback stays in its record)."""
        with self._lock:
            if not self._closed:
                self._add("log", text, level=level, logger=logger)

    def take(self, *, final: bool = False) -> list[ev.LogLine]:
        """The lines written since the last take. `final` also completes unfinished lines
        and closes the log: later writes (a timed-out thread still printing) are ignored."""
        with self._lock:
            if final:
                for stream, rest in self._partial.items():
                    if rest:
                        self._add(stream, rest, force=True)
                self._partial.clear()
                self._closed = True
            if self._dropped:
                note = f"[actorflow] {self._dropped} lines dropped: written faster than shipped"
                self._add("log", note, level="WARNING", logger="actorflow", force=True)
                self._dropped = 0
            lines, self._lines, self._pending = self._lines, [], 0
            return lines

    def _add(
        self,
        stream: ev.LogStream,
        text: str,
        *,
        level: str = "",
        logger: str = "",
        force: bool = False,
    ) -> None:
        if len(text) > MAX_LINE_CHARS:
            text = f"{text[:MAX_LINE_CHARS]}… [{len(text) - MAX_LINE_CHARS} chars cut]"
        if not force and self._pending + len(text) > self._max_pending:
            self._dropped += 1
            return
        self._seq += 1
        self._pending += len(text)
        tag = self.tag
        self._lines.append(
            ev.LogLine(
                run_id=tag.run_id,
                workflow=tag.workflow,
                node=tag.node,
                index=tag.index,
                attempt=tag.attempt,
                replica=tag.replica,
                stream=stream,
                level=level,
                logger=logger,
                text=text,
                seq=self._seq,
                at=self._clock(),
            )
        )


def current() -> TaskLog | None:
    """The request whose output this context's writes belong to, if any."""
    return _current.get()


@contextlib.contextmanager
def routed(log: TaskLog) -> Iterator[None]:
    """Writes in this context (and in tasks / copied contexts made inside it) go to `log`."""
    token = _current.set(log)
    try:
        yield
    finally:
        _current.reset(token)


class _StreamProxy(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr: writes through, and tees to the request."""

    def __init__(self, name: ev.LogStream, original: TextIO) -> None:
        super().__init__()
        self._name: ev.LogStream = name
        self.original = original

    def write(self, s: str) -> int:
        written = self.original.write(s)
        log = _current.get()
        if log is not None:
            log.write(self._name, s)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.original.flush()

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return self.original.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.original.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.original.errors

    def __getattr__(self, name: str) -> Any:  # buffer, line_buffering, reconfigure, …
        return getattr(self.original, name)


class _CaptureHandler(logging.Handler):
    """Hands every record emitted inside a request to that request's log.

    Once this handler sits on the root logger, Python's last-resort handler (which printed
    WARNING and above to stderr when no handler was configured) no longer fires; so where
    the root has no other handler this one prints those records the same way, to the
    original stderr — not through the proxy, which would capture them a second time.
    """

    def __init__(self, stderr: TextIO) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._stderr = stderr

    def _others_handle(self, name: str) -> bool:
        """Would any other handler see a record of logger `name` (as Python decides)?"""
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = _current.get()
            if log is not None:
                log.record(record.levelname, record.name, self.format(record))
            if record.levelno >= logging.WARNING and not self._others_handle(record.name):
                self._stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


_install_lock = threading.Lock()
_root_level: list[int] = []  # the root logger's level before `install`


def install() -> None:
    """Capture this process's output (once; later calls do nothing).

    Also lowers the root logger from Python's default WARNING to INFO, so a handler's
    `logging.getLogger(__name__).info(…)` (and `ctx.logger.info`) is captured; DEBUG stays
    off unless the handler's own logger asks for it.
    """
    with _install_lock:
        if isinstance(sys.stdout, _StreamProxy):
            return
        original_stderr = sys.stderr
        sys.stdout = _StreamProxy("stdout", sys.stdout)
        sys.stderr = _StreamProxy("stderr", sys.stderr)
        root = logging.getLogger()
        root.addHandler(_CaptureHandler(original_stderr))
        _root_level[:] = [root.level]
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)


def uninstall() -> None:
    """Undo `install` (for tests)."""
    with _install_lock:
        if isinstance(sys.stdout, _StreamProxy):
            sys.stdout = sys.stdout.original
        if isinstance(sys.stderr, _StreamProxy):
            sys.stderr = sys.stderr.original
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, _CaptureHandler)]:
            root.removeHandler(handler)
        if _root_level:
            root.setLevel(_root_level.pop())
