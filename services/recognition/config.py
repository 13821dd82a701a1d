"""Settings of the recognition service (environment variables prefixed RECOGNITION_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class RecognitionSettings(ServiceSettings):
    """Recognition: observations.v1 -> sliding windows (faust table) -> gRPC Recognition -> behaviours.v1."""

    model_config = SettingsConfigDict(env_prefix="RECOGNITION_", frozen=True, extra="ignore")

    model_server: str = Field(description="host:port of the model server (or its load balancer)")
    model_server_ca_file: Path | None = Field(
        default=None, description="talk TLS to the model server, trusting this CA (PEM); unset = plaintext"
    )
    model_server_cert_file: Path | None = Field(
        default=None, description="client certificate for a model server that requires one (mutual TLS)"
    )
    model_server_key_file: Path | None = Field(default=None, description="... and its private key")
    model_timeout_s: float = Field(default=10.0, gt=0)
    state_dir: Path = Field(default=Path("var/recognition"), description="faust's data directory")
    standby_replicas: int = Field(
        default=0, ge=0, description="warm copies of the window table on other workers"
    )
    commit_interval_s: float = Field(default=1.0, gt=0)
    producer_max_batch_bytes: int = Field(
        default=1,
        ge=1,
        description=(
            "producer batch size; 1 sends one record per batch, which the embedded broker needs for "
            "correct end offsets (faust's table recovery reads up to them); 16384+ on Apache Kafka"
        ),
    )
