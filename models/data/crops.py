"""Per-student crops: the ONE function that turns aligned analysis-resolution frames and seat
boxes into the fixed-size trimodal crops every network in models/ reads (docs/contracts.md,
"Student crops"). Training and the model server both call it, so they see one geometry.

Coordinates. Points in analysis frames (keypoints in, keypoints out) use the convention of
the simulator and of services/common/calibration.py, OpenCV's: the centre of pixel (row i,
column j) is (x=j, y=i). Seat boxes are regions: (x0, y0, x1, y1) are pixel EDGES, pixel
(i, j) spanning [j, j+1) x [i, i+1), so a box (40, 30, 88, 78) holds pixels 40..87 x 30..77.
Inside models/ crop coordinates are continuous in the same edge sense (a crop spans [0, S],
crop pixel u has its centre at u + 0.5), which is what grid_sample and soft-argmax use; the
half-pixel between the two conventions is applied in ``CropGeometry`` only.

Geometry. Each seat box is grown to the square of side max(w, h) * (1 + margin) around its
centre, and that square is resampled to S x S crop pixels (aspect kept, so body proportions
do not depend on the seat box's shape). ``CropGeometry`` maps points both ways; recognition
normalises keypoints to the same square (``normalise_keypoints``), so "normalised to the
seat box" means the same thing in training and in serving.

Channels (float32, ``CROP_CHANNELS``, laid out in models/data/channels.py):
  0-2  colour, BGR like the frames, scaled to 0..1 (enhanced when serving, raw in training
       before the torch enhancement)
  3    depth relative to the student: (depth_mm - reference_mm) / DEPTH_SCALE_MM clipped to
       +-DEPTH_CLIP, 0 where depth is invalid; reference_mm is the median valid depth of the
       crop's central half (returned, so absolute distance can be recovered)
  4    radiometric temperature: (thermal_c - THERMAL_CENTRE_C) / THERMAL_SCALE_C
  5    CLAHE-equalised thermal, 0..1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from models.data.channels import (  # re-exported: the crop contract
    COLOUR as COLOUR,
)
from models.data.channels import (
    CROP_CHANNELS as CROP_CHANNELS,
)
from models.data.channels import (
    DEPTH as DEPTH,
)
from models.data.channels import (
    DEPTH_CLIP as DEPTH_CLIP,
)
from models.data.channels import (
    DEPTH_SCALE_MM as DEPTH_SCALE_MM,
)
from models.data.channels import (
    NUM_CHANNELS as NUM_CHANNELS,
)
from models.data.channels import (
    THERMAL as THERMAL,
)
from models.data.channels import (
    THERMAL_CENTRE_C as THERMAL_CENTRE_C,
)
from models.data.channels import (
    THERMAL_EQUALISED as THERMAL_EQUALISED,
)
from models.data.channels import (
    THERMAL_SCALE_C as THERMAL_SCALE_C,
)
from models.data.channels import (
    thermal_celsius as thermal_celsius,
)
from services.common.errors import BadInput, WrongResolution
from services.common.seats import PIXEL_CENTRE, seat_squares, validate_boxes
from services.common.seats import normalise_keypoints as normalise_keypoints  # re-exported: the crop contract

DEFAULT_CROP_SIZE = 96


@dataclass(frozen=True, slots=True)
class CropGeometry:
    """Where each crop came from: square origin (analysis px) and analysis px per crop px."""

    origin: np.ndarray  # [N, 2] float64, top-left corner of the square
    scale: np.ndarray  # [N] float64
    crop_size: int

    def crop_to_image(self, points: np.ndarray) -> np.ndarray:
        """[N, K, 2+] crop points -> analysis pixels (OpenCV convention; extra columns kept)."""
        out = np.array(points, dtype=np.float64, copy=True)
        out[..., :2] = out[..., :2] * self.scale[:, None, None] + self.origin[:, None, :] - PIXEL_CENTRE
        return out

    def image_to_crop(self, points: np.ndarray) -> np.ndarray:
        """[N, K, 2+] analysis pixels (OpenCV convention) -> crop points."""
        out = np.array(points, dtype=np.float64, copy=True)
        out[..., :2] = (out[..., :2] + PIXEL_CENTRE - self.origin[:, None, :]) / self.scale[:, None, None]
        return out


def _as_boxes(seats: np.ndarray) -> np.ndarray:
    arr = np.asarray(seats, dtype=np.float64)
    return arr.reshape(0, 4) if arr.size == 0 else arr


def crop_geometry(boxes: np.ndarray, crop_size: int = DEFAULT_CROP_SIZE, margin: float = 0.0) -> CropGeometry:
    origin, side = seat_squares(boxes, margin)
    return CropGeometry(origin=origin, scale=side / crop_size, crop_size=crop_size)


@dataclass(frozen=True, slots=True)
class StudentCrops:
    """A batch of crops over frames and seats, in frame-major order."""

    tensor: torch.Tensor  # [N, 6, S, S] float32
    geometry: CropGeometry
    frame_index: np.ndarray  # [N] which input frame each crop came from
    depth_reference_mm: np.ndarray  # [N] float32, 0 where the crop had no valid depth


def _check_frame(
    rgb: np.ndarray, depth_mm: np.ndarray, thermal_c: np.ndarray, thermal_eq: np.ndarray
) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInput(f"rgb must be HxWx3 uint8 BGR, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    for name, img, dtype in (
        ("depth_mm", depth_mm, np.uint16),
        ("thermal_c", thermal_c, np.float32),
        ("thermal_equalised", thermal_eq, np.uint8),
    ):
        if img.dtype != dtype:
            raise BadInput(f"{name} must be {np.dtype(dtype).name}, got {img.dtype}")
        if img.shape != (h, w):
            raise WrongResolution(f"{name} is {img.shape}, expected {(h, w)} (aligned to colour)")


def _median_of_valid(values: np.ndarray) -> np.ndarray:
    """[N, M] uint16 depths, 0 invalid -> float64 [N]: each row's median over its valid values
    (what ``np.median`` gives, for all rows at once), NaN for a row without any."""
    ordered = np.sort(values, axis=1)  # the invalid zeros first
    valid = np.count_nonzero(ordered, axis=1)
    first = values.shape[1] - valid
    rows = np.arange(len(values))
    low = ordered[rows, np.minimum(first + (valid - 1) // 2, values.shape[1] - 1)]
    high = ordered[rows, np.minimum(first + valid // 2, values.shape[1] - 1)]
    return np.where(valid > 0, (low.astype(np.float64) + high) / 2.0, np.nan)


def reference_depth(depth: np.ndarray) -> np.ndarray:
    """[N, S, S] uint16 crop depths -> float32 [N]: the median valid depth of each crop's central
    half, of the whole crop where the centre has none, 0 where the crop has no valid depth."""
    n, s = depth.shape[0], depth.shape[-1]
    quarter, half = s // 4, s - s // 4
    ref = _median_of_valid(depth[:, quarter:half, quarter:half].reshape(n, (half - quarter) ** 2))
    empty = np.isnan(ref)
    if empty.any():
        ref[empty] = _median_of_valid(depth[empty].reshape(int(empty.sum()), s * s))
    return np.nan_to_num(ref, nan=0.0).astype(np.float32)


@dataclass(frozen=True, slots=True)
class _SeatPixels:
    """Every seat square warped to the crop size, each modality in its own type, frame-major."""

    colour: np.ndarray  # [N, S, S, 3] uint8 BGR
    depth: np.ndarray  # [N, S, S] uint16 mm, 0 invalid
    thermal: np.ndarray  # [N, S, S] float32 °C
    equalised: np.ndarray  # [N, S, S] uint8
    origins: np.ndarray  # [N, 2] float64
    scales: np.ndarray  # [N] float64
    frame_index: np.ndarray  # [N] int64


def _warp_seats(
    frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    boxes_per_frame: list[np.ndarray],
    crop_size: int,
    margin: float,
) -> _SeatPixels:
    """Each seat's square of each frame, resampled to ``crop_size`` px (frames checked on the way)."""
    total = sum(len(b) for b in boxes_per_frame)
    seats = _SeatPixels(
        colour=np.empty((total, crop_size, crop_size, 3), np.uint8),
        depth=np.empty((total, crop_size, crop_size), np.uint16),
        thermal=np.empty((total, crop_size, crop_size), np.float32),
        equalised=np.empty((total, crop_size, crop_size), np.uint8),
        origins=np.empty((total, 2), dtype=np.float64),
        scales=np.empty(total, dtype=np.float64),
        frame_index=np.empty(total, dtype=np.int64),
    )
    dsize = (crop_size, crop_size)
    flags_linear = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    # depth by nearest neighbour: interpolating across an invalid 0 would invent distances
    flags_nearest = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    border = cv2.BORDER_REPLICATE
    n = 0
    for f, ((rgb, depth_mm, thermal_c, thermal_eq), boxes) in enumerate(
        zip(frames, boxes_per_frame, strict=True)
    ):
        _check_frame(rgb, depth_mm, thermal_c, thermal_eq)
        if len(boxes) == 0:
            continue
        origin, side = seat_squares(boxes, margin)
        scale = side / crop_size
        for s in range(len(boxes)):
            sc, ox, oy = scale[s], origin[s, 0], origin[s, 1]
            # crop pixel centre u + 0.5 -> analysis edge coordinate ox + (u + 0.5) * sc -> OpenCV (- 0.5)
            m = np.array([[sc, 0.0, ox + 0.5 * sc - 0.5], [0.0, sc, oy + 0.5 * sc - 0.5]])
            cv2.warpAffine(rgb, m, dsize, dst=seats.colour[n], flags=flags_linear, borderMode=border)
            cv2.warpAffine(depth_mm, m, dsize, dst=seats.depth[n], flags=flags_nearest, borderMode=border)
            cv2.warpAffine(thermal_c, m, dsize, dst=seats.thermal[n], flags=flags_linear, borderMode=border)
            cv2.warpAffine(
                thermal_eq, m, dsize, dst=seats.equalised[n], flags=flags_linear, borderMode=border
            )
            seats.origins[n] = (ox, oy)
            seats.scales[n] = sc
            seats.frame_index[n] = f
            n += 1
    return seats


