"""Settings: one definition of every tunable, read from ACTORFLOW_* and documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from actorflow.actors.config import EngineConfig, EngineTunables
from actorflow.cluster.settings import Settings

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_engine_config_carries_every_tunable_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORFLOW_RUN_ACTORS", "7")
    monkeypatch.setenv("ACTORFLOW_HOOK_TIMEOUT", "2.5")
    config = Settings().engine("nats://127.0.0.1:1")
    assert isinstance(config, EngineConfig)
    assert (config.run_actors, config.hook_timeout) == (7, 2.5)
    assert set(EngineTunables.model_fields) < set(EngineConfig.model_fields)
    assert config.model_dump(exclude={"nats_url"}) == Settings().model_dump(
        include=set(EngineTunables.model_fields)
    )


def test_bounds_are_checked_where_they_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_RUN_ACTORS", "0")
    with pytest.raises(ValidationError, match="run_actors"):
        Settings()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`ACTORFLOW_{name.upper()}`" in DOCS.read_text()


@pytest.mark.parametrize("value", ["2m", "always", "1m30s", "500ms", "1.5s"])
def test_nats_sync_interval_takes_a_go_duration_or_always(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACTORFLOW_NATS_SYNC_INTERVAL", value)
    assert Settings().nats_sync_interval == value


@pytest.mark.parametrize("value", ["soon", "2", "-1s", "2 m", "always;"])
def test_a_bad_nats_sync_interval_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACTORFLOW_NATS_SYNC_INTERVAL", value)
    with pytest.raises(ValidationError, match=r"nats_sync_interval[\s\S]*neither `always`"):
        Settings()
