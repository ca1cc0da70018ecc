"""The REST API against the real engine: definitions, runs, control, logs, signals, events,
and bad input answered with the one error shape while nothing stored changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_support import Served, error_of, serving
from conftest import Cli

import actorflow
from actorflow.cluster.settings import Settings
from actorflow.server.store import AccessStore, bootstrap

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
def served(client: actorflow.Client, settings: Settings) -> Iterator[Served]:
    """The API, and the admin token its first start made (users other modules made are
    removed first, so that this is a first start whatever ran before)."""
    with serving(settings) as running:

        async def no_users(store: AccessStore) -> None:
            for user in await store.users():
                await store.remove_user(user.name)

        running.call(no_users)
        written = running.call(lambda s: bootstrap(s, settings.home))
        assert written is not None
        assert written.stat().st_mode & 0o777 == 0o600
        assert running.call(lambda s: bootstrap(s, settings.home)) is None  # once
        assert (settings.home / "api.key").stat().st_mode & 0o777 == 0o600
        running.admin_token = written.read_text().strip()
        yield running


@pytest.fixture(scope="module")
def api(served: Served) -> Iterator[httpx.Client]:
    """The admin's client, with the two test workflows applied."""
    token = served.admin_token
    auth = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served.url, timeout=TIMEOUT, headers=auth) as http:
        applied = http.post("/api/v1/workflows", content=ECHO + "---\n" + GATE, headers=YAML)
        assert applied.status_code == 200, applied.text
        yield http


def _versions(api: httpx.Client, name: str) -> list[str]:
    got = api.get(f"/api/v1/workflows/{name}")
    return list(got.json()["versions"]) if got.status_code == 200 else []


