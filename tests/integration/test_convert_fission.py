"""Fission Workflows examples from the shared corpus, converted and run on the real Ray
and nats-server: each ends as Fission's would (outputs, or the failure of `fail`), with
the Fission functions `fortune` and `whalesay` stood in for by small test functions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import actorflow
from actorflow import RunStatus
from actorflow.definitions.loader import load_file, load_text

TIMEOUT = 120
CORPUS = Path("/work/shared/corpus/fission")
STEPS_DIR = Path(__file__).parent / "steps"
FORTUNE = "You will convert many workflows."
LONG = "far too complex for a whale!"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not here")


def _fn(name: str) -> actorflow.Function:
    return actorflow.Function.model_validate(
        {
            "metadata": {"name": name, "version": "1"},
            "spec": {
                "handler": f"af_fission_steps:{name}",
                "codeDir": str(STEPS_DIR),
                "resources": {"cpus": 0.1},
                "nodeLabels": {"af-role": "head"},
                "maxConcurrency": 8,
            },
        }
    )


@pytest.fixture(scope="module")
def fission(client: actorflow.Client) -> actorflow.Client:
    client.apply([_fn("fortune"), _fn("whalesay")])
    return client


def _run(client: actorflow.Client, *files: str, inputs: dict[str, Any] | None = None) -> Any:
    models = [m for f in files for m in load_file(CORPUS / f"{f}.wf.yaml")]
    client.apply(models)
    return client.run(files[-1], inputs or {})


@pytest.mark.parametrize(
    ("files", "inputs", "output"),
    [
        (("fortunewhale",), {}, f"whale says: {FORTUNE}"),
        (("echowhale",), {"default": "Whale you ship me?"}, "whale says: Whale you ship me?"),
        (("echowhale", "nestedwhale"), {}, f"whale says: {FORTUNE}"),  # a workflow by name
        (("scopedwhale",), {}, f"whale says: {FORTUNE}"),  # an inline workflow
        (("maybewhale",), {"default": "a whale can say it!"}, "whale says: a whale can say it!"),
        (("maybewhale",), {"default": LONG}, LONG),
        (("switchwhale",), {"default": "hello"}, "world!"),
        (("switchwhale",), {"default": "acme"}, "right..."),
        (("foreachwhale",), {}, "whale says: [10, 20, 30, 40, 50]"),
        (("fibonacci",), {"default": 5}, 8),  # repeat: five steps of (fn1, fn2)
        (("whilewhale",), {}, 5),  # while: counts to 5 through nested child runs
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else None,
)
def test_a_converted_example_runs_to_fissions_output(
    fission: actorflow.Client, files: tuple[str, ...], inputs: dict[str, Any], output: Any
) -> None:
    run = _run(fission, *files, inputs=inputs)
    assert run.result(timeout=TIMEOUT) == {"output": output}


SEQUENTIAL = """\
output: Say
tasks:
  Say:
    run: foreach
    inputs:
      foreach: "{ param() }"
      sequential: true
      do: {run: whalesay, inputs: {body: "{ task().Inputs._item }"}}
"""


def test_a_sequential_foreach_runs_its_items_in_turn(fission: actorflow.Client) -> None:
    fission.apply(load_text(SEQUENTIAL, file="fission-sequential.wf.yaml"))
    run = fission.run("fission-sequential", {"default": ["a", "b", "c"]})
    said = [f"whale says: {x}" for x in "abc"]
    assert run.result(timeout=TIMEOUT) == {"output": said}
    children = [r for r in fission.runs() if r.parent_run_id == run.run_id]
    assert len(children) == 1  # one child, which starts the next: one item at a time


class _MyIp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"203.0.113.7"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Note", "from the test server")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        del args


@pytest.fixture(scope="module")
def my_ip() -> Iterator[str]:
    """A stand-in for ifconfig.co on this machine (the replicas run here too)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MyIp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"  # no scheme: Fission assumes http://
    server.shutdown()
    thread.join(10)


def test_httpwhale_passes_the_response_body_and_headers_on(
    fission: actorflow.Client, my_ip: str
) -> None:
    text = (CORPUS / "httpwhale.wf.yaml").read_text().replace("http://ifconfig.co", my_ip)
    text = text.replace(
        "body: \"{ output('FetchMyIp') }\"",
        "body: \"{ output('FetchMyIp') + ' ' + outputHeaders('FetchMyIp')['X-Note'] }\"",
    )
    assert "X-Note" in text
    fission.apply(load_text(text, file="fission-httpwhale.wf.yaml"))
    run = fission.run("fission-httpwhale", {})
    expected = "whale says: 203.0.113.7 from the test server"
    assert run.result(timeout=TIMEOUT) == {"output": expected}


def test_failwhale_fails_at_its_fail_task_and_never_reaches_the_next(
    fission: actorflow.Client,
) -> None:
    run = _run(fission, "failwhale")
    record = run.wait(timeout=TIMEOUT)
    assert record.status is RunStatus.INTERRUPTED
    assert record.node == "FailHere"
    assert record.error is not None
    assert (record.error.code, record.error.message) == ("FAIL", "all has failed")
    nodes = {n.node: n.status for n in run.nodes()}
    assert nodes.get("NeverReached") is not actorflow.NodeStatus.SUCCEEDED
