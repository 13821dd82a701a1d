"""``open_dataset``: the specs ``classroom train --data`` takes, and clear errors for bad ones."""

from __future__ import annotations

import pytest

from models.data.open import open_dataset


def test_open_dataset_specs():
    ds = open_dataset("toy:12:4:32", "val")
    assert len(ds) == 4 and ds.window_frames == 4 and ds.crop_size == 32
    assert open_dataset("toy:12", "train", crop_size=64).crop_size == 64
    with pytest.raises(ValueError, match="unknown preset"):
        open_dataset("sim:nosuchpreset", "train")
    with pytest.raises(ValueError, match="toy spec"):
        open_dataset("toy:x", "train")
