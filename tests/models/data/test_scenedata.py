"""Training windows from SmartClass-Sim (models/data/scenedata.py): what the crops hold, where the
keypoints land, the cache, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from models.data.crops import DEPTH, DEPTH_SCALE_MM, THERMAL, THERMAL_CENTRE_C, THERMAL_SCALE_C
from models.data.open import open_dataset
from models.data.scenedata import IGNORE_LABEL
from services.common.vocabulary import BEHAVIOURS, HEAD_KEYPOINTS, KEYPOINT_INDEX, NUM_KEYPOINTS
from services.dataset.api import open_dataset as open_scene_dataset

CROP = 48


@pytest.fixture(scope="module")
def val_set(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("crops")
    os.environ["CLASSROOM_CROP_CACHE"] = str(cache)
    try:
        ds = open_dataset("sim:tiny", "val", crop_size=CROP, workers=1, limit=2, log=None)
    finally:
        del os.environ["CLASSROOM_CROP_CACHE"]
    return ds


def test_samples_are_the_split_students_with_their_labels_and_an_empty_seat(val_set):
    scene = open_scene_dataset("sim:tiny", cache=False)
    expected = [s for s in scene.samples("val") if s.window.clip_id in ("val-00000", "val-00001")]
    labels = list(val_set.labels())
    assert len(expected) == 2  # one val student, two windows
    students = [i for i, label in enumerate(labels) if label != IGNORE_LABEL]
    empties = [i for i, label in enumerate(labels) if label == IGNORE_LABEL]
    assert len(students) == 2 and 1 <= len(empties) <= 2  # at most one empty seat per window (if any is free)
    assert [BEHAVIOURS[labels[i]] for i in students] == [s.label for s in expected]
    for i, ref in zip(students, expected, strict=True):
        sample = val_set[i]
        assert sample.label == ref.label_index
        assert sample.crops.shape == (16, 6, CROP, CROP) and sample.crops.dtype == np.float32
        assert sample.reference is not None and sample.reference.shape == (16, 3, CROP, CROP)
        assert sample.keypoints.shape == (16, NUM_KEYPOINTS, 3)
        assert set(np.unique(sample.keypoints[..., 2])) <= {0.0, 1.0}
        assert sample.occupied is not None and sample.occupied.min() == 1.0
        truth = scene.load_window(ref.window, references=False).keypoints(ref.student_id)
        assert sample.occluded is not None and sample.occluded.dtype == bool
        np.testing.assert_array_equal(sample.occluded, truth[..., 2] == 1)  # hidden, yet in the image
    for i in empties:
        sample = val_set[i]
        plan = scene.plan("val", int(val_set.meta(i).clip_id.rsplit("-", 1)[1]))
        assert val_set.meta(i).seat_id not in {p.seat_id for p in plan.people}  # nobody, not even an extra
        assert sample.occupied is not None and sample.occupied.max() == 0.0
        assert sample.keypoints[..., 2].max() == 0.0
        assert sample.occluded is not None and not sample.occluded.any()
    assert val_set.conditions(0) == list(scene.plan("val", 0).conditions.tags)


def test_visible_keypoints_land_on_the_warm_body_inside_the_crop(val_set):
    """The seat crop is centred on the student: visible head points are inside it and sit on skin,
    which the registered radiometric thermal channel shows warmer than the crop's median."""
    warmer = []
    for i in range(len(val_set)):
        sample = val_set[i]
        if sample.label == IGNORE_LABEL:
            continue
        for t in range(0, 16, 3):
            temperature = sample.crops[t, THERMAL] * THERMAL_SCALE_C + THERMAL_CENTRE_C
            median = float(np.median(temperature))
            for k in HEAD_KEYPOINTS:
                x, y, visible = sample.keypoints[t, k]
                if not visible:
                    continue
                assert 0 <= x <= CROP and 0 <= y <= CROP
                u, v = int(x), int(y)  # crop pixel u spans [u, u + 1)
                patch = temperature[max(v - 1, 0) : v + 2, max(u - 1, 0) : u + 2]
                warmer.append(float(patch.max()) > median + 1.0)
    assert len(warmer) >= 20
    assert np.mean(warmer) > 0.85


