"""Seat geometry shared by the model server and recognition: the square each seat's crop covers.

A seat box (x0, y0, x1, y1) is a region in analysis pixels whose coordinates are pixel EDGES
(pixel (i, j) spans [j, j+1) x [i, i+1)); keypoints are points in OpenCV's convention (the
centre of pixel (row i, column j) is (x=j, y=i)), hence ``PIXEL_CENTRE``. Every crop covers
the square of side max(w, h)·(1 + margin) centred on its seat box (models/data/crops.py), and the
recognition network reads keypoints normalised to that same square: crop pixels / crop size
in training, ``normalise_keypoints`` of the model server's analysis-pixel keypoints in the
recognition service. One definition for both, so a seat box that is not square (most are
not: 100-190 px wide, 130-170 px high at 640×360) gives the recognition network the
skeleton it was trained on. numpy only: the recognition service does not load torch.
"""

from __future__ import annotations

import numpy as np

from services.common.errors import BadInput

PIXEL_CENTRE = 0.5  # OpenCV point x = j is the centre of the pixel whose edges are j and j + 1


def validate_boxes(boxes: np.ndarray) -> np.ndarray:
    """Seat boxes as float64 [N, 4] with x1 > x0 and y1 > y0, or BadInput."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise BadInput(f"seat boxes must have shape [S, 4] (x0, y0, x1, y1), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BadInput("seat boxes contain NaN or infinity")
    if np.any(arr[:, 2] <= arr[:, 0]) or np.any(arr[:, 3] <= arr[:, 1]):
        raise BadInput("seat boxes need x1 > x0 and y1 > y0")
    return arr


def seat_squares(boxes: np.ndarray, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Square regions around seat boxes: (origin [N, 2], side [N])."""
    arr = validate_boxes(boxes)
    centre = (arr[:, :2] + arr[:, 2:]) / 2.0
    side = np.maximum(arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]) * (1.0 + margin)
    return centre - side[:, None] / 2.0, side


def normalise_keypoints(keypoints_px: np.ndarray, seat_boxes: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Analysis-pixel keypoints [..., K, 2+] -> 0..1 within each seat's square (recognition input).

    ``seat_boxes`` is [..., 4] with the same leading shape as ``keypoints_px`` minus K (one box
    [4] for one student's [K, 3]). Equivalent to crop pixels / crop_size, which is what
    training feeds MST-GCN; extra columns (confidence) are kept.
    """
    kp = np.array(keypoints_px, dtype=np.float32, copy=True)
    boxes = np.asarray(seat_boxes, dtype=np.float64)
    flat = boxes.reshape(-1, 4)
    origin, side = seat_squares(flat, margin)
    origin = origin.reshape(*boxes.shape[:-1], 1, 2)
    side = side.reshape(*boxes.shape[:-1], 1, 1)
    kp[..., :2] = (kp[..., :2] + PIXEL_CENTRE - origin) / side
    return kp
