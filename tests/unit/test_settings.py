"""Settings: one definition of every tunable, read from ACTORFLOW_* and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from actorflow.actors.config import EngineConfig, EngineTunables
from actorflow.cluster.settings import Settings
from actorflow.definitions.errors import InputError

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
    assert config.model_dump(exclude={"nats_url", "tracing"}) == Settings().model_dump(
        include=set(EngineTunables.model_fields)
    )


def test_bounds_are_checked_where_they_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_RUN_ACTORS", "0")
    with pytest.raises(ValidationError, match="run_actors"):
        Settings()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`ACTORFLOW_{name.upper()}`" in DOCS.read_text()


_OTEL = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tracing_is_off_by_default(otel_env: pytest.MonkeyPatch) -> None:
    assert Settings().tracing is None
    assert Settings().engine("nats://127.0.0.1:1").tracing is None


def test_an_otlp_endpoint_turns_tracing_on(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    otel_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20x,tenant=a")
    otel_env.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    tracing = Settings().engine("nats://127.0.0.1:1").tracing
    assert tracing is not None
    assert (tracing.endpoint, tracing.protocol) == (
        "http://collector:4318/v1/traces",
        "http/protobuf",
    )
    assert tracing.headers == {"authorization": "Bearer x", "tenant": "a"}
    assert tracing.export_interval == 0.25


def test_the_signal_specific_variables_win(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318")
    otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317")
    otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    tracing = Settings().tracing
    assert tracing is not None
    assert (tracing.endpoint, tracing.protocol) == ("collector:4317", "grpc")


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_exporter_choice(otel_env: pytest.MonkeyPatch, env: dict[str, str], on: bool) -> None:
    for key, value in env.items():
        otel_env.setenv(key, value)
    assert (Settings().tracing is not None) is on


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER='zipkin'"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "'novalue' is not key=value"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote", "OTEL_TRACES_SAMPLER='jaeger_remote'"),
    ],
)
def test_a_bad_otel_variable_is_one_clear_error(
    otel_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")
    otel_env.setenv(name, value)
    with pytest.raises(InputError, match=re.escape(message)):
        Settings()


@pytest.mark.parametrize(
    ("sampler", "arg", "want"),
    [
        ("", "", ("parentbased_always_on", 1.0)),
        ("always_off", "0.3", ("always_off", 1.0)),  # the argument is for ratios only
        ("parentbased_traceidratio", "0.25", ("parentbased_traceidratio", 0.25)),
        ("TraceIdRatio", "", ("traceidratio", 1.0)),
    ],
)
def test_the_sampler_variables(
    otel_env: pytest.MonkeyPatch, sampler: str, arg: str, want: tuple[str, float]
) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")
    otel_env.setenv("OTEL_TRACES_SAMPLER", sampler)
    otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    config = Settings().tracing
    assert config is not None
    assert (config.sampler, config.sample_ratio) == want


@pytest.mark.parametrize("arg", ["half", "1.5", "-0.1"])
def test_a_sampler_ratio_outside_0_to_1_is_refused(otel_env: pytest.MonkeyPatch, arg: str) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")
    otel_env.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    with pytest.raises(InputError, match=re.escape(f"OTEL_TRACES_SAMPLER_ARG={arg!r}")):
        Settings()


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
