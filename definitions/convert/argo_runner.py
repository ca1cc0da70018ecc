"""What an Argo `container` / `script` step runs as on this machine (standard library only).

A converted step is a native shell node ``[python3, -c, <this file>, CONFIG, v0, v1, …]``:
CONFIG is static JSON describing the step, and every value an expression fills in (an
argument, the script's source, an artifact's key) is one of the ``v`` arguments, referred
to from CONFIG as ``{"$": i}`` — so a rendered value is never parsed as JSON or shell.

It does what Argo's executor does around the user's command: writes a script's source to
a file and appends its path to the command, places input artifacts, runs the command
(never through a shell), then reads output parameters from their files and keeps output
artifacts in a folder store (``$ACTORFLOW_ARGO_ARTIFACTS``, default
``/tmp/actorflow-argo-artifacts``), keyed by their ``s3``/``gcs`` key or a fresh one. It
prints one JSON object, the step's output: ``{result, exitCode, parameters, artifacts}``,
``result`` being stdout less one
trailing newline, as Argo's executor trims it. The command's stdout is copied to
stderr, so the run's logs show it. A failing command's exit code is the step's.

This module is never imported by the engine: its source is embedded in the definition.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any


def _value(x: Any, values: list[Any]) -> Any:
    if isinstance(x, dict) and "$" in x:
        return values[x["$"]]
    return x


def _text(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x)


def _copy(src: str, dst: str) -> None:
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        shutil.copyfile(src, dst)


def _retries(store: str, key: str) -> int:
    """How many times this step ran before (Argo's ``{{retries}}``), counted in the store."""
    path = os.path.join(store, ".retries", key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    count = 0
    if os.path.exists(path):
        with open(path) as f:
            count = int(f.read() or 0)
    with open(path, "w") as f:
        f.write(str(count + 1))
    return count


def _duration(store: str, run: str) -> float:
    """Seconds since this run's first step with Argo's ``{{workflow.duration}}`` started."""
    path = os.path.join(store, ".started", run)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        open(path, "w").close()
    return round(time.time() - os.path.getmtime(path), 3)


def _fill(text: str, marks: dict[str, str]) -> str:
    for mark, value in marks.items():
        text = text.replace(mark, value)
    return text


def _parsed(text: str) -> Any:
    """A value as JSON when it is JSON (for `withParam` over it), else null."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    values = [
        v if i not in config.get("json", []) else json.loads(v) for i, v in enumerate(argv[1:])
    ]
    store = os.environ.get("ACTORFLOW_ARGO_ARTIFACTS", "/tmp/actorflow-argo-artifacts")
    if config.get("noCommand"):
        sys.stderr.write(
            f"image {config['noCommand']!r} runs its own entrypoint, unknown here: give the "
            "template a command, or map the image with --image-map\n"
        )
        return 127
    command = [_text(_value(a, values)) for a in config["command"]]
    marks: dict[str, str] = {}
    if "retriesKey" in config:
        key = _text(_value(config["retriesKey"], values))
        marks["@@argo.retries@@"] = str(_retries(store, key))
        marks["@@argo.duration@@"] = str(_duration(store, key.split("/")[0]))
        command = [_fill(a, marks) for a in command]
    for art in config.get("inputs", []):
        path = _text(_value(art["path"], values))
        if "raw" in art:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w") as f:
                f.write(_text(_value(art["raw"], values)))
            continue
        key = _value(art["key"], values)
        src = os.path.join(store, _text(key)) if key else ""
        if not key or not os.path.exists(src):
            if art.get("optional"):
                continue
            sys.stderr.write(f"input artifact {art['name']!r}: nothing stored under {key!r}\n")
            return 1
        _copy(src, path)
    if "source" in config:
        source = _text(_value(config["source"], values))
        source = _fill(source, marks)
        fd, script = tempfile.mkstemp(prefix="argo-script-")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        command.append(script)
    if command[0] in ("python", "python3") and shutil.which(command[0]) is None:
        command[0] = sys.executable
    env = {**os.environ, **{k: _text(_value(v, values)) for k, v in config.get("env", {}).items()}}
    try:
        proc = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, check=False
        )
    except FileNotFoundError:
        sys.stderr.write(f"command not found: {command[0]}\n")
        return 127
    stdout = proc.stdout.decode(errors="replace")
    sys.stderr.write(stdout)
    if proc.returncode != 0:
        return proc.returncode if proc.returncode > 0 else 128 - proc.returncode
    parameters: dict[str, str] = {}
    for p in config.get("parameters", []):
        path = _text(_value(p["path"], values))
        try:
            with open(path) as f:
                parameters[p["name"]] = f.read().strip()
        except OSError as exc:
            if "default" not in p:
                sys.stderr.write(f"output parameter {p['name']!r}: {exc}\n")
                return 1
            parameters[p["name"]] = _text(_value(p["default"], values))
    artifacts: dict[str, str] = {}
    for a in config.get("artifacts", []):
        path = _text(_value(a["path"], values))
        key = _value(a.get("key"), values) or f"{uuid.uuid4().hex}/{a['name']}"
        if not os.path.exists(path):
            if a.get("optional"):
                continue
            sys.stderr.write(f"output artifact {a['name']!r}: no file at {path}\n")
            return 1
        _copy(path, os.path.join(store, _text(key).rstrip("/")))
        artifacts[a["name"]] = _text(key)
    out = {
        "result": stdout[:-1] if stdout.endswith("\n") else stdout,  # one newline, as Argo
        "exitCode": 0,
        "parameters": parameters,
        "artifacts": artifacts,
        "json": {
            "result": _parsed(stdout),
            "parameters": {k: _parsed(v) for k, v in parameters.items()},
        },
    }
    sys.stdout.write(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
