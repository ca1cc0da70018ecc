"""The Ray token file and the settings around it: pure file and environment logic, no Ray
started (the cluster side is tests/integration/test_ray_auth.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from actorflow.cluster import ray_auth
from actorflow.cluster.settings import Settings
from actorflow.definitions.errors import ActorflowError


def test_token_file_is_born_private_and_reused(tmp_path: Path) -> None:
    old = os.umask(0)  # even a umask that grants everything leaves it 0600
    try:
        path = ray_auth.ensure_token(tmp_path / "home" / "ray-auth-token")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = ray_auth.read_token(path)
    assert len(token) == 64
    assert set(token) <= set("0123456789abcdef")
    assert ray_auth.ensure_token(path) == path
    assert ray_auth.read_token(path) == token  # a restart keeps the token clients know
    assert sorted(p.name for p in path.parent.iterdir()) == ["ray-auth-token"]


def test_token_files_others_can_read_are_refused(tmp_path: Path) -> None:
    path = ray_auth.ensure_token(tmp_path / "ray-auth-token")
    path.chmod(0o644)
    with pytest.raises(ActorflowError, match=rf"{path} is open to other users.*chmod 600 {path}"):
        ray_auth.ensure_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # reported, not silently changed


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read the Ray token file"), ("", "is empty")],
)
def test_missing_or_empty_token_file_says_which(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "ray-auth-token"
    if content is not None:
        path.write_text(content)
        path.chmod(0o600)
    with pytest.raises(ActorflowError, match=message) as caught:
        ray_auth.read_token(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_ray_start_environment_carries_only_our_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "someone-elses")  # would win over the file
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    env = ray_auth.server_env("token", tmp_path / "t")
    assert (env["RAY_AUTH_MODE"], env["RAY_AUTH_TOKEN_PATH"]) == ("token", str(tmp_path / "t"))
    assert "RAY_AUTH_TOKEN" not in env
    off = ray_auth.server_env("disabled", None)
    assert off["RAY_AUTH_MODE"] == "disabled"
    assert "RAY_AUTH_TOKEN_PATH" not in off
    assert "RAY_AUTH_TOKEN" not in off


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_a_loopback_dashboard_needs_no_token(host: str) -> None:
    ray_auth.check_dashboard_host(host, "disabled")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "ray-head.example"])
def test_an_exposed_dashboard_needs_the_token(host: str) -> None:
    ray_auth.check_dashboard_host(host, "token")
    with pytest.raises(ActorflowError, match=f"ACTORFLOW_DASHBOARD_HOST={host}.*RAY_AUTH=token"):
        ray_auth.check_dashboard_host(host, "disabled")


def test_settings_default_to_a_token_under_the_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_HOME", "/srv/af")
    settings = Settings()
    assert (settings.ray_auth, settings.dashboard_host) == ("token", "127.0.0.1")
    assert settings.ray_token_path == Path("/srv/af/ray-auth-token")
    monkeypatch.setenv("ACTORFLOW_RAY_TOKEN_FILE", "/etc/af/token")
    assert Settings().ray_token_path == Path("/etc/af/token")
    monkeypatch.setenv("ACTORFLOW_RAY_AUTH", "none")
    with pytest.raises(ValueError, match="ray_auth"):
        Settings()
