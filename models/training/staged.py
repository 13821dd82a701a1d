"""The staged recipe: front end on single frames of thousands of people, then the recogniser on
their keypoint sequences, then the section 3.5 end-to-end fine-tune. What ships by default.

Pose-based action systems train this way (a pose network learned on many people, a skeleton
classifier on keypoint sequences, then a joint fine-tune, as in PYSKL / PoseC3D); the paper's
end-to-end training from scratch (``models/training/train.py``) is kept for its tables.

- **a. front end** (``front_end.pt``): enhancement-free DCA-Net fusion + keypoint network on
  single frames drawn at random from every training window (``front_steps`` batches of
  ``front_batch`` crops). Targets standard for heatmap pose networks: a Gaussian heatmap at
  the network's stride on every annotated point (KL to the softmax heatmap, the heatmap half of
  integral regression), the soft-argmax position (L1), and visibility that says *seen*
  (annotated visibility 2) against hidden or absent, so the confidence the recogniser reads
  tells a hand under the desk from one in view. Points the annotation does not have are left
  out. Validation: keypoint error per joint group, seen and hidden.
- **b. recogniser** (``recogniser.pt``): the front end frozen, its own predictions (keypoints
  normalised to the seat square, confidence, node features of eq. 6) for every window,
  computed once; the recogniser (MST-GCN, or a baseline's) trained on them for
  ``recogniser_epochs`` epochs, the best validation epoch kept.
- **c. fine-tune** (``model.pt``): everything end to end with the multi-task loss of section
  3.5 (eq. 10 with the adaptive weights of eq. 17 over L_fus and L_rec; L_rec = weighted focal
  + the keypoint terms of stage a), the front end at a lower learning rate; the best validation
  epoch kept. L_enh (eqs. 11-13) is not part of it: section 3.2 runs on whole frames in the
  enhancement service before the network, as served, so the network has no enhancement to learn.

Every stage writes its result atomically and skips itself when that file exists; within a
stage, ``stage_<x>.last.pt`` is rewritten as it goes (every ``checkpoint_every`` steps in a,
every epoch in b and c), so an interrupted run resumes where it stopped with ``--resume``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.data.served import JoinedWindows, ServedWindows, load_params
from models.data.windows import collate, flip_frames
from models.networks.checkpoint import ENHANCEMENT_JSON, atomic_save, build_checkpoint, load_checkpoint
from models.networks.pipeline import ClassroomPipeline
from models.networks.registry import build_pipeline, method_config
from models.training.losses import LossConfig, MultiTaskLoss, class_weights
from services.common.progress import progress_bar
from services.common.vocabulary import KEYPOINT_INDEX

STAGES = ("front_end", "recogniser", "finetune")
# The colour enhancement the enhancement service runs for a method (EnhancementParams.colour_method),
# by the method's enhancement (registry.METHODS): a baseline is trained on, and served, its own.
SERVED_COLOUR = {
    "mswgf": "mswgf",
    "retinex": "single_scale_retinex",
    "conventional": "histogram_equalisation",
    "single_scale_gf": "fixed_scale_gf",
    "identity": "mswgf",
}
# what the stages read: one served data set, or several joined (``classroom train --extra-train``)
WindowSource = ServedWindows | JoinedWindows
STAGE_FILES = {"front_end": "front_end.pt", "recogniser": "recogniser.pt", "finetune": "model.pt"}
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "head": tuple(range(7)),
    "torso": tuple(KEYPOINT_INDEX[k] for k in ("neck", "left_shoulder", "right_shoulder", "chest")),
    "elbows": tuple(KEYPOINT_INDEX[k] for k in ("left_elbow", "right_elbow")),
    "wrists": tuple(KEYPOINT_INDEX[k] for k in ("left_wrist", "right_wrist")),
    "hands": tuple(KEYPOINT_INDEX[k] for k in ("left_hand", "right_hand")),
}


@dataclass
class StagedOptions:
    method: str = "proposed"
    seed: int = 0
    model_overrides: dict[str, Any] = field(
        default_factory=lambda: {"keypoints": {"widths": [32, 64], "stages": 2, "blocks": 1}}
    )
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    init_from: str | None = None  # a checkpoint whose weights the run starts from (warm start)
    # a. front end
    front_steps: int = 5000
    front_batch: int = 64
    front_lr: float = 2e-3
    heatmap_weight: float = 1.0
    heatmap_sigma: float = 1.0  # heatmap cells
    position_weight: float = 10.0
    visibility_weight: float = 0.1
    front_flip: bool = False  # mirror half of each batch's frames (crops and keypoints, left/right swapped)
    checkpoint_every: int = 500
    # b. recogniser
    recogniser_epochs: int = 20
    recogniser_batch: int = 64
    recogniser_lr: float = 2e-3
    label_smoothing: float = 0.1
    # c. end-to-end fine-tune
    finetune_epochs: int = 2
    finetune_windows: int | None = None  # training windows per epoch, drawn afresh each epoch (None: all)
    finetune_batch: int = 4
    finetune_lr: float = 5e-4
    finetune_front_lr_scale: float = 0.5
    # evaluation during training
    val_frames: int = 1200  # validation crops the front end's keypoint error is measured on


def loss_config(options: StagedOptions, config: dict[str, Any]) -> LossConfig:
    """The method's loss settings with the staged recipe's keypoint terms (seen-visibility, heatmaps)."""
    cfg = LossConfig(**config.get("loss", {}))
    cfg.heatmap_weight = options.heatmap_weight
    cfg.heatmap_sigma = options.heatmap_sigma
    cfg.position_weight = options.position_weight
    cfg.visibility_weight = options.visibility_weight
    cfg.visibility_target = "seen"
    cfg.occupancy_weight = 0.0  # every sample is a seated person: the seat-occupancy model decides
    return cfg


def one_cycle(optimiser: torch.optim.Optimizer, peak: float | list[float], steps: int, warmup: float):
    """OneCycleLR over ``steps`` steps (at least 4), warming up over ``warmup`` of them (at least 2 steps)."""
    steps = max(4, steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimiser, peak, total_steps=steps, pct_start=min(0.5, max(warmup, 2.0 / steps))
    )


def _resume_stage(last_path: Path, parts: dict[str, Any]) -> dict[str, Any] | None:
    """Load the state of ``parts`` (name -> module, optimiser or schedule) from an interrupted
    stage's ``last_path``; returns the rest of that state, or None when the stage starts afresh."""
    if not last_path.is_file():
        return None
    state = torch.load(last_path, map_location="cpu", weights_only=True)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    return state


