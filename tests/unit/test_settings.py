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
