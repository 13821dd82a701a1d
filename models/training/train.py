"""End-to-end multi-task training of a registry method (section 3.5), what ``classroom train`` runs.

AdamW (lr 1e-4, weight decay 1e-5, Table 1), early stopping after ``patience`` (15) epochs
without a gain in validation top-1 accuracy, resumable, seeded. The output folder holds:
- ``last.pt``: everything needed to resume (model, optimiser, loss state, best weights,
  history); rewritten atomically after every epoch;
- ``model.pt`` + ``enhancement.json``: the checkpoint of the best validation epoch
  (models/networks/checkpoint.py), written when training ends;
- ``report.json``: the per-epoch history and the summary that is also stored in model.pt.

Determinism: the batch order of epoch e comes from NumPy's generator seeded with
(seed, e); torch's generator is reseeded with (seed, e) at the start of every epoch (dropout,
InfoNCE positions), and samples are functions of their index. A resumed run therefore
produces the same weights as an uninterrupted one (tested).

Warm-up (``--warmup-epochs``, ``warm_up_front_end``): before the end-to-end training, the
front end (enhancement, fusion, keypoints) can train alone on single frames drawn from the
windows. The paper trains end to end only; on a 2-core CPU the keypoint stage is what limits
recognition (a recogniser on the keypoints of a 12-epoch end-to-end run scored 32 % on the
validation split, one on the true keypoints 80 %, the same with 5 px of noise added 70 %), and
single frames should teach it poses faster than whole windows. Measured on sim:small it did
not help: 15 warm-up + 8 end-to-end epochs reached a lower validation top-1 than 12
end-to-end epochs (docs/results.md), because the keypoints it learns do not generalise to
unseen students (validation keypoint error stayed near 5 px while the training error halved).
Neither preset warms up by default; ``--warmup-epochs N`` turns it on.

The presets (``small``, ``paper``) and the command line are models/tools/train.py's.
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

from models.data.windows import collate, flip_batch
from models.networks.checkpoint import atomic_save, build_checkpoint, write_enhancement_json
from models.networks.perceptual import PerceptualNet, train_perceptual_net
from models.networks.pipeline import ClassroomPipeline
from models.networks.registry import build_pipeline, method_config
from models.training.losses import IGNORE_LABEL, LossConfig, MultiTaskLoss, class_weights
from services.common.progress import progress_bar


@dataclass
class TrainOptions:
    method: str = "proposed"
    epochs: int = 60
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    patience: int = 15
    seed: int = 0
    perceptual_epochs: int = 2
    perceptual_frames: int = 0  # frames per window phi trains on (0 = all)
    warmup_epochs: int = 0  # front-end warm-up epochs before the end-to-end training (0 = none)
    warmup_frames: int = 2  # frames drawn per window and warm-up epoch
    grad_clip: float = 5.0
    flip: bool = False  # horizontal flip of half the training windows (models.data.windows.flip_batch)
    model_overrides: dict[str, Any] = field(default_factory=dict)


def _batches(dataset, indices, batch_size: int) -> Iterator[dict]:
    for start in range(0, len(indices), batch_size):
        yield collate([dataset[int(i)] for i in indices[start : start + batch_size]])


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**31)


def evaluate_accuracy(
    pipeline, dataset, batch_size: int, *, keypoints_only: bool = False
) -> dict[str, float]:
    """Top-1 accuracy over samples with a behaviour, mean keypoint error (crop px, visible points),
    and per-frame occupancy accuracy (empty seats included) on a data set."""
    pipeline.eval()
    correct, total, kp_error, kp_count = 0, 0, 0.0, 0.0
    occupancy_right, occupancy_total = 0, 0
    with torch.inference_mode():
        for batch in _batches(dataset, np.arange(len(dataset)), batch_size):
            if keypoints_only:
                out = pipeline.forward_fusion(batch["crops"].flatten(0, 1), enhance=True)
            else:
                out = pipeline(batch["crops"])
                labelled = batch["label"] != IGNORE_LABEL
                correct += int((out.logits.argmax(-1) == batch["label"])[labelled].sum())
                total += int(labelled.sum())
            target = batch["keypoints"].flatten(0, 1)
            visible = target[..., 2] > 0
            err = (out.keypoints.xy - target[..., :2]).norm(dim=-1)
            kp_error += float(err[visible].sum())
            kp_count += float(visible.sum())
            occupied = batch["occupied"].flatten() > 0.5
            occupancy_right += int(((out.keypoints.occupancy_logits > 0) == occupied).sum())
            occupancy_total += int(occupied.numel())
    return {
        "accuracy": correct / max(total, 1),
        "keypoint_error_px": kp_error / max(kp_count, 1.0),
        "occupancy_accuracy": occupancy_right / max(occupancy_total, 1),
    }


def _front_end_parameters(pipeline) -> list[torch.nn.Parameter]:
    """The trainable parameters of enhancement, fusion and keypoints: what the warm-up trains."""
    return [
        p
        for module in (pipeline.enhancement, pipeline.fusion, pipeline.keypoint_net)
        for p in module.parameters()
        if p.requires_grad
    ]


def _warm_up_frames(
    batch: dict[str, torch.Tensor], rng: np.random.Generator, frames_per_window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``frames_per_window`` frames drawn from every window of ``batch``: crops [N, C, S, S],
    keypoints [N, K, 3], occupancy [N] and clean references [N, 3, S, S] (None without them)."""
    windows, t = batch["crops"].shape[:2]
    frames = torch.from_numpy(
        np.stack([np.sort(rng.choice(t, frames_per_window, replace=False)) for _ in range(windows)])
    )
    rows = torch.arange(windows).unsqueeze(1)
    crops = batch["crops"][rows, frames].flatten(0, 1)
    target = batch["keypoints"][rows, frames].flatten(0, 1)
    occupied = batch["occupied"][rows, frames].flatten()
    reference = batch["reference"][rows, frames].flatten(0, 1) if "reference" in batch else None
    return crops, target, occupied, reference


