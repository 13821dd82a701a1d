"""Is a trained checkpoint limited by its recogniser or by its features? What ``classroom probe``
(models/tools/probe.py) runs.

The front end of a checkpoint (enhancement, fusion, keypoints, node encoding) is frozen and
run once over the training, validation and test splits; the recogniser (MST-GCN or a
baseline head) is then trained again, alone, on those cached keypoints and node features
for many cheap epochs. Each epoch prints the training, validation and test top-1:

- if validation and test rise well above the checkpoint's, the end-to-end run stopped
  before its classifier had learnt what the features hold (a budget limit);
- if training top-1 climbs while validation and test stay where they were, the features of
  unseen students do not carry the behaviour (a generalisation limit of the front end).

``--jitter PX`` adds Gaussian noise of that many crop pixels to the training keypoints (the
front end's error on students it was trained on is smaller than on unseen ones).

``--keypoints`` asks how much better the recogniser would be with better keypoints: the
annotation's exact positions replace the front end's for every point (``exact``, with
confidence = seen), for the points in view only (``exact-seen``: what a perfect pose network
could see) or for the hidden ones only (``exact-hidden``: what no camera sees, a hand under the
desk); ``predicted`` (the default) keeps the front end's. ``seen-flags`` keeps the front end's
positions and puts the annotation's seen flags in as confidence (what a perfect seen/hidden
classifier would add), ``exact-seen-flags`` does both for the points in view. ``--no-features`` trains on the
keypoints alone. Nothing is saved: this is a diagnosis, not a training method. The test split
is printed for the record and never used to choose anything.
"""

from __future__ import annotations

from typing import Any

import torch

from models.data.windows import collate
from models.training.losses import IGNORE_LABEL, class_weights, weighted_focal_loss

KEYPOINT_SOURCES = ("predicted", "exact", "exact-seen", "exact-hidden", "seen-flags", "exact-seen-flags")


def front_end_outputs(pipeline, dataset, batch_size: int = 16, *, keypoints_from: str = "predicted"):
    """(keypoints [N, T, 17, 3], node features [N, T, 17, C], labels [N]) of the labelled samples,
    the keypoints taken from ``keypoints_from`` (``KEYPOINT_SOURCES``, module docstring)."""
    keypoints, features, labels = front_end_sources(pipeline, dataset, batch_size, sources=(keypoints_from,))
    return keypoints[keypoints_from], features, labels


def front_end_sources(pipeline, dataset, batch_size: int = 16, *, sources: tuple[str, ...] = ("predicted",)):
    """``front_end_outputs`` for several keypoint sources from one pass of the front end:
    ({source: keypoints [N, T, 17, 3]}, node features [N, T, 17, C], labels [N])."""
    unknown = [s for s in sources if s not in KEYPOINT_SOURCES]
    if unknown or not sources:
        raise ValueError(
            f"keypoints from {unknown or sources!r}: expected some of {', '.join(KEYPOINT_SOURCES)}"
        )
    pipeline.eval()
    keypoints: dict[str, list[torch.Tensor]] = {s: [] for s in sources}
    features, labels = [], []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            _, kp, nodes = pipeline.recognition_inputs(batch["crops"])
            for source in sources:
                keypoints[source].append(kp if source == "predicted" else exact_keypoints(kp, batch, source))
            features.append(nodes)
            labels.append(batch["label"])
    y = torch.cat(labels)
    keep = y != IGNORE_LABEL
    return {s: torch.cat(k)[keep] for s, k in keypoints.items()}, torch.cat(features)[keep], y[keep]


def exact_keypoints(predicted: torch.Tensor, batch: dict[str, torch.Tensor], which: str) -> torch.Tensor:
    """``predicted`` [B, T, 17, 3] (seat square, confidence) with the annotation's points put in:
    all of them (confidence = seen), the seen ones or the hidden ones (positions only), or only
    the seen flags as confidence, alone or with the seen points' positions."""
    truth = batch["keypoints"]  # crop px, visibility 0/1 (in the image)
    crop_size = batch["crops"].shape[-1]
    in_image = truth[..., 2] > 0
    hidden = batch["occluded"].bool() & in_image if "occluded" in batch else torch.zeros_like(in_image)
    seen = in_image & ~hidden
    exact = torch.cat([truth[..., :2] / crop_size, seen.to(truth.dtype).unsqueeze(-1)], dim=-1)
    if which == "exact":
        return exact
    out = predicted.clone()
    if which in ("seen-flags", "exact-seen-flags"):
        out[..., 2] = exact[..., 2]
    if which == "seen-flags":
        return out
    mask = hidden if which == "exact-hidden" else seen
    out[..., :2][mask] = exact[..., :2][mask]
    return out


def top1(recognition, split, batch_size: int = 64) -> float:
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
    features: bool = True,
    log=print,
) -> list[dict[str, float]]:
    """Train ``pipeline.recognition`` alone on cached front-end outputs; one record per epoch
    (epoch 0 = the checkpoint as it is). ``features=False``: a fresh recogniser of the same
    kind on the keypoints alone (node features set to zero)."""
    if not features:
        splits = {name: (kp, torch.zeros_like(f), y) for name, (kp, f, y) in splits.items()}
        for module in pipeline.recognition.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    recognition = pipeline.recognition
    for p in recognition.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(recognition.parameters(), lr=lr, weight_decay=weight_decay)
    keypoints, node_features, labels = splits["train"]
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
            logits = recognition(kp, node_features[idx])[0]
            loss = weighted_focal_loss(logits, labels[idx], weights, 2.0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        history.append(record(epoch, total / max(len(labels), 1)))
    return history
