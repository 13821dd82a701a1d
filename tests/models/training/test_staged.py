"""The staged recipe end to end on a tiny fresh-people set: three stages, resumable, a servable checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from models.data.served import ServedWindows
from models.networks.checkpoint import load_checkpoint
from models.serving.inference import InferenceEngine
from models.training.staged import StagedOptions, train_staged

CROP = 32
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    kwargs = {"cache_dir": root, "workers": 2, "progress": False, "log": None}
    return ServedWindows("sim:crowd_tiny", "train", CROP, limit=1, **kwargs), ServedWindows(
        "sim:crowd_tiny", "val", CROP, **kwargs
    )


def tiny(**changes) -> StagedOptions:
    options = StagedOptions(
        front_steps=6,
        front_batch=8,
        checkpoint_every=3,
        recogniser_epochs=1,
        finetune_epochs=1,
        finetune_batch=4,
        val_frames=32,
        model_overrides={"keypoints": {"widths": [8, 16], "stages": 1, "blocks": 1}},
    )
    for key, value in changes.items():
        setattr(options, key, value)
    return options


def test_three_stages_write_a_servable_checkpoint(sets, tmp_path):
    train_set, val_set = sets
    torch.manual_seed(0)
    report = train_staged(train_set, val_set, tmp_path, tiny(), progress=False, log=lambda _m: None)
    assert set(report["stages"]) == {"front_end", "recogniser", "finetune"}
    assert report["stages"]["front_end"]["steps"] == 6
    assert 0.0 <= report["stages"]["recogniser"]["best_val_accuracy"] <= 1.0
    for name in ("front_end.pt", "recogniser.pt", "model.pt", "enhancement.json", "report.json"):
        assert (tmp_path / name).is_file()
    data = load_checkpoint(tmp_path / "model.pt")
    assert data["inputs"] == "served" and data["config"]["enhancement"] == "identity"
    engine = InferenceEngine(tmp_path / "model.pt")
    assert engine.info.trained and engine.info.crop_size == CROP
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["train_samples"] == len(train_set)


def test_a_run_resumes_stage_by_stage_and_refuses_to_overwrite(sets, tmp_path):
    train_set, val_set = sets
    quiet = {"progress": False, "log": lambda _m: None}
    train_staged(train_set, val_set, tmp_path, tiny(), stages=("front_end",), **quiet)
    assert (tmp_path / "front_end.pt").is_file() and not (tmp_path / "model.pt").exists()
    with pytest.raises(ValueError, match="--resume"):
        train_staged(train_set, val_set, tmp_path, tiny(), **quiet)
    front = load_checkpoint(tmp_path / "front_end.pt")["state_dict"]
    report = train_staged(train_set, val_set, tmp_path, tiny(finetune_epochs=0), resume=True, **quiet)
    assert "recogniser" in report["stages"]
    model = load_checkpoint(tmp_path / "model.pt")["state_dict"]
    # the recogniser stage trained on the stage-a front end, which it left as it was
    key = next(k for k in front if k.startswith("keypoint_net."))
    assert torch.equal(front[key], model[key])
    with pytest.raises(ValueError, match="choose another --out"):
        train_staged(train_set, val_set, tmp_path, tiny(method="rgb_only"), resume=True, **quiet)


def test_a_later_stage_needs_the_earlier_ones_or_a_checkpoint_to_start_from(sets, tmp_path):
    train_set, val_set = sets
    with pytest.raises(ValueError, match="front_end is left out"):
        train_staged(
            train_set, val_set, tmp_path, tiny(), stages=("recogniser",), progress=False, log=lambda _m: None
        )


def test_a_run_starts_from_a_checkpoints_weights_or_says_why_not(sets, tmp_path):
    train_set, val_set = sets
    quiet = {"progress": False, "log": lambda _m: None}
    first = tmp_path / "first"
    train_staged(train_set, val_set, first, tiny(finetune_epochs=0), **quiet)
    trained = load_checkpoint(first / "model.pt")["state_dict"]
    # no steps of its own: stage a of the warm-started run is the checkpoint's front end
    again = tmp_path / "again"
    options = tiny(front_steps=0, init_from=str(first / "model.pt"))
    train_staged(train_set, val_set, again, options, stages=("front_end",), **quiet)
    front = load_checkpoint(again / "front_end.pt")["state_dict"]
    key = next(k for k in trained if k.startswith("keypoint_net.") and k.endswith("weight"))
    assert torch.equal(front[key], trained[key])
    with pytest.raises(ValueError, match="a proposed checkpoint, not rgb_only"):
        train_staged(
            train_set,
            val_set,
            tmp_path / "other",
            tiny(method="rgb_only", init_from=str(first / "model.pt")),
            **quiet,
        )
    wider = tiny(init_from=str(first / "model.pt"))
    wider.model_overrides = {"keypoints": {"widths": [16, 32], "stages": 1, "blocks": 1}}
    with pytest.raises(ValueError, match="layout differs"):
        train_staged(train_set, val_set, tmp_path / "wider", wider, **quiet)


def test_stage_b_trains_the_node_encoder_with_the_recogniser_on_the_front_end_it_starts_from(sets, tmp_path):
    train_set, val_set = sets
    quiet = {"progress": False, "log": lambda _m: None}
    first = tmp_path / "first"
    train_staged(train_set, val_set, first, tiny(finetune_epochs=0), **quiet)
    before = load_checkpoint(first / "model.pt")["state_dict"]
    # stage b alone, the front end from --init-from: no front_end.pt in OUT is needed
    again = tmp_path / "again"
    options = tiny(finetune_epochs=0, recogniser_epochs=2, init_from=str(first / "model.pt"))
    report = train_staged(train_set, val_set, again, options, stages=("recogniser",), **quiet)
    assert set(report["stages"]) == {"recogniser"}
    after = load_checkpoint(again / "model.pt")["state_dict"]
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"node_encoder", "recognition"} <= changed  # eq. 6's encoder learns with the recogniser
    assert not changed & {"fusion", "keypoint_net"}  # the front end stays as it was


def test_joined_windows_read_as_one_training_set(sets, tmp_path):
    from models.data.served import JoinedWindows
    from services.dataset.format import DatasetError

    train_set, val_set = sets
    joined = JoinedWindows([train_set, val_set])
    assert len(joined) == len(train_set) + len(val_set)
    assert joined.labels().tolist() == train_set.labels().tolist() + val_set.labels().tolist()
    assert joined.dataset_id == f"{train_set.dataset_id}+{val_set.dataset_id}"
    last = len(joined) - 1
    assert joined[last].label == val_set[len(val_set) - 1].label
    crop, keypoints = joined.frame(len(train_set), 2)
    expected_crop, expected_keypoints = val_set.frame(0, 2)
    assert (crop == expected_crop).all() and (keypoints == expected_keypoints).all()
    with pytest.raises(IndexError):
        joined.frame(len(joined), 0)
    other = ServedWindows(
        "sim:crowd_tiny", "val", CROP + 16, cache_dir=tmp_path, workers=1, progress=False, log=None
    )
    with pytest.raises(DatasetError, match="must agree"):
        JoinedWindows([train_set, other])


def test_a_fine_tune_epoch_can_draw_fewer_windows_than_the_training_set(sets, tmp_path):
    train_set, val_set = sets
    assert len(train_set) > 2
    torch.manual_seed(0)
    options = tiny(finetune_windows=2, finetune_batch=1)
    report = train_staged(train_set, val_set, tmp_path, options, progress=False, log=lambda _m: None)
    state = torch.load(tmp_path / "stage_finetune.last.pt", map_location="cpu", weights_only=True)
    # 2 windows a batch of 1: the schedule was sized for, and took, two steps in the one epoch
    assert state["schedule"]["_step_count"] == 1 + 2
    assert report["stages"]["finetune"]["epochs"] == 1


def test_the_front_end_stage_with_flipped_frames_learns_and_says_so(sets, tmp_path):
    train_set, val_set = sets
    torch.manual_seed(0)
    options = tiny(front_flip=True)
    report = train_staged(
        train_set, val_set, tmp_path, options, stages=("front_end",), progress=False, log=lambda _m: None
    )
    front = report["stages"]["front_end"]
    assert front["steps"] == 6 and report["options"]["front_flip"] is True
    assert all(row["kp_l1"] > 0 for row in front["history"])
