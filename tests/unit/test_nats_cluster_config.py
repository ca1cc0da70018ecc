"""The generated nats-server configs of a local JetStream cluster, the server list of
``ACTORFLOW_NATS_URL``, and how `actorflow up` records a cluster (no server started)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from actorflow.cluster import nats_process, wiring
from actorflow.cluster.settings import Settings


def test_each_member_names_itself_and_routes_to_the_others(tmp_path: Path) -> None:
    members = nats_process.plan_cluster(3)
    ports = [p for m in members for p in (m.port, m.cluster_port, m.http_port)]
    assert len(set(ports)) == len(ports)
    assert [m.name for m in members] == ["af-0", "af-1", "af-2"]
    text = nats_process.config_text(tmp_path / "af-1", "always", members[1], members)
    assert 'server_name: "af-1"' in text
    assert f'store_dir: "{tmp_path / "af-1"}"' in text
    assert 'sync_interval: "always"' in text
    assert f'listen: "127.0.0.1:{members[1].cluster_port}"' in text
    assert f'http: "127.0.0.1:{members[1].http_port}"' in text
    routes = re.findall(r"nats-route://127\.0\.0\.1:(\d+)", text)
    assert sorted(map(int, routes)) == sorted(m.cluster_port for m in (members[0], members[2]))
    assert 'name: "actorflow"' in text


def test_a_lone_server_has_no_cluster_block(tmp_path: Path) -> None:
    text = nats_process.config_text(tmp_path, "2m")
    assert "cluster" not in text
    assert "server_name" not in text
    assert 'sync_interval: "2m"' in text


def test_a_cluster_needs_a_server() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        nats_process.plan_cluster(0)


def test_nats_url_takes_a_comma_separated_server_list() -> None:
    url = " nats://127.0.0.1:1 ,nats://127.0.0.1:2,  nats://127.0.0.1:3"
    settings = Settings(nats_url=url)
    assert settings.nats_url == "nats://127.0.0.1:1,nats://127.0.0.1:2,nats://127.0.0.1:3"
    assert nats_process.urls(settings.nats_url) == [f"nats://127.0.0.1:{i}" for i in (1, 2, 3)]
    assert Settings(nats_url="").nats_url is None  # an empty variable is unset
    with pytest.raises(ValidationError, match="empty entry"):
        Settings(nats_url="nats://127.0.0.1:1,,nats://127.0.0.1:2")


def test_stream_replicas_is_a_bounded_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_STREAM_REPLICAS", "3")
    assert Settings().engine("nats://127.0.0.1:1").stream_replicas == 3
    monkeypatch.setenv("ACTORFLOW_STREAM_REPLICAS", "0")
    with pytest.raises(ValidationError, match="stream_replicas"):
        Settings()


def test_a_recorded_cluster_lives_while_any_server_does() -> None:
    entry = {"pid": 1, "servers": [{"pid": 11}, {"pid": 12}, {"pid": 13}]}
    assert wiring.entry_pids(entry) == [11, 12, 13]
    assert wiring.entry_pids({"pid": 7, "url": "nats://127.0.0.1:4222"}) == [7]
