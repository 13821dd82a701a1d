"""The replay scores a short live session, and a data-set split, both ways with the committed checkpoint."""

import pytest

from models.evaluation import replay


def test_replay_scores_both_paths_on_a_short_session(capsys) -> None:
    result = replay.replay(seed=3, students=2, seconds=2.5)
    assert result["frames"] == 20
    for name in ("served", "training_path"):
        r = result[name]
        assert r["windows"] == 2  # one window of 16 frames per student
        assert 0.0 <= r["agreement"] <= 1.0 and sum(r["predicted"].values()) == 2
    # the served keypoints are within the crop, and closer than half of it to the truth
    assert 0.0 < result["keypoint_error_crop_px"] < result["crop_size"] / 2


@pytest.mark.parametrize("students", [0, 41])
def test_bad_student_count_is_refused(students) -> None:
    with pytest.raises(ValueError, match="students"):
        replay.replay(seed=0, students=students, seconds=3)


def test_replay_of_a_data_set_split_scores_both_paths() -> None:
    result = replay.replay_split(data="sim:tiny", split="test", limit=1)
    assert result["windows"] == 1 and result["samples"] >= 1
    for name in ("served", "training_path"):
        assert 0.0 <= result[name]["top1"] <= 1.0
        assert sum(result[name]["predicted"].values()) == result["samples"]
