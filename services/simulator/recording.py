"""Recording a live simulated session into the data-set format (one long clip).

Unlike data-set windows, a session clip runs for minutes at the camera's frame rate with
students switching behaviours on their own; the capture service can replay it as a
"recorded dataset folder" source and the loader cuts it into 8 fps windows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from services.common.campus import Classroom, Course
from services.dataset.format import (
    ClipEntry,
    ClipInfo,
    ClipStudent,
    FrameAnnotation,
    SeatBox,
    SensorFiles,
    StudentAnnotation,
)
from services.dataset.writer import FrameData, encode_frame, label_segments, write_clip, write_manifest
from services.simulator.live import SimulatedCamera
from services.simulator.scene import RenderedFrame


def record_session(
    out: Path,
    camera: SimulatedCamera,
    *,
    frames: int,
    split: str = "test",
    clip_id: str = "session-000",
    progress: Callable[[int], None] | None = None,
) -> ClipInfo:
    """Write ``frames`` frame sets of ``camera`` as one clip plus a manifest putting everyone in ``split``."""
    if frames < 1:
        raise ValueError("a session needs at least one frame")
    classroom, course = camera.campus_classroom(f"sim-{camera.room.name}", "front", "simulated-lecture")
    data = _capture(camera, frames, progress)
    info = _clip_info(camera, data, classroom, course, clip_id=clip_id, split=split)
    write_clip(out, info, [encode_frame(d, info) for d in data])
    write_manifest(
        out,
        name=f"sim-session-seed{camera.seed}",
        source=info.source,
        splits={split: [r.student for r in course.roster]},
        clips=[ClipEntry(id=info.id, split=split, frames=info.frames)],
    )
    return info


def _capture(camera: SimulatedCamera, frames: int, progress: Callable[[int], None] | None) -> list[FrameData]:
    """The first ``frames`` frame sets of ``camera`` with their annotations, as the writer takes them."""
    data = []
    for k, frame in enumerate(camera):
        if k >= frames:
            break
        data.append(frame_data(frame, k))
        if progress:
            progress(k)
    return data


def frame_data(frame: RenderedFrame, index: int) -> FrameData:
    """A rendered frame set as frame ``index`` of a clip: its images, its references (if rendered)
    and its annotation from its ground truth."""
    truth = frame.annotations
    annotation = FrameAnnotation(
        frame=index,
        sequence=frame.sequence,
        rgb_ts_us=frame.rgb_ts_us,
        depth_ts_us=frame.depth_ts_us,
        thermal_ts_us=frame.thermal_ts_us,
        conditions=truth["conditions"],
        image_quality=truth["image_quality"],
        students=[StudentAnnotation(**s) for s in truth["students"]],
    )
    return FrameData(
        frame.rgb,
        frame.depth_mm,
        frame.thermal_c,
        frame.rgb_ts_us,
        frame.depth_ts_us,
        frame.thermal_ts_us,
        annotation=annotation,
        reference_rgb=frame.reference_rgb,
        reference_depth_mm=frame.reference_depth_mm,
        reference_thermal_c=frame.reference_thermal_c,
    )


def _clip_info(
    camera: SimulatedCamera,
    data: list[FrameData],
    classroom: Classroom,
    course: Course,
    *,
    clip_id: str,
    split: str,
) -> ClipInfo:
    """The clip's header: timing, seat map, sensors, conditions, roster and behaviour segments."""
    cam = classroom.cameras[0]
    cfg = camera.config
    return ClipInfo(
        id=clip_id,
        split=split,
        frames=len(data),
        fps=camera.frame_rate,
        start_ts_us=data[0].annotation.rgb_ts_us,
        classroom_id=classroom.id,
        camera_id=cam.id,
        analysis_size=cfg.analysis_size,
        calibration=camera.calibration,
        seats=[SeatBox(id=s.id, box=s.box) for s in cam.seats],
        sensors={
            "rgb": SensorFiles(extension="jpg", width=cfg.rgb_size[0], height=cfg.rgb_size[1]),
            "depth": SensorFiles(extension="png", width=cfg.depth_size[0], height=cfg.depth_size[1]),
            "thermal": SensorFiles(extension="png", width=cfg.thermal_size[0], height=cfg.thermal_size[1]),
        },
        references=camera.references,
        conditions=sorted({c for d in data for c in d.annotation.conditions}),
        students=[ClipStudent(id=r.student, seat=r.seat) for r in course.roster],
        labels=label_segments([d.annotation for d in data]),
        source={
            "simulator": "SmartClass-Sim",
            "session": True,
            "seed": camera.seed,
            "fps": camera.frame_rate,
        },
    )
