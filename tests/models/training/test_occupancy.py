"""The seat-occupancy model: shapes and bad input, checkpoints, training on simulated sessions,
and the inference engine using it instead of the keypoint network's head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.networks.occupancy import OccupancyNet, load_occupancy, save_occupancy
from models.serving.committed import DEFAULT_CHECKPOINT, DEFAULT_OCCUPANCY_CHECKPOINT
from models.training.occupancy import SessionSpec, occupancy_samples, session_specs, train_occupancy

COMMITTED_RECOGNITION = str(DEFAULT_CHECKPOINT)
COMMITTED_OCCUPANCY = str(DEFAULT_OCCUPANCY_CHECKPOINT)


def test_shapes_and_bad_input() -> None:
    net = OccupancyNet(64).eval()
    assert net(torch.zeros(5, 6, 64, 64)).shape == (5,)
    with pytest.raises(ValueError, match="expected \\[N, 6, 64, 64\\]"):
        net(torch.zeros(5, 4, 64, 64))
    with pytest.raises(ValueError, match="multiple of 16"):
        OccupancyNet(60)


def test_session_specs_are_deterministic_and_in_range() -> None:
    specs = session_specs(range(50))
    assert specs == session_specs(range(50))
    assert all(2 <= s.students <= 39 for s in specs)
    assert len({s.students for s in specs}) > 10


def test_samples_label_every_seat_by_the_roster() -> None:
    x, y = occupancy_samples(SessionSpec(seed=3, students=5), frames=2, every=5)
    assert x.shape[1:] == (6, 64, 64) and x.shape[0] == y.shape[0]
    seats = y.shape[0] // 2
    assert float(y.sum()) == 2 * 5 and seats > 5  # 5 students in a larger room, two frame sets


def test_checkpoint_round_trip_and_bad_files(tmp_path) -> None:
    from models.networks.occupancy import OccupancyReport

    net, report = OccupancyNet(64).eval(), OccupancyReport(command="test")
    path = tmp_path / "occ.pt"
    save_occupancy(net, report, path)
    loaded = load_occupancy(path)
    x = torch.randn(3, 6, 64, 64)
    assert torch.equal(loaded(x), net(x))
    assert (tmp_path / "occ.report.json").is_file()
    with pytest.raises(FileNotFoundError):
        load_occupancy(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable occupancy checkpoint"):
        load_occupancy(tmp_path / "junk.pt")


@pytest.mark.slow
def test_training_separates_taken_from_empty_seats_on_unseen_sessions() -> None:
    # held-out rooms about a third empty, so answering "taken" everywhere scores ~62 %
    held_out = [SessionSpec(3000, 8), SessionSpec(3001, 7)]
    _net, report = train_occupancy(
        session_specs(range(100, 108)), held_out, frames=3, every=10, epochs=12, log=lambda _line: None
    )
    assert report.train_crops > 0 and report.val_crops > 0
    taken = sum(s["taken"] for s in report.per_session) / report.val_crops
    majority = max(taken, 1 - taken)
    assert majority < 0.7
    assert report.val_accuracy > majority + 0.1


def test_the_committed_model_tells_taken_from_empty_seats_in_unseen_sessions() -> None:
    # seeds 3000-3003 are neither training (1000-1039) nor validation (2000-2009) sessions
    net = load_occupancy(COMMITTED_OCCUPANCY)
    correct = total = empty = 0
    for spec in session_specs(range(3000, 3004)):
        x, y = occupancy_samples(spec, frames=2, every=10)
        with torch.inference_mode():
            correct += int(((net(x) >= 0).float() == y).sum())
        total += len(y)
        empty += int((y == 0).sum())
    assert empty >= 0.15 * total  # the sessions do have empty seats to get wrong
    assert correct / total >= 0.95


def test_the_engine_uses_the_occupancy_model_when_given() -> None:
    from models.data.inputs import FusionInput
    from models.serving.inference import InferenceEngine

    head = InferenceEngine(COMMITTED_RECOGNITION)
    with_model = InferenceEngine(COMMITTED_RECOGNITION, occupancy_checkpoint=COMMITTED_OCCUPANCY)
    assert "+occupancy@" in with_model.info.fusion_version
    assert "+occupancy@" not in head.info.fusion_version
    rng = np.random.default_rng(0)
    frame = FusionInput(
        rgb=rng.integers(0, 255, (360, 640, 3), dtype=np.uint8),
        depth_mm=rng.integers(500, 6000, (360, 640)).astype(np.uint16),
        thermal_c=rng.uniform(20, 35, (360, 640)).astype(np.float32),
        thermal_equalised=rng.integers(0, 255, (360, 640), dtype=np.uint8),
        seats=np.array([[10, 10, 200, 200], [300, 50, 500, 300]], np.float32),
    )
    a, b = head.fuse([frame])[0], with_model.fuse([frame])[0]
    np.testing.assert_array_equal(a.keypoints, b.keypoints)  # only the occupancy differs
    assert not np.allclose(a.occupancy, b.occupancy)
    assert ((b.occupancy >= 0) & (b.occupancy <= 1)).all()


def test_an_occupancy_model_of_another_crop_size_is_refused(tmp_path) -> None:
    from models.networks.occupancy import OccupancyReport
    from models.serving.inference import InferenceEngine

    save_occupancy(OccupancyNet(96), OccupancyReport(command="test"), tmp_path / "occ96.pt")
    with pytest.raises(ValueError, match="reads 96 px crops"):
        InferenceEngine(COMMITTED_RECOGNITION, occupancy_checkpoint=tmp_path / "occ96.pt")
