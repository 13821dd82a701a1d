"""What the training loop reads: a small Dataset protocol of per-student windows, the batch
collation and the flip augmentation (``models/data/open.py`` resolves ``classroom train --data``
to one of these data sets).

A sample is one student's window of T frames as crops from ``models/data/crops.py``:
- ``crops`` float32 [T, 6, S, S]: colour RAW (0..1 BGR, before enhancement: the torch
  enhancement runs inside the model so section 3.5 trains through it), depth and thermal
  channels already restored / equalised by the NumPy enhancement (their restoration has
  nothing to learn), normalised as in models/data/crops.py;
- ``reference`` float32 [T, 3, S, S]: the clean colour crops (eqs. 11-12), or None;
- ``keypoints`` float32 [T, 17, 3]: ground truth in crop pixels + visibility (0/1);
- ``occluded`` bool [T, 17]: the annotation says the point is in the image but hidden
  (visibility 1 of the data-set format, behind the desk, the body or a neighbour), or None
  where the data does not say; it only splits the reported keypoint error, training reads
  ``keypoints``;
- ``label``: behaviour index (vocabulary.BEHAVIOURS);
- ``occupied`` float32 [T]: 1 if a student is in the seat (None means all 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from services.common.vocabulary import FLIP_PAIRS, NUM_KEYPOINTS


@dataclass(frozen=True)
class WindowSample:
    crops: np.ndarray
    keypoints: np.ndarray
    label: int
    reference: np.ndarray | None = None
    occupied: np.ndarray | None = None
    occluded: np.ndarray | None = None


@runtime_checkable
class WindowDataset(Protocol):
    dataset_id: str  # names the data and its version; stored in checkpoints
    window_frames: int
    crop_size: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> WindowSample: ...

    def labels(self) -> np.ndarray:
        """Every sample's label, without rendering the samples (for class weights)."""
        ...


def _mirror_order() -> list[int]:
    order = list(range(NUM_KEYPOINTS))
    for left, right in FLIP_PAIRS:
        order[left], order[right] = right, left
    return order


MIRROR_ORDER = _mirror_order()  # keypoint k of a mirrored crop is keypoint MIRROR_ORDER[k] of the crop


def collate(samples: Sequence[WindowSample]) -> dict[str, torch.Tensor]:
    """Stack samples into the batch dict the pipeline and MultiTaskLoss read."""
    batch = {
        "crops": torch.from_numpy(np.stack([s.crops for s in samples]).astype(np.float32, copy=False)),
        "keypoints": torch.from_numpy(
            np.stack([s.keypoints for s in samples]).astype(np.float32, copy=False)
        ),
        "label": torch.tensor([int(s.label) for s in samples], dtype=torch.long),
        "occupied": torch.from_numpy(
            np.stack(
                [s.occupied if s.occupied is not None else np.ones(len(s.crops), np.float32) for s in samples]
            ).astype(np.float32, copy=False)
        ),
    }
    references = [s.reference for s in samples if s.reference is not None]
    if len(references) == len(samples):
        batch["reference"] = torch.from_numpy(np.stack(references).astype(np.float32, copy=False))
    occluded = [s.occluded for s in samples if s.occluded is not None]
    if len(occluded) == len(samples):
        batch["occluded"] = torch.from_numpy(np.stack(occluded).astype(bool, copy=False))
    return batch


def flip_batch(batch: dict[str, torch.Tensor], flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Horizontal-flip augmentation of the windows where ``flip`` [B] is True (every frame of a window).

    Crops and clean references are mirrored; keypoints (continuous crop coordinates, a crop
    spanning [0, S]) go to x' = S - x and trade places with their left/right partner
    (``vocabulary.FLIP_PAIRS``), visibility with them; labels and occupancy are unchanged (no
    behaviour of the vocabulary has a side).
    """
    if not bool(flip.any()):
        return batch
    out = dict(batch)
    size = batch["crops"].shape[-1]
    where = flip.view(-1, *([1] * (batch["crops"].dim() - 1)))
    out["crops"] = torch.where(where, batch["crops"].flip(-1), batch["crops"])
    if "reference" in batch:
        out["reference"] = torch.where(where, batch["reference"].flip(-1), batch["reference"])
    mirrored = mirror_keypoints(batch["keypoints"], size)
    out["keypoints"] = torch.where(flip.view(-1, 1, 1, 1), mirrored, batch["keypoints"])
    if "occluded" in batch:
        out["occluded"] = torch.where(
            flip.view(-1, 1, 1), batch["occluded"][..., MIRROR_ORDER], batch["occluded"]
        )
    return out


def mirror_keypoints(keypoints: torch.Tensor, size: int) -> torch.Tensor:
    """Keypoints [..., K, 3+] of a crop of side ``size`` as they are in its mirror image: x' = S - x,
    each point trading places (and visibility) with its left/right partner."""
    mirrored = keypoints[..., MIRROR_ORDER, :].clone()
    mirrored[..., 0] = size - mirrored[..., 0]
    return mirrored


def flip_frames(
    crops: torch.Tensor, keypoints: torch.Tensor, flip: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The flip augmentation of single frames: crops [N, C, S, S] and keypoints [N, K, 3] mirrored
    where ``flip`` [N] is True (the staged recipe's front-end stage)."""
    if not bool(flip.any()):
        return crops, keypoints
    size = crops.shape[-1]
    crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops)
    return crops, torch.where(flip.view(-1, 1, 1), mirror_keypoints(keypoints, size), keypoints)
