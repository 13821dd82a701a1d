"""The replay scores a short live session, and a data-set split, with the committed checkpoints:
the served one (trained on served inputs: one path) and the paper recipe's (two paths)."""

import pytest

from models.evaluation import replay
from models.serving.committed import DEFAULT_CHECKPOINT, PAPER_RECIPE_CHECKPOINT

PATHS = [(str(DEFAULT_CHECKPOINT), ("served",)), (str(PAPER_RECIPE_CHECKPOINT), ("served", "training_path"))]


@pytest.mark.parametrize(("checkpoint", "paths"), PATHS)
def test_replay_scores_every_path_of_a_short_session(checkpoint, paths) -> None:
    result = replay.replay(seed=3, students=2, seconds=2.5, checkpoint=checkpoint)
    assert result["frames"] == 20
    assert set(paths) <= set(result) and ("training_path" in result) == ("training_path" in paths)
    for name in paths:
        r = result[name]
        assert r["windows"] == 2  # one window of 16 frames per student
        assert 0.0 <= r["agreement"] <= 1.0 and sum(r["predicted"].values()) == 2
    # the served keypoints are within the crop, and closer than half of it to the truth
    assert 0.0 < result["keypoint_error_crop_px"] < result["crop_size"] / 2


@pytest.mark.parametrize("students", [0, 41])
def test_bad_student_count_is_refused(students) -> None:
    with pytest.raises(ValueError, match="students"):
        replay.replay(seed=0, students=students, seconds=3)


@pytest.mark.parametrize(("checkpoint", "paths"), PATHS)
def test_replay_of_a_data_set_split_scores_every_path(checkpoint, paths) -> None:
    result = replay.replay_split(data="sim:tiny", split="test", limit=1, checkpoint=checkpoint)
    assert result["windows"] == 1 and result["samples"] >= 1
    assert ("training_path" in result) == ("training_path" in paths)
    for name in paths:
        assert 0.0 <= result[name]["top1"] <= 1.0
        assert sum(result[name]["predicted"].values()) == result["samples"]