def _warm_up_epoch(
    pipeline,
    criterion,
    optimiser: torch.optim.Optimizer,
    front_end: list[torch.nn.Parameter],
    train_set,
    options: TrainOptions,
    epoch: int,
    scale: dict[str, float],
    progress: bool,
) -> dict[str, float]:
    """One warm-up epoch over every training window; returns the mean per-crop loss parts.

    ``front_end`` are the parameters ``optimiser`` steps; ``scale`` holds each term's value at
    the first step (the first epoch fills it in)."""
    seed = _epoch_seed(options.seed + 7919, epoch)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_set))
    windows_per_step = max(1, 32 // options.warmup_frames)
    pipeline.train()
    sums: dict[str, float] = {}
    seen = 0
    starts = range(0, len(order), windows_per_step)
    for start in progress_bar(starts, desc=f"warm-up {epoch + 1}", disable=not progress, leave=False):
        samples = [train_set[int(i)] for i in order[start : start + windows_per_step]]
        batch = collate(samples)
        crops, target, occupied, reference = _warm_up_frames(batch, rng, options.warmup_frames)
        stage = pipeline.forward_fusion(crops, enhance=True)
        terms, parts = criterion.front_end_terms(
            stage.enhanced,
            stage.fusion,
            stage.keypoints,
            target,
            occupied,
            reference,
            crops.shape[-1],
            generator,
        )
        for name, value in terms.items():
            scale.setdefault(name, max(float(value.detach()), 1e-6))
        total = sum(value / scale[name] for name, value in terms.items())
        _optimiser_step(optimiser, total, front_end, options.grad_clip)
        seen += len(samples)
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value * len(samples)
    return {k: v / max(seen, 1) for k, v in sums.items()}


def _optimiser_step(
    optimiser: torch.optim.Optimizer, loss: torch.Tensor, parameters, grad_clip: float
) -> None:
    """Backpropagate ``loss`` and step, the gradient norm of ``parameters`` clipped to ``grad_clip`` (0: not)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimiser.step()


def warm_up_front_end(pipeline, criterion, train_set, val_set, options: TrainOptions, progress, log):
    """Warm up enhancement, fusion and keypoints before the end-to-end training of section 3.5.

    The keypoint stage is what recognition reads, and it learns from single frames: here it
    trains on ``warmup_frames`` frames drawn from every window (consecutive frames of a window
    are nearly the same picture, so this sees many more distinct poses per second of CPU than
    whole windows do) with the per-crop losses only (L_enh, L_fus, keypoints, visibility,
    occupancy), each divided by its value at the first step so none dominates by scale.
    Node encoder and recognition are untouched. Returns one history record per epoch.
    """
    front_end = _front_end_parameters(pipeline)
    optimiser = torch.optim.AdamW(front_end, lr=options.lr, weight_decay=options.weight_decay)
    scale: dict[str, float] = {}
    history = []
    log(
        f"warm-up of the front end: {options.warmup_epochs} epochs, {options.warmup_frames} frames per window"
    )
    for epoch in range(options.warmup_epochs):
        epoch_began = time.perf_counter()
        means = _warm_up_epoch(
            pipeline, criterion, optimiser, front_end, train_set, options, epoch, scale, progress
        )
        val = evaluate_accuracy(pipeline, val_set, options.batch_size, keypoints_only=True)
        history.append(
            {
                "phase": "warm-up",
                "epoch": epoch + 1,
                "train": means,
                "val_keypoint_error_px": val["keypoint_error_px"],
                "val_occupancy_accuracy": val["occupancy_accuracy"],
                "seconds": time.perf_counter() - epoch_began,
            }
        )
        log(
            f"warm-up {epoch + 1}: kp l1 {means.get('kp_l1', float('nan')):.4f} "
            f"val kp err {val['keypoint_error_px']:.2f}px occupancy {val['occupancy_accuracy']:.3f}"
        )
    return history


# --- end-to-end training --------------------------------------------------------------------------


@dataclass
class _Run:
    """One end-to-end run: its parts, and what it carries from epoch to epoch (last.pt keeps it all)."""

    options: TrainOptions
    config: dict[str, Any]
    pipeline: ClassroomPipeline
    criterion: MultiTaskLoss
    optimiser: torch.optim.Optimizer
    perceptual: PerceptualNet | None
    best_state: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float = -1.0
    best_epoch: int = -1
    stale: int = 0
    start_epoch: int = 0

    @property
    def stopped_early(self) -> bool:
        return self.stale >= self.options.patience


def _load_last(last_path: Path, options: TrainOptions, dataset_id: str) -> dict[str, Any]:
    """The state an interrupted run left in ``last.pt``, checked to be this run's."""
    if not last_path.is_file():
        raise FileNotFoundError(f"--resume: {last_path} does not exist")
    state = torch.load(last_path, map_location="cpu", weights_only=True)
    if state["options"]["method"] != options.method:
        raise ValueError(f"{last_path} trains {state['options']['method']!r}, not {options.method!r}")
    if state.get("dataset_id", dataset_id) != dataset_id:
        raise ValueError(
            f"{last_path} trained on {state['dataset_id']}, not {dataset_id} "
            "(resume with the run's own --data and --train-extras)"
        )
    return state


def _options_and_config(
    state: dict[str, Any] | None, options: TrainOptions, crop_size: int
) -> tuple[TrainOptions, dict[str, Any]]:
    """A new run's options and method configuration; a resumed run's own, but for how long it may go on."""
    if state is None:
        config = method_config(options.method, **copy.deepcopy(options.model_overrides))
        config["crop_size"] = crop_size
        return options, config
    saved = TrainOptions(**state["options"])
    saved.epochs, saved.patience = options.epochs, options.patience
    return saved, state["config"]


def _train_perceptual(train_set, options: TrainOptions, log: Callable[[str], None]) -> PerceptualNet:
    """phi of the perceptual loss (eq. 11), trained on the clean reference crops of the training windows."""
    log(f"training phi of the perceptual loss (eq. 11) for {options.perceptual_epochs} epochs")

    def reference_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(options.seed)
        order = rng.permutation(len(train_set))
        for batch in _batches(train_set, order, options.batch_size):
            reference, keypoints = batch["reference"], batch["keypoints"]
            if 0 < options.perceptual_frames < reference.shape[1]:
                frames = torch.from_numpy(
                    np.sort(rng.choice(reference.shape[1], options.perceptual_frames, replace=False))
                )
                reference, keypoints = reference[:, frames], keypoints[:, frames]
            yield reference.flatten(0, 1), keypoints.flatten(0, 1)

    class _Reiterable:
        def __iter__(self):
            return reference_batches()

    perceptual, phi_history = train_perceptual_net(
        _Reiterable(), epochs=options.perceptual_epochs, seed=options.seed
    )
    log(f"phi keypoint loss per epoch: {', '.join(f'{v:.4f}' for v in phi_history)}")
    return perceptual


def _perceptual_net(
    pipeline, state: dict[str, Any] | None, train_set, options: TrainOptions, log: Callable[[str], None]
) -> PerceptualNet | None:
    """phi: a resumed run's own, or trained now where the enhancement learns and references exist."""
    learnable_enhancement = getattr(pipeline.enhancement, "learnable", True)
    has_reference = train_set[0].reference is not None
    if state is not None:
        if state["perceptual_state_dict"] is None:
            return None
        perceptual = PerceptualNet()
        perceptual.load_state_dict(state["perceptual_state_dict"])
        perceptual.eval()
        return perceptual
    if learnable_enhancement and has_reference:
        return _train_perceptual(train_set, options, log)
    return None


def _start_run(
    state: dict[str, Any] | None,
    options: TrainOptions,
    train_set,
    log: Callable[[str], None],
) -> _Run:
    """Network, phi, loss and optimiser of a new run, or of a resumed one as it stopped."""
    options, config = _options_and_config(state, options, train_set.crop_size)
    torch.manual_seed(options.seed)
    pipeline = build_pipeline(config)
    perceptual = _perceptual_net(pipeline, state, train_set, options, log)
    loss_cfg = LossConfig(**config.get("loss", {}))
    loss_cfg.class_weights = class_weights(train_set.labels()).tolist()
    criterion = MultiTaskLoss(loss_cfg, perceptual)
    optimiser = torch.optim.AdamW(pipeline.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    run = _Run(
        options=options,
        config=config,
        pipeline=pipeline,
        criterion=criterion,
        optimiser=optimiser,
        perceptual=perceptual,
        best_state=copy.deepcopy(pipeline.state_dict()),
    )
    if state is not None:
        pipeline.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        criterion.load_state_dict(state["criterion"])
        run.history = state["history"]
        run.best_accuracy, run.best_epoch, run.stale = (
            state["best_accuracy"],
            state["best_epoch"],
            state["stale"],
        )
        run.best_state = state["best_model"]
        run.start_epoch = state["epoch"] + 1
        log(
            f"resuming {options.method} at epoch {run.start_epoch + 1} (best val accuracy {run.best_accuracy:.4f})"
        )
    return run


def _train_epoch(run: _Run, train_set, epoch: int, progress: bool) -> dict[str, float]:
    """One end-to-end epoch over the training windows; returns the mean loss parts per window."""
    options, pipeline, criterion = run.options, run.pipeline, run.criterion
    epoch_seed = _epoch_seed(options.seed, epoch)
    torch.manual_seed(epoch_seed)
    generator = torch.Generator().manual_seed(epoch_seed)
    order = np.random.default_rng(epoch_seed).permutation(len(train_set))
    pipeline.train()
    criterion.train()
    sums: dict[str, float] = {}
    seen = 0
    bar = progress_bar(
        _batches(train_set, order, options.batch_size),
        total=math.ceil(len(order) / options.batch_size),
        desc=f"epoch {epoch + 1}/{options.epochs}",
        disable=not progress,
        leave=False,
    )
    for batch in bar:
        if options.flip:
            batch = flip_batch(batch, torch.rand(len(batch["label"]), generator=generator) < 0.5)
        terms = criterion(pipeline(batch["crops"]), batch, generator)
        _optimiser_step(run.optimiser, terms.total, pipeline.parameters(), options.grad_clip)
        n = len(batch["label"])
        seen += n
        for key, value in terms.parts.items():
            sums[key] = sums.get(key, 0.0) + value * n
        bar.set_postfix(loss=f"{terms.parts['total']:.3f}", focal=f"{terms.parts['focal']:.3f}")
    bar.close()
    return {k: v / max(seen, 1) for k, v in sums.items()}


def _end_to_end_epoch(run: _Run, train_set, val_set, epoch: int, progress: bool, log) -> None:
    """Train one epoch, validate, keep the weights if they are the best so far, and record it."""
    epoch_began = time.perf_counter()
    train_parts = _train_epoch(run, train_set, epoch, progress)
    val = evaluate_accuracy(run.pipeline, val_set, run.options.batch_size)
    improved = val["accuracy"] > run.best_accuracy
    if improved:
        run.best_accuracy, run.best_epoch, run.stale = val["accuracy"], epoch, 0
        run.best_state = copy.deepcopy(run.pipeline.state_dict())
    else:
        run.stale += 1
    run.history.append(
        {
            "phase": "end-to-end",
            "epoch": epoch + 1,
            "train": train_parts,
            "val_accuracy": val["accuracy"],
            "val_keypoint_error_px": val["keypoint_error_px"],
            "val_occupancy_accuracy": val["occupancy_accuracy"],
            "seconds": time.perf_counter() - epoch_began,
        }
    )
    log(
        f"epoch {epoch + 1}: loss {train_parts.get('total', float('nan')):.4f} "
        f"focal {train_parts.get('focal', float('nan')):.4f} val acc {val['accuracy']:.4f} "
        f"kp err {val['keypoint_error_px']:.2f}px occupancy {val['occupancy_accuracy']:.3f}"
        f"{' *' if improved else ''}"
    )


def _save_last(run: _Run, epoch: int, dataset_id: str, last_path: Path) -> None:
    """Everything a resumed run needs, written atomically after ``epoch``."""
    atomic_save(
        {
            "options": asdict(run.options),
            "config": run.config,
            "model": run.pipeline.state_dict(),
            "optimiser": run.optimiser.state_dict(),
            "criterion": run.criterion.state_dict(),
            "perceptual_state_dict": run.perceptual.state_dict() if run.perceptual is not None else None,
            "history": run.history,
            "best_accuracy": run.best_accuracy,
            "best_epoch": run.best_epoch,
            "best_model": run.best_state,
            "stale": run.stale,
            "epoch": epoch,
            "dataset_id": dataset_id,
        },
        last_path,
    )


def _write_results(run: _Run, train_set, val_set, out_dir: Path, seconds: float) -> dict[str, Any]:
    """model.pt (the best epoch's weights), enhancement.json and report.json; returns the report."""
    history = run.history
    summary = {
        "method": run.options.method,
        "epochs_run": sum(1 for h in history if h.get("phase") != "warm-up"),
        "warmup_epochs_run": sum(1 for h in history if h.get("phase") == "warm-up"),
        "best_epoch": run.best_epoch + 1,
        "best_val_accuracy": run.best_accuracy,
        "stopped_early": run.stopped_early,
        "seconds_this_run": seconds,
        "options": asdict(run.options),
        "train_dataset": train_set.dataset_id,
        "val_dataset": val_set.dataset_id,
    }
    checkpoint = build_checkpoint(
        run.pipeline,
        perceptual=run.perceptual,
        training=summary,
        dataset_id=train_set.dataset_id,
        window_frames=train_set.window_frames,
        state_dict=run.best_state,
    )
    atomic_save(checkpoint, out_dir / "model.pt")
    run.pipeline.load_state_dict(run.best_state)
    write_enhancement_json(run.pipeline, out_dir)
    report = {"summary": summary, "history": history}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def train(
    train_set,
    val_set,
    out_dir: str | Path,
    options: TrainOptions,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``options.method`` on ``train_set``; returns the report (also in report.json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path = out_dir / "last.pt"
    if train_set.crop_size != val_set.crop_size or train_set.window_frames != val_set.window_frames:
        raise ValueError("train and val data differ in crop size or window length")
    state = _load_last(last_path, options, train_set.dataset_id) if resume else None
    run = _start_run(state, options, train_set, log)

    began = time.perf_counter()
    if state is None and run.options.warmup_epochs > 0:
        run.history.extend(
            warm_up_front_end(run.pipeline, run.criterion, train_set, val_set, run.options, progress, log)
        )
        run.best_state = copy.deepcopy(run.pipeline.state_dict())
    for epoch in range(run.start_epoch, run.options.epochs):
        if run.stopped_early:
            break
        _end_to_end_epoch(run, train_set, val_set, epoch, progress, log)
        _save_last(run, epoch, train_set.dataset_id, last_path)
    if run.stopped_early:
        log(f"early stop: no validation accuracy gain for {run.options.patience} epochs")
    return _write_results(run, train_set, val_set, out_dir, time.perf_counter() - began)
