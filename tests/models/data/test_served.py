"""Served-path windows: prepared once through the live input path, memory-mapped chunks, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.data.served import ServedWindows
from services.dataset.format import DatasetError
from services.dataset.virtual import PRESETS, VirtualDataset

CROP = 32


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    return ServedWindows("sim:crowd_tiny", "val", CROP, cache_dir=root, workers=1, progress=False, log=None)


def test_every_person_of_the_window_is_a_sample_with_its_label(served):
    plan = VirtualDataset(PRESETS["crowd_tiny"], seed=0).plan("val", 0)
    assert served.sample_ids() == [p.student_id for p in plan.people]
    assert served.labels().tolist() == [p.label for p in plan.people]
    sample = served[0]
    assert sample.crops.shape == (16, 6, CROP, CROP) and sample.crops.dtype == np.float32
    assert set(np.unique(sample.keypoints[..., 2])) <= {0.0, 1.0}
    raw = served.raw_keypoints(0)
    assert set(np.unique(raw[..., 2])) <= {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(sample.occluded, raw[..., 2] == 1)
    # keypoints of a seated person land inside their seat's crop
    seen = raw[..., 2] == 2
    assert ((raw[..., :2][seen] > -2) & (raw[..., :2][seen] < CROP + 2)).all()
    crop, kp = served.frame(1, 5)
    np.testing.assert_array_equal(crop, served[1].crops[5])
    np.testing.assert_array_equal(kp, served.raw_keypoints(1)[5])
    assert served.conditions(0) == list(plan.conditions.tags)


def test_a_second_open_reads_the_cache(served, monkeypatch):
    import models.data.served as module

    def no_render(*args, **kwargs):  # pragma: no cover - the test fails if it is called
        raise AssertionError("prepared again")

    monkeypatch.setattr(module, "prepare_chunk", no_render)
    again = ServedWindows(
        "sim:crowd_tiny", "val", CROP, cache_dir=served.cache_root.parent, progress=False, log=None
    )
    assert again.labels().tolist() == served.labels().tolist()


def test_a_broken_chunk_names_itself(served, tmp_path):
    import shutil

    copy = tmp_path / served.cache_root.name
    shutil.copytree(served.cache_root, copy)
    chunk = next(p for p in copy.iterdir() if p.is_dir())
    (chunk / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        ServedWindows("sim:crowd_tiny", "val", CROP, cache_dir=tmp_path, progress=False, log=None)
    meta = json.loads((served.cache_root / chunk.name / "meta.json").read_text())
    meta["labels"] = meta["labels"][:-1]
    meta["student_ids"] = meta["student_ids"][:-1]
    (chunk / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="does not match"):
        ServedWindows("sim:crowd_tiny", "val", CROP, cache_dir=tmp_path, progress=False, log=None)[0]


def test_unknown_preset_and_missing_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        ServedWindows("sim:nope", "train", CROP, cache_dir=tmp_path, progress=False, log=None)
    with pytest.raises(DatasetError, match="no such data set folder"):
        ServedWindows(str(tmp_path / "absent"), "train", CROP, cache_dir=tmp_path, progress=False, log=None)
