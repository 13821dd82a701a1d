"""Settings of the enhancement service (environment variables prefixed ENHANCE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import FrameStageSettings


class EnhancementSettings(FrameStageSettings):
    """Enhancement: frames.raw.v1 -> section 3.2 (enhance + align to colour) -> frames.enhanced.v1."""

    model_config = SettingsConfigDict(env_prefix="ENHANCE_", frozen=True, extra="ignore")

    campus_file: Path = Field(
        description="campus YAML with every camera's calibration and analysis resolution"
    )
    params_file: Path | None = Field(
        default=None,
        description="EnhancementParams JSON (a trained checkpoint's enhancement.json); unset = the default "
        "checkpoint's, else the documented defaults",
    )
    workers: int = Field(default=2, ge=1, le=64, description="frame sets enhanced in parallel")
    executor: Literal["process", "thread"] = Field(
        default="process",
        description="run the `workers` as worker processes (the default: no GIL between frame sets) or as "
        "threads of this process",
    )
    jpeg_quality: int = Field(default=90, ge=30, le=100)
    max_poll_records: int = Field(default=4, ge=1)
