"""The REST API client's pure parts: the API's error answers read back into the error tree,
the settings that switch a `Client` to the API, and which methods it carries itself."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

import actorflow
from actorflow._client import AsyncClient, AsyncRun
from actorflow._remote import RemoteClient, RemoteRun
from actorflow._remote_errors import error_from_answer
from actorflow.cluster.settings import Settings

URL = "http://engine.example:8781"


def _answer(code: str, message: str = "nope", **details: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details}}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "not_found", actorflow.NotFoundError),
        (409, "conflict", actorflow.ControlError),
        (409, "in_use", actorflow.InUseError),
        (422, "input_invalid", actorflow.InputError),
        (422, "request_invalid", actorflow.InputError),
        (422, "payload_invalid", actorflow.PayloadError),
        (413, "too_large", actorflow.PayloadError),
        (503, "engine_unavailable", actorflow.ClusterUnavailableError),
        (504, "timeout", actorflow.WaitTimeoutError),
        (401, "unauthenticated", actorflow.AuthError),
        (403, "forbidden", actorflow.AuthError),
        (429, "rate_limited", actorflow.RemoteApiError),
        (400, "malformed_json", actorflow.RemoteApiError),
        (500, "internal", actorflow.RemoteApiError),
    ],
)
def test_each_code_is_the_class_the_engine_raised(
    status: int, code: str, cls: type[actorflow.ActorflowError]
) -> None:
    error = error_from_answer(status, _answer(code, "what happened"), URL)
    assert type(error) is cls
    assert len(str(error).splitlines()) == 1


def test_a_not_found_keeps_its_kind_and_name() -> None:
    error = error_from_answer(404, _answer("not_found", kind="run", name="r-1"), URL)
    assert isinstance(error, actorflow.NotFoundError)
    assert (error.kind, error.name) == ("run", "r-1")
    assert str(error) == "run 'r-1' not found"


def test_a_definition_error_keeps_every_issue() -> None:
    issues = [
        {"file": "<request body>", "line": 8, "field": "spec.nodes[0].inputz", "message": "x"},
        {"file": "<request body>", "line": None, "field": None, "message": "y"},
    ]
    error = error_from_answer(422, _answer("definition_invalid", issues=issues), URL)
    assert isinstance(error, actorflow.DefinitionError)
    assert [(i.line, i.field, i.message) for i in error.issues] == [
        (8, "spec.nodes[0].inputz", "x"),
        (None, None, "y"),
    ]


def test_a_rejected_event_keeps_its_reason_once() -> None:
    error = error_from_answer(
        422, _answer("event_rejected", "schema: amount: too small", reason="schema"), URL
    )
    assert isinstance(error, actorflow.EventRejectedError)
    assert (error.reason, str(error)) == ("schema", "schema: amount: too small")


def test_auth_errors_say_what_to_do_in_one_line() -> None:
    token = error_from_answer(401, _answer("unauthenticated", "the token expired"), URL)
    assert isinstance(token, actorflow.AuthError)
    assert token.status == 401
    assert URL in str(token)
    assert "the token expired" in str(token)
    assert "ACTORFLOW_API_TOKEN" in str(token)
    role = error_from_answer(403, _answer("forbidden", "bob may not control run 'r'"), URL)
    assert isinstance(role, actorflow.AuthError)
    assert role.status == 403
    assert "bob may not control run 'r'" in str(role)


def test_an_answer_without_the_api_shape_says_so() -> None:
    for body in (None, "<html>Not Found</html>", {"detail": "Not Found"}, {"error": "x"}):
        error = error_from_answer(404, body, URL)
        assert isinstance(error, actorflow.RemoteApiError)
        assert error.code == "not_api"
        assert "ACTORFLOW_API_URL" in str(error)


def test_an_unknown_code_keeps_status_and_code() -> None:
    error = error_from_answer(418, _answer("teapot", "short and stout"), URL)
    assert isinstance(error, actorflow.RemoteApiError)
    assert (error.status, error.code) == (418, "teapot")
    assert "short and stout" in str(error)


# --- settings -------------------------------------------------------------------------------
def test_no_url_is_the_direct_connection() -> None:
    assert Settings(api_token=SecretStr("t")).api_access() is None


def test_url_and_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_API_URL", f"{URL}/")
    monkeypatch.setenv("ACTORFLOW_API_TOKEN", "af_a_b")
    assert Settings().api_access() == (URL, "af_a_b")


def test_a_token_file_gives_its_first_line(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("af_c_d\nignored\n")
    assert Settings(api_url=URL, api_token_file=file).api_access() == (URL, "af_c_d")
    explicit = Settings(api_url=URL, api_token=SecretStr("af_e_f"), api_token_file=file)
    assert explicit.api_access() == (URL, "af_e_f")  # the token itself wins


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_a_url_without_a_usable_token_is_refused(tmp_path: Path, content: str | None) -> None:
    file = tmp_path / "token"
    if content is not None:
        file.write_text(content)
    settings = Settings(api_url=URL, api_token_file=file)
    with pytest.raises(actorflow.InputError, match="ACTORFLOW_API_TOKEN_FILE"):
        settings.api_access()
    with pytest.raises(actorflow.InputError, match="no token is set"):
        Settings(api_url=URL).api_access()


@pytest.mark.parametrize("url", ["engine:8781", "ftp://engine", "http://"])
def test_a_url_that_is_no_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="api_url"):
        Settings(api_url=url)


# --- what the remote client carries ------------------------------------------------------------
def _public(cls: type) -> set[str]:
    return {n for n, v in inspect.getmembers(cls) if not n.startswith("_")}


def test_every_public_client_method_is_carried_or_refused_by_the_remote_client() -> None:
    """A method added to `AsyncClient` must be given an API path or a refusal here, never
    inherited: inherited, it would reach for NATS and Ray."""
    assert _public(AsyncClient) - set(vars(RemoteClient)) == set()


def test_run_handles_inherit_only_what_goes_through_record_and_control() -> None:
    inherited = _public(AsyncRun) - set(vars(RemoteRun)) - {"run_id"}
    assert inherited == {
        "status",  # record()
        "result",  # wait()
        "pause",
        "resume",
        "cancel",
        "terminate",
        "retry",
        "approve",
        "continue_",  # control(): an API action
        "break_at",
        "clear_break",
        "override",
        "step",  # control(): refused, not an API action
    }
