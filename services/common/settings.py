"""The settings every service shares; each service subclasses it with its own env prefix.

Values come from environment variables only (``<PREFIX>_<FIELD>``), are validated at
start-up and are frozen. ``--validate-config`` checks them before anything connects.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.kafka_security import KafkaSecurity

# Apache Kafka's default message.max.bytes (1 MB) minus room for the record overhead.
CAMPUS_MAX_MESSAGE_BYTES = 1_000_000


class ServiceSettings(BaseSettings):
    """Fields common to every Kafka service. Subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(description="Kafka bootstrap servers, host:port[,host:port]")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how Kafka clients connect (services/common/kafka_security.py)"
    )
    kafka_ssl_ca_file: Path | None = Field(default=None, description="CA of the broker's certificate (PEM)")
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="client certificate, if the broker asks"
    )
    kafka_ssl_key_file: Path | None = Field(default=None, description="... and its key")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, description="never logged")
    topic_prefix: str = Field(default="", description="prefix for every topic name (one suite per prefix)")
    max_message_bytes: int = Field(
        default=CAMPUS_MAX_MESSAGE_BYTES,
        ge=10_000,
        description="largest message this service produces; larger ones are refused before sending",
    )
    session_timeout_ms: int = Field(default=10_000, ge=1000, description="consumer-group session timeout")
    max_poll_records: int = Field(default=16, ge=1, description="messages handled per poll")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus/health port; 0 picks a free one"
    )
    metrics_host: str = Field(default="127.0.0.1")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    campus_reload_s: float = Field(
        default=5.0,
        ge=0,
        description="how often the campus file is checked for changes; 0 = read once at start",
    )
    campus_file: Path | None = Field(
        default=None, description="campus YAML: classrooms, cameras, seat maps, rosters"
    )
    deadletter_keep_payload: bool = Field(
        default=False,
        description="keep the failed message's bytes (possibly a frame of students) in the dead letter, for "
        "debugging, bounded by the topic's retention; by default a dead letter holds the reason, not the payload",
    )
    shutdown_grace_s: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> ServiceSettings:
        self.kafka_security()  # ValueError (shown as a settings error) for a half-set combination
        return self

    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            ca_file=self.kafka_ssl_ca_file,
            cert_file=self.kafka_ssl_cert_file,
            key_file=self.kafka_ssl_key_file,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None,
        )


class FrameStageSettings(ServiceSettings):
    """Settings of a stage that handles frame sets (enhancement, fusion): stale ones are shed."""

    shed_after_s: float = Field(
        default=30.0,
        ge=0,
        description="skip a frame set older than this (since capture) when it arrives, counted per classroom: "
        "under overload every classroom keeps getting events at lower coverage instead of a lag that grows; "
        "long enough that a stage back from a short outage (a restart, a 10 s pause) catches up without "
        "losing a window; 0 = never",
    )


S = TypeVar("S", bound=BaseSettings)


def env_name(settings: BaseSettings, field: str) -> str:
    """The environment variable that sets ``field`` of ``settings`` (its prefix included)."""
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


def load_settings(settings_class: type[S], *, validate_only: bool = False) -> S:
    """Build settings from the environment; on error print what is wrong (never the values) and exit 1."""
    try:
        settings = settings_class()  # type: ignore[call-arg]
    except ValidationError as exc:
        prefix = settings_class.model_config.get("env_prefix", "")
        print(f"invalid configuration for {settings_class.__name__}:", file=sys.stderr)
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            print(f"  {prefix}{field.upper()}: {error['msg']}", file=sys.stderr)
        raise SystemExit(1) from None
    campus_file = getattr(settings, "campus_file", None)
    if campus_file is not None:
        from services.common.campus import CampusConfigError, load_campus

        try:
            load_campus(campus_file)
        except CampusConfigError as exc:
            print(f"invalid campus file {campus_file}: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
    if validate_only:
        print(f"{settings_class.__name__}: configuration is valid")
        raise SystemExit(0)
    return settings


def env_names(settings_class: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (used to check infra files)."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in settings_class.model_fields}
