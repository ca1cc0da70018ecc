"""The REST API against the real engine: definitions, runs, control, logs, signals, events,
and bad input answered with the one error shape while nothing stored changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from api_support import error_of, serving

import actorflow
from actorflow.cluster.settings import Settings

pytestmark = pytest.mark.integration
TIMEOUT = 60
WaitStatus = Callable[..., actorflow.RunRecord]

ECHO = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: api-echo, version: "1"}
spec:
  inputs:
    x: {type: string, default: hi}
  nodes:
    - id: e
      function: echo@1
      inputs: {value: "${{ inputs.x }}"}
  outputs:
    y: "${{ nodes.e.output }}"
"""

GATE = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: api-gate, version: "1"}
spec:
  inputs:
    k: {type: string}
  nodes:
    - id: w
      wait: {signal: api-go, key: "${{ inputs.k }}"}
    - id: ok
      needs: [w]
      approval: {guidance: "look first", schema: {type: object, required: [who]}}
    - id: talk
      needs: [ok]
      function: chatty@1
      inputs: {tag: "${{ inputs.k }}", lines: 2}
  outputs:
    got: "${{ nodes.w.output }}"
    who: "${{ nodes.ok.output.who }}"
"""

BAD = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: api-bad, version: "1"}
spec:
  nodes:
    - id: a
      function: echo@1
      inputz: {value: 1}
"""

YAML = {"content-type": "application/yaml"}


@pytest.fixture(scope="module")
def api(client: actorflow.Client, settings: Settings) -> Iterator[httpx.Client]:
    with serving(settings) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        applied = http.post("/api/v1/workflows", content=ECHO + "---\n" + GATE, headers=YAML)
        assert applied.status_code == 200, applied.text
        yield http


def _versions(api: httpx.Client, name: str) -> list[str]:
    got = api.get(f"/api/v1/workflows/{name}")
    return list(got.json()["versions"]) if got.status_code == 200 else []


def test_health_needs_nothing(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}


def test_definitions_are_listed_and_read_as_json_or_yaml(api: httpx.Client) -> None:
    listed = {w["name"]: w for w in api.get("/api/v1/workflows").json()["items"]}
    assert listed["api-echo"]["latest"] == "1"
    one = api.get("/api/v1/workflows/api-echo/versions/latest").json()
    assert (one["metadata"]["name"], one["metadata"]["version"]) == ("api-echo", "1")
    assert one["spec"]["nodes"][0]["function"] == "echo@1"
    text = api.get("/api/v1/workflows/api-echo/versions/1", params={"format": "yaml"})
    assert text.headers["content-type"].startswith("application/yaml")
    assert "name: api-echo" in text.text
    functions = {f["name"] for f in api.get("/api/v1/functions").json()["items"]}
    assert {"echo", "chatty"} <= functions
    assert api.get("/api/v1/functions/echo").json()["versions"] == ["1"]
    assert api.get("/api/v1/runtime-envs").status_code == 200
    assert isinstance(api.get("/api/v1/triggers").json(), list)
    assert api.get("/api/v1/event-types").status_code == 200
    error_of(api.get("/api/v1/triggers/nope"), 404, "not_found")
    error_of(api.get("/api/v1/workflows/nope/versions/1"), 404, "not_found")


def test_a_json_version_is_applied_then_deleted(api: httpx.Client) -> None:
    doc = json.loads(api.get("/api/v1/workflows/api-echo/versions/1").text)
    doc["metadata"]["version"] = "2"
    applied = api.post("/api/v1/workflows", json=doc).json()["applied"]
    assert [(a["name"], a["version"], a["changed"]) for a in applied] == [("api-echo", "2", True)]
    assert _versions(api, "api-echo") == ["1", "2"]
    assert api.delete("/api/v1/workflows/api-echo/versions/2").status_code == 204
    assert _versions(api, "api-echo") == ["1"]
    error_of(api.delete("/api/v1/workflows/api-echo/versions/2"), 404, "not_found")