def test_health_needs_no_token_and_everything_else_one(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok"}
    for path in ("/api/v1/workflows", "/api/v1/runs", "/api/v1/runs/x/logs"):
        missing = error_of(httpx.get(served.url + path), 401, "unauthenticated")
        assert "Bearer" in missing["message"]
    basic = {"authorization": "Basic YTpi"}
    error_of(httpx.get(f"{served.url}/api/v1/runs", headers=basic), 401, "unauthenticated")
    token = served.token("api-bob", {"default": "viewer"})
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    for bad in (forged, "af_nothing", "af_0123456789abcdef_x", "plain"):
        error_of(
            httpx.get(f"{served.url}/api/v1/runs", headers={"authorization": f"Bearer {bad}"}),
            401,
            "unauthenticated",
        )
    ok = httpx.get(f"{served.url}/api/v1/runs", headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200


def test_expired_and_revoked_tokens_are_refused(served: Served) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = served.token("api-bob", {"default": "viewer"}, expires_at=past)
    answer = httpx.get(f"{served.url}/api/v1/runs", headers={"authorization": f"Bearer {expired}"})
    assert "expired" in error_of(answer, 401, "unauthenticated")["message"]
    later = datetime.now(UTC) + timedelta(hours=1)
    token = served.token("api-bob", expires_at=later)
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{served.url}/api/v1/runs", headers=auth).status_code == 200
    token_id = token.split("_")[1]
    served.call(lambda s: s.revoke(token_id))
    error_of(httpx.get(f"{served.url}/api/v1/runs", headers=auth), 401, "unauthenticated")
    # a removed user's tokens stop working too
    other = served.token("api-carol", {"default": "viewer"})
    served.call(lambda s: s.remove_user("api-carol"))
    gone = {"authorization": f"Bearer {other}"}
    error_of(httpx.get(f"{served.url}/api/v1/runs", headers=gone), 401, "unauthenticated")
    stored = served.call(lambda s: s.tokens())
    assert all(token not in t.model_dump_json() for t in stored)


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
    chunks = iter([b'{"inputs": {"x": "', b"b" * 1_100_000, b'"}}'])  # no Content-Length
    error_of(api.post(start, content=chunks, headers=json_type), 413, "too_large")
    error_of(
        api.post("/api/v1/workflows", content=ECHO, headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    error_of(
        api.post(start, json={}, headers={"idempotency-key": "no spaces"}), 422, "request_invalid"
    )
    error_of(api.get("/api/v1/nothing-here"), 404, "not_found")
    bomb = ["    - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"    - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    hostile = ECHO.split("spec:", maxsplit=1)[0] + "spec:\n  nodes:\n  - id: a\n    value:\n"
    hostile += "\n".join(bomb) + "\n"
    refused = error_of(
        api.post("/api/v1/workflows", content=hostile, headers=YAML), 422, "definition_invalid"
    )
    assert "expands to more than" in refused["message"]  # the loader's bounds, before expanding
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


def test_users_and_tokens_from_the_cli(served: Served, cli: Cli) -> None:
    added = cli("users", "add", "api-dora", "--role", "team=operator", "-r", "default=viewer")
    assert added.returncode == 0, added.stderr
    made = cli("tokens", "create", "api-dora", "--expires", "1h", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("af_")
    assert "shown once" in made.stderr
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{served.url}/api/v1/runs", headers=auth).status_code == 200
    listed = cli("tokens", "list", "--user", "api-dora", "-o", "json")
    (info,) = json.loads(listed.stdout)
    assert (info["user"], info["name"]) == ("api-dora", "ci")
    assert token not in listed.stdout
    assert "digest" not in listed.stdout
    users = json.loads(cli("users", "list", "-o", "json").stdout)
    assert {"name": "api-dora", "roles": {"team": "operator", "default": "viewer"}}.items() <= {
        k: v for u in users if u["name"] == "api-dora" for k, v in u.items()
    }.items()
    assert cli("tokens", "revoke", info["id"]).returncode == 0
    error_of(httpx.get(f"{served.url}/api/v1/runs", headers=auth), 401, "unauthenticated")
    bad = cli("users", "add", "api-erin", "--role", "team=boss")
    assert bad.returncode == 2
    assert "NAMESPACE=ROLE" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = cli("tokens", "create", "nobody")
    assert unknown.returncode == 1
    assert "user 'nobody' not found" in unknown.stderr
    assert cli("users", "remove", "api-dora").returncode == 0


def _as(served: Served, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=served.url, timeout=TIMEOUT, headers={"authorization": f"Bearer {token}"}
    )


def _echo(name: str, version: str = "1") -> str:
    return ECHO.replace("api-echo", name).replace('version: "1"', f'version: "{version}"')


# who → (see, run, change) on a private and on a public workflow of namespace team-a
PRIVATE = {
    "viewer": (200, 403, 403),
    "operator": (200, 201, 403),
    "editor": (200, 201, 200),
    "outsider": (404, 404, 404),  # admin of team-b only: a token of another namespace
    "nobody": (404, 404, 404),
}
PUBLIC = {
    "viewer": (200, 201, 403),
    "operator": (200, 201, 403),
    "editor": (200, 201, 200),
    "outsider": (200, 201, 403),
    "nobody": (200, 201, 403),
}
ROLES = {
    "viewer": {"team-a": "viewer"},
    "operator": {"team-a": "operator"},
    "editor": {"team-a": "editor"},
    "outsider": {"team-b": "admin"},
    "nobody": {},
}


def test_roles_owners_and_visibility(
    served: Served, api: httpx.Client, client: actorflow.Client
) -> None:
    for name, visibility in (("api-priv", "private"), ("api-pub", "public")):
        made = api.post(
            "/api/v1/workflows",
            content=_echo(name),
            headers=YAML,
            params={"namespace": "team-a", "visibility": visibility},
        )
        assert made.status_code == 200, made.text
    admin_runs = {
        name: api.post(f"/api/v1/workflows/{name}/runs", json={}).json()["run_id"]
        for name in ("api-priv", "api-pub")
    }
    for run_id in admin_runs.values():
        client.get_run(run_id).wait(timeout=TIMEOUT)
    tokens = {who: served.token(f"api-{who}", roles) for who, roles in ROLES.items()}
    for who, token in tokens.items():
        with _as(served, token) as http:
            for name, table in (("api-priv", PRIVATE), ("api-pub", PUBLIC)):
                see, run, change = table[who]
                where = (who, name)
                assert http.get(f"/api/v1/workflows/{name}").status_code == see, where
                got = http.get(f"/api/v1/workflows/{name}/versions/1")
                assert got.status_code == see, where
                started = http.post(f"/api/v1/workflows/{name}/runs", json={})
                assert started.status_code == run, (where, started.text)
                version = f"{who}-2"
                changed = http.post("/api/v1/workflows", content=_echo(name, version), headers=YAML)
                assert changed.status_code == change, (where, changed.text)
                versions = api.get(f"/api/v1/workflows/{name}").json()["versions"]
                assert (version in versions) == (change == 200), where  # refused: unchanged
                if change != 200:
                    assert changed.json()["error"]["code"] in ("forbidden", "not_found")
                # someone else's run: operators of team-a control it (a finished run: 409)
                control = http.post(f"/api/v1/runs/{admin_runs[name]}/cancel", json={})
                detail = http.get(f"/api/v1/runs/{admin_runs[name]}")
                assert detail.status_code == (200 if see == 200 else 404), where
                wanted = 409 if who in ("operator", "editor") else (403 if see == 200 else 404)
                assert control.status_code == wanted, (where, control.text)
                if started.status_code == 201:  # one's own run: its owner controls it
                    own = started.json()["run_id"]
                    client.get_run(own).wait(timeout=TIMEOUT)
                    assert http.post(f"/api/v1/runs/{own}/cancel", json={}).status_code == 409
            listed = {w["name"] for w in http.get("/api/v1/workflows").json()["items"]}
            assert ("api-priv" in listed) == (PRIVATE[who][0] == 200), who
            assert "api-pub" in listed
            runs = {
                r["run_id"]
                for r in http.get("/api/v1/runs", params={"page_size": 500}).json()["runs"]
            }
            assert (admin_runs["api-priv"] in runs) == (PRIVATE[who][0] == 200), who
            assert admin_runs["api-pub"] in runs
    pub = api.get("/api/v1/workflows/api-pub").json()["ownership"]
    assert pub == {"owner": "admin", "namespace": "team-a", "visibility": "public"}
    with _as(served, tokens["editor"]) as http:
        elsewhere = http.post(
            "/api/v1/workflows",
            content=_echo("api-b"),
            headers=YAML,
            params={"namespace": "team-b"},
        )
        error_of(elsewhere, 403, "forbidden")
        fn = "apiVersion: actorflow/v1\nkind: Function\nmetadata: {name: api-f, version: '1'}\n"
        fn += "spec: {handler: 'af_test_steps:echo'}\n"
    with _as(served, tokens["viewer"]) as http:
        error_of(http.post("/api/v1/definitions", content=fn, headers=YAML), 403, "forbidden")
        error_of(http.post("/api/v1/signals/s/k", json={}), 403, "forbidden")
        assert http.get("/api/v1/audit").json()["entries"] == []  # no admin anywhere
    with _as(served, tokens["outsider"]) as http:
        seen = http.get("/api/v1/audit").json()["entries"]
        assert all(e["namespace"] == "team-b" for e in seen)
    audit = api.get("/api/v1/audit", params={"namespace": "team-a"}).json()["entries"]
    applied = [(e["user"], e["action"], e["target"]) for e in audit]
    assert ("api-editor", "apply", "Workflow/api-priv@editor-2") in applied
    assert ("api-operator", "cancel", f"run/{admin_runs['api-priv']}") not in applied  # refused
    assert any(e["user"] == "api-outsider" and e["action"] == "start" for e in audit)
    assert all(e["at"] for e in audit)


def test_a_token_over_its_rate_is_told_when_to_retry(settings: Settings, served: Served) -> None:
    slow = settings.model_copy(update={"api_rate_limit": 0.01, "api_rate_burst": 3})
    with serving(slow) as limited:
        token = limited.token("api-busy", {"default": "viewer"})
        other = limited.token("api-busy")
        with _as(limited, token) as http:
            codes = [http.get("/api/v1/event-types").status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            refused = http.get("/api/v1/event-types")
            error_of(refused, 429, "rate_limited")
            assert int(refused.headers["retry-after"]) >= 60
            assert http.get("/healthz").status_code == 200  # needs no token, spends none
        with _as(limited, other) as http:  # per token
            assert http.get("/api/v1/event-types").status_code == 200


GRAPH = """\
apiVersion: actorflow/v1
kind: Workflow
metadata: {name: api-graph, version: "1"}
spec:
  nodes:
    # the first step
    - id: a
      function: echo@1
      inputs: {value: 1}
    - id: b
      function: echo@1
      inputs: {value: 2}
"""


def test_graph_edits_register_versions_and_keep_the_text(
    served: Served, api: httpx.Client, client: actorflow.Client
) -> None:
    assert api.post("/api/v1/workflows", content=GRAPH, headers=YAML).status_code == 200
    edges = "/api/v1/workflows/api-graph/edges"
    added = api.post(edges, json={"node": "b", "needs": "a"})
    assert added.status_code == 201, added.text
    assert added.json()["applied"]["version"] == "2"
    assert {(e["source"], e["target"]) for e in added.json()["layout"]["edges"]} == {("a", "b")}
    two = api.get("/api/v1/workflows/api-graph/versions/2").json()
    assert two["spec"]["nodes"][1]["needs"] == ["a"]
    source = served.call(lambda s: s.source("api-graph", "2")) or ""
    assert "# the first step" in source
    assert "inputs: {value: 1}" in source  # untouched lines stay as they were written
    cycle = error_of(api.post(edges, json={"node": "a", "needs": "b"}), 422, "definition_invalid")
    assert "cycle" in cycle["message"]
    taken = api.post(edges, json={"node": "a", "needs": "b"}, params={"new_version": "1"})
    error_of(taken, 409, "conflict")
    node = {"id": "c", "function": "echo@1", "needs": ["b"], "inputs": {"value": 3}}
    three = api.post("/api/v1/workflows/api-graph/nodes", json={"node": node})
    assert three.status_code == 201, three.text
    assert len(three.json()["layout"]["nodes"]) == 3
    refused = api.delete("/api/v1/workflows/api-graph/nodes/b")  # c needs it
    error_of(refused, 422, "definition_invalid")
    assert api.get("/api/v1/workflows/api-graph").json()["versions"] == ["1", "2", "3"]
    assert api.delete("/api/v1/workflows/api-graph/edges/c/b").status_code == 200
    undo = api.post(
        "/api/v1/workflows/api-graph/edits", json={"ops": [{"type": "remove_node", "id": "c"}]}
    )
    assert undo.status_code == 201, undo.text
    assert undo.json()["inverse"][0]["type"] == "add_node"
    graph = api.get("/api/v1/workflows/api-graph/graph").json()
    assert (graph["version"], {n["id"] for n in graph["nodes"]}) == ("5", {"a", "b"})
    run_id = api.post("/api/v1/workflows/api-graph/runs", json={}).json()["run_id"]
    assert client.get_run(run_id).wait(timeout=TIMEOUT).status is actorflow.RunStatus.SUCCEEDED
    with _as(served, served.token("api-gv", {"default": "viewer"})) as viewer:
        error_of(viewer.post(edges, json={"node": "a", "needs": "b"}), 403, "forbidden")
        assert viewer.get("/api/v1/workflows/api-graph/graph").status_code == 200
    with _as(served, served.token("api-go", {"elsewhere": "admin"})) as outsider:
        error_of(outsider.post(edges, json={"node": "a", "needs": "b"}), 404, "not_found")
        error_of(outsider.get("/api/v1/workflows/api-graph/graph"), 404, "not_found")
    error_of(api.post(edges, json={"node": "a", "needs": "b", "color": 1}), 422, "request_invalid")
    assert api.get("/api/v1/workflows/api-graph").json()["versions"] == ["1", "2", "3", "4", "5"]
