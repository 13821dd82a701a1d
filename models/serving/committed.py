"""The committed checkpoints: one folder each under models/checkpoints, its enhancement.json
(section 3.2 parameters it was trained on) and training report beside the weights."""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
# the staged recipe on sim:crowd (docs/results.md): what the model server loads by default
DEFAULT_CHECKPOINT = CHECKPOINTS / "crowd" / "model.pt"
# the seat-occupancy model (classroom train-occupancy)
DEFAULT_OCCUPANCY_CHECKPOINT = CHECKPOINTS / "occupancy" / "model.pt"
# the paper recipe (section 3.5 end to end) on sim:small: the tables' proposed run
PAPER_RECIPE_CHECKPOINT = CHECKPOINTS / "sim-small" / "model.pt"
