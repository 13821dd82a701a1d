"""``classroom probe``: is a trained checkpoint limited by its recogniser or by its features?

The front end of a checkpoint (enhancement, fusion, keypoints, node encoding) is frozen and
run once over the training, validation and test splits; the recogniser (MST-GCN or a
baseline head) is then trained again, alone, on those cached keypoints and node features
for many cheap epochs. Each epoch prints the training, validation and test top-1:

- if validation and test rise well above the checkpoint's, the end-to-end run stopped
  before its classifier had learnt what the features hold (a budget limit);
- if training top-1 climbs while validation and test stay where they were, the features of
  unseen students do not carry the behaviour (a generalisation limit of the front end).

``--jitter PX`` adds Gaussian noise of that many crop pixels to the training keypoints (the
front end's error on students it was trained on is smaller than on unseen ones). Nothing is
saved: this is a diagnosis, not a training method. The test split is printed for the record
and never used to choose anything.

    classroom probe --checkpoint models/checkpoints/smartclass-small.pt --epochs 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def front_end_outputs(pipeline, dataset, batch_size: int = 16):
    """(keypoints [N, T, 17, 3], node features [N, T, 17, C], labels [N]) of the labelled samples."""
    import torch

    from models.data.windows import collate
    from models.training.losses import IGNORE_LABEL

    pipeline.eval()
    keypoints, features, labels = [], [], []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            _, kp, nodes = pipeline.recognition_inputs(batch["crops"])
            keypoints.append(kp)
            features.append(nodes)
            labels.append(batch["label"])
    y = torch.cat(labels)
    keep = y != IGNORE_LABEL
    return torch.cat(keypoints)[keep], torch.cat(features)[keep], y[keep]


def top1(recognition, split, batch_size: int = 64) -> float:
    import torch

    recognition.eval()
    keypoints, features, labels = split
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            logits = recognition(keypoints[start : start + batch_size], features[start : start + batch_size])[
                0
            ]
            correct += int((logits.argmax(-1) == labels[start : start + batch_size]).sum())
    return 100.0 * correct / max(len(labels), 1)


def probe(
    pipeline,
    splits: dict[str, Any],
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    batch_size: int = 8,
    jitter_px: float = 0.0,
    crop_size: int,
    seed: int = 0,
    log=print,
) -> list[dict[str, float]]:
    """Train ``pipeline.recognition`` alone on cached front-end outputs; one record per epoch
    (epoch 0 = the checkpoint as it is)."""
    import torch

    from models.training.losses import class_weights, weighted_focal_loss

    recognition = pipeline.recognition
    for p in recognition.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(recognition.parameters(), lr=lr, weight_decay=weight_decay)
    keypoints, features, labels = splits["train"]
    weights = torch.as_tensor(class_weights(labels.numpy()), dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)

    def record(epoch: int, loss: float) -> dict[str, float]:
        row = {"epoch": epoch, "loss": loss, **{name: top1(recognition, s) for name, s in splits.items()}}
        log(f"epoch {epoch}: loss {loss:.3f} " + " ".join(f"{name} {row[name]:.1f}" for name in splits))
        return row

    history = [record(0, float("nan"))]
    for epoch in range(1, epochs + 1):
        recognition.train()
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            kp = keypoints[idx].clone()
            if jitter_px > 0:
                kp[..., :2] += torch.randn(kp[..., :2].shape, generator=generator) * (jitter_px / crop_size)
            logits = recognition(kp, features[idx])[0]
            loss = weighted_focal_loss(logits, labels[idx], weights, 2.0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        history.append(record(epoch, total / max(len(labels), 1)))
    return history


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model.pt of classroom train")
    parser.add_argument("--data", default="sim:small", help="the data set the checkpoint was trained on")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="keypoint noise on training windows (crop px)"
    )
    parser.add_argument(
        "--train-extras", action="store_true", help="the training split with its background people"
    )
    parser.add_argument("--limit", type=int, help="first windows of each split (quick checks)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--workers", type=int, help="processes preparing uncached windows")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import torch

    from models.data.open import open_dataset
    from models.networks.checkpoint import load_checkpoint
    from models.networks.registry import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = load_checkpoint(args.checkpoint)
        pipeline = create_model(data["method"], checkpoint=data)
        crop = int(data["crop_size"])
        splits = {}
        began = time.perf_counter()
        for split in ("train", "val", "test"):
            dataset = open_dataset(
                args.data,
                split,
                seed=args.seed,
                crop_size=crop,
                workers=args.workers,
                limit=args.limit,
                extras=args.train_extras and split == "train",
            )
            splits[split] = front_end_outputs(pipeline, dataset)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"classroom probe: {exc}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{name} {len(s[2])}" for name, s in splits.items())
    print(f"front end of {args.checkpoint} over {sizes} samples in {time.perf_counter() - began:.0f} s")
    history = probe(
        pipeline,
        splits,
        epochs=args.epochs,
        lr=args.lr,
        jitter_px=args.jitter,
        crop_size=crop,
        seed=args.seed,
    )
    best = max(history[1:] or history, key=lambda r: r["val"])
    print(
        f"best validation epoch {best['epoch']}: train {best['train']:.1f} val {best['val']:.1f} "
        f"test {best['test']:.1f} (epoch 0, the checkpoint: val {history[0]['val']:.1f} test {history[0]['test']:.1f})"
    )
    return 0
