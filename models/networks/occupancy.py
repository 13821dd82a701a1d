"""Seat occupancy: is a student in this seat? A small CNN on the seat crop, trained on live sessions.

Why a model of its own: the fusion service observes only seats it thinks are taken, so a seat
judged empty loses its student's events, and an empty seat judged taken puts a student who is
not there on the dashboard. The keypoint network's occupancy head (models/networks/keypoints.py) is
trained on the data set's windows, one empty seat per window; on live simulated sessions it
called 84 % of empty seats taken (median score 0.84) and missed some seated students entirely
(docs/benchmarks.md, "Seat occupancy"). Seat boxes are generous and overlap, so a crop of an
empty seat still shows the neighbours and the student behind it; what tells the seat's own
occupant apart is *where* a body is in the crop, which the head, reading globally pooled
features, cannot see.

``OccupancyNet`` keeps that position: four stride-2 convolutions (6 -> 16 -> 32 -> 48 -> 64
channels, BN, ReLU) down to a 4x4 map at a 64 px crop, flattened into one linear logit
(48 k parameters). It reads the same six crop channels as the recogniser (models/data/crops.py:
colour, depth, thermal, equalised thermal), cut by the same code from frames enhanced by the
same NumPy section 3.2 path as the services use, so training sees exactly what serving sees.

Checkpoint: ``{"format": OCCUPANCY_FORMAT, "state_dict", "crop_size", "report"}`` written by
``classroom train-occupancy`` (the training is models/training/occupancy.py); the model server
loads it beside the recognition checkpoint (``MODELSERVER_OCCUPANCY_CHECKPOINT``) and then uses
its score instead of the head's. ``OccupancyReport`` is the checkpoint's ``report``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

OCCUPANCY_FORMAT = "classroom-occupancy-v1"
DEFAULT_CROP_SIZE = 64


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class OccupancyNet(nn.Module):
    """[N, 6, S, S] seat crops -> [N] occupancy logits (S divisible by 16)."""

    def __init__(self, crop_size: int = DEFAULT_CROP_SIZE, widths: Sequence[int] = (16, 32, 48, 64)) -> None:
        super().__init__()
        if crop_size % 16:
            raise ValueError(f"crop_size must be a multiple of 16, got {crop_size}")
        self.crop_size = crop_size
        layers, c = [], 6
        for w in widths:
            layers.append(_block(c, w))
            c = w
        self.features = nn.Sequential(*layers)
        side = crop_size // 16
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(c * side * side, 1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or crops.shape[1] != 6 or crops.shape[-1] != self.crop_size:
            raise ValueError(
                f"expected [N, 6, {self.crop_size}, {self.crop_size}] crops, got {list(crops.shape)}"
            )
        return self.classifier(self.features(crops)).squeeze(1)


@dataclass
class OccupancyReport:
    command: str
    train_sessions: list[dict] = field(default_factory=list)
    val_sessions: list[dict] = field(default_factory=list)
    train_crops: int = 0
    val_crops: int = 0
    epochs: int = 0
    seconds: float = 0.0
    val_accuracy: float = float("nan")
    val_missed_occupied: float = float("nan")  # share of taken seats called empty
    val_false_occupied: float = float("nan")  # share of empty seats called taken
    head_val_accuracy: float = float("nan")  # the keypoint network's head on the same crops, if given
    per_session: list[dict] = field(default_factory=list)


def save_occupancy(net: OccupancyNet, report: OccupancyReport, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": OCCUPANCY_FORMAT,
            "state_dict": net.state_dict(),
            "crop_size": net.crop_size,
            "report": json.dumps(asdict(report)),
        },
        path,
    )
    path.with_suffix(".report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")


def load_occupancy(path: str | Path) -> OccupancyNet:
    """An occupancy checkpoint as an eval-mode network, with a clear error for a wrong file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"occupancy checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable occupancy checkpoint: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != OCCUPANCY_FORMAT:
        raise ValueError(f"{path} is not a {OCCUPANCY_FORMAT} checkpoint")
    net = OccupancyNet(int(data["crop_size"]))
    net.load_state_dict(data["state_dict"])
    return net.eval()


__all__: list[Any] = ["OccupancyNet", "OccupancyReport", "load_occupancy", "save_occupancy"]
