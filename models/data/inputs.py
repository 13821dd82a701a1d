"""The one input path: an enhanced frame set on the wire -> the crops every network reads.

Serving and training call the same functions, so a network is trained on what it is served:
- ``fusion_input(item)``: decode an ``EnhancedFrameSet`` (JPEG colour, depth on its
  registration grid, radiometric and equalised thermal) and its seat boxes, exactly as the
  model server does for every request item;
- ``model_inputs(frames, crop_size)``: the per-student crops of those frames
  (``models.data.crops.extract_student_crops``: seat square, resampling, normalisation), what
  the model server's engine passes to the networks;
- ``served_inputs(captured, camera, enhancer, crop_size)``: the whole live path for one capture,
  as the services run it: the capture agent's encoding (``codecs.encode_frame_set``), section
  3.2 as the enhancement service computes it (``enhance_frame_set``), then the two functions
  above. Training data (``models.data.crowd``), evaluation and replay build their inputs with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.data.crops import THERMAL_CENTRE_C, StudentCrops, extract_student_crops, validate_boxes
from services.common import codecs
from services.common.campus import Camera
from services.common.errors import BadInput
from services.common.frames import CapturedFrameSet
from services.common.pb.classroom.v1 import frames_pb2, inference_pb2
from services.enhancement.frameset import enhance_frame_set
from services.enhancement.pipeline import Enhancer
from services.fusion.observations import seat_regions


@dataclass(frozen=True)
class FusionInput:
    """One enhanced, aligned frame set at analysis resolution, and the seat boxes to read."""

    rgb: np.ndarray  # HxWx3 uint8 BGR
    depth_mm: np.ndarray  # HxW uint16
    thermal_c: np.ndarray  # HxW float32
    thermal_equalised: np.ndarray  # HxW uint8
    seats: np.ndarray  # float32 [S, 4] x0, y0, x1, y1 (analysis px)
    # HxW bool: where thermal_c is a reading; None: everywhere. Elsewhere thermal_c holds the
    # frame's ambient temperature, which the networks read but no temperature is made of
    thermal_covered: np.ndarray | None = None


def validate_fusion_input(item: FusionInput) -> None:
    """BadInput if an item cannot be processed (the server can check items one by one)."""
    if not isinstance(item, FusionInput):
        raise BadInput(f"expected FusionInput, got {type(item).__name__}")
    rgb = item.rgb
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInput("rgb must be an HxWx3 uint8 BGR array")
    shape = rgb.shape[:2]
    for name, arr, dtype in (
        ("depth_mm", item.depth_mm, np.uint16),
        ("thermal_c", item.thermal_c, np.float32),
        ("thermal_equalised", item.thermal_equalised, np.uint8),
    ):
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
            got = f"{arr.shape} {arr.dtype}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise BadInput(f"{name} must be {shape} {np.dtype(dtype).name} (aligned to colour), got {got}")
    covered = item.thermal_covered
    if covered is not None and (
        not isinstance(covered, np.ndarray) or covered.dtype != np.bool_ or covered.shape != shape
    ):
        raise BadInput(f"thermal_covered must be {shape} bool (aligned to colour)")
    if not np.isfinite(item.thermal_c).all():
        raise BadInput("thermal_c contains NaN or infinity")
    seats = np.asarray(item.seats, dtype=np.float64)
    validate_boxes(seats.reshape(0, 4) if seats.size == 0 else seats)


def fusion_input(item: inference_pb2.FusionItem) -> FusionInput:
    """An EnhancedFrameSet + seats, as the model server receives them -> FusionInput, or BadInput."""
    fs = item.frame_set
    for name in ("rgb", "depth", "thermal_radiometric", "thermal_equalised"):
        if not fs.HasField(name):
            raise BadInput(f"enhanced frame set lacks {name}")
    rgb = codecs.decode_image(fs.rgb, name="rgb")
    depth = codecs.registered_depth_at(codecs.decode_image(fs.depth, name="depth"), rgb.shape[:2])
    thermal_raw = codecs.decode_image(fs.thermal_radiometric, name="thermal_radiometric")
    thermal_eq = codecs.decode_image(fs.thermal_equalised, name="thermal_equalised")
    shapes = {rgb.shape[:2], depth.shape, thermal_raw.shape, thermal_eq.shape}
    if len(shapes) != 1:
        raise BadInput(f"enhanced modalities are not pixel-aligned: sizes {sorted(shapes)}")
    thermal_c, covered = _thermal_readings(fs, thermal_raw)
    seats = np.array(
        [[s.box.x0, s.box.y0, s.box.x1, s.box.y1] for s in item.seats], dtype=np.float32
    ).reshape(-1, 4)
    if len(seats) and not (np.all(seats[:, 2] > seats[:, 0]) and np.all(seats[:, 3] > seats[:, 1])):
        raise BadInput("a seat box has x1 <= x0 or y1 <= y0")
    return FusionInput(
        rgb=rgb,
        depth_mm=depth,
        thermal_c=thermal_c,
        thermal_equalised=thermal_eq,
        seats=seats,
        thermal_covered=covered,
    )


def _thermal_readings(
    fs: frames_pb2.EnhancedFrameSet, raw: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """THERMAL16 -> (°C with the ambient where there is no reading, coverage or None if full).

    The ambient is the one the enhancement service filled in before raw 0 marked those pixels
    (``report.thermal_ambient_c``, rounded as THERMAL16 rounds), so the networks read the
    same values either way; an older producer's frame gets the median of its readings."""
    scale = fs.thermal_radiometric.scale or codecs.THERMAL_SCALE
    offset = fs.thermal_radiometric.offset if fs.thermal_radiometric.scale else codecs.THERMAL_OFFSET
    covered = codecs.thermal16_covered(raw)
    if covered.all():
        return codecs.thermal16_to_celsius(raw, scale, offset), None
    if fs.report.HasField("thermal_ambient_c"):
        ambient = codecs.celsius_to_thermal16(np.array(fs.report.thermal_ambient_c, np.float32))
    elif covered.any():
        ambient = np.median(raw[covered])
    else:
        ambient = codecs.celsius_to_thermal16(np.array(THERMAL_CENTRE_C, np.float32))
    filled = np.where(covered, raw, np.uint16(np.rint(ambient))).astype(np.uint16)
    return codecs.thermal16_to_celsius(filled, scale, offset), covered


def model_inputs(frames: Sequence[FusionInput], crop_size: int) -> StudentCrops:
    """Every seat of every frame set as network input (frame-major), as the model server batches them."""
    return extract_student_crops(
        [(f.rgb, f.depth_mm, f.thermal_c, f.thermal_equalised) for f in frames],
        [np.asarray(f.seats, dtype=np.float64) for f in frames],
        crop_size=crop_size,
    )


def served_inputs(
    captured: CapturedFrameSet,
    camera: Camera,
    enhancer: Enhancer,
    crop_size: int,
    *,
    jpeg_quality: int = 90,
) -> tuple[StudentCrops, list[str]]:
    """One capture through the live path (capture encoding, enhancement service, model server's
    decoding and crops) -> (crops of the camera's seats in seat-map order, their seat ids)."""
    message = codecs.encode_frame_set(
        captured,
        classroom_id="training",
        session_id="training",
        camera_id=camera.id,
        jpeg_quality=jpeg_quality,
    )
    enhanced = enhance_frame_set(message, camera, enhancer, jpeg_quality=jpeg_quality)
    item = inference_pb2.FusionItem(request_id="training", frame_set=enhanced, seats=seat_regions(camera))
    return model_inputs([fusion_input(item)], crop_size), [seat.id for seat in camera.seats]
