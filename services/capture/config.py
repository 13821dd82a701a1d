"""Settings of the capture agent (environment variables prefixed CAPTURE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.capture.sources.thermal import target_kind
from services.common.settings import ServiceSettings


class CaptureSettings(ServiceSettings):
    """Capture: a camera source -> frames.raw.v1 (one agent per classroom camera position)."""

    model_config = SettingsConfigDict(env_prefix="CAPTURE_", frozen=True, extra="ignore")

    classroom_id: str = Field(min_length=1)
    camera_id: str = Field(min_length=1)
    course_id: str = Field(default="", description="course being taught; empty = none scheduled")
    session_id: str = Field(
        default="", description="class session id; empty = <course or classroom>-<UTC start>"
    )
    source: Literal["simulator", "dataset", "kinect", "mkv", "replay"] = "simulator"
    fps: float = Field(default=15.0, gt=0, le=60, description="frames per second the camera captures")
    window_rate_only: bool = Field(
        default=True,
        description="publish only the first frame set of each recognition slot (the WINDOW_FPS grid the "
        "recognition service samples on): a faster camera's other frame sets are counted and dropped here, "
        "before encoding, enhancement and the model server",
    )
    max_frames: int = Field(
        default=0, ge=0, description="stop after this many frame sets; 0 = run until stopped"
    )
    jpeg_quality: int = Field(default=90, ge=30, le=100)
    reconnect_s: float = Field(
        default=5.0, gt=0, description="pause between attempts to reopen a missing camera"
    )
    ground_truth_out: Path | None = Field(
        default=None, description="JSONL file for ground-truth labels when the source knows them (no pixels)"
    )
    # simulator source
    sim_seed: int = 0
    sim_students: int = Field(default=20, ge=1, le=60)
    sim_width: int = Field(default=640, ge=64)
    sim_height: int = Field(default=360, ge=36)
    sim_conditions: str = Field(default="mixed", description="simulator condition preset")
    realtime: bool = Field(default=True, description="pace non-live sources (simulator, dataset, MKV) to fps")
    clock_tolerance_s: float = Field(
        default=2.0,
        gt=0,
        description="how far capture times may be from this host's clock: a source whose timeline starts "
        "farther off is put on it at its first frame set; a live camera whose clock then drifts farther ahead "
        "or behind is put back on it, counted (classroom_camera_clock_corrections_total) and logged, and after "
        "a step back the frame sets that would go back in time are dropped (skipped, reason clock_step)",
    )
    # recorded sources
    dataset_path: Path | None = Field(default=None, description="data-set folder (docs/dataset-format.md)")
    dataset_clip: str = Field(
        default="", description="play only this clip of the data set; empty = every clip, manifest order"
    )
    mkv_path: Path | None = Field(default=None, description="Azure Kinect recording (pyk4a playback)")
    replay_path: Path | None = Field(
        default=None,
        description="recording of encoded frame sets (CAPTURE_RECORD_TO) replayed at fps, looped",
    )
    record_to: Path | None = Field(
        default=None,
        description="append every frame set published (images included) to this file, for the replay camera; "
        "off by default: it stores frames, so record simulated classrooms only",
    )
    # live / paired thermal camera
    kinect_device: int = Field(default=0, ge=0)
    thermal_device: str = Field(
        default="",
        description="the thermal camera: a USB camera's index or /dev/video path (asked for Y16), or a "
        "stream URL such as rtsp://host/stream (OpenCV's FFmpeg backend)",
    )
    thermal_reconnect_attempts: int = Field(
        default=5,
        ge=0,
        le=100,
        description="reopen attempts (jittered backoff capped at 1 s) for a live thermal camera that stops "
        "delivering, before it is reported lost; frame sets then go out without thermal and the camera is "
        "tried again every reconnect_s; 0 = report it lost at once",
    )
    thermal_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="how long a stream URL may take to open or to deliver a frame before it counts as lost",
    )
    thermal_scale: float = Field(default=0.01, description="radiometric raw -> kelvin scale (Y16 cameras)")
    thermal_offset: float = Field(default=0.0, description="radiometric raw -> kelvin offset (Y16 cameras)")
    thermal_video: Path | None = Field(
        default=None, description="radiometric thermal video paired with an MKV"
    )

    @model_validator(mode="after")
    def _source_inputs(self) -> CaptureSettings:
        if self.source == "dataset" and self.dataset_path is None:
            raise ValueError("source=dataset needs CAPTURE_DATASET_PATH")
        if self.source == "replay" and self.replay_path is None:
            raise ValueError(
                "source=replay needs CAPTURE_REPLAY_PATH (a recording made with CAPTURE_RECORD_TO)"
            )
        if self.source == "mkv" and self.mkv_path is None:
            raise ValueError("source=mkv needs CAPTURE_MKV_PATH")
        if self.source == "kinect" and not self.thermal_device:
            raise ValueError("source=kinect needs its thermal camera in CAPTURE_THERMAL_DEVICE")
        if self.source == "kinect" and target_kind(self.thermal_device) == "file":
            raise ValueError(
                f"CAPTURE_THERMAL_DEVICE={self.thermal_device!r} is neither a USB camera (an index such as 0, "
                "or /dev/video0) nor a stream URL (rtsp://host/stream); a recorded thermal video goes in "
                "CAPTURE_THERMAL_VIDEO with source=mkv"
            )
        if self.source == "mkv" and self.thermal_video is None:
            raise ValueError("source=mkv needs the thermal video recorded with it in CAPTURE_THERMAL_VIDEO")
        return self