def _save_stage(last_path: Path, parts: dict[str, Any], **progress: Any) -> None:
    """Write the state of ``parts`` and how far the stage got, atomically (what ``_resume_stage`` reads)."""
    atomic_save({**{name: part.state_dict() for name, part in parts.items()}, **progress}, last_path)


def _step(
    optimiser: torch.optim.Optimizer, schedule, loss: torch.Tensor, parameters, grad_clip: float
) -> None:
    """Backpropagate ``loss``, clip the gradient norm of ``parameters``, step the optimiser and its schedule."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimiser.step()
    schedule.step()


# --- a. front end ---------------------------------------------------------------------------------


def frame_batch(dataset: WindowSource, picks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Single frames (sample, t) -> crops [N, 6, S, S], annotated keypoints [N, 17, 3] (visibility 0/1/2)."""
    crops, keypoints = zip(*(dataset.frame(int(i), int(t)) for i, t in picks), strict=True)
    return torch.from_numpy(np.stack(crops)), torch.from_numpy(np.stack(keypoints))


def keypoint_targets(annotated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Annotated keypoints (visibility 0/1/2) -> the loss's targets (visibility = in the image), occluded."""
    target = annotated.clone()
    target[..., 2] = (annotated[..., 2] > 0).to(target.dtype)
    return target, annotated[..., 2] == 1


def keypoint_errors(
    pipeline: ClassroomPipeline, dataset: WindowSource, frames: int, seed: int
) -> dict[str, float]:
    """Mean keypoint error (crop px) per joint group, seen and hidden points, on ``frames`` random frames."""
    rng = np.random.default_rng(seed)
    n = min(frames, len(dataset) * dataset.window_frames)
    flat = rng.choice(len(dataset) * dataset.window_frames, n, replace=False)
    picks = np.stack([flat // dataset.window_frames, flat % dataset.window_frames], 1)
    errors, visibility = [], []
    pipeline.eval()
    with torch.inference_mode():
        for start in range(0, n, 128):
            crops, annotated = frame_batch(dataset, picks[start : start + 128])
            xy = pipeline.forward_fusion(crops).keypoints.xy
            errors.append((xy - annotated[..., :2]).norm(dim=-1).numpy())
            visibility.append(annotated[..., 2].numpy())
    error, vis = np.concatenate(errors), np.concatenate(visibility)
    out: dict[str, float] = {}
    for name, joints in (("all", tuple(range(error.shape[1]))), *JOINT_GROUPS.items()):
        e, v = error[:, joints], vis[:, joints]
        for kind, mask in (("seen", v == 2), ("hidden", v == 1)):
            out[f"{name}_{kind}_px"] = float(e[mask].mean()) if mask.any() else float("nan")
    return out


def _front_end_step(
    pipeline: ClassroomPipeline,
    criterion: MultiTaskLoss,
    train_set: WindowSource,
    options: StagedOptions,
    step: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage a's loss on the frames of step ``step`` and its parts."""
    # the batch of step s is a function of (seed, s): a resumed run draws what it would have drawn
    rng = np.random.default_rng([options.seed, 11, step])
    flat = rng.integers(0, len(train_set) * train_set.window_frames, options.front_batch)
    picks = np.stack([flat // train_set.window_frames, flat % train_set.window_frames], 1)
    crops, annotated = frame_batch(train_set, picks)
    if options.front_flip:
        crops, annotated = flip_frames(crops, annotated, torch.from_numpy(rng.random(len(crops)) < 0.5))
    target, occluded = keypoint_targets(annotated)
    stage = pipeline.forward_fusion(crops)
    terms, parts = criterion.front_end_terms(
        None,
        stage.fusion,
        stage.keypoints,
        target,
        torch.ones(len(crops)),
        None,
        float(train_set.crop_size),
        None,
        occluded,
        fusion_terms=False,
    )
    return terms["kp"], parts


def _log_keypoint_errors(errors: dict[str, float], log: Callable[[str], None]) -> None:
    log(
        "front end: validation keypoint error (crop px) seen/hidden: "
        + ", ".join(
            f"{g} {errors[f'{g}_seen_px']:.2f}/{errors[f'{g}_hidden_px']:.2f}" for g in ("all", *JOINT_GROUPS)
        )
    )


def train_front_end(
    pipeline: ClassroomPipeline,
    train_set: WindowSource,
    val_set: WindowSource,
    options: StagedOptions,
    criterion: MultiTaskLoss,
    last_path: Path,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Stage a; returns its record (history of training terms and the validation keypoint errors)."""
    params = [p for m in (pipeline.fusion, pipeline.keypoint_net) for p in m.parameters()]
    optimiser = torch.optim.AdamW(params, lr=options.front_lr, weight_decay=options.weight_decay)
    schedule = one_cycle(optimiser, options.front_lr, options.front_steps, 0.05)
    parts_saved = {"model": pipeline, "optimiser": optimiser, "schedule": schedule}
    step, history = 0, []
    if (state := _resume_stage(last_path, parts_saved)) is not None:
        step, history = state["step"], state["history"]
        log(f"front end: resuming at step {step}/{options.front_steps}")
    crop_size = float(train_set.crop_size)
    pipeline.train()
    began = time.perf_counter()
    sums: dict[str, float] = {}
    bar = progress_bar(
        total=options.front_steps, initial=step, desc="a. front end", unit="step", disable=not progress
    )
    while step < options.front_steps:
        loss, parts = _front_end_step(pipeline, criterion, train_set, options, step)
        _step(optimiser, schedule, loss, params, options.grad_clip)
        step += 1
        for key in ("kp_l1", "heatmap_kl", "visibility"):
            sums[key] = sums.get(key, 0.0) + parts.get(key, 0.0)
        bar.update()
        bar.set_postfix(l1px=f"{parts['kp_l1'] * crop_size:.2f}")
        if step % options.checkpoint_every == 0 or step == options.front_steps:
            history.append({"step": step, **{k: v / options.checkpoint_every for k, v in sums.items()}})
            sums = {}
            _save_stage(last_path, parts_saved, step=step, history=history)
    bar.close()
    errors = keypoint_errors(pipeline, val_set, options.val_frames, options.seed)
    _log_keypoint_errors(errors, log)
    return {"steps": step, "seconds_this_run": time.perf_counter() - began, "history": history, "val": errors}


# --- b. recogniser --------------------------------------------------------------------------------


def _window_batches(
    dataset: WindowSource, indices: np.ndarray, batch: int
) -> Iterator[dict[str, torch.Tensor]]:
    for start in range(0, len(indices), batch):
        yield collate([dataset[int(i)] for i in indices[start : start + batch]])


def recognition_inputs(
    pipeline: ClassroomPipeline, dataset: WindowSource, *, progress: bool, desc: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen front end's keypoints [N, T, 17, 3] and fused maps [N, T, C, h, w] (float16) of every sample.

    Stage b trains the node encoder (eq. 6) with the recogniser, so it keeps what the encoder
    reads (the fused map) rather than its output: 8 KB a frame at 64 px crops (16 channels at
    16 x 16), about 2 GB for 15,000 training people.
    """
    pipeline.eval()
    keypoints = fused = None  # filled in place: a list of batches and its cat would hold both at once
    order = np.arange(len(dataset))
    with torch.no_grad():  # not inference_mode: the tensors filled here are read by training later
        for start, batch in progress_bar(
            zip(range(0, len(order), 8), _window_batches(dataset, order, 8), strict=True),
            total=math.ceil(len(order) / 8),
            desc=desc,
            disable=not progress,
        ):
            b, t = batch["crops"].shape[:2]
            stage = pipeline.forward_fusion(batch["crops"].flatten(0, 1))
            kp = pipeline.recognition_keypoints(stage.keypoints, batch["crops"].shape[-1]).view(b, t, -1, 3)
            maps = stage.fusion.fused.view(b, t, *stage.fusion.fused.shape[1:])
            if keypoints is None or fused is None:
                keypoints = torch.empty((len(order), *kp.shape[1:]), dtype=kp.dtype)
                fused = torch.empty((len(order), *maps.shape[1:]), dtype=torch.float16)
            keypoints[start : start + b] = kp
            fused[start : start + b] = maps
    assert keypoints is not None and fused is not None  # a data set has at least one sample
    return keypoints, fused


def window_logits(
    pipeline: ClassroomPipeline, keypoints: torch.Tensor, fused: torch.Tensor, crop_size: int
) -> torch.Tensor:
    """Node encoder (eq. 6) + recogniser on cached front-end outputs: [B, T, 17, 3], [B, T, C, h, w] -> logits."""
    b, t = keypoints.shape[:2]
    nodes = pipeline.node_encoder(
        fused.flatten(0, 1).float(), keypoints[..., :2].flatten(0, 1) * crop_size, crop_size
    )
    return pipeline.forward_recognition(keypoints, nodes.view(b, t, *nodes.shape[1:]))[0]


def recogniser_accuracy(
    pipeline: ClassroomPipeline,
    keypoints: torch.Tensor,
    fused: torch.Tensor,
    labels: torch.Tensor,
    crop_size: int,
) -> float:
    pipeline.eval()
    with torch.inference_mode():
        logits = torch.cat(
            [
                window_logits(pipeline, keypoints[i : i + 64], fused[i : i + 64], crop_size)
                for i in range(0, len(keypoints), 64)
            ]
        )
    return float((logits.argmax(-1) == labels).float().mean())


@dataclass
class _CachedSplit:
    """A split as stage b reads it: the frozen front end's outputs (``recognition_inputs``) and the labels."""

    keypoints: torch.Tensor
    fused: torch.Tensor
    labels: torch.Tensor


def _cached_split(
    pipeline: ClassroomPipeline, dataset: WindowSource, *, progress: bool, desc: str
) -> _CachedSplit:
    keypoints, fused = recognition_inputs(pipeline, dataset, progress=progress, desc=desc)
    return _CachedSplit(keypoints, fused, torch.from_numpy(dataset.labels()))


def _recogniser_epoch(
    pipeline: ClassroomPipeline,
    trained: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule,
    train: _CachedSplit,
    weights: torch.Tensor,
    options: StagedOptions,
    epoch: int,
    crop_size: int,
    progress: bool,
) -> float:
    """One epoch of stage b over the cached training split; returns the mean loss per window."""
    generator = torch.Generator().manual_seed(options.seed * 1_000_003 + epoch)
    order = torch.randperm(len(train.labels), generator=generator)
    trained.train()
    total = 0.0
    for start in progress_bar(
        range(0, len(order), options.recogniser_batch),
        desc=f"b. recogniser {epoch + 1}/{options.recogniser_epochs}",
        disable=not progress,
        leave=False,
    ):
        rows = order[start : start + options.recogniser_batch]
        logits = window_logits(pipeline, train.keypoints[rows], train.fused[rows], crop_size)
        loss = F.cross_entropy(
            logits, train.labels[rows], weight=weights, label_smoothing=options.label_smoothing
        )
        _step(optimiser, schedule, loss, trained.parameters(), options.grad_clip)
        total += float(loss.detach()) * len(rows)
    return total / len(order)


def train_recogniser(
    pipeline: ClassroomPipeline,
    train_set: WindowSource,
    val_set: WindowSource,
    options: StagedOptions,
    last_path: Path,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Stage b: the node encoder (eq. 6) and the recogniser on the frozen front end's outputs
    (the front end stays as stage a left it). Returns the stage's record."""
    began = time.perf_counter()
    train = _cached_split(pipeline, train_set, progress=progress, desc="b. front end on train")
    val = _cached_split(pipeline, val_set, progress=progress, desc="b. front end on val")
    crop_size = train_set.crop_size
    trained = torch.nn.ModuleDict(
        {"node_encoder": pipeline.node_encoder, "recognition": pipeline.recognition}
    )
    steps_per_epoch = math.ceil(len(train.labels) / options.recogniser_batch)
    optimiser = torch.optim.AdamW(
        trained.parameters(), lr=options.recogniser_lr, weight_decay=options.weight_decay
    )
    schedule = one_cycle(optimiser, options.recogniser_lr, options.recogniser_epochs * steps_per_epoch, 0.1)
    weights = class_weights(train_set.labels())
    parts_saved = {"trained": trained, "optimiser": optimiser, "schedule": schedule}
    epoch, history, best = 0, [], (-1.0, 0, copy.deepcopy(trained.state_dict()))
    if (state := _resume_stage(last_path, parts_saved)) is not None:
        epoch, history = state["epoch"], state["history"]
        best = (state["best_accuracy"], state["best_epoch"], state["best_trained"])
        log(f"recogniser: resuming at epoch {epoch + 1}")
    while epoch < options.recogniser_epochs:
        loss = _recogniser_epoch(
            pipeline, trained, optimiser, schedule, train, weights, options, epoch, crop_size, progress
        )
        epoch += 1
        accuracy = recogniser_accuracy(pipeline, val.keypoints, val.fused, val.labels, crop_size)
        if accuracy > best[0]:
            best = (accuracy, epoch, copy.deepcopy(trained.state_dict()))
        history.append({"epoch": epoch, "loss": loss, "val_accuracy": accuracy})
        log(f"recogniser {epoch}: loss {loss:.4f} val top-1 {accuracy:.4f}{' *' if best[1] == epoch else ''}")
        _save_stage(
            last_path,
            parts_saved,
            epoch=epoch,
            history=history,
            best_accuracy=best[0],
            best_epoch=best[1],
            best_trained=best[2],
        )
    trained.load_state_dict(best[2])
    return {
        "epochs": epoch,
        "best_epoch": best[1],
        "best_val_accuracy": best[0],
        "trains": "node encoder (eq. 6) and recogniser",
        "history": history,
        "seconds_this_run": time.perf_counter() - began,
    }


# --- c. end-to-end fine-tune ----------------------------------------------------------------------


def window_accuracy(pipeline: ClassroomPipeline, dataset: WindowSource, batch: int = 8) -> float:
    """Top-1 of the whole pipeline over every sample of ``dataset``."""
    pipeline.eval()
    correct = 0
    with torch.inference_mode():
        for b in _window_batches(dataset, np.arange(len(dataset)), batch):
            correct += int((pipeline(b["crops"]).logits.argmax(-1) == b["label"]).sum())
    return correct / len(dataset)


def _finetune_steps(train_set: WindowSource, options: StagedOptions) -> tuple[int, int]:
    """Stage c's windows and steps per epoch."""
    per_epoch = min(len(train_set), options.finetune_windows or len(train_set))
    return per_epoch, math.ceil(per_epoch / options.finetune_batch)


def _finetune_groups(pipeline: ClassroomPipeline, options: StagedOptions) -> list[dict[str, Any]]:
    """Stage c's parameter groups: the front end at ``finetune_front_lr_scale`` of the recogniser's rate."""
    front = [p for m in (pipeline.fusion, pipeline.keypoint_net) for p in m.parameters()]
    back = [p for m in (pipeline.node_encoder, pipeline.recognition) for p in m.parameters()]
    return [
        {"params": front, "lr": options.finetune_lr * options.finetune_front_lr_scale},
        {"params": back, "lr": options.finetune_lr},
    ]


def _finetune_epoch(
    pipeline: ClassroomPipeline,
    criterion: MultiTaskLoss,
    optimiser: torch.optim.Optimizer,
    schedule,
    train_set: WindowSource,
    options: StagedOptions,
    epoch: int,
    progress: bool,
) -> dict[str, float]:
    """One epoch of stage c on ``finetune_windows`` windows drawn afresh; returns the mean loss parts per step."""
    per_epoch, steps_per_epoch = _finetune_steps(train_set, options)
    parameters = [p for group in optimiser.param_groups for p in group["params"]]  # front end, then the rest
    seed = options.seed * 1_000_003 + 7919 + epoch
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(train_set))[:per_epoch]
    pipeline.train()
    criterion.train()
    sums: dict[str, float] = {}
    for batch in progress_bar(
        _window_batches(train_set, order, options.finetune_batch),
        total=steps_per_epoch,
        desc=f"c. fine-tune {epoch + 1}/{options.finetune_epochs}",
        disable=not progress,
        leave=False,
    ):
        terms = criterion(pipeline(batch["crops"]), batch, generator)
        _step(optimiser, schedule, terms.total, parameters, options.grad_clip)
        for key, value in terms.parts.items():
            sums[key] = sums.get(key, 0.0) + value / steps_per_epoch
    return sums


def finetune(
    pipeline: ClassroomPipeline,
    train_set: WindowSource,
    val_set: WindowSource,
    options: StagedOptions,
    criterion: MultiTaskLoss,
    last_path: Path,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Stage c: section 3.5 end to end from stages a and b. Returns its record."""
    began = time.perf_counter()
    groups = _finetune_groups(pipeline, options)
    optimiser = torch.optim.AdamW(groups, weight_decay=options.weight_decay)
    _, steps_per_epoch = _finetune_steps(train_set, options)
    lrs = [group["lr"] for group in groups]
    schedule = one_cycle(optimiser, lrs, options.finetune_epochs * steps_per_epoch, 0.1)
    start_accuracy = window_accuracy(pipeline, val_set)
    log(f"fine-tune: validation top-1 before {start_accuracy:.4f}")
    parts_saved = {"model": pipeline, "optimiser": optimiser, "schedule": schedule, "criterion": criterion}
    epoch, history = 0, []
    best = (start_accuracy, 0, copy.deepcopy(pipeline.state_dict()))
    if (state := _resume_stage(last_path, parts_saved)) is not None:
        epoch, history = state["epoch"], state["history"]
        best = (state["best_accuracy"], state["best_epoch"], state["best_model"])
        log(f"fine-tune: resuming at epoch {epoch + 1}")
    while epoch < options.finetune_epochs:
        sums = _finetune_epoch(pipeline, criterion, optimiser, schedule, train_set, options, epoch, progress)
        epoch += 1
        accuracy = window_accuracy(pipeline, val_set)
        if accuracy > best[0]:
            best = (accuracy, epoch, copy.deepcopy(pipeline.state_dict()))
        history.append({"epoch": epoch, "train": sums, "val_accuracy": accuracy})
        log(
            f"fine-tune {epoch}: loss {sums.get('total', float('nan')):.4f} focal {sums.get('focal', float('nan')):.4f} "
            f"val top-1 {accuracy:.4f}{' *' if best[1] == epoch else ''}"
        )
        _save_stage(
            last_path,
            parts_saved,
            epoch=epoch,
            history=history,
            best_accuracy=best[0],
            best_epoch=best[1],
            best_model=best[2],
        )
    pipeline.load_state_dict(best[2])
    return {
        "epochs": epoch,
        "val_accuracy_before": start_accuracy,
        "best_epoch": best[1],
        "best_val_accuracy": best[0],
        "history": history,
        "seconds_this_run": time.perf_counter() - began,
    }


# --- the recipe -----------------------------------------------------------------------------------


def _stage_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def warm_start(pipeline: ClassroomPipeline, path: str, method: str, log: Callable[[str], None]) -> None:
    """Load a checkpoint's weights into ``pipeline``: same method, same layout, or ValueError."""
    data = load_checkpoint(path)  # FileNotFoundError / a one-line ValueError for a file that is not one
    if data.get("method") != method:
        raise ValueError(f"--init-from {path}: a {data.get('method')} checkpoint, not {method}")
    try:
        pipeline.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ValueError(
            f"--init-from {path}: its layout differs from this run's (keypoint widths, crop size?): {first}"
        ) from None
    log(f"starting from the weights of {path}")


def _claim_out_dir(out_dir: Path, train_set: WindowSource, options: StagedOptions, resume: bool) -> None:
    """Refuse a folder that holds another run (or this one, without ``resume``); write options.json."""
    options_path = out_dir / "options.json"
    if options_path.is_file() and not resume:
        raise ValueError(
            f"{out_dir} holds a staged run already: --resume continues it, or choose another --out"
        )
    if options_path.is_file():
        saved = json.loads(options_path.read_text())
        if saved.get("method") != options.method or saved.get("train_dataset") != train_set.dataset_id:
            raise ValueError(
                f"{out_dir} holds a run of {saved.get('method')} on {saved.get('train_dataset')}; "
                f"not {options.method} on {train_set.dataset_id}: choose another --out"
            )
    options_path.write_text(
        json.dumps({**asdict(options), "train_dataset": train_set.dataset_id}, indent=2) + "\n"
    )


def _staged_pipeline(
    options: StagedOptions, crop_size: int, log: Callable[[str], None]
) -> tuple[dict[str, Any], ClassroomPipeline]:
    """The method's configuration on served inputs and its network, seeded (warm-started with ``init_from``)."""
    config = method_config(options.method, **copy.deepcopy(options.model_overrides))
    config["crop_size"] = crop_size
    config["enhancement"] = "identity"  # section 3.2 ran on whole frames before the crops (served path)
    config["inputs"] = "served"
    torch.manual_seed(options.seed)
    pipeline = build_pipeline(config)
    if options.init_from is not None:
        warm_start(pipeline, options.init_from, options.method, log)
    return config, pipeline


def _staged_criterion(
    options: StagedOptions, config: dict[str, Any], train_set: WindowSource
) -> MultiTaskLoss:
    """The multi-task loss with the recipe's keypoint terms and the training split's class weights."""
    criterion = MultiTaskLoss(loss_config(options, config))
    criterion.config.class_weights = class_weights(train_set.labels()).tolist()
    criterion.weights.copy_(torch.tensor(criterion.config.class_weights))
    return criterion


def _start_report(
    report_path: Path, train_set: WindowSource, val_set: WindowSource, options: StagedOptions
) -> dict[str, Any]:
    """The run's report as earlier runs left it, with this run's data and options."""
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report.update(
        method=options.method,
        train_dataset=train_set.dataset_id,
        val_dataset=val_set.dataset_id,
        train_samples=len(train_set),
        val_samples=len(val_set),
        options=asdict(options),
    )
    return report


def _refuse_missing_stage(name: str, done: Path, stages: tuple[str, ...], options: StagedOptions) -> None:
    """A stage left out must have its result in the folder, or come from ``init_from``, when a later one runs."""
    later = STAGES[STAGES.index(name) + 1 :]
    if any(stage in stages for stage in later) and options.init_from is None:
        raise ValueError(
            f"stage {name} is left out but {done} does not exist: run it first, or start "
            "from a checkpoint that has it (--init-from)"
        )


def _stage_checkpoint(
    pipeline: ClassroomPipeline,
    name: str,
    report: dict[str, Any],
    train_set: WindowSource,
    options: StagedOptions,
) -> dict[str, Any]:
    """The servable checkpoint of the pipeline as stage ``name`` left it."""
    summary = {"recipe": "staged", "stage": name, "stages": report["stages"], "options": asdict(options)}
    return build_checkpoint(
        pipeline, training=summary, dataset_id=train_set.dataset_id, window_frames=train_set.window_frames
    )


def _stage_runners(
    pipeline: ClassroomPipeline,
    criterion: MultiTaskLoss,
    train_set: WindowSource,
    val_set: WindowSource,
    options: StagedOptions,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Callable[[Path], dict[str, Any]]]:
    """Each stage as a function of its ``stage_<x>.last.pt``, returning the stage's record."""
    return {
        "front_end": lambda last: train_front_end(
            pipeline, train_set, val_set, options, criterion, last, progress=progress, log=log
        ),
        "recogniser": lambda last: train_recogniser(
            pipeline, train_set, val_set, options, last, progress=progress, log=log
        ),
        "finetune": lambda last: finetune(
            pipeline, train_set, val_set, options, criterion, last, progress=progress, log=log
        ),
    }


def train_staged(
    train_set: WindowSource,
    val_set: WindowSource,
    out_dir: str | Path,
    options: StagedOptions,
    *,
    stages: tuple[str, ...] = STAGES,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the stages not yet done into ``out_dir``; returns the report (also in report.json).

    With ``resume``, a finished stage's file is read back instead of training it again and an
    interrupted stage continues from its ``stage_<x>.last.pt``; a stage left out of ``stages``
    is skipped (its input must then exist). The last stage run writes ``model.pt``
    (the served checkpoint) and ``enhancement.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if train_set.crop_size != val_set.crop_size or train_set.window_frames != val_set.window_frames:
        raise ValueError("train and validation data differ in crop size or window length")
    _claim_out_dir(out_dir, train_set, options, resume)
    config, pipeline = _staged_pipeline(options, train_set.crop_size, log)
    criterion = _staged_criterion(options, config, train_set)
    report_path = out_dir / "report.json"
    report = _start_report(report_path, train_set, val_set, options)
    runners = _stage_runners(pipeline, criterion, train_set, val_set, options, progress, log)
    last_stage = None
    for name in STAGES:
        done = out_dir / STAGE_FILES[name]
        if done.is_file() and (resume or name not in stages):
            pipeline.load_state_dict(_stage_state(done)["state_dict"])
            log(f"{name}: done before ({done}), loaded")
        elif name not in stages:
            _refuse_missing_stage(name, done, stages, options)
            continue
        else:
            log(f"stage {name}")
            report.setdefault("stages", {})[name] = runners[name](out_dir / f"stage_{name}.last.pt")
            atomic_save(_stage_checkpoint(pipeline, name, report, train_set, options), done)
            report_path.write_text(json.dumps(report, indent=2) + "\n")
        last_stage = name
    if last_stage == "recogniser":
        # without the fine-tune, stage b's model (front end + recogniser) is the served checkpoint
        atomic_save(_stage_state(out_dir / STAGE_FILES[last_stage]), out_dir / STAGE_FILES["finetune"])
    # the section 3.2 parameters the windows were enhanced with: the enhancement service must serve them
    load_params(train_set.params_file).to_json(out_dir / ENHANCEMENT_JSON)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
