"""Section 3.2 end to end: one captured frame set in, the three modalities enhanced and pixel-aligned out.

``Enhancer.process`` is what the enhancement service calls for every frame set:

- colour: scale normalisation to the analysis size, then the multi-scale weighted
  guided-filter Retinex (``retinex.py``, eqs. 1-2);
- depth: bilateral filter, closing and region filling in the depth sensor's own frame
  (``depth.py``), registration to colour by reprojection (``alignment.py``), then optionally
  (``depth_guide_radius`` > 0), where depth was invented by region filling, a guided filter
  steered by the enhanced colour so that filled depth follows colour edges. It is off by
  default: on the test scenes it did not lower the depth error (see docs/enhancement.md);
- thermal: CLAHE of the windowed temperatures in the thermal sensor's frame (``thermal.py``);
  radiometric °C and the equalised image are both mapped onto the colour grid through the
  registered depth (working-distance plane where there is none).

Speed: the three modalities run one after the other on the calling thread; parallelism
comes from several frame sets in flight (the service's ``workers`` threads; OpenCV releases
the GIL). Running colour on a helper thread beside depth and thermal was measured slower on
the shared 2-core machine, in latency as in throughput (issue 4; see git log of this file).
``opencv_threads`` gives OpenCV's own per-call thread pool only the cores that the frame
sets in flight leave over.

Bad input raises a ``BadInput`` subclass naming the problem (wrong dtype or shape, NaN
temperatures, a calibration that does not fit the frames). Frames that are merely hopeless
get a defined output: an all-black colour frame stays black, a saturated one stays white,
a depth map without a valid pixel gives all-zero depth and thermal mapped at the working
distance.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.allocator import tune_allocator
from services.common.calibration import CameraCalibration
from services.common.errors import CorruptImage, InvalidCalibration
from services.common.frames import FrameSet
from services.enhancement import baselines
from services.enhancement.alignment import (
    RegistrationTables,
    registration_tables,
    resize_to,
    splat_depth,
    thermal_maps,
)
from services.enhancement.depth import close_small_holes, fill_regions, restore_depth
from services.enhancement.guided_filter import guided_filter
from services.enhancement.metrics import rms_contrast
from services.enhancement.params import EnhancementParams
from services.enhancement.retinex import enhance_low_light
from services.enhancement.thermal import check_thermal, equalise_thermal, linear_stretch

__all__ = ["METHOD", "EnhancedFrame", "EnhancementParams", "Enhancer"]

METHOD = "sec3.2-msgf-retinex/1"
# Parallax holes on the splat grid are at most a few grid pixels wide (Kinect baseline ~32 mm).
_PARALLAX_KERNEL = 3
# BT.601 luma weights of B, G, R (what cv2.COLOR_BGR2GRAY uses).
_LUMA_BGR = (0.114, 0.587, 0.299)


@dataclass(frozen=True)
class EnhancedFrame:
    """Section 3.2 output, all pixel-aligned to colour at the analysis size."""

    rgb: np.ndarray  # HxWx3 uint8 BGR, enhanced
    depth_mm: np.ndarray  # HxW uint16, restored, Z in the colour camera's frame; 0 outside the depth view
    thermal_c: np.ndarray  # HxW float32 °C, radiometric values kept; ambient where not covered
    thermal_equalised: np.ndarray  # HxW uint8 CLAHE output (pseudo-colour = thermal.pseudo_colour of it)
    report: dict  # EnhancementReport fields (floats) plus 'method' (str)
    # depth_mm on the registration grid (analysis size // k): depth_mm is its nearest-neighbour
    # upsampling (codecs.registered_depth_at); the service sends this one
    depth_grid_mm: np.ndarray
    # HxW bool: the pixels the thermal camera sees (any bilinear tap inside its image); elsewhere
    # thermal_c holds the frame's ambient (report["thermal_ambient_c"]), which is no reading
    thermal_covered: np.ndarray


def check_frame_set(frame_set: FrameSet, calibration: CameraCalibration) -> None:
    """CorruptImage for pixels of the wrong type, InvalidCalibration for a calibration of another size."""
    rgb, depth = frame_set.rgb, frame_set.depth_mm
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CorruptImage(
            f"colour must be HxWx3 uint8 BGR, got {getattr(rgb, 'dtype', type(rgb))} {np.shape(rgb)}"
        )
    if not isinstance(depth, np.ndarray) or depth.dtype != np.uint16 or depth.ndim != 2:
        raise CorruptImage(
            f"depth must be HxW uint16 mm, got {getattr(depth, 'dtype', type(depth))} {np.shape(depth)}"
        )
    if not isinstance(frame_set.thermal_c, np.ndarray):
        raise CorruptImage(f"thermal must be an array, got {type(frame_set.thermal_c)}")
    check_thermal(frame_set.thermal_c)
    for name, image, intrinsics in (
        ("colour", rgb, calibration.rgb),
        ("depth", depth, calibration.depth.intrinsics),
        ("thermal", frame_set.thermal_c, calibration.thermal.intrinsics),
    ):
        if image.shape[0] != intrinsics.height or image.shape[1] != intrinsics.width:
            raise InvalidCalibration(
                f"{name} frame is {image.shape[1]}x{image.shape[0]} but the calibration is for "
                f"{intrinsics.width}x{intrinsics.height}"
            )


def _check_analysis_size(analysis_size) -> tuple[int, int]:
    try:
        width, height = (int(x) for x in analysis_size)
    except (TypeError, ValueError) as exc:
        raise InvalidCalibration(f"analysis size must be (width, height), got {analysis_size!r}") from exc
    return width, height


def _mean_luma(bgr_u8: np.ndarray) -> float:
    """Mean BT.601 luma in [0, 1]: luma is linear, so it is the weighted mean of the channel means."""
    means = cv2.mean(bgr_u8)
    return sum(w * m for w, m in zip(_LUMA_BGR, means, strict=False)) / 255.0


def _luma_guide(bgr_u8: np.ndarray) -> np.ndarray:
    return np.multiply(cv2.cvtColor(bgr_u8, cv2.COLOR_BGR2GRAY), np.float32(1.0 / 255.0), dtype=np.float32)


def opencv_threads(frame_sets_in_flight: int) -> int:
    """Threads for OpenCV's per-call pool (``cv2.setNumThreads``): the cores each frame set in flight gets.

    OpenCV's pool busy-waits between calls; with as many frame sets in flight as cores, it mostly
    burns CPU that the other frame sets could use (measured: 5-24 % more CPU per frame set at
    640×360 on 2 cores with 2 in flight, for no lower latency and no higher throughput).
    """
    return max(1, (os.cpu_count() or 1) // max(1, frame_sets_in_flight))


class Enhancer:
    """Section 3.2 for one frame set at a time; safe to call from several threads at once."""

    def __init__(self, params: EnhancementParams | None = None) -> None:
        self.params = params or EnhancementParams()
        tune_allocator()

    def enhance_colour(self, rgb: np.ndarray, analysis_size: tuple[int, int]) -> np.ndarray:
        return self._colour(resize_to(rgb, analysis_size))

    def _colour(self, bgr_u8: np.ndarray) -> np.ndarray:
        """The configured colour enhancement (``params.colour_method``) at the analysis size."""
        method = self.params.colour_method
        if method == "mswgf":
            return enhance_low_light(bgr_u8, self.params)
        if method == "single_scale_retinex":
            return baselines.single_scale_retinex(bgr_u8)
        if method == "histogram_equalisation":
            return baselines.histogram_equalise_luma(bgr_u8)
        return baselines.fixed_scale_guided_retinex(bgr_u8, self.params)

    def register_depth(
        self,
        depth_mm: np.ndarray,
        calibration: CameraCalibration,
        analysis_size: tuple[int, int],
        guide: np.ndarray | None,
    ) -> tuple[np.ndarray, float, float]:
        """Registered float32 mm at analysis size; invalid fraction in; invalid fraction out (depth view).

        ``guide`` is the enhanced colour's luma in [0, 1]; it is needed only when ``depth_guide_radius`` > 0.
        """
        tables = registration_tables(calibration, analysis_size)
        grid, invalid_in, invalid_out = self._register_depth(depth_mm, tables, guide)
        return resize_to(grid, tables.analysis_size, nearest=True), invalid_in, invalid_out

    def _register_depth(
        self,
        depth_mm: np.ndarray,
        tables: RegistrationTables,
        guide: np.ndarray | None,
    ) -> tuple[np.ndarray, float, float]:
        """Registered depth on the splat grid (the analysis size is its nearest-neighbour upsampling)."""
        params = self.params
        restored = restore_depth(depth_mm, params)
        # Which grid cells carry depth that restoration invented matters only to the guided refinement.
        carry = restored.filled if params.depth_guide_radius > 0 else None
        grid, invented = splat_depth(restored.depth_mm, restored.depth_mm > 0, tables, carry=carry)
        fov = tables.depth_field_of_view_grid
        if restored.valid_in.any():
            grid = close_small_holes(grid, (grid <= 0) & fov, _PARALLAX_KERNEL)
            large_holes = (grid <= 0) & fov
            grid = fill_regions(grid, large_holes)
            if params.depth_guide_radius > 0:
                # Depth that region filling invented (here or in the sensor frame) follows the colour's edges.
                invented |= large_holes
                if invented.any():
                    if guide is None:
                        raise ValueError("depth_guide_radius > 0 needs the enhanced colour as a guide")
                    small_guide = cv2.resize(
                        guide, (grid.shape[1], grid.shape[0]), interpolation=cv2.INTER_AREA
                    )
                    refined = guided_filter(
                        small_guide, grid, params.depth_guide_radius, params.depth_guide_eps
                    )
                    grid = np.where(invented & fov, refined, grid)
        invalid_in = 1.0 - int(np.count_nonzero(restored.valid_in)) / restored.valid_in.size
        view = tables.depth_field_of_view
        missing = resize_to((grid <= 0).view(np.uint8), tables.analysis_size, nearest=True)
        invalid_out = int(np.count_nonzero(missing & view)) / int(np.count_nonzero(view))
        return grid, invalid_in, invalid_out

    def process(
        self, frame_set: FrameSet, calibration: CameraCalibration, analysis_size: tuple[int, int]
    ) -> EnhancedFrame:
        start = time.perf_counter()
        analysis_size = _check_analysis_size(analysis_size)
        check_frame_set(frame_set, calibration)
        tables = registration_tables(calibration, analysis_size)  # raises InvalidCalibration

        colour_in = resize_to(frame_set.rgb, analysis_size)
        rgb = self._colour(colour_in)
        guide = _luma_guide(rgb) if self.params.depth_guide_radius > 0 else None
        depth_grid, invalid_in, invalid_out = self._register_depth(frame_set.depth_mm, tables, guide)

        thermal_c = frame_set.thermal_c
        equalised, ambient_c = equalise_thermal(thermal_c, self.params)
        map_x, map_y = thermal_maps(depth_grid, tables)
        thermal_aligned = cv2.remap(
            thermal_c, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=ambient_c
        )
        th, tw = thermal_c.shape
        thermal_covered = (map_x > -1) & (map_x < tw) & (map_y > -1) & (map_y < th)
        equalised_aligned = cv2.remap(
            equalised, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        # Rounded to nearest (ties to even, as np.rint) and saturated to 0..65535 on the grid, then upsampled.
        depth_grid_u16 = cv2.add(depth_grid, 0.0, dtype=cv2.CV_16U)
        depth_u16 = resize_to(depth_grid_u16, analysis_size, nearest=True)
        thermal_contrast_in = rms_contrast(linear_stretch(thermal_c))
        thermal_contrast_out = rms_contrast(equalised)
        if not np.isfinite(thermal_aligned).all():  # pragma: no cover - remap of finite input is finite
            raise InvalidCalibration("thermal registration produced non-finite temperatures")
        report = {
            "rgb_mean_luma_in": _mean_luma(colour_in),
            "rgb_mean_luma_out": _mean_luma(rgb),
            "depth_invalid_fraction_in": invalid_in,
            "depth_invalid_fraction_out": invalid_out,
            "thermal_contrast_in": thermal_contrast_in,
            "thermal_contrast_out": thermal_contrast_out,
            "thermal_coverage": float(np.count_nonzero(thermal_covered)) / thermal_covered.size,
            "thermal_ambient_c": float(ambient_c),
            "processing_ms": (time.perf_counter() - start) * 1e3,
            "method": (
                f"{METHOD} lambda1={self.params.lambda1:.3f} lambda2={self.params.lambda2:.3f}"
                if self.params.colour_method == "mswgf"
                else f"{METHOD} colour={self.params.colour_method}"
            ),
        }
        return EnhancedFrame(
            rgb, depth_u16, thermal_aligned, equalised_aligned, report, depth_grid_u16, thermal_covered
        )
