"""Settings of the model server (environment variables prefixed MODELSERVER_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.serving.committed import DEFAULT_CHECKPOINT, DEFAULT_OCCUPANCY_CHECKPOINT
from services.common.settings import env_name

__all__ = ["DEFAULT_CHECKPOINT", "DEFAULT_OCCUPANCY_CHECKPOINT", "ModelServerSettings"]


class ModelServerSettings(BaseSettings):
    """Model server: gRPC FusionKeypoints + Recognition, one process per GPU (or CPU)."""

    model_config = SettingsConfigDict(env_prefix="MODELSERVER_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    checkpoint: str | None = Field(
        default=None,
        description=(
            "path of a trained checkpoint; unset = the committed default if present; 'untrained' = "
            "randomly initialised weights, flagged as untrained in every response"
        ),
    )
    occupancy_checkpoint: str | None = Field(
        default=None,
        description=(
            "seat-occupancy model (classroom train-occupancy); unset = the committed default if "
            "present and a trained recognition checkpoint is served; 'head' = the keypoint "
            "network's own occupancy head"
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto = CUDA when present")
    optimise: bool = Field(
        default=True,
        description=(
            "CPU: serve the per-crop networks as a frozen TorchScript trace, built and checked against "
            "the eager networks at start (about 1 s); false = eager PyTorch (the same outputs, slower)"
        ),
    )
    torch_threads: int = Field(default=0, ge=0, description="intra-op threads; 0 = torch's default")
    max_batch_frames: int = Field(default=16, ge=1, description="frame sets per fusion batch")
    max_batch_windows: int = Field(default=256, ge=1, description="student windows per recognition batch")
    max_delay_ms: float = Field(
        default=8.0, ge=0, description="longest a request waits for its batch to fill"
    )
    max_message_bytes: int = Field(default=64 * 1024 * 1024, description="largest gRPC request accepted")
    tls_cert_file: Path | None = Field(default=None, description="serve TLS with this certificate (PEM)")
    tls_key_file: Path | None = Field(default=None, description="... and its private key (PEM)")
    tls_client_ca_file: Path | None = Field(
        default=None, description="require client certificates signed by this CA (mutual TLS)"
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "plaintext port serving only grpc.health.v1, for probes that cannot speak TLS (the "
            "kubelet's); unset = none, 0 picks a free one"
        ),
    )
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _health_port_is_its_own(self) -> ModelServerSettings:
        if self.health_port and self.health_port == self.port:
            raise ValueError(
                f"{env_name(self, 'health_port')} {self.health_port} is the gRPC port "
                f"({env_name(self, 'port')}): the health port is plaintext and needs a port of its own"
            )
        return self

    def resolved_checkpoint(self) -> Path | None:
        """The checkpoint file to load, or None for untrained weights."""
        if self.checkpoint == "untrained":
            return None
        if self.checkpoint:
            return Path(self.checkpoint)
        return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None

    def resolved_occupancy_checkpoint(self, recognition: Path | None) -> Path | None:
        """The occupancy model to load, or None to use the keypoint network's head."""
        if self.occupancy_checkpoint == "head":
            return None
        if self.occupancy_checkpoint:
            return Path(self.occupancy_checkpoint)
        if recognition is None:  # untrained recognition: its crop size need not match
            return None
        return DEFAULT_OCCUPANCY_CHECKPOINT if DEFAULT_OCCUPANCY_CHECKPOINT.is_file() else None