def _network_channels(seats: _SeatPixels, depth_ref: np.ndarray) -> np.ndarray:
    """[N, 6, S, S] float32: colour, depth relative to each crop's reference, temperature and
    equalised thermal, scaled as the networks read them."""
    n, crop_size = seats.depth.shape[:2]
    out = np.empty((n, NUM_CHANNELS, crop_size, crop_size), dtype=np.float32)
    # straight into the batch: each channel converted and scaled in one pass, no temporaries
    np.multiply(seats.colour.transpose(0, 3, 1, 2), np.float32(1.0 / 255.0), out=out[:, COLOUR])
    rel = out[:, DEPTH]
    np.subtract(seats.depth, depth_ref[:, None, None], out=rel, dtype=np.float32)
    rel *= np.float32(1.0 / DEPTH_SCALE_MM)
    np.clip(rel, -DEPTH_CLIP, DEPTH_CLIP, out=rel)
    rel[(seats.depth == 0) | (depth_ref[:, None, None] <= 0)] = 0.0
    np.subtract(seats.thermal, np.float32(THERMAL_CENTRE_C), out=out[:, THERMAL])
    out[:, THERMAL] *= np.float32(1.0 / THERMAL_SCALE_C)
    np.multiply(seats.equalised, np.float32(1.0 / 255.0), out=out[:, THERMAL_EQUALISED])
    return out


