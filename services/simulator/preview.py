"""Contact sheets: raw RGB, depth and thermal with keypoints, degraded next to clean references.

Rows: normal conditions, degraded conditions (low light, depth holes, low thermal
contrast with drift), and the clean references of the degraded frame in the colour view
(well-lit colour, complete depth, clean thermal). Columns: colour, colour with the
ground-truth skeletons, depth, thermal. Depth and thermal are colour-mapped for display
only; the data stay millimetres and degrees Celsius.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.common.vocabulary import HEAD_KEYPOINTS, KEYPOINTS, SKELETON_EDGES
from services.simulator.classroom import room_for
from services.simulator.config import Conditions, SimConfig
from services.simulator.session import build_live_scene

TILE = (480, 270)
DEPTH_RANGE_MM = (500.0, 6500.0)


def colour_depth(depth_mm: np.ndarray) -> np.ndarray:
    """Depth (mm, 0 = invalid) as a colour image; invalid pixels black."""
    lo, hi = DEPTH_RANGE_MM
    scaled = np.clip((depth_mm.astype(np.float32) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    image = cv2.applyColorMap(255 - scaled, cv2.COLORMAP_TURBO)
    image[depth_mm == 0] = 0
    return image


def colour_thermal(celsius: np.ndarray, lo: float = 18.0, hi: float = 38.0) -> np.ndarray:
    scaled = np.clip((celsius - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)


def draw_skeletons(image: np.ndarray, students: list[dict], scale: float = 1.0) -> np.ndarray:
    """Keypoints (analysis pixels) and skeleton edges; occluded keypoints hollow."""
    out = image.copy()
    for st in students:
        kp = np.asarray(st["keypoints"], np.float32)
        pts = (kp[:, :2] + 0.5) * scale - 0.5
        colour = (80, 220, 80) if not st.get("extra") else (200, 200, 80)
        for a, b in SKELETON_EDGES:
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                cv2.line(
                    out,
                    tuple(np.rint(pts[a]).astype(int)),
                    tuple(np.rint(pts[b]).astype(int)),
                    colour,
                    1,
                    cv2.LINE_AA,
                )
        for k in range(len(kp)):
            if kp[k, 2] == 2:
                cv2.circle(out, tuple(np.rint(pts[k]).astype(int)), 2, (0, 0, 255), -1, cv2.LINE_AA)
            elif kp[k, 2] == 1:
                cv2.circle(out, tuple(np.rint(pts[k]).astype(int)), 2, (255, 160, 0), 1, cv2.LINE_AA)
    return out


def _tile(image: np.ndarray, caption: str) -> np.ndarray:
    w, h = TILE
    ih, iw = image.shape[:2]
    s = min(w / iw, h / ih)
    resized = cv2.resize(image, (max(1, round(iw * s)), max(1, round(ih * s))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((h, w, 3), np.uint8)
    y, x = (h - resized.shape[0]) // 2, (w - resized.shape[1]) // 2
    tile[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    cv2.rectangle(tile, (0, 0), (w, 20), (0, 0, 0), -1)
    cv2.putText(tile, caption, (6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(
    *, seed: int = 0, students: int = 20, rgb_size: tuple[int, int] = (640, 360), t: float = 40.0
) -> np.ndarray:
    """A 3 x 4 sheet (normal, degraded, clean references) of one classroom at one moment."""
    config = SimConfig(rgb_size=rgb_size)
    room = room_for(students)
    degraded = Conditions(low_light=True, depth_holes=True, low_thermal_contrast=True, thermal_drift=True)
    rows = []
    for name, conditions in (("normal", Conditions()), ("degraded", degraded)):
        scene = build_live_scene(
            seed=seed, students=students, config=config, conditions=conditions, room=room
        )
        frame = scene.render(t, np.random.default_rng([seed, 1]), references=True)
        scale = rgb_size[0] / config.analysis_size[0]
        students_gt = frame.annotations["students"]
        rows.append(
            [
                _tile(frame.rgb, f"{name}: raw RGB {rgb_size[0]}x{rgb_size[1]}"),
                _tile(draw_skeletons(frame.rgb, students_gt, scale), f"{name}: 17 keypoints (ground truth)"),
                _tile(colour_depth(frame.depth_mm), f"{name}: raw depth (Kinect NFOV, own pose)"),
                _tile(colour_thermal(frame.thermal_c), f"{name}: raw thermal (own pose and lens)"),
            ]
        )
        if name == "degraded":
            assert frame.reference_rgb is not None and frame.reference_depth_mm is not None
            assert frame.reference_thermal_c is not None
            rows.append(
                [
                    _tile(frame.reference_rgb, "clean reference: well-lit RGB"),
                    _tile(draw_skeletons(frame.reference_rgb, students_gt), "clean reference + keypoints"),
                    _tile(colour_depth(frame.reference_depth_mm), "reference: complete depth, colour view"),
                    _tile(colour_thermal(frame.reference_thermal_c), "reference: clean thermal, colour view"),
                ]
            )
    return np.vstack([np.hstack(r) for r in rows])


def write_contact_sheet(path: str | Path, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), contact_sheet(**kwargs)):
        raise OSError(f"could not write {path}")
    return path


def keypoint_figure(*, seed: int = 3, size: tuple[int, int] = (760, 820)) -> np.ndarray:
    """One seated student seen from close by, the 17 keypoints numbered and named (docs/keypoints.md)."""
    import dataclasses

    from services.common.calibration import Intrinsics
    from services.simulator.behaviours import UPRIGHT_SITTING, Episode
    from services.simulator.classroom import ROOMS, room_seats
    from services.simulator.config import Difficulty
    from services.simulator.geometry import SensorPose, look_at
    from services.simulator.scene import BehaviourTrack
    from services.simulator.session import Occupant, build_window_scene, subject_profile

    config = SimConfig(difficulty=Difficulty(fidget_rate_per_min=0.0, idle_motion=0.0))
    room = ROOMS["small"]
    seat = room_seats(room)[1]
    student = Occupant(subject_profile(seed, 0, config.difficulty), seat, UPRIGHT_SITTING)
    scene = build_window_scene(
        config=config,
        room=room,
        room_seed=seed,
        occupants=[student],
        conditions=Conditions(),
        window=(50.0, 52.0),
        seed=(seed,),
    )
    # Sitting upright, looking ahead, forearms on the desk: every keypoint in view.
    facing = Episode(
        UPRIGHT_SITTING, 0.0, 100.0, 1, 1.0, 1.0, params=(0.9, 0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5)
    )
    scene.students[0].track = BehaviourTrack([facing])
    u, f = seat.basis[:, 1], seat.basis[:, 2]
    eye = seat.hip + f * 1500.0 + u * 750.0
    rotation = look_at(eye, seat.hip + u * 380.0 + f * 120.0)
    w, h = size
    k = Intrinsics(width=w, height=h, fx=1100.0, fy=1100.0, cx=(w - 1) / 2, cy=(h - 1) / 2)
    pose = SensorPose(k, rotation, -rotation @ eye)
    scene.rig = dataclasses.replace(scene.rig, colour=pose, analysis=pose, depth_lag_us=0, thermal_lag_us=0)
    # The clean reference (well lit, no sensor noise): legible, and small as a PNG.
    frame = scene.render(50.0, np.random.default_rng(seed), references=True)
    assert frame.reference_rgb is not None
    kp = np.asarray(frame.annotations["students"][0]["keypoints"], np.float32)
    return _label_keypoints(frame.reference_rgb, kp[:, :2])


FIGURE_FONT = cv2.FONT_HERSHEY_SIMPLEX
HEAD_COLOUR = (0, 200, 255)  # BGR: amber, the head keypoints (thermal-refined)
BODY_COLOUR = (60, 60, 235)  # BGR: red, the other keypoints
EDGE_COLOUR = (80, 220, 80)


def _text_box(
    image: np.ndarray, text: str, x: int, y: int, scale: float, indent: int = 0
) -> tuple[int, int, int, int]:
    """White text on a dark box whose top-left corner is (x, y); returns the box (x0, y0, x1, y1)."""
    (tw, th), base = cv2.getTextSize(text, FIGURE_FONT, scale, 1)
    x1, y1 = x + indent + tw + 8, y + th + base + 6
    cv2.rectangle(image, (x, y), (x1, y1), (30, 30, 30), -1)
    cv2.putText(
        image, text, (x + indent + 4, y + th + 3), FIGURE_FONT, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return x, y, x1, y1


def _label_keypoints(background: np.ndarray, points: np.ndarray, scale: float = 0.5) -> np.ndarray:
    """Skeleton, dots and numbered names in two columns (the student's right on the image's left)."""
    image = background.copy()
    h, w = image.shape[:2]
    pts = [(round(float(x)), round(float(y))) for x, y in points]
    for a, b in SKELETON_EDGES:
        cv2.line(image, pts[a], pts[b], EDGE_COLOUR, 2, cv2.LINE_AA)
    (_, text_h), base = cv2.getTextSize("0 head_top", FIGURE_FONT, scale, 1)
    box_h = text_h + base + 6
    legend_top = h - box_h - 10
    for column in ("left", "right"):
        members = [i for i in range(len(pts)) if (pts[i][0] < w / 2) == (column == "left")]
        members.sort(key=lambda i: pts[i][1])
        # Boxes centred on their point's height, pushed apart downwards, then up from the legend.
        tops: list[int] = []
        for i in members:
            top = pts[i][1] - box_h // 2
            tops.append(max(top, tops[-1] + box_h + 4) if tops else max(top, 4))
        limit = legend_top - box_h - 8
        for k in range(len(tops) - 1, -1, -1):
            tops[k] = min(tops[k], limit)
            limit = tops[k] - box_h - 4
        for i, top in zip(members, tops, strict=True):
            text = f"{i} {KEYPOINTS[i]}"
            (tw, _), _ = cv2.getTextSize(text, FIGURE_FONT, scale, 1)
            x = 6 if column == "left" else w - 6 - (tw + 8)
            anchor = (x + tw + 8, top + box_h // 2) if column == "left" else (x, top + box_h // 2)
            cv2.line(image, anchor, pts[i], (255, 255, 255), 1, cv2.LINE_AA)
            _text_box(image, text, x, top, scale)
    for i, p in enumerate(pts):
        colour = HEAD_COLOUR if i in HEAD_KEYPOINTS else BODY_COLOUR
        cv2.circle(image, p, 5, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(image, p, 4, colour, -1, cv2.LINE_AA)
    # Legend along the bottom.
    x = 6
    for colour, text in (
        (HEAD_COLOUR, "head keypoints 0-6"),
        (BODY_COLOUR, "body keypoints 7-16"),
        (EDGE_COLOUR, "skeleton edges"),
    ):
        x0, y0, x1, y1 = _text_box(image, text, x, legend_top, scale, indent=20)
        cv2.circle(image, (x0 + 12, (y0 + y1) // 2), 6, colour, -1, cv2.LINE_AA)
        x = x1 + 8
    return image


def write_keypoint_figure(path: str | Path, **kwargs) -> Path:
    """Write ``keypoint_figure()`` as a PNG (docs/images/keypoints.png)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), keypoint_figure(**kwargs), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return path
