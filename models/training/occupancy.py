"""Training of the seat-occupancy model (models/networks/occupancy.py) on live simulated sessions.

Training data (``occupancy_samples``): live SmartClass-Sim sessions (``SimulatedCamera``, mixed
conditions) of 2-39 students in the room the simulator picks for that size, one frame set
every ``every`` frames, every seat of the camera's seat map labelled by the roster (a seat
with a roster entry is taken: the simulator seats exactly its roster). Training and
validation sessions use disjoint seeds, hence different students, rooms and occupancy
patterns. Left/right flips and small brightness changes augment the training crops.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.data.crops import extract_student_crops
from models.networks.occupancy import DEFAULT_CROP_SIZE, OccupancyNet, OccupancyReport
from models.serving.inference import InferenceEngine
from services.common.progress import progress_bar
from services.enhancement.pipeline import Enhancer
from services.simulator.live import SimulatedCamera


@dataclass(frozen=True)
class SessionSpec:
    seed: int
    students: int


def session_specs(
    seeds: Iterable[int], *, min_students: int = 2, max_students: int = 39
) -> list[SessionSpec]:
    """One session per seed, its class size drawn from the seed (deterministic)."""
    specs = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 7919])
        specs.append(SessionSpec(seed, int(rng.integers(min_students, max_students + 1))))
    return specs


def occupancy_samples(
    spec: SessionSpec, *, frames: int, every: int, crop_size: int = DEFAULT_CROP_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops [N, 6, S, S] of every seat of ``frames`` frame sets of a live session, and labels [N]."""
    camera_sim = SimulatedCamera(seed=spec.seed, students=spec.students, fps=15, rgb_size=(640, 360))
    classroom, course = camera_sim.campus_classroom("room", "cam", "course")
    camera = classroom.cameras[0]
    calibration = camera.calibration
    if calibration is None:
        raise ValueError("the simulated camera came without calibration")
    size = (camera.analysis_width, camera.analysis_height)
    boxes = np.array([s.box for s in camera.seats], np.float64)
    taken = {entry.seat for entry in course.roster}
    labels = torch.tensor([float(s.id in taken) for s in camera.seats])
    enhancer = Enhancer()
    crops = []
    for k in range(frames):
        # frame_at renders frame set k * every alone: the pixels equal those of iterating the session
        e = enhancer.process(camera_sim.frame_at(k * every), calibration, size)
        cut = extract_student_crops(
            [(e.rgb, e.depth_mm, e.thermal_c, e.thermal_equalised)], [boxes], crop_size=crop_size
        )
        crops.append(cut.tensor.float())
    return torch.cat(crops), labels.repeat(frames)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    gain = 1.0 + 0.2 * (torch.rand(x.shape[0], 1, 1, 1, generator=generator) - 0.5)
    x = x.clone()
    x[:, :3] = x[:, :3] * gain  # colour channels only: depth and temperatures are physical
    return x


def _rates(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    called = logits >= 0
    taken = labels > 0.5
    return {
        "accuracy": float((called == taken).float().mean()),
        "missed_occupied": float((~called & taken).sum() / max(int(taken.sum()), 1)),
        "false_occupied": float((called & ~taken).sum() / max(int((~taken).sum()), 1)),
        "crops": int(labels.numel()),
        "taken": int(taken.sum()),
    }


RenderedSession = tuple[SessionSpec, torch.Tensor, torch.Tensor]  # spec, crops [N, 6, S, S], labels [N]


def _render_sessions(
    specs: Sequence[SessionSpec],
    what: str,
    *,
    frames: int,
    every: int,
    crop_size: int,
    log: Callable[[str], None],
) -> list[RenderedSession]:
    """Every seat's crops and labels of each session (``occupancy_samples``), logged one by one."""
    out = []
    for k, spec in enumerate(progress_bar(specs, desc=f"rendering {what} sessions", unit="session")):
        x, y = occupancy_samples(spec, frames=frames, every=every, crop_size=crop_size)
        out.append((spec, x, y))
        log(
            f"{what} session {k + 1}/{len(specs)}: seed {spec.seed}, {spec.students} students, {len(y)} crops"
        )
    return out


def _untrained_net(crop_size: int, labels: torch.Tensor) -> OccupancyNet:
    """A fresh ``OccupancyNet`` whose output starts at the training share of taken seats."""
    net = OccupancyNet(crop_size)
    # the prior: start from the training share of taken seats (Lin et al. 2017, focal loss paper)
    prior = float(labels.mean().clamp(0.05, 0.95))
    last = net.classifier[-1]
    assert isinstance(last, nn.Linear)
    nn.init.constant_(last.bias, math.log(prior / (1 - prior)))
    return net


def _fit(
    net: OccupancyNet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    log: Callable[[str], None],
) -> None:
    """AdamW on the binary cross-entropy of augmented crops, shuffled by ``generator`` every epoch."""
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    for epoch in progress_bar(range(epochs), desc="training", unit="epoch"):
        net.train()
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            logits = net(_augment(x[idx], generator))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / len(y):.4f}")
    net.eval()