def test_restored_depth_covers_the_torso_and_colour_is_raw(val_set):
    """Registered, restored depth is valid on the student's torso and one body is one surface:
    neck, chest and shoulders lie within 40 cm of each other in depth."""
    torso = [KEYPOINT_INDEX[k] for k in ("neck", "chest", "left_shoulder", "right_shoulder")]
    valid, spreads = [], []
    for i in range(len(val_set)):
        sample = val_set[i]
        if sample.label == IGNORE_LABEL:
            continue
        assert np.abs(sample.crops[:, DEPTH]).max() <= 3.0
        assert sample.crops[:, :3].min() >= 0.0 and sample.crops[:, :3].max() <= 1.0
        for t in range(16):
            values = []
            for k in torso:
                x, y, visible = sample.keypoints[t, k]
                if visible:
                    u = min(max(int(x), 0), CROP - 1)
                    v = min(max(int(y), 0), CROP - 1)
                    values.append(float(sample.crops[t, DEPTH, v, u]))
            valid += [d != 0 for d in values]
            if len([d for d in values if d != 0]) >= 2:
                d = [d for d in values if d != 0]
                spreads.append((max(d) - min(d)) * DEPTH_SCALE_MM)
    assert np.mean(valid) > 0.9
    assert np.median(spreads) < 400.0


def test_a_second_open_reads_the_cache_and_a_damaged_file_is_a_clear_error(val_set, tmp_path):
    assert val_set.missing_windows() == []
    index = next(i for i in range(len(val_set)) if val_set.meta(i).clip_id == "val-00001")
    first = val_set[index]
    path = next(val_set.cache_root.glob(f"val-00001-*-{val_set.meta(index).student_id}.npz"))
    path.write_bytes(b"not an npz")
    val_set._memory = None  # read from disk
    with pytest.raises(ValueError, match="delete it to prepare it again"):
        val_set[index]
    path.unlink()
    assert val_set.missing_windows() == [1]
    val_set.prepare(workers=1)
    again = val_set[index]
    np.testing.assert_array_equal(again.crops, first.crops)


def test_unknown_specs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        open_dataset("sim:huge", "train", crop_size=CROP)
    with pytest.raises(ValueError, match="bad option"):
        open_dataset("sim:tiny?conditions=fog", "train", crop_size=CROP)
    with pytest.raises(ValueError, match="no such data set folder"):
        open_dataset("/nonexistent/folder", "train", crop_size=CROP)
    with pytest.raises(ValueError, match="split must be"):
        open_dataset("sim:tiny", "holdout", crop_size=CROP)


def test_scenario_sets_keep_everything_but_the_condition():
    normal = open_scene_dataset("sim:small?conditions=normal", cache=False)
    dark = open_scene_dataset("sim:small?conditions=low_light", cache=False)
    for index in (0, 5, 59):
        a, b = normal.plan("test", index), dark.plan("test", index)
        assert a.people == b.people and a.t0 == b.t0 and a.room == b.room
        assert a.conditions.tags == [] and b.conditions.tags == ["low_light"]
    assert normal.name != dark.name  # separate caches


def test_extras_add_the_background_people_as_samples_and_nothing_else_changes(val_set):
    import os

    os.environ["CLASSROOM_CROP_CACHE"] = str(val_set.cache_root.parent)
    try:
        with_extras = open_dataset(
            "sim:tiny", "val", crop_size=CROP, workers=1, limit=2, log=None, extras=True
        )
    finally:
        del os.environ["CLASSROOM_CROP_CACHE"]
    scene = open_scene_dataset("sim:tiny", cache=False)
    extras = [s for s in scene.extra_samples("val") if s.window.clip_id in ("val-00000", "val-00001")]
    assert extras
    assert len(with_extras) == len(val_set) + len(extras)
    assert with_extras.dataset_id != val_set.dataset_id and "+extras" in with_extras.dataset_id
    added = [i for i in range(len(with_extras)) if with_extras.meta(i).student_id.startswith("extra-")]
    assert [with_extras.meta(i).label for i in added] == [s.label_index for s in extras]
    for i in added:
        sample = with_extras[i]
        assert sample.label >= 0 and sample.occupied is not None and sample.occupied.min() == 1.0
        assert sample.keypoints[..., 2].sum() > 0
    kept = [
        m
        for m in (with_extras.meta(i) for i in range(len(with_extras)))
        if not m.student_id.startswith("extra-")
    ]
    assert kept == [val_set.meta(i) for i in range(len(val_set))]


def test_extras_need_a_data_set_that_labels_them():
    with pytest.raises(ValueError, match="no background people"):
        open_dataset("toy:8", "train", extras=True)
    from models.data.scenedata import split_samples

    class Folder:
        name = "recordings"

        def samples(self, split):
            return []

    with pytest.raises(ValueError, match="does not label its background people"):
        split_samples(Folder(), "train", extras=True)
