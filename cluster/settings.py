"""All configuration, read from ``ACTORFLOW_*`` environment variables here and only here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, cast, get_args
from urllib.parse import unquote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actorflow.actors.config import EngineConfig, EngineTunables, Sampler, TracingConfig
from actorflow.definitions.errors import InputError


class OtelSettings(BaseSettings):
    """The standard OpenTelemetry variables actorflow honours (``OTEL_*``): tracing is on
    when a traces exporter is chosen or an OTLP endpoint is set, and off by default."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", frozen=True)

    sdk_disabled: bool = False
    traces_exporter: str = ""
    exporter_otlp_endpoint: str = ""
    exporter_otlp_traces_endpoint: str = ""
    exporter_otlp_protocol: str = ""
    exporter_otlp_traces_protocol: str = ""
    exporter_otlp_headers: str = ""
    exporter_otlp_traces_headers: str = ""
    exporter_otlp_timeout: float = Field(default=10_000, gt=0)  # milliseconds
    bsp_schedule_delay: float = Field(default=5_000, gt=0)  # milliseconds
    service_name: str = "actorflow"
    traces_sampler: str = "parentbased_always_on"
    traces_sampler_arg: str = ""

    def tracing(self) -> TracingConfig | None:
        """The engine's tracing configuration, or None when tracing is off."""
        exporter = self.traces_exporter.strip().lower()
        endpoint = self.exporter_otlp_traces_endpoint or self.exporter_otlp_endpoint
        if self.sdk_disabled or exporter == "none" or not (exporter or endpoint):
            return None
        if exporter not in ("", "otlp", "console"):
            raise InputError(
                f"OTEL_TRACES_EXPORTER={self.traces_exporter!r}: actorflow exports traces with "
                "'otlp' or 'console' (or 'none')"
            )
        protocol = (self.exporter_otlp_traces_protocol or self.exporter_otlp_protocol).strip()
        protocol = protocol or "http/protobuf"
        if protocol not in ("http/protobuf", "grpc"):
            raise InputError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use 'http/protobuf' or 'grpc'"
            )
        if self.exporter_otlp_traces_endpoint:
            endpoint = self.exporter_otlp_traces_endpoint
        elif endpoint and protocol == "http/protobuf":  # the base URL: the signal's path added
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        elif not endpoint:
            endpoint = "http://localhost:4318/v1/traces" if protocol != "grpc" else "localhost:4317"
        sampler, ratio = self._sampler()
        return TracingConfig(
            sampler=sampler,
            sample_ratio=ratio,
            exporter="console" if exporter == "console" else "otlp",
            endpoint=endpoint,
            protocol=protocol,
            headers=_headers(self.exporter_otlp_headers)
            | _headers(self.exporter_otlp_traces_headers),
            timeout=self.exporter_otlp_timeout / 1000,
            export_interval=self.bsp_schedule_delay / 1000,
            service_name=self.service_name,
        )

    def _sampler(self) -> tuple[Sampler, float]:
        sampler = self.traces_sampler.strip().lower() or "parentbased_always_on"
        if sampler not in get_args(Sampler):
            raise InputError(
                f"OTEL_TRACES_SAMPLER={self.traces_sampler!r}: use one of "
                + ", ".join(get_args(Sampler))
            )
        if not sampler.endswith("traceidratio"):
            return cast(Sampler, sampler), 1.0
        arg = self.traces_sampler_arg.strip() or "1.0"
        try:
            ratio = float(arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise InputError(
                f"OTEL_TRACES_SAMPLER_ARG={self.traces_sampler_arg!r}: a ratio from 0 to 1"
            )
        return cast(Sampler, sampler), ratio


def _headers(spec: str) -> dict[str, str]:
    """``key1=value1,key2=value2`` (values URL-encoded), as the OTLP exporter variables say."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"OTEL_EXPORTER_OTLP_HEADERS: {item!r} is not key=value")
        out[unquote(key.strip()).lower()] = unquote(value.strip())
    return out


# What Go's time.ParseDuration reads (nats-server parses the value), positive only.
_GO_DURATION = re.compile(r"(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+")


class Settings(BaseSettings, EngineTunables):
    """Defaults give the embedded local cluster; set the addresses to join existing ones.

    Every engine tunable (`EngineTunables`) is a setting too, e.g. ``ACTORFLOW_RUN_ACTORS``.
    """

    model_config = SettingsConfigDict(env_prefix="ACTORFLOW_", frozen=True)

    #: Where the embedded nats-server keeps its store and `actorflow up` its state.
    home: Path = Field(default_factory=lambda: Path.home() / ".actorflow")
    #: An existing Ray cluster to join (else the one `actorflow up` started, else embedded).
    ray_address: str | None = None
    #: An existing NATS server or cluster (else the one `actorflow up` started, else
    #: embedded): one URL, or a cluster's as a comma-separated list
    #: (``nats://a:4222,nats://b:4222,nats://c:4222``); clients fail over between them.
    nats_url: str | None = None
    #: CPUs and GPUs the embedded Ray declares (default: what the machine has).
    ray_num_cpus: int | None = None
    ray_num_gpus: int | None = None
    #: Token authentication for the Ray that actorflow starts (`actorflow up`, embedded):
    #: `token` (anyone who reaches its ports must show the token file's token) or
    #: `disabled`. A joined `ACTORFLOW_RAY_ADDRESS` keeps its own.
    ray_auth: Literal["token", "disabled"] = "token"
    #: The Ray token file: the one the Ray actorflow starts is given (created with mode
    #: 0600 when missing; default ``$ACTORFLOW_HOME/ray-auth-token``), and the one shown
    #: to `ACTORFLOW_RAY_ADDRESS` (unset: Ray's own ``RAY_AUTH_*`` variables decide).
    ray_token_file: Path | None = None
    #: Where the dashboard of the Ray that actorflow starts listens; beyond loopback only
    #: with `ray_auth` `token` (the dashboard runs submitted jobs).
    dashboard_host: str = "127.0.0.1"
    #: How long to wait for Ray or NATS to answer before saying it is unreachable.
    connect_timeout: float = Field(default=10.0, gt=0)
    #: Where engine processes send OpenTelemetry spans: from the standard ``OTEL_*``
    #: variables (`OtelSettings`); None, the default, is tracing off.
    tracing: TracingConfig | None = Field(default_factory=lambda: OtelSettings().tracing())
    #: The port `actorflow serve` answers the REST API on (on 127.0.0.1; 0: any free port).
    api_port: int = Field(default=8781, ge=0, le=65535)
    #: Requests a second one API token may make on average (0: no limit) …
    api_rate_limit: float = Field(default=50.0, ge=0)
    #: … and in a burst.
    api_rate_burst: int = Field(default=100, ge=1)
    #: How long the API's audit log keeps an entry (days) …
    api_audit_max_age_days: float = Field(default=90.0, gt=0)
    #: … and how many entries it keeps at most (the oldest are dropped first).
    api_audit_max_entries: int = Field(default=100_000, ge=1)
    #: A REST API (``http://host:8781``) that `Client` and the CLI go through instead of
    #: connecting to Ray and NATS; needs a token (`api_token` or `api_token_file`).
    api_url: str | None = None
    #: The bearer token for `api_url` (from `actorflow tokens create`) …
    api_token: SecretStr | None = None
    #: … or a file holding it (its first line), e.g. ``~/.actorflow/api-admin-token``.
    api_token_file: Path | None = None
    #: How often the nats-server that actorflow starts (embedded or `actorflow up`) fsyncs
    #: its store: a Go duration (nats-server's default `2m`) or `always`, an fsync per
    #: write — for those who cannot lose an acknowledged write on power loss or a kernel
    #: crash, at a cost per step (docs/benchmarks.md). A killed nats-server loses nothing
    #: either way: written data is in the OS's page cache.
    nats_sync_interval: str = "2m"

    @field_validator("nats_url")
    @classmethod
    def _server_list(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # unset (an empty variable too): `actorflow up`'s, else embedded
        servers = [part.strip() for part in value.split(",")]
        if not all(servers):
            raise ValueError(f"{value!r}: an empty entry in the comma-separated server list")
        return ",".join(servers)

    @field_validator("nats_sync_interval")
    @classmethod
    def _go_duration_or_always(cls, value: str) -> str:
        value = value.strip()
        if value != "always" and not _GO_DURATION.fullmatch(value):
            raise ValueError(f"{value!r} is neither `always` nor a duration such as 2m, 30s, 500ms")
        return value

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    def api_access(self) -> tuple[str, str] | None:
        """(URL, token) of the REST API to go through, or None to connect directly.

        Raises InputError when a URL is set without a usable token: going to the local
        engine instead would act on a different cluster than the one asked for.
        """
        if self.api_url is None:
            return None
        token = self.api_token.get_secret_value().strip() if self.api_token else ""
        if not token and self.api_token_file is not None:
            path = self.api_token_file.expanduser()
            try:
                token = next(iter(path.read_text(encoding="utf-8").splitlines()), "").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"ACTORFLOW_API_TOKEN_FILE {str(path)!r}: {exc}") from None
            if not token:
                raise InputError(f"ACTORFLOW_API_TOKEN_FILE {str(path)!r} holds no token")
        if not token:
            raise InputError(
                f"ACTORFLOW_API_URL is {self.api_url} but no token is set: set "
                "ACTORFLOW_API_TOKEN or ACTORFLOW_API_TOKEN_FILE (a token from "
                "`actorflow tokens create`)"
            )
        return self.api_url, token

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def jetstream_dir(self) -> Path:
        return self.home / "jetstream"

    @property
    def ray_token_path(self) -> Path:
        """The token file of the Ray actorflow starts."""
        return self.ray_token_file or self.home / "ray-auth-token"

    def engine(self, nats_url: str) -> EngineConfig:
        tunables = self.model_dump(include=set(EngineTunables.model_fields))
        return EngineConfig(nats_url=nats_url, tracing=self.tracing, **tunables)
