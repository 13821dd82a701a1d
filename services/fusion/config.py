"""Settings of the fusion service (environment variables prefixed FUSION_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import FrameStageSettings


class FusionSettings(FrameStageSettings):
    """Fusion: frames.enhanced.v1 -> gRPC FusionKeypoints -> observations.v1."""

    model_config = SettingsConfigDict(env_prefix="FUSION_", frozen=True, extra="ignore")

    campus_file: Path = Field(
        description="campus YAML with every camera's seat map and every course's roster"
    )
    model_server: str = Field(description="host:port of the model server (or its load balancer)")
    model_server_ca_file: Path | None = Field(
        default=None, description="talk TLS to the model server, trusting this CA (PEM); unset = plaintext"
    )
    model_server_cert_file: Path | None = Field(
        default=None, description="client certificate for a model server that requires one (mutual TLS)"
    )
    model_server_key_file: Path | None = Field(default=None, description="... and its private key")
    model_timeout_s: float = Field(default=10.0, gt=0)
    max_poll_records: int = Field(default=8, ge=1, description="frame sets sent to the model server per call")
    min_occupancy: float = Field(default=0.5, ge=0, le=1, description="below this a seat counts as empty")
