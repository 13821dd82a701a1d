"""A simulated live session through the recognition model, without the services: what
``classroom replay`` (models/tools/replay.py) runs.

The running pipeline's events agree with the simulator's ground truth far less often than the
data set's test windows (docs/benchmarks.md). This replay tells the two possible causes
apart. It renders a live session (``SimulatedCamera``, as the capture service runs it) at the
window rate, enhances each frame set as the enhancement service does (the checkpoint's
enhancement.json), and recognises every student's sliding windows (``WINDOW_FRAMES`` frames,
hop ``HOP_FRAMES``) two ways:

- **served**: enhanced colour crops, torch enhancement skipped, keypoints normalised to the
  seat square from analysis pixels: what the model server and the recognition service do;
- **training path**: raw colour crops through the checkpoint's own torch enhancement, as
  ``classroom train`` and ``classroom evaluate`` feed the network.

Each window's label is compared with the label its student held for most of the window
(the same rule as ``classroom agreement``), and the served keypoints with the simulator's
true keypoints (mean distance in crop pixels). If the served path agrees about as often as
the running pipeline, the services add no error of their own; if the training path agrees
about as often as the served one, the gap to the data set's test split is the model's, on
sessions unlike its training windows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from models.data.crops import CropGeometry, extract_student_crops
from models.data.inputs import served_inputs
from models.networks.checkpoint import ENHANCEMENT_JSON, load_checkpoint
from models.networks.pipeline import ClassroomPipeline
from models.networks.registry import create_model
from models.serving.committed import DEFAULT_CHECKPOINT as COMMITTED
from services.common.campus import Camera
from services.common.seats import normalise_keypoints
from services.common.vocabulary import BEHAVIOURS, HOP_FRAMES, WINDOW_FPS
from services.dataset.api import open_dataset
from services.enhancement.alignment import resize_to
from services.enhancement.params import EnhancementParams
from services.enhancement.pipeline import Enhancer
from services.simulator.live import SimulatedCamera

DEFAULT_CHECKPOINT = str(COMMITTED)


@dataclass(frozen=True)
class PathResult:
    windows: int
    agreement: float
    stable_windows: int
    agreement_stable: float
    predicted: dict[str, int]
    # stable windows (one true behaviour throughout) per true behaviour: how many, share right
    per_class_stable: dict[str, dict[str, float]]


def _score(logits, truth: list[list[str]], ends: list[int], frames: int, labels) -> PathResult:
    hits = stable = stable_hits = total = 0
    predicted: Counter = Counter()
    per_class: dict[str, Counter] = {}
    for w, end in enumerate(ends):
        for i, pred in enumerate(logits[w].argmax(-1).tolist()):
            held = [truth[t][i] for t in range(end - frames + 1, end + 1)]
            majority, count = Counter(held).most_common(1)[0]
            hit = labels[pred] == majority
            total += 1
            hits += hit
            predicted[labels[pred]] += 1
            if count == frames:
                stable += 1
                stable_hits += hit
                per_class.setdefault(majority, Counter()).update(n=1, agree=int(hit))
    return PathResult(
        total,
        hits / max(total, 1),
        stable,
        stable_hits / max(stable, 1),
        dict(predicted.most_common()),
        {k: {"n": c["n"], "agreement": c["agree"] / c["n"]} for k, c in sorted(per_class.items())},
    )


@dataclass
class _Models:
    served: Any  # ClassroomPipeline with its torch enhancement replaced by identity
    trained: Any  # the same weights with the checkpoint's torch enhancement
    enhancer: Any  # services.enhancement.pipeline.Enhancer with the checkpoint's parameters
    crop_size: int
    window_frames: int
    inputs: str  # "served" or "raw_colour" (models/networks/checkpoint.py)


def _load(checkpoint: str, params_file: str | None) -> _Models:
    data = load_checkpoint(checkpoint)
    served = cast(ClassroomPipeline, create_model(data["method"], checkpoint=data, enhancement="identity"))
    trained = cast(ClassroomPipeline, create_model(data["method"], checkpoint=data))
    params_path = Path(params_file) if params_file else Path(checkpoint).with_name(ENHANCEMENT_JSON)
    params = EnhancementParams.from_json(str(params_path)) if params_path.is_file() else EnhancementParams()
    return _Models(
        served.eval(),
        trained.eval(),
        Enhancer(params),
        int(served.crop_size),
        int(data["window_frames"]),
        str(data.get("inputs", "raw_colour")),
    )


def _served_path(models: _Models, frame, camera: Camera, rows: list[int]):
    """One frame set through the live path (``served_inputs``: capture encoding, section 3.2 as the
    enhancement service runs it, the model server's decoding and crops) -> (keypoints normalised
    to the seat square by the recognition service's rule, node features as sent) per student."""
    crops, _ = served_inputs(frame, camera, models.enhancer, models.crop_size)
    a = models.served.forward_fusion(crops.tensor[rows], enhance=False)
    geometry = CropGeometry(crops.geometry.origin[rows], crops.geometry.scale[rows], models.crop_size)
    image_xy = geometry.crop_to_image(a.keypoints.xy.numpy())
    points = np.concatenate([image_xy, a.keypoints.confidence.numpy()[..., None]], -1)
    boxes = np.array([camera.seats[r].box for r in rows], np.float64)
    return torch.from_numpy(normalise_keypoints(points, boxes)), a.node_features.half().float()


def _raw_path(models: _Models, frame, camera: Camera, rows: list[int]):
    """The paper recipe's training inputs: raw colour crops through the checkpoint's torch enhancement."""
    size = models.crop_size
    analysis = (camera.analysis_width, camera.analysis_height)
    assert camera.calibration is not None
    enhanced = models.enhancer.process(frame, camera.calibration, analysis)
    aligned = (enhanced.depth_mm, enhanced.thermal_c, enhanced.thermal_equalised)
    boxes = np.array([camera.seats[r].box for r in rows], np.float64)
    raw = extract_student_crops([(resize_to(frame.rgb, analysis), *aligned)], [boxes], crop_size=size)
    b = models.trained.forward_fusion(raw.tensor, enhance=True)
    return models.trained.recognition_keypoints(b.keypoints, size), b.node_features


def _paths(models: _Models) -> tuple[str, ...]:
    # a checkpoint trained on served inputs has one path: training and serving see the same crops
    return ("served",) if models.inputs == "served" else ("served", "training_path")


def _through(models: _Models, name: str, frame, camera: Camera, rows: list[int]):
    return (_served_path if name == "served" else _raw_path)(models, frame, camera, rows)


def _logits(model, per_frame: list, ends: list[int], frames: int) -> list:
    keypoints = torch.stack([k for k, _ in per_frame], 1)
    features = torch.stack([f for _, f in per_frame], 1)
    return [
        model.forward_recognition(keypoints[:, e - frames + 1 : e + 1], features[:, e - frames + 1 : e + 1])[
            0
        ]
        for e in ends
    ]


def replay(
    *,
    seed: int,
    students: int,
    seconds: float,
    checkpoint: str = DEFAULT_CHECKPOINT,
    conditions: str = "mixed",
    params_file: str | None = None,
) -> dict:
    """Figures of one replayed session (module docstring); ``params_file`` defaults to the checkpoint's."""
    models = _load(checkpoint, params_file)
    frames = models.window_frames
    n = round(seconds * WINDOW_FPS)
    if n < frames:
        raise ValueError(f"{seconds} s at {WINDOW_FPS} fps is shorter than one {frames}-frame window")
    camera_sim = SimulatedCamera(seed=seed, students=students, fps=WINDOW_FPS, conditions=conditions)
    classroom, course = camera_sim.campus_classroom("room", "cam", "course")
    camera = classroom.cameras[0]
    seat_ids = [seat.id for seat in camera.seats]
    roster = sorted(course.roster, key=lambda r: r.student)
    ids = [r.student for r in roster]
    rows = [seat_ids.index(r.seat) for r in roster]
    boxes = np.array([camera.seats[r].box for r in rows], np.float64)
    paths = _paths(models)
    per_frame: dict[str, list] = {name: [] for name in paths}
    truth, errors = [], []
    with torch.inference_mode():
        for k in range(n):
            frame = camera_sim.frame_at(k)
            for name in paths:
                per_frame[name].append(_through(models, name, frame, camera, rows))
            annotations = {s["student_id"]: s for s in (frame.annotations or {}).get("students", [])}
            truth.append([annotations[i]["label"] for i in ids])
            true_xy = np.array([np.asarray(annotations[i]["keypoints"], np.float64)[:, :2] for i in ids])
            d = (
                per_frame["served"][-1][0][..., :2].numpy() - normalise_keypoints(true_xy, boxes)
            ) * models.crop_size
            errors.append(float(np.hypot(d[..., 0], d[..., 1]).mean()))
        ends = list(range(frames - 1, n, HOP_FRAMES))
        results = {
            name: _score(
                _logits(models.served if name == "served" else models.trained, per_frame[name], ends, frames),
                truth,
                ends,
                frames,
                BEHAVIOURS,
            ).__dict__
            for name in paths
        }
    return {
        "seed": seed,
        "students": students,
        "frames": n,
        "conditions": conditions,
        "checkpoint": checkpoint,
        "keypoint_error_crop_px": float(np.mean(errors)),
        "crop_size": models.crop_size,
        **results,
    }


def replay_split(
    *,
    data: str,
    split: str = "test",
    checkpoint: str = DEFAULT_CHECKPOINT,
    params_file: str | None = None,
    limit: int | None = None,
) -> dict:
    """Top-1 of both paths on the windows of a data-set split (``limit``: the first windows only).

    The training path here is what ``classroom evaluate`` scores (its crops are cached in
    float16 there, computed in float32 here); the served path is what the running suite would
    make of the same windows.
    """
    models = _load(checkpoint, params_file)
    paths = _paths(models)
    dataset = open_dataset(data)
    samples = dataset.samples(split)
    refs = dataset.windows(split)[:limit] if limit else dataset.windows(split)
    hits: Counter = Counter()
    predicted: dict[str, Counter] = {"served": Counter(), "training_path": Counter()}
    total = 0
    with torch.inference_mode():
        for ref in refs:
            students = [s for s in samples if s.window == ref]
            if not students:
                continue
            window = dataset.load_window(ref)
            frames = len(window.frames)
            if frames != models.window_frames:
                raise ValueError(
                    f"{ref.clip_id}: {frames} frames, the checkpoint reads {models.window_frames}"
                )
            seat_ids = [seat.id for seat in window.camera.seats]
            if any(s.seat_id not in seat_ids for s in students):
                raise ValueError(f"{ref.clip_id}: a student's seat is not in the camera's seat map")
            rows = [seat_ids.index(str(s.seat_id)) for s in students]
            per_path: dict[str, list] = {name: [] for name in paths}
            for frame in window.frames:
                for name in paths:
                    per_path[name].append(_through(models, name, frame, window.camera, rows))
            total += len(students)
            for name in paths:
                model = models.served if name == "served" else models.trained
                logits = _logits(model, per_path[name], [frames - 1], frames)[0]
                for s, pred in zip(students, logits.argmax(-1).tolist(), strict=True):
                    hits[name] += pred == s.label_index
                    predicted[name][BEHAVIOURS[pred]] += 1
    return {
        "data": data,
        "split": split,
        "windows": len(refs),
        "samples": total,
        "checkpoint": checkpoint,
        **{
            name: {"top1": hits[name] / max(total, 1), "predicted": dict(predicted[name].most_common())}
            for name in paths
        },
    }
