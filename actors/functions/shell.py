"""The handler of shell nodes: run one command, as a list of arguments, never through a shell.

Every shell node's task comes here on its implicit pool (`definitions.models.builtin_function`)
with the node's `shell` spec rendered: each templated value is one argument, verbatim. What
the command prints goes to the run's logs like a function's output.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Literal

from actorflow.definitions.errors import ErrorCode, StepError

_TAIL = 2000  # characters of stderr quoted in a failure's message


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def run(
    argv: list[Any],
    env: dict[str, Any] | None = None,
    cwd: str | None = None,
    output: Literal["text", "json"] = "text",
) -> Any:
    """Run `argv`; ``{exitCode, stdout, stderr}``, or stdout parsed as JSON. A non-zero exit
    n fails with ``EXIT_<n>`` (a signal s: ``SIGNAL_<s>``), quoting stderr's tail."""
    args = [_text(a) for a in argv]
    environment = {**os.environ, **{k: _text(v) for k, v in (env or {}).items()}}
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=environment,
        )
    except FileNotFoundError as exc:
        raise StepError("EXIT_127", f"command not found: {args[0]}", retryable=False) from exc
    except OSError as exc:  # not executable, bad cwd
        raise StepError("EXIT_126", f"cannot run {args[0]}: {exc}", retryable=False) from exc
    try:
        out_bytes, err_bytes = await proc.communicate()
    except asyncio.CancelledError:  # the step's timeout, or the replica draining
        proc.kill()
        await proc.wait()
        raise
    stdout = out_bytes.decode(errors="replace")
    stderr = err_bytes.decode(errors="replace")
    if stdout:
        sys.stdout.write(stdout)
    if stderr:
        sys.stderr.write(stderr)
    code = proc.returncode or 0
    if code != 0:
        name = f"SIGNAL_{-code}" if code < 0 else f"EXIT_{code}"
        tail = stderr[-_TAIL:].strip()
        raise StepError(
            name,
            f"{args[0]} exited with {code}" + (f": {tail}" if tail else ""),
            details={"exitCode": code},
        )
    if output == "json":
        try:
            return json.loads(stdout)
        except ValueError as exc:
            raise StepError(
                ErrorCode.OUTPUT_NOT_JSON, f"stdout is not JSON: {exc}", retryable=False
            ) from exc
    return {"exitCode": code, "stdout": stdout, "stderr": stderr}
