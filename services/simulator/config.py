"""SmartClass-Sim settings: difficulty knobs and acquisition conditions, in one config object.

``SimConfig`` is everything that shapes what the simulator renders, apart from the seed:
image sizes, the ``Difficulty`` knobs that control how separable the behaviours are (tempo
and amplitude variance, distractor motions, occluders, sensor noise), and the mix of
acquisition ``Conditions`` (issue 3, item 5) that clips are drawn from.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Condition tags as they appear in annotations (frame-level "conditions").
CONDITION_TAGS: tuple[str, ...] = (
    "low_light",
    "depth_holes",
    "low_thermal_contrast",
    "thermal_drift",
    "severe_occlusion",
    "student_movement",
    "temporal_offset",
)


class Difficulty(BaseModel):
    """Knobs that make the data hard in the ways real classrooms are."""

    model_config = ConfigDict(frozen=True)

    # Motion variability (log-normal sigmas around each student's personal tempo/amplitude).
    tempo_spread: float = Field(default=0.25, ge=0.0, le=1.0)
    amplitude_spread: float = Field(default=0.2, ge=0.0, le=1.0)
    body_size_spread: float = Field(default=0.12, ge=0.0, le=0.3)
    # Distractor motions (scratching, touching the face, stretching, glances) per minute.
    fidget_rate_per_min: float = Field(default=8.0, ge=0.0, le=60.0)
    # Data-set windows: how late (s) the labelled behaviour may begin inside its window.
    onset_max_s: float = Field(default=0.4, ge=0.0, le=1.5)
    idle_motion: float = Field(default=1.0, ge=0.0, le=3.0)
    # Chance that a desk carries an occluder (open laptop, bag, stacked books).
    occluder_rate: float = Field(default=0.12, ge=0.0, le=1.0)
    severe_occluder_rate: float = Field(default=0.55, ge=0.0, le=1.0)
    # Shifting and leaning under the student-movement condition (1 = about 10 cm).
    movement_scale: float = Field(default=1.0, ge=0.0, le=3.0)
    # Sensor noise multipliers (1 = the documented sensor model).
    rgb_noise_scale: float = Field(default=1.0, ge=0.0, le=5.0)
    depth_noise_scale: float = Field(default=1.0, ge=0.0, le=5.0)
    thermal_noise_scale: float = Field(default=1.0, ge=0.0, le=5.0)


class Conditions(BaseModel):
    """Acquisition conditions of one clip (or one period of a live session)."""

    model_config = ConfigDict(frozen=True)

    low_light: bool = False
    depth_holes: bool = False
    low_thermal_contrast: bool = False
    thermal_drift: bool = False
    severe_occlusion: bool = False
    student_movement: bool = False
    temporal_offset: bool = False

    @property
    def tags(self) -> list[str]:
        return [tag for tag in CONDITION_TAGS if getattr(self, tag)]

    @classmethod
    def from_tags(cls, tags: list[str] | tuple[str, ...]) -> Conditions:
        unknown = set(tags) - set(CONDITION_TAGS)
        if unknown:
            raise ValueError(f"unknown condition(s) {sorted(unknown)}; known: {', '.join(CONDITION_TAGS)}")
        return cls(**{tag: True for tag in tags})


NAMED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "normal": (),
    "low_light": ("low_light",),
    "occlusion": ("severe_occlusion",),
    "movement": ("student_movement",),
    "depth_holes": ("depth_holes",),
    "thermal": ("low_thermal_contrast", "thermal_drift"),
    "offset": ("temporal_offset",),
    "hard": CONDITION_TAGS,
}


class ConditionMix(BaseModel):
    """Independent probability of each condition for a randomly drawn clip."""

    model_config = ConfigDict(frozen=True)

    low_light: float = Field(default=0.25, ge=0.0, le=1.0)
    depth_holes: float = Field(default=0.15, ge=0.0, le=1.0)
    low_thermal_contrast: float = Field(default=0.15, ge=0.0, le=1.0)
    thermal_drift: float = Field(default=0.15, ge=0.0, le=1.0)
    severe_occlusion: float = Field(default=0.2, ge=0.0, le=1.0)
    student_movement: float = Field(default=0.2, ge=0.0, le=1.0)
    temporal_offset: float = Field(default=0.15, ge=0.0, le=1.0)

    def sample(self, rng: np.random.Generator) -> Conditions:
        draws = rng.random(len(CONDITION_TAGS))
        return Conditions(
            **{tag: bool(d < getattr(self, tag)) for tag, d in zip(CONDITION_TAGS, draws, strict=True)}
        )


def parse_conditions(value: str | Conditions | None) -> Conditions | None:
    """A named set ("normal", "low_light", ...), a comma list of tags, or None for "mixed"."""
    if value is None or isinstance(value, Conditions):
        return value
    name = value.strip().lower()
    if name in ("mixed", "random", ""):
        return None
    if name in NAMED_CONDITIONS:
        return Conditions.from_tags(NAMED_CONDITIONS[name])
    return Conditions.from_tags([t.strip() for t in name.split(",") if t.strip()])


class SimConfig(BaseModel):
    """Everything but the seed that decides what the simulator renders."""

    model_config = ConfigDict(frozen=True)

    rgb_size: tuple[int, int] = (640, 360)
    analysis_size: tuple[int, int] = (640, 360)
    depth_size: tuple[int, int] = (320, 288)  # Azure Kinect NFOV 2x2 binned
    thermal_size: tuple[int, int] = (320, 240)
    difficulty: Difficulty = Difficulty()
    condition_mix: ConditionMix = ConditionMix()
    # Live sessions under mixed conditions redraw them about this often (seconds).
    condition_period_s: float = Field(default=90.0, gt=1.0)
