"""``classroom replay``: a simulated live session through the recognition model, without the services.

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

    classroom replay --seed 7 --students 4 --seconds 30
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from typing import cast

import numpy as np

DEFAULT_CHECKPOINT = "models/checkpoints/smartclass-small.pt"


@dataclass(frozen=True)
class PathResult:
    windows: int
    agreement: float
    stable_windows: int
    agreement_stable: float
    predicted: dict[str, int]


def _score(logits, truth: list[list[str]], ends: list[int], frames: int, labels) -> PathResult:
    hits = stable = stable_hits = total = 0
    predicted: Counter = Counter()
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
    return PathResult(
        total, hits / max(total, 1), stable, stable_hits / max(stable, 1), dict(predicted.most_common())
    )


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
    from pathlib import Path

    import torch

    from models.checkpoint import ENHANCEMENT_JSON, load_checkpoint
    from models.crops import extract_student_crops
    from models.pipeline import ClassroomPipeline
    from models.registry import create_model
    from services.common.codecs import DecodedFrameSet
    from services.common.seats import normalise_keypoints
    from services.common.vocabulary import BEHAVIOURS, HOP_FRAMES, WINDOW_FPS
    from services.enhancement.alignment import resize_to
    from services.enhancement.params import EnhancementParams
    from services.enhancement.pipeline import Enhancer
    from services.simulator.live import SimulatedCamera

    data = load_checkpoint(checkpoint)
    served = cast(ClassroomPipeline, create_model(data["method"], checkpoint=data, enhancement="identity"))
    trained = cast(ClassroomPipeline, create_model(data["method"], checkpoint=data))
    served.eval()
    trained.eval()
    size_px, frames = int(served.crop_size), int(data["window_frames"])
    n = round(seconds * WINDOW_FPS)
    if n < frames:
        raise ValueError(f"{seconds} s at {WINDOW_FPS} fps is shorter than one {frames}-frame window")
    params_path = Path(params_file) if params_file else Path(checkpoint).with_name(ENHANCEMENT_JSON)
    params = EnhancementParams.from_json(str(params_path)) if params_path.is_file() else EnhancementParams()
    camera_sim = SimulatedCamera(seed=seed, students=students, fps=WINDOW_FPS, conditions=conditions)
    classroom, course = camera_sim.campus_classroom("room", "cam", "course")
    camera = classroom.cameras[0]
    analysis = (camera.analysis_width, camera.analysis_height)
    seat_box = {s.id: s.box for s in camera.seats}
    roster = sorted(course.roster, key=lambda r: r.student)
    ids = [r.student for r in roster]
    boxes = np.array([seat_box[r.seat] for r in roster], np.float64)
    enhancer = Enhancer(params)

    served_kp, served_feat, trained_kp, trained_feat, truth, errors = [], [], [], [], [], []
    with torch.inference_mode():
        for k in range(n):
            frame = camera_sim.frame_at(k)
            enhanced = enhancer.process(DecodedFrameSet.of(frame), camera_sim.calibration, analysis)
            aligned = (enhanced.depth_mm, enhanced.thermal_c, enhanced.thermal_equalised)
            crops = extract_student_crops([(enhanced.rgb, *aligned)], [boxes], crop_size=size_px)
            raw = extract_student_crops(
                [(resize_to(frame.rgb, analysis), *aligned)], [boxes], crop_size=size_px
            )
            a = served.forward_fusion(crops.tensor, enhance=False)
            # Served: analysis-pixel keypoints, normalised by the recognition service's rule.
            image_xy = crops.geometry.crop_to_image(a.keypoints.xy.numpy())
            points = np.concatenate([image_xy, a.keypoints.confidence.numpy()[..., None]], -1)
            served_kp.append(torch.from_numpy(normalise_keypoints(points, boxes)))
            served_feat.append(a.node_features.half().float())  # float16 on the wire
            b = trained.forward_fusion(raw.tensor, enhance=True)
            trained_kp.append(trained.recognition_keypoints(b.keypoints, size_px))
            trained_feat.append(b.node_features)
            annotations = {s["student_id"]: s for s in (frame.annotations or {}).get("students", [])}
            truth.append([annotations[i]["label"] for i in ids])
            true_xy = np.array([np.asarray(annotations[i]["keypoints"], np.float64)[:, :2] for i in ids])
            d = (served_kp[-1][..., :2].numpy() - normalise_keypoints(true_xy, boxes)) * size_px
            errors.append(float(np.hypot(d[..., 0], d[..., 1]).mean()))
        ends = list(range(frames - 1, n, HOP_FRAMES))
        results = {}
        for name, model, kps, feats in (
            ("served", served, served_kp, served_feat),
            ("training_path", trained, trained_kp, trained_feat),
        ):
            keypoints, features = torch.stack(kps, 1), torch.stack(feats, 1)
            logits = [
                model.forward_recognition(
                    keypoints[:, end - frames + 1 : end + 1], features[:, end - frames + 1 : end + 1]
                )[0]
                for end in ends
            ]
            results[name] = _score(logits, truth, ends, frames, BEHAVIOURS).__dict__
    return {
        "seed": seed,
        "students": students,
        "frames": n,
        "conditions": conditions,
        "checkpoint": checkpoint,
        "keypoint_error_crop_px": float(np.mean(errors)),
        "crop_size": size_px,
        **results,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=7, help="simulator seed of the live session")
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--conditions", default="mixed", help="mixed, normal, low_light, occlusion, ...")
    parser.add_argument("--params", default=None, help="EnhancementParams JSON (default: the checkpoint's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        result = replay(
            seed=args.seed,
            students=args.students,
            seconds=args.seconds,
            checkpoint=args.checkpoint,
            conditions=args.conditions,
            params_file=args.params,
        )
    except (ValueError, OSError) as exc:
        print(f"classroom replay: {exc}")
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"replay of seed {result['seed']}, {result['students']} students, {result['frames']} frame sets "
        f"({result['conditions']}): served keypoints {result['keypoint_error_crop_px']:.2f} crop px "
        f"from the truth (crop {result['crop_size']} px)"
    )
    for name in ("served", "training_path"):
        r = result[name]
        print(
            f"  {name:<14} agreement {100 * r['agreement']:.1f}% of {r['windows']} windows "
            f"({100 * r['agreement_stable']:.1f}% of {r['stable_windows']} with one true behaviour)"
        )
    return 0
