"""The training loop on a tiny procedural data set: the loss falls, resume is exact, early stopping fires."""

from __future__ import annotations

import json

import pytest
import torch

from models.data.toydata import ToyWindowDataset
from models.data.windows import collate
from models.networks.perceptual import train_perceptual_net
from models.training.train import TrainOptions, train

TINY = {
    "fusion_channels": 8,
    "feature_dim": 8,
    "recognition_channels": [8, 8],
    "keypoints": {"widths": [8, 16]},
    "enhancement": "identity",
}


def options(**kw) -> TrainOptions:
    base = {"method": "proposed", "epochs": 3, "batch_size": 4, "lr": 3e-3, "model_overrides": TINY}
    base.update(kw)
    return TrainOptions(**base)


def data(n: int = 8, seed: int = 0):
    return ToyWindowDataset(n, window_frames=4, crop_size=32, seed=seed), ToyWindowDataset(
        4, 4, 32, seed=seed + 1
    )


def test_perceptual_net_learns_keypoints():
    ds = ToyWindowDataset(8, window_frames=2, crop_size=32)

    class Batches:
        def __iter__(self):
            for i in range(0, 8, 4):
                b = collate([ds[j] for j in range(i, i + 4)])
                yield b["reference"].flatten(0, 1), b["keypoints"].flatten(0, 1)

    phi, history = train_perceptual_net(Batches(), epochs=6, lr=3e-3)
    assert history[-1] < history[0]
    assert not any(p.requires_grad for p in phi.parameters())


@pytest.mark.slow
def test_loss_goes_down(tmp_path):
    train_set, val_set = data(16)
    report = train(train_set, val_set, tmp_path, options(epochs=5), progress=False, log=lambda _: None)
    first, last = report["history"][0]["train"], report["history"][-1]["train"]
    assert last["L_rec"] < first["L_rec"]
    assert last["kp_l1"] < first["kp_l1"]
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "report.json").is_file()


def test_flip_augmentation_trains_and_is_recorded(tmp_path):
    train_set, val_set = data(8)
    report = train(
        train_set, val_set, tmp_path, options(epochs=2, flip=True), progress=False, log=lambda _: None
    )
    assert report["summary"]["options"]["flip"] is True
    plain = train(
        train_set, val_set, tmp_path / "plain", options(epochs=2), progress=False, log=lambda _: None
    )
    # Mirrored windows are a different training signal: the losses differ from the unflipped run's.
    assert report["history"][0]["train"]["kp_l1"] != plain["history"][0]["train"]["kp_l1"]


@pytest.mark.slow
def test_resume_gives_the_same_weights(tmp_path):
    train_set, val_set = data(8)
    straight = tmp_path / "straight"
    train(train_set, val_set, straight, options(epochs=3), progress=False, log=lambda _: None)
    split = tmp_path / "split"
    train(train_set, val_set, split, options(epochs=2), progress=False, log=lambda _: None)
    report = train(
        train_set, val_set, split, options(epochs=3), resume=True, progress=False, log=lambda _: None
    )
    assert report["summary"]["epochs_run"] == 3
    a = torch.load(straight / "last.pt", weights_only=True)["model"]
    b = torch.load(split / "last.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_early_stopping(tmp_path):
    train_set, val_set = data(4)
    # lr 0: only BatchNorm statistics move, and a 4-window validation set has 5 possible
    # accuracies, so at most 5 epochs can improve: with patience 2 the run must stop by epoch 7
    report = train(
        train_set,
        val_set,
        tmp_path,
        options(epochs=10, lr=0.0, patience=2),
        progress=False,
        log=lambda _: None,
    )
    summary = report["summary"]
    assert summary["stopped_early"]
    assert summary["epochs_run"] == summary["best_epoch"] + 2 <= 7
    accuracies = [h["val_accuracy"] for h in report["history"]]
    assert max(accuracies[summary["best_epoch"] :]) <= accuracies[summary["best_epoch"] - 1]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert len(saved["history"]) == summary["epochs_run"]


def test_resume_refuses_other_training_data(tmp_path):
    train_set, val_set = data(8)
    train(train_set, val_set, tmp_path, options(epochs=1), progress=False, log=lambda _: None)
    other, _ = data(8, seed=5)
    with pytest.raises(ValueError, match="trained on toy-v1"):
        train(other, val_set, tmp_path, options(epochs=2), resume=True, progress=False, log=lambda _: None)


def test_probe_retrains_only_the_recogniser_and_fits_the_training_windows(tmp_path):
    from models.networks.checkpoint import load_checkpoint
    from models.networks.registry import create_model
    from models.training.probe import front_end_outputs, probe

    train_set, val_set = data(16)
    train(train_set, val_set, tmp_path, options(epochs=1), progress=False, log=lambda _: None)
    checkpoint = load_checkpoint(tmp_path / "model.pt")
    pipeline = create_model(checkpoint["method"], checkpoint=checkpoint)
    front = {k: v.clone() for k, v in pipeline.state_dict().items() if not k.startswith("recognition.")}
    keypoints, features, labels = front_end_outputs(pipeline, train_set)
    assert keypoints.shape == (16, 4, 17, 3) and features.shape[:3] == (16, 4, 17)
    assert labels.tolist() == [train_set[i].label for i in range(16)]
    # A one-epoch toy front end gives near-constant features; to check that the probe trains the
    # recogniser, give it 16 windows it can tell apart: it must learn them by heart.
    g = torch.Generator().manual_seed(0)
    distinct = (
        torch.cat([torch.rand(16, 4, 17, 2, generator=g), torch.ones(16, 4, 17, 1)], dim=-1),
        torch.randn(features.shape, generator=g),
        labels,
    )
    history = probe(pipeline, {"train": distinct}, epochs=50, lr=3e-3, crop_size=32, log=lambda _: None)
    assert [r["epoch"] for r in history] == list(range(51))
    assert history[0]["train"] < 50.0
    assert max(r["train"] for r in history[-10:]) >= 90.0
    for key, value in pipeline.state_dict().items():
        if key in front:
            torch.testing.assert_close(value, front[key], rtol=0, atol=0, msg=key)
