"""Model-server throughput against batch size, CPU and (when present) CUDA: what
``classroom bench models`` (models/tools/bench.py) runs.

For fuse(): frame sets per second for batches of 1..N frame sets of ``--seats`` students at
640x360 (synthetic frames: the cost does not depend on the pixel values), split into crop
extraction and network. For recognise(): windows per second and ms per window for batches
of B students. Medians over ``--repeats`` timed runs after warm-up; prints a table (and
JSON with ``--json``). Timings on a shared machine are noisy: medians, and say the load.
Several engines (the eager and the optimised per-crop stage) are timed in one run with their
calls interleaved (``bench_forms``), so a change in the machine's load falls on all of them.

``classroom bench gpu``'s sweep lives in models/evaluation/gpu_sweep.py (torch alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

from models.data.crops import extract_student_crops
from models.data.inputs import FusionInput
from models.data.toydata import ToyWindowDataset
from models.data.windows import collate
from models.evaluation.timing import interleaved_medians, median_seconds
from models.networks.perceptual import PerceptualNet
from models.networks.registry import build_pipeline, method_config
from models.training.losses import LossConfig, MultiTaskLoss


def _rate_row(unit: str, count: int, seconds: float, cpu: float) -> dict:
    """One timed call of ``count`` units (``frame_set`` or ``window``): its wall and CPU ms, per unit too."""
    return {
        f"{unit}s": count,
        "ms": seconds * 1e3,
        f"cpu_ms_per_{unit}": cpu * 1e3 / count,
        f"{unit}s_per_s": count / seconds,
        f"ms_per_{unit}": seconds * 1e3 / count,
    }


def synthetic_frame_set(width: int, height: int, seats: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cols = max(1, round((seats * width / height) ** 0.5))
    rows = -(-seats // cols)
    w, h = width / cols, height / rows
    boxes = np.array(
        [[c * w + 2, r * h + 2, (c + 1) * w - 2, (r + 1) * h - 2] for r in range(rows) for c in range(cols)][
            :seats
        ],
        dtype=np.float32,
    )
    return FusionInput(
        rgb=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        depth_mm=rng.integers(800, 4000, (height, width), dtype=np.uint16),
        thermal_c=rng.uniform(20.0, 36.0, (height, width)).astype(np.float32),
        thermal_equalised=rng.integers(0, 256, (height, width), dtype=np.uint8),
        seats=boxes,
    )


def bench_device(engine, args) -> dict:
    """One engine's figures: ``bench_forms`` with that engine alone."""
    return bench_forms({"served": engine}, args)["served"]


def bench_forms(engines: Mapping[str, Any], args) -> dict[str, dict]:
    """The figures of several engines on one device, per engine name: crop extraction (once, it is
    the same code), fuse() per batch of frame sets and recognise() per batch of windows."""
    first = next(iter(engines.values()))
    sync = torch.cuda.synchronize if first.device.type == "cuda" else (lambda: None)
    frame = synthetic_frame_set(args.width, args.height, args.seats)
    results: dict[str, dict] = {
        name: {"device": str(engine.device), "fuse": [], "recognise": []} for name, engine in engines.items()
    }
    crops = partial(
        extract_student_crops,
        [(frame.rgb, frame.depth_mm, frame.thermal_c, frame.thermal_equalised)],
        [frame.seats],
        crop_size=first.info.crop_size,
    )
    crop_s, _ = median_seconds(crops, args.repeats)
    for result in results.values():
        result["crop_ms_per_frame_set"] = crop_s * 1e3
    for batch in args.fuse_batches:
        frames = [frame] * batch
        timings = interleaved_medians(
            {name: partial(engine.fuse, frames) for name, engine in engines.items()}, args.repeats, sync=sync
        )
        for name, (seconds, cpu) in timings.items():
            results[name]["fuse"].append(_rate_row("frame_set", batch, seconds, cpu))
    t, c = first.info.window_frames, first.info.feature_dim
    rng = np.random.default_rng(0)
    for batch in args.recognise_batches:
        kp = rng.random((batch, t, 17, 3), dtype=np.float32)
        nf = rng.standard_normal((batch, t, 17, c)).astype(np.float16)
        timings = interleaved_medians(
            {name: partial(engine.recognise, kp, nf) for name, engine in engines.items()},
            args.repeats,
            sync=sync,
        )
        for name, (seconds, cpu) in timings.items():
            results[name]["recognise"].append(_rate_row("window", batch, seconds, cpu))
    return results


def bench_training_step(
    method: str, crop_size: int, windows: int, frames: int, repeats: int, with_enhancement: bool = False
) -> dict:
    """Seconds per optimiser step of end-to-end training (forward, multi-task loss, backward, AdamW)
    on procedural toy windows of the given shape; the method's torch enhancement only when asked
    (it needs models/networks/enhancement.py), with a random frozen phi for the perceptual loss."""
    data = ToyWindowDataset(windows, window_frames=frames, crop_size=crop_size)
    batch = collate([data[i] for i in range(windows)])
    torch.manual_seed(0)
    overrides = {} if with_enhancement else {"enhancement": "identity"}
    model = build_pipeline(method_config(method, crop_size=crop_size, **overrides)).train()
    criterion = MultiTaskLoss(
        LossConfig(**model.config["loss"]), PerceptualNet() if with_enhancement else None
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)

    def step() -> None:
        terms = criterion(model(batch["crops"]), batch)
        optimiser.zero_grad(set_to_none=True)
        terms.total.backward()
        optimiser.step()

    seconds, cpu = median_seconds(step, repeats, warmup=1)
    return {
        "method": method,
        "crop_size": crop_size,
        "windows": windows,
        "frames": frames,
        "enhancement": model.config["enhancement"],
        "s_per_step": seconds,
        "cpu_s_per_step": cpu,
        "windows_per_s": windows / seconds,
    }
