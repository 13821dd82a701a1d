"""The documented, configurable mapping from the 10 behaviours to engagement.

Each behaviour has a weight in [0, 1]; a student's engagement over a span is the
time-weighted mean of the weights of the behaviours observed, and the engaged share is
the fraction of time spent in behaviours whose weight is at least ``engaged_threshold``.
The default mapping below is the one documented in docs/engagement.md; a campus can
supply its own YAML file (same keys) through ``ENGAGEMENT_MAPPING_FILE``. Every view
that shows engagement names the mapping it used (``name`` and ``digest``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.vocabulary import BEHAVIOURS

DEFAULT_WEIGHTS: dict[str, float] = {
    "hand_raising": 1.0,  # active participation
    "attentive_listening": 1.0,  # oriented to the lecturer, leaning in
    "note_taking": 1.0,  # alternating between board and notes
    "head_down_writing": 0.8,  # working on paper; may be exercises or unrelated
    "page_turning": 0.7,  # following the material
    "upright_sitting": 0.6,  # present and oriented, no active cue
    "drinking_water": 0.5,  # neutral short break
    "chin_resting": 0.3,  # often fatigue or low arousal
    "side_conversation": 0.1,  # mostly off-task
    "phone_usage": 0.0,  # off-task
}


class EngagementMapping(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "default-v1"
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    engaged_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Alerts: engagement below this for at least ``alert_minutes`` consecutive minutes.
    alert_below: float = Field(default=0.4, ge=0.0, le=1.0)
    alert_minutes: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _every_behaviour(self) -> EngagementMapping:
        missing = set(BEHAVIOURS) - set(self.weights)
        unknown = set(self.weights) - set(BEHAVIOURS)
        if missing or unknown:
            raise ValueError(
                f"weights must name exactly the 10 behaviours (missing {sorted(missing)}, unknown {sorted(unknown)})"
            )
        bad = {k: v for k, v in self.weights.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"weights must lie in [0, 1]: {bad}")
        return self

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:12]

    def engaged(self, behaviour: str) -> bool:
        return self.weights[behaviour] >= self.engaged_threshold

    def score(self, seconds: Mapping[str, float]) -> float | None:
        """Time-weighted engagement in [0, 1] from seconds per behaviour; None when nothing was observed."""
        total = sum(seconds.get(b, 0.0) for b in BEHAVIOURS)
        if total <= 0:
            return None
        return sum(self.weights[b] * seconds.get(b, 0.0) for b in BEHAVIOURS) / total

    def engaged_share(self, seconds: Mapping[str, float]) -> float | None:
        total = sum(seconds.get(b, 0.0) for b in BEHAVIOURS)
        if total <= 0:
            return None
        return sum(seconds.get(b, 0.0) for b in BEHAVIOURS if self.engaged(b)) / total


def load_mapping(path: str | Path | None = None) -> EngagementMapping:
    """The mapping from ``path``, else from $ENGAGEMENT_MAPPING_FILE, else the default."""
    path = path or os.environ.get("ENGAGEMENT_MAPPING_FILE")
    if not path:
        return EngagementMapping()
    document = yaml.safe_load(Path(path).read_text())
    return EngagementMapping.model_validate(document)