def extract_student_crops(
    frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    seats: Sequence[np.ndarray],
    crop_size: int = DEFAULT_CROP_SIZE,
    margin: float = 0.0,
) -> StudentCrops:
    """Crops for every seat of every frame: NumPy frames in, one torch batch out.

    ``frames[i]`` = (rgb HxWx3 uint8 BGR, depth_mm HxW uint16, thermal_c HxW float32,
    thermal_equalised HxW uint8), all aligned to colour at the analysis resolution;
    ``seats[i]`` = float [S_i, 4] seat boxes of that frame. Pixels outside the frame repeat
    the border (a seat at the image edge gets no artificial black band).
    """
    if len(frames) != len(seats):
        raise BadInput(f"{len(frames)} frames but {len(seats)} seat lists")
    boxes_per_frame = [validate_boxes(_as_boxes(s)) for s in seats]
    pixels = _warp_seats(frames, boxes_per_frame, crop_size, margin)
    depth_ref = reference_depth(pixels.depth)
    out = _network_channels(pixels, depth_ref)
    if not np.all(np.isfinite(out[:, THERMAL])):
        raise BadInput("thermal_c contains NaN or infinity inside a seat region")
    return StudentCrops(
        tensor=torch.from_numpy(out),
        geometry=CropGeometry(origin=pixels.origins, scale=pixels.scales, crop_size=crop_size),
        frame_index=pixels.frame_index,
        depth_reference_mm=depth_ref,
    )