def test_an_invalid_definition_names_line_and_field_and_stores_nothing(
    api: httpx.Client,
) -> None:
    error = error_of(
        api.post("/api/v1/workflows", content=BAD, headers=YAML), 422, "definition_invalid"
    )
    issue = error["details"]["issues"][0]
    assert issue["file"] == "<request body>"
    assert issue["line"] == 8
    assert "inputz" in issue["field"]
    assert _versions(api, "api-bad") == []
    # a Function where only workflows go, and a JSON list
    fn = "apiVersion: actorflow/v1\nkind: Function\nmetadata: {name: api-f, version: '1'}\n"
    fn += "spec: {handler: 'x:y'}\n"
    error_of(api.post("/api/v1/workflows", content=fn, headers=YAML), 422, "request_invalid")
    error_of(api.post("/api/v1/workflows", json=[1]), 422, "request_invalid")
    assert "api-f" not in {f["name"] for f in api.get("/api/v1/functions").json()["items"]}


def test_bad_requests_get_the_error_shape_and_change_nothing(api: httpx.Client) -> None:
    before = api.get("/api/v1/runs", params={"workflow": "api-echo"}).json()["runs"]
    start = "/api/v1/workflows/api-echo/runs"
    json_type = {"content-type": "application/json"}
    error_of(api.post(start, content=b'{"inputs": ', headers=json_type), 400, "malformed_json")
    error_of(
        api.post("/api/v1/workflows", content=b"{nope", headers=json_type), 400, "malformed_json"
    )
    unknown = error_of(api.post(start, json={"inputz": {}}), 422, "request_invalid")
    assert unknown["details"]["issues"][0]["location"] == "body.inputz"
    error_of(api.post(start, json={"priority": 12}), 422, "request_invalid")
    error_of(api.post(start, json={"inputs": {"nope": 1}}), 422, "input_invalid")
    error_of(api.post("/api/v1/workflows/nope/runs", json={}), 404, "not_found")
    big = b"x" * (1024 * 1024 + 1)
    error_of(api.post("/api/v1/workflows", content=big, headers=YAML), 413, "too_large")
    chunks = iter([b"a" * 600_000, b"b" * 600_000])
    error_of(api.post("/api/v1/workflows", content=chunks, headers=YAML), 413, "too_large")
    error_of(
        api.post("/api/v1/workflows", content=ECHO, headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    error_of(
        api.post(start, json={}, headers={"idempotency-key": "no spaces"}), 422, "request_invalid"
    )
    error_of(api.get("/api/v1/nothing-here"), 404, "not_found")
    after = api.get("/api/v1/runs", params={"workflow": "api-echo"}).json()["runs"]
    assert after == before
    assert _versions(api, "api-echo") == ["1"]


def test_an_idempotent_start_starts_one_run(api: httpx.Client, client: actorflow.Client) -> None:
    key = {"idempotency-key": "order-17"}
    first = api.post("/api/v1/workflows/api-echo/runs", json={"inputs": {"x": "yo"}}, headers=key)
    assert first.status_code == 201, first.text
    run_id = first.json()["run_id"]
    assert first.headers["location"] == f"/api/v1/runs/{run_id}"
    assert client.get_run(run_id).result(timeout=TIMEOUT) == {"y": "yo"}
    again = api.post("/api/v1/workflows/api-echo/runs", json={"inputs": {"x": "yo"}}, headers=key)
    assert again.json()["run_id"] == run_id
    ids = [
        r["run_id"] for r in api.get("/api/v1/runs", params={"workflow": "api-echo"}).json()["runs"]
    ]
    assert ids.count(run_id) == 1
    assert client.get_run(run_id).status().status is actorflow.RunStatus.SUCCEEDED
    detail = api.get(f"/api/v1/runs/{run_id}").json()
    assert detail["record"]["status"] == "SUCCEEDED"
    assert [(n["node"], n["status"]) for n in detail["nodes"]] == [("e", "SUCCEEDED")]
    error_of(api.get("/api/v1/runs/no-such-run"), 404, "not_found")


def test_pages_hold_under_concurrent_starts(api: httpx.Client, client: actorflow.Client) -> None:
    started = [
        api.post("/api/v1/workflows/api-echo/runs", json={}).json()["run_id"] for _ in range(5)
    ]
    for run_id in started:
        client.get_run(run_id).wait(timeout=TIMEOUT)
    seen: list[str] = []
    params: dict[str, str | int] = {"workflow": "api-echo", "page_size": 2}
    while True:
        page = api.get("/api/v1/runs", params=params).json()
        seen += [r["run_id"] for r in page["runs"]]
        assert len(page["runs"]) <= 2
        # a run started between pages is newer than every page still to come
        api.post("/api/v1/workflows/api-echo/runs", json={})
        if not page["next_page_token"]:
            break
        params["page_token"] = page["next_page_token"]
    assert len(seen) == len(set(seen))
    assert set(started) <= set(seen)
    error_of(api.get("/api/v1/runs", params={"page_size": 501}), 422, "request_invalid")
    error_of(api.get("/api/v1/runs", params={"page_token": "garbage!"}), 422, "input_invalid")
    error_of(api.get("/api/v1/runs", params={"status": "SLEEPY"}), 422, "request_invalid")


def test_control_signal_approve_and_logs(
    api: httpx.Client, client: actorflow.Client, wait_status: WaitStatus
) -> None:
    run_id = api.post("/api/v1/workflows/api-gate/runs", json={"inputs": {"k": "g-1"}}).json()[
        "run_id"
    ]
    run = client.get_run(run_id)
    wait_status(run, actorflow.RunStatus.WAITING)
    refused = error_of(
        api.post(f"/api/v1/runs/{run_id}/approve", json={"node": "w"}), 409, "conflict"
    )
    assert "approval" in refused["message"]
    assert api.post("/api/v1/signals/api-go/g-1", json={"payload": {"n": 1}}).status_code == 202
    gone = api.post(f"/api/v1/runs/{run_id}/approve", json={"node": "ok", "input": {"who": "ada"}})
    for _ in range(100):  # the signal's wake-up may not have reached the approval yet
        if gone.status_code == 202:
            break
        wait_status(run, actorflow.RunStatus.WAITING)
        gone = api.post(
            f"/api/v1/runs/{run_id}/approve", json={"node": "ok", "input": {"who": "ada"}}
        )
    assert gone.status_code == 202, gone.text
    assert gone.json()["action"] == "approve"
    assert run.result(timeout=TIMEOUT) == {"got": {"n": 1}, "who": "ada"}
    lines = api.get(f"/api/v1/runs/{run_id}/logs", params={"node": "talk"}).json()["lines"]
    assert any("g-1" in line["text"] for line in lines)
    with api.stream("GET", f"/api/v1/runs/{run_id}/logs", params={"follow": "true"}) as follow:
        assert follow.headers["content-type"].startswith("application/x-ndjson")
        followed = [json.loads(raw) for raw in follow.iter_lines() if raw]
    assert len(followed) == len(api.get(f"/api/v1/runs/{run_id}/logs").json()["lines"])
    done = error_of(
        api.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "late"}), 409, "conflict"
    )
    assert "SUCCEEDED" in done["message"] or "succeeded" in done["message"]
    error_of(api.post(f"/api/v1/runs/{run_id}/explode", json={}), 422, "request_invalid")
    error_of(api.post("/api/v1/runs/no-such-run/pause", json={}), 404, "not_found")


def test_events_are_published(api: httpx.Client) -> None:
    sent = api.post("/api/v1/events", json={"subject": "api.test.ping", "data": {"a": 1}})
    assert sent.status_code == 200, sent.text
    assert sent.json()["subject"] == "api.test.ping"
    error_of(api.post("/api/v1/events", json={"subject": "api.*", "data": 1}), 409, "conflict")