def _score_held_out(
    net: OccupancyNet,
    val_sets: list[RenderedSession],
    head_checkpoint: str | Path | None,
    report: OccupancyReport,
) -> None:
    """Fill ``report`` with the held-out rates, per session and over all, beside the keypoint head's if given."""
    head = _head_scorer(head_checkpoint) if head_checkpoint else None
    all_logits, all_labels, head_logits = [], [], []
    with torch.inference_mode():
        for spec, x, y in val_sets:
            logits = net(x)
            entry = {"seed": spec.seed, "students": spec.students, **_rates(logits, y)}
            if head is not None:
                h = head(x)
                head_logits.append(h)
                entry["head_accuracy"] = _rates(h, y)["accuracy"]
            report.per_session.append(entry)
            all_logits.append(logits)
            all_labels.append(y)
    rates = _rates(torch.cat(all_logits), torch.cat(all_labels))
    report.val_crops = rates["crops"]
    report.val_accuracy = rates["accuracy"]
    report.val_missed_occupied = rates["missed_occupied"]
    report.val_false_occupied = rates["false_occupied"]
    if head_logits:
        report.head_val_accuracy = _rates(torch.cat(head_logits), torch.cat(all_labels))["accuracy"]


def train_occupancy(
    train_specs: Sequence[SessionSpec],
    val_specs: Sequence[SessionSpec],
    *,
    frames: int = 6,
    every: int = 20,
    epochs: int = 25,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    crop_size: int = DEFAULT_CROP_SIZE,
    head_checkpoint: str | Path | None = None,
    log=print,  # type: ignore[no-untyped-def]
) -> tuple[OccupancyNet, OccupancyReport]:
    """Render the sessions, train ``OccupancyNet`` (AdamW, BCE), report held-out accuracy."""
    began = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_sets = _render_sessions(
        train_specs, "train", frames=frames, every=every, crop_size=crop_size, log=log
    )
    val_sets = _render_sessions(
        val_specs, "validation", frames=frames, every=every, crop_size=crop_size, log=log
    )
    x_train = torch.cat([x for _, x, _ in train_sets])
    y_train = torch.cat([y for _, _, y in train_sets])
    net = _untrained_net(crop_size, y_train)
    _fit(net, x_train, y_train, epochs=epochs, lr=lr, batch_size=batch_size, generator=generator, log=log)
    report = OccupancyReport(
        command=" ".join(sys.argv),
        train_sessions=[asdict(s) for s in train_specs],
        val_sessions=[asdict(s) for s in val_specs],
        train_crops=len(y_train),
        epochs=epochs,
    )
    _score_held_out(net, val_sets, head_checkpoint, report)
    report.seconds = time.perf_counter() - began
    return net, report


def _head_scorer(checkpoint: str | Path):  # type: ignore[no-untyped-def]
    """The recognition checkpoint's occupancy head, for comparison on the same crops."""
    engine = InferenceEngine(checkpoint)

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            stage = engine.pipeline.forward_fusion(x.to(engine.dtype), enhance=False)
            return stage.keypoints.occupancy_logits.float()

    return score


# -- classroom train-occupancy -------------------------------------------------------------------


__all__: list[Any] = ["train_occupancy"]
