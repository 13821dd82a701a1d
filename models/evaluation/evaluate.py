"""The paper's Tables 3, 4 and 6 and its robustness study (4.2.3) on a data set in the project's
format (SmartClass-Sim by default), from trained checkpoints: what ``classroom evaluate``
(models/tools/evaluate.py) runs.

Every checkpoint is evaluated on the TEST split (students never seen in training); the report
is ``results.json`` and ``results.md``. Columns, per method (Table 3's):

- PSNR, SSIM (dB, 0..1): the method's own colour enhancement (the torch twin of section 3.2
  or the baseline's fixed enhancement) applied to the raw colour crops, against the clean,
  well-lit reference crops of the same frames; scikit-image's metrics
  (services/enhancement/metrics.py) on uint8 BGR crops. Frames: every ``--frame-stride``-th
  frame of the test windows rendered under low light (``low_light`` tag), or of every window
  when the split has none.
- MI (0..1): how much of each input modality the fused feature map carries: the normalised
  mutual information (symmetric uncertainty, histogram of 64 bins, Maes et al. 1997) between
  the fused map's energy (L2 norm over channels, upsampled to the crop) and, in turn, the clean
  reference luminance, the restored depth (where valid) and the radiometric thermal channel,
  averaged over the three. Same frames as PSNR/SSIM.
- EPI (-1..1): edge preservation index (Sattar et al. 1997) of the fused energy map against
  the clean reference luminance, both at the fused map's resolution (the luminance
  area-averaged down to it; stride 4 of the crop): do the scene's edges survive fusion.
- Top-1, Top-5, macro-F1 (%): behaviour recognition on every test sample.
- FPS: frame sets per second of the whole method (enhancement, fusion, keypoints, node
  encoding, and recognition amortised over a hop of ``HOP_FRAMES`` frames) for a classroom of
  ``--fps-students`` students, median of repeated timed runs on the named device and threads.

Robustness (4.2.3): the test split rendered again with every window under one scenario
(``sim:<preset>?conditions=normal|low_light|occlusion|movement``: same students, behaviours,
seats and timing, only the condition differs), for the proposed method and the strongest
baseline; the drop is measured against the ``normal`` scenario.

A method whose checkpoint is missing is listed as missing, never filled in.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.data.crops import COLOUR, DEPTH, THERMAL
from models.data.windows import collate
from models.networks.checkpoint import load_checkpoint
from models.networks.registry import create_model
from models.training.losses import IGNORE_LABEL
from services.common.vocabulary import ARM_KEYPOINTS, BEHAVIOURS, HEAD_KEYPOINTS, HOP_FRAMES, NUM_KEYPOINTS
from services.enhancement import metrics

TABLES: dict[str, tuple[str, ...]] = {
    "Table 3 (methods compared)": (
        "retinex_concat_gcn",
        "cnn_attention_gcn",
        "multimodal_cnn_stgcn",
        "proposed",
    ),
    "Table 4 (incremental ablation)": ("table4_baseline", "table4_mswgf", "table4_mswgf_dcanet", "proposed"),
    "Table 6 (remove one submodule)": (
        "proposed",
        "no_multiscale_weights",
        "no_deformable",
        "no_multidilation",
        "no_adaptive_loss",
    ),
}
ROBUSTNESS_SCENARIOS: tuple[str, ...] = ("normal", "low_light", "occlusion", "movement")
# the robustness study compares the proposed method with the strongest of these (test top-1)
ROBUSTNESS_BASELINES: tuple[str, ...] = ("retinex_concat_gcn", "cnn_attention_gcn", "multimodal_cnn_stgcn")


def robustness_methods(top1: dict[str, float]) -> list[str]:
    """``proposed`` (if evaluated) and the 4.2.1 baseline with the best test top-1 (the first
    of ROBUSTNESS_BASELINES on a tie)."""
    chosen = ["proposed"] if "proposed" in top1 else []
    baselines = [m for m in ROBUSTNESS_BASELINES if m in top1]
    if baselines:
        chosen.append(max(baselines, key=lambda m: (top1[m], -baselines.index(m))))
    return chosen


METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("mi", "MI", "{:.3f}"),
    ("epi", "EPI", "{:.3f}"),
    ("top1", "Top-1 (%)", "{:.2f}"),
    ("top5", "Top-5 (%)", "{:.2f}"),
    ("macro_f1", "macro-F1 (%)", "{:.2f}"),
    ("fps", "FPS", "{:.1f}"),
)


@dataclass
class MethodResult:
    method: str
    checkpoint: str
    trained_on: str
    test_data: str
    samples: int
    top1: float
    top5: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion: list[list[int]]
    psnr: float
    ssim: float
    mi: float
    epi: float
    quality_frames: int
    quality_subset: str
    fps: float
    fps_device: str
    occupancy_accuracy: float = float("nan")
    training: dict[str, Any] = field(default_factory=dict)
    # {"all points" | "in view" | "hidden": {KEYPOINT_GROUPS..., "all": px}}; the last two where
    # the data says which points are hidden (format visibility 1)
    keypoint_error_px: dict[str, dict[str, float]] = field(default_factory=dict)
    # mean peak probability of the keypoint heatmaps (softmax over the grid) at points in the
    # image: how sharp the maps soft-argmax reads are (a Gaussian of one cell peaks near 0.16)
    heatmap_peak: float = float("nan")
    # {KEYPOINT_GROUPS..., "all": %} of the points in the image whose confidence (> 0.5: seen)
    # agrees with the annotation's in view / hidden; where the data says which points are hidden
    seen_accuracy: dict[str, float] = field(default_factory=dict)
    per_class_recall: dict[str, float] = field(default_factory=dict)
    inputs: str = "raw_colour"  # what the checkpoint was trained on (models/networks/checkpoint.py)


# Joint groups of the per-joint keypoint error (vocabulary indices), the arms in pairs
KEYPOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "head": HEAD_KEYPOINTS,
    "neck, chest, shoulders": tuple(
        i for i in range(NUM_KEYPOINTS) if i not in HEAD_KEYPOINTS and i not in ARM_KEYPOINTS
    ),
    "elbows": ARM_KEYPOINTS[0:2],
    "wrists": ARM_KEYPOINTS[2:4],
    "hands": ARM_KEYPOINTS[4:6],
}


def keypoint_errors(error_sum: np.ndarray, count: np.ndarray) -> dict[str, float]:
    """Mean per joint group and over all joints from per-joint sums and counts [17] (errors, hits)."""
    out = {}
    for group, idx in {**KEYPOINT_GROUPS, "all": tuple(range(NUM_KEYPOINTS))}.items():
        n = float(count[list(idx)].sum())
        out[group] = float(error_sum[list(idx)].sum()) / n if n else float("nan")
    return out


# --- recognition metrics --------------------------------------------------------------------


def recognition_metrics(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Top-1, top-5 and macro-F1 in percent, per-class F1, confusion matrix [true, predicted]."""
    if len(labels) == 0:
        raise ValueError("no samples to score")
    predicted = probabilities.argmax(axis=1)
    top5 = np.argsort(-probabilities, axis=1)[:, : min(5, num_classes)]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    f1, recall = [], []
    for c in range(num_classes):
        tp = confusion[c, c]
        fp = confusion[:, c].sum() - tp
        fn = confusion[c, :].sum() - tp
        # a class absent from both truth and predictions does not count toward the macro mean
        f1.append(float("nan") if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
        recall.append(float("nan") if tp + fn == 0 else 100.0 * tp / (tp + fn))
    present = [v for v in f1 if not math.isnan(v)]
    return {
        "top1": 100.0 * float((predicted == labels).mean()),
        "top5": 100.0 * float((top5 == labels[:, None]).any(axis=1).mean()),
        "macro_f1": 100.0 * float(np.mean(present)),
        "per_class_f1": f1,
        "per_class_recall": recall,
        "confusion": confusion.tolist(),
    }


def confusion_png(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> None:
    """The confusion matrix [true, predicted] as a picture: row-normalised shades, counts in the cells."""
    matrix = np.asarray(confusion, np.float64)
    n = len(labels)
    cell, left, top = 56, 190, 200
    image = np.full((top + n * cell + 20, left + n * cell + 20, 3), 255, np.uint8)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(n):
        for j in range(n):
            x0, y0 = left + j * cell, top + i * cell
            shade = int(255 * (1.0 - share[i, j]))
            colour = (255, shade, shade) if i != j else (shade, 255, shade)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (180, 180, 180), 1)
            text = str(int(matrix[i, j]))
            (w, h), _ = cv2.getTextSize(text, font, 0.45, 1)
            cv2.putText(image, text, (x0 + (cell - w) // 2, y0 + (cell + h) // 2), font, 0.45, (0, 0, 0), 1)
        cv2.putText(
            image, labels[i].replace("_", " "), (6, top + i * cell + cell // 2 + 5), font, 0.45, (0, 0, 0), 1
        )
        column = np.full((cell, top - 10, 3), 255, np.uint8)
        cv2.putText(column, labels[i].replace("_", " "), (4, cell // 2 + 5), font, 0.45, (0, 0, 0), 1)
        image[0 : top - 10, left + i * cell : left + (i + 1) * cell] = cv2.rotate(
            column, cv2.ROTATE_90_COUNTERCLOCKWISE
        )
    cv2.putText(image, title, (6, 18), font, 0.5, (0, 0, 0), 1)
    cv2.putText(image, "rows: true behaviour, columns: predicted", (6, 38), font, 0.45, (80, 80, 80), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


# --- image and fusion quality ---------------------------------------------------------------


def _to_u8(image: np.ndarray) -> np.ndarray:
    """[3, S, S] or [S, S] float 0..1 -> HxWx3 / HxW uint8."""
    arr = np.clip(image, 0.0, 1.0) * 255.0 + 0.5
    arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr.transpose(1, 2, 0)) if arr.ndim == 3 else arr


def _energy_map(fused: np.ndarray, size: int) -> np.ndarray:
    """Fused features [C, h, w] -> channel L2 energy, upsampled to size x size, float32."""
    energy = np.sqrt((fused.astype(np.float64) ** 2).sum(axis=0)).astype(np.float32)
    return cv2.resize(energy, (size, size), interpolation=cv2.INTER_LINEAR)


def _scaled_u8(image: np.ndarray) -> np.ndarray:
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return np.zeros(image.shape, np.uint8)
    return ((image - lo) / (hi - lo) * 255.0 + 0.5).astype(np.uint8)


def frame_quality(
    enhanced: np.ndarray, reference: np.ndarray, fused: np.ndarray, crop: np.ndarray
) -> dict[str, float]:
    """PSNR, SSIM of one enhanced colour crop; MI and EPI of its fused map (module docstring).

    ``enhanced``, ``reference`` [3, S, S] BGR 0..1; ``fused`` [C, h, w]; ``crop`` [6, S, S].
    """
    size = crop.shape[-1]
    enhanced_u8, reference_u8 = _to_u8(enhanced), _to_u8(reference)
    energy = _energy_map(fused, size)
    reference_luma = metrics.luminance(reference_u8)
    depth_valid = crop[DEPTH] != 0
    mi_terms = [
        metrics.normalised_mutual_information(energy, reference_luma),
        metrics.normalised_mutual_information(energy, crop[THERMAL]),
    ]
    if depth_valid.sum() >= 16:
        mi_terms.append(metrics.normalised_mutual_information(energy, crop[DEPTH], mask=depth_valid))
    feature_energy = np.sqrt((fused.astype(np.float64) ** 2).sum(axis=0)).astype(np.float32)
    h, w = feature_energy.shape
    reference_small = cv2.resize(reference_luma, (w, h), interpolation=cv2.INTER_AREA)
    return {
        "psnr": metrics.psnr(enhanced_u8, reference_u8),
        "ssim": metrics.ssim(enhanced_u8, reference_u8),
        "mi": float(np.mean(mi_terms)),
        "epi": metrics.edge_preservation_index(_scaled_u8(feature_energy), _scaled_u8(reference_small)),
    }


# --- running a model over a split -----------------------------------------------------------


def predict(pipeline, dataset, batch_size: int, quality_indices: set[int], frame_stride: int):
    """Class probabilities for every sample, and per-frame quality on ``quality_indices``."""
    pipeline.eval()
    probabilities, labels, quality, occupancy = [], [], [], []
    subsets = ("all points", "in view", "hidden")
    error_sum = {k: np.zeros(NUM_KEYPOINTS) for k in subsets}
    error_count = {k: np.zeros(NUM_KEYPOINTS) for k in subsets}
    knows_hidden = True
    peak_sum, peak_count = 0.0, 0.0
    seen_right, seen_count = np.zeros(NUM_KEYPOINTS), np.zeros(NUM_KEYPOINTS)
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            indices = list(range(start, min(start + batch_size, len(dataset))))
            samples = [dataset[i] for i in indices]
            batch = collate(samples)
            out = pipeline(batch["crops"])
            probabilities.append(torch.softmax(out.logits.float(), dim=-1).numpy())
            labels.append(batch["label"].numpy())
            predicted_occupied = (out.keypoints.occupancy_logits > 0).numpy()
            occupancy.append(predicted_occupied == (batch["occupied"].flatten().numpy() > 0.5))
            target = batch["keypoints"].flatten(0, 1)
            visible = (target[..., 2] > 0).numpy()
            error = (out.keypoints.xy - target[..., :2]).norm(dim=-1).numpy()
            peaks = torch.softmax(out.keypoints.heatmap_logits.flatten(2).float(), dim=-1).amax(-1).numpy()
            peak_sum += float(peaks[visible].sum())
            peak_count += float(visible.sum())
            masks = {"all points": visible}
            if "occluded" in batch:
                hidden = batch["occluded"].flatten(0, 1).numpy()
                masks.update({"in view": visible & ~hidden, "hidden": visible & hidden})
                says_seen = (out.keypoints.confidence > 0.5).numpy()
                seen_right += (visible & (says_seen == ~hidden)).sum(axis=0)
                seen_count += visible.sum(axis=0)
            else:
                knows_hidden = False
            for key, mask in masks.items():
                error_sum[key] += np.where(mask, error, 0.0).sum(axis=0)
                error_count[key] += mask.sum(axis=0)
            b, t = batch["crops"].shape[:2]
            fused = out.fusion.fused.view(b, t, *out.fusion.fused.shape[1:])
            for k, index in enumerate(indices):
                if index not in quality_indices or samples[k].reference is None:
                    continue
                frames = list(range(0, t, frame_stride))
                raw = batch["crops"][k, frames]
                enhanced = pipeline.enhancement(raw[:, COLOUR]).clamp(0, 1).numpy()
                for j, f in enumerate(frames):
                    quality.append(
                        frame_quality(
                            enhanced[j], samples[k].reference[f], fused[k, f].numpy(), raw[j].numpy()
                        )
                    )
    return (
        np.concatenate(probabilities),
        np.concatenate(labels),
        quality,
        float(np.concatenate(occupancy).mean()),
        {
            key: keypoint_errors(error_sum[key], error_count[key])
            for key in (subsets if knows_hidden else subsets[:1])
        },
        peak_sum / peak_count if peak_count else float("nan"),
        {k: 100.0 * v for k, v in keypoint_errors(seen_right, seen_count).items()} if knows_hidden else {},
    )


def measure_fps(
    pipeline, crop_size: int, window_frames: int, *, students: int, repeats: int, seed: int = 0
) -> float:
    """Frame sets per second of the whole method for a classroom of ``students`` (module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    crops = torch.rand(students, 6, crop_size, crop_size, generator=generator)
    pipeline.eval()
    with torch.inference_mode():
        stage = pipeline.forward_fusion(crops, enhance=True)  # warm-up
        kp = pipeline.recognition_keypoints(stage.keypoints, crop_size)
        windows_kp = kp.unsqueeze(1).expand(students, window_frames, *kp.shape[1:]).contiguous()
        windows_f = (
            stage.node_features.unsqueeze(1)
            .expand(students, window_frames, *stage.node_features.shape[1:])
            .contiguous()
        )
        pipeline.forward_recognition(windows_kp, windows_f)
        fuse_times, recognise_times = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            pipeline.forward_fusion(crops, enhance=True)
            fuse_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            pipeline.forward_recognition(windows_kp, windows_f)
            recognise_times.append(time.perf_counter() - began)
    per_frame_set = statistics.median(fuse_times) + statistics.median(recognise_times) / HOP_FRAMES
    return 1.0 / per_frame_set


def _quality_subset(dataset) -> tuple[set[int], str]:
    occupied = {i for i in range(len(dataset)) if _label_of(dataset, i) >= 0}
    low_light = {i for i in occupied if "low_light" in dataset.conditions(i)}
    if low_light:
        return low_light, "low_light test windows"
    return occupied, "all test windows (none under low light)"


def _label_of(dataset, index: int) -> int:
    meta = getattr(dataset, "meta", None)
    return int(meta(index).label) if meta is not None else int(dataset[index].label)


def _quality_means(frames: list[dict[str, float]]) -> dict[str, Any]:
    """PSNR, SSIM, MI and EPI, each the mean over the measured frames (NaN without any)."""
    return {
        key: float(np.mean([f[key] for f in frames])) if frames else float("nan")
        for key in ("psnr", "ssim", "mi", "epi")
    }


def _recognition_fields(scores: dict[str, Any]) -> dict[str, Any]:
    """``recognition_metrics``' scores as MethodResult fields, the per-class ones by behaviour."""
    return {
        "top1": scores["top1"],
        "top5": scores["top5"],
        "macro_f1": scores["macro_f1"],
        "per_class_f1": dict(zip(BEHAVIOURS, scores["per_class_f1"], strict=True)),
        "per_class_recall": dict(zip(BEHAVIOURS, scores["per_class_recall"], strict=True)),
        "confusion": scores["confusion"],
    }


def evaluate_checkpoint(
    checkpoint: Path,
    dataset,
    *,
    batch_size: int,
    frame_stride: int,
    fps_students: int,
    fps_repeats: int,
    device_name: str,
    quality: bool = True,
) -> MethodResult:
    data = load_checkpoint(checkpoint)
    if data["crop_size"] != dataset.crop_size:
        raise ValueError(
            f"{checkpoint}: trained on {data['crop_size']} px crops, the data set gives {dataset.crop_size}"
        )
    pipeline = create_model(data["method"], checkpoint=data)
    indices, subset = _quality_subset(dataset) if quality else (set(), "not measured")
    probabilities, labels, frames, occupancy, kp_errors, peak, seen_accuracy = predict(
        pipeline, dataset, batch_size, indices, frame_stride
    )
    labelled = labels != IGNORE_LABEL  # empty seats have no behaviour; occupancy scores them
    probabilities, labels = probabilities[labelled], labels[labelled]
    scores = recognition_metrics(probabilities, labels, len(BEHAVIOURS))
    fps = (
        measure_fps(
            pipeline,
            dataset.crop_size,
            dataset.window_frames,
            students=fps_students,
            repeats=fps_repeats,
        )
        if fps_repeats > 0
        else float("nan")
    )
    return MethodResult(
        method=data["method"],
        checkpoint=str(checkpoint),
        trained_on=str(data.get("dataset_id", "")),
        test_data=dataset.dataset_id,
        samples=len(labels),
        **_recognition_fields(scores),
        inputs=str(data.get("inputs", "raw_colour")),
        **_quality_means(frames),
        quality_frames=len(frames),
        quality_subset=subset,
        fps=fps,
        fps_device=device_name,
        occupancy_accuracy=occupancy,
        keypoint_error_px=kp_errors,
        heatmap_peak=peak,
        seen_accuracy=seen_accuracy,
        training=_training_summary(data.get("training") or {}),
    )


def _training_summary(training: dict[str, Any]) -> dict[str, Any]:
    """Epochs, best epoch and best validation top-1 of a checkpoint's training; for the staged
    recipe, the stages' lengths and the last stage's best."""
    if training.get("recipe") != "staged":
        return {k: training.get(k) for k in ("epochs_run", "best_epoch", "best_val_accuracy")}
    stages = training.get("stages") or {}
    lengths = {"front_end": ("a", "steps"), "recogniser": ("b", "epochs"), "finetune": ("c", "epochs")}
    run = [
        f"{lengths[n][0]}: {rec.get(lengths[n][1])}{' steps' if lengths[n][1] == 'steps' else ''}"
        for n, rec in stages.items()
        if n in lengths
    ]
    last = stages.get(training.get("stage"), {})
    return {
        "epochs_run": ", ".join(run),
        "best_epoch": last.get("best_epoch"),
        "best_val_accuracy": last.get("best_val_accuracy"),
    }


# --- report ---------------------------------------------------------------------------------


def _cell(value: float, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _method_tables(results: dict[str, dict[str, Any]]) -> list[str]:
    """Tables 3, 4 and 6: one row per method of each, ``missing`` where it was not evaluated."""
    lines: list[str] = []
    for title, methods in TABLES.items():
        lines += [f"## {title}", "", "| method | " + " | ".join(c[1] for c in METRIC_COLUMNS) + " |"]
        lines.append("| --- | " + " | ".join("---:" for _ in METRIC_COLUMNS) + " |")
        for m in methods:
            r = results.get(m)
            if r is None:
                lines.append(f"| `{m}` | " + " | ".join("missing" for _ in METRIC_COLUMNS) + " |")
                continue
            lines.append(
                f"| `{m}` | " + " | ".join(_cell(r[key], fmt) for key, _, fmt in METRIC_COLUMNS) + " |"
            )
        lines.append("")
    return lines


def _robustness_table(robustness: dict[str, dict[str, float]]) -> list[str]:
    """Top-1 per scenario and its drop against ``normal`` (none without a robustness study)."""
    if not robustness:
        return []
    lines = ["## Robustness (4.2.3): Top-1 (%) per scenario, drop against normal", ""]
    lines.append("| method | " + " | ".join(ROBUSTNESS_SCENARIOS) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in ROBUSTNESS_SCENARIOS) + " |")
    for m, per in robustness.items():
        normal = per.get("normal")
        cells = []
        for scenario in ROBUSTNESS_SCENARIOS:
            v = per.get(scenario)
            if v is None:
                cells.append("missing")
            elif scenario == "normal" or normal is None:
                cells.append(f"{v:.2f}")
            else:
                cells.append(f"{v:.2f} ({v - normal:+.2f})")
        lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _per_class_tables(results: dict[str, dict[str, Any]]) -> list[str]:
    """Per-class F1 of every method and per-class recall of those that have it."""
    lines = ["## Per-class F1 (%)", ""]
    names = list(next(iter(results.values()))["per_class_f1"]) if results else []
    if not names:
        return lines
    header = "| method | " + " | ".join(n.replace("_", " ") for n in names) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in names) + " |"
    lines += [header, rule]
    for m, r in results.items():
        lines.append(
            f"| `{m}` | " + " | ".join(_cell(100 * r["per_class_f1"][n], "{:.1f}") for n in names) + " |"
        )
    lines.append("")
    with_recall = {m: r for m, r in results.items() if r.get("per_class_recall")}
    lines += ["## Per-class recall (%)", "", header, rule]
    for m, r in with_recall.items():
        lines.append(
            f"| `{m}` | " + " | ".join(_cell(r["per_class_recall"][n], "{:.1f}") for n in names) + " |"
        )
    lines.append("")
    return lines


def _keypoint_error_table(results: dict[str, dict[str, Any]], crop_size: Any) -> list[str]:
    """Keypoint error per joint group and point subset, and the heatmap peak (methods that measured them)."""
    with_errors = {m: r for m, r in results.items() if r.get("keypoint_error_px")}
    if not with_errors:
        return []
    groups = [*KEYPOINT_GROUPS, "all"]
    lines = [
        "## Keypoint error (crop px, every test frame)",
        "",
        f"Mean distance between predicted and true keypoints in the {crop_size} px "
        "seat crop, over the points in the image: all of them, those in view, and those the "
        "annotation marks hidden (behind the desk, the body or a neighbour); and the share of "
        "points whose confidence (above 0.5: seen) tells in view from hidden as the annotation does. "
        "Heatmap peak: the mean "
        "highest probability of a point's heatmap (a Gaussian of one cell peaks near 0.16).",
        "",
        "| method | points | " + " | ".join(groups) + " | heatmap peak |",
        "| --- | --- | " + " | ".join("---:" for _ in groups) + " | ---: |",
    ]
    for m, r in with_errors.items():
        for k, (subset, errors) in enumerate(r["keypoint_error_px"].items()):
            peak = _cell(r.get("heatmap_peak", float("nan")), "{:.3f}") if k == 0 else ""
            lines.append(
                f"| `{m}` | {subset} | "
                + " | ".join(_cell(errors[g], "{:.2f}") for g in groups)
                + f" | {peak} |"
            )
        if r.get("seen_accuracy"):
            accuracy = r["seen_accuracy"]
            lines.append(
                f"| `{m}` | seen/hidden right (%) | "
                + " | ".join(_cell(accuracy[g], "{:.1f}") for g in groups)
                + " | |"
            )
    lines.append("")
    return lines


def _checkpoint_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Each checkpoint: where it is, what it trained on, how its training went, its test occupancy."""
    lines = [
        "## Checkpoints",
        "",
        "Occupancy: per-frame accuracy of the seat-occupancy head on the test samples, empty seats included.",
        "",
        "| method | checkpoint | trained on | epochs | best epoch | best val top-1 (%) | test occupancy (%) |",
    ]
    lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for m, r in results.items():
        t = r.get("training") or {}
        best = t.get("best_val_accuracy")
        lines.append(
            f"| `{m}` | `{r['checkpoint']}` | `{r['trained_on']}` | {t.get('epochs_run')} | "
            f"{t.get('best_epoch')} | {'' if best is None else f'{100 * best:.2f}'} | "
            f"{_cell(100 * r.get('occupancy_accuracy', float('nan')), '{:.2f}')} |"
        )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = report["methods"]
    lines = [
        "# Evaluation on the test split (students unseen in training)",
        "",
        f"- data: `{report['data']}` (test split, {report['test_samples']} samples)",
        f"- command: `{report['command']}`",
        f"- FPS device: {report['device']}; {report['fps_students']} students per frame set",
        f"- PSNR/SSIM/MI/EPI frames: {report['quality_note']}",
        "",
        *_method_tables(results),
        *_robustness_table(report.get("robustness") or {}),
        *_per_class_tables(results),
        *_keypoint_error_table(results, report.get("crop_size", "?")),
        *_checkpoint_table(results),
    ]
    return "\n".join(lines) + "\n"


def find_checkpoints(runs: Path | None, explicit: Sequence[Path]) -> list[Path]:
    """The explicit checkpoints, then those under ``runs``; a file named both ways counts once."""
    found = list(explicit)
    if runs is not None:
        found += sorted(p for p in runs.glob("*/model.pt") if p.is_file())
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())
