"""The procedural toy data set: deterministic samples of the shapes the training loop reads."""

from __future__ import annotations

import numpy as np

from models.data.toydata import ToyWindowDataset
from models.data.windows import collate


def test_toy_data_is_deterministic_and_consistent():
    ds = ToyWindowDataset(4, window_frames=4, crop_size=32, seed=3)
    a, b = ds[1], ds[1]
    np.testing.assert_array_equal(a.crops, b.crops)
    assert (
        a.crops.shape == (4, 6, 32, 32)
        and a.keypoints.shape == (4, 17, 3)
        and a.reference.shape == (4, 3, 32, 32)
    )
    assert ds.labels().tolist() == [0, 1, 2, 3] and a.label == 1
    batch = collate([ds[0], ds[1]])
    assert batch["crops"].shape == (2, 4, 6, 32, 32) and batch["occupied"].sum() == 8
