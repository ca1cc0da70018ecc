"""Shell steps end to end: arguments verbatim, JSON output, exit codes, captured logs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import actorflow
from actorflow import WorkflowBuilder

RunInterrupted = Callable[..., tuple[actorflow.Run, actorflow.ErrorInfo]]  # the conftest fixture
TIMEOUT = 120
HOSTILE = ["; rm -rf x", "$(touch pwned)", 'it\'s "quoted"', "a b", "`id`"]
PRINT_ARGS = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def test_a_shell_step_gets_its_arguments_verbatim_and_its_output_is_logged(
    client: actorflow.Client,
) -> None:
    b = WorkflowBuilder("shell-args", version="1")
    word = b.input("word", type="string")
    first = b.node("first", "echo@1", inputs={"value": word})
    args = b.shell("args", [*PRINT_ARGS, first.output, *HOSTILE], output="json")
    b.node(
        "count", "length@1", inputs={"text": "${{ string(size(nodes.args.output)) }}"}, needs=[args]
    )
    b.output("args", args.output)
    wf = b.build()
    client.apply(wf)
    run = client.run(wf.metadata.name, {"word": "$(reboot); echo"}, version="1")
    result = run.result(timeout=TIMEOUT)
    assert result["args"] == ["$(reboot); echo", *HOSTILE]
    deadline = time.monotonic() + 30
    while True:  # logs are shipped at most ACTORFLOW_LOG_FLUSH_INTERVAL after the step
        lines = [line.text for line in run.logs("args")]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert json.loads("".join(lines)) == result["args"]


def test_a_failing_command_fails_its_node_with_exit_n(run_interrupted: RunInterrupted) -> None:
    b = WorkflowBuilder("shell-exit", version="1")
    b.shell("fail", ["sh", "-c", "echo 'disk full' >&2; exit 4"], retry={"max_attempts": 1})
    _, error = run_interrupted(b)
    assert error.code == "EXIT_4"
    assert "disk full" in error.message
