"""The one loader API: ``open_dataset``, the opener of data-set folders and virtual presets.

    ds = open_dataset("sim:small")           # virtual: rendered on demand, cached on disk
    ds = open_dataset("/data/room101")        # a folder in the format (simulated or recorded)
    ds.splits                                 # {"train": [student ids], "val": [...], "test": [...]}
    ds.windows("train")                       # [WindowRef]: T frames of one clip on the 8 fps grid
    ds.samples("train")                       # [SampleRef]: (window, student) with the label
    window = ds.load_window(ref)              # raw frames, references, calibration, seat map
    ds.load_annotations(ref)                  # per-frame annotations only (no images)

The types it returns (``Dataset``, ``WindowRef``, ``SampleRef``, ``Window``) live in
services/dataset/types.py, below both readers.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.dataset.format import DatasetError
from services.dataset.reader import FolderDataset
from services.dataset.types import Dataset

DEFAULT_CACHE_ENV = "CLASSROOM_DATASET_CACHE"


def default_cache_dir() -> Path | None:
    """Where virtual data sets cache rendered windows: $CLASSROOM_DATASET_CACHE, or var/cache/datasets.

    Set the variable to "off" (or pass ``cache=False``) to render every time.
    """
    value = os.environ.get(DEFAULT_CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "none", "0") else Path(value)
    return Path("var") / "cache" / "datasets"


def open_dataset(spec: str | os.PathLike, *, cache: bool | str | os.PathLike = True) -> Dataset:
    """A folder in the format, or ``sim:<preset>[?seed=N][&conditions=NAME]`` for a virtual
    SmartClass-Sim data set (``conditions``: one scenario for every window, see
    services/dataset/virtual.py ``parse_sim_options``)."""
    text = str(spec)
    if text.startswith("sim:"):
        # only here: opening a folder never imports the simulator
        from services.dataset.virtual import VirtualDataset, parse_sim_options

        preset, seed, conditions = parse_sim_options(text)
        if cache is True:
            cache_dir = default_cache_dir()
        elif cache is False:
            cache_dir = None
        else:
            cache_dir = Path(cache)
        return VirtualDataset(preset, seed=seed, cache_dir=cache_dir, conditions=conditions)
    path = Path(text)
    if not path.exists():
        raise DatasetError(f"{path}: no such data set folder (or use sim:small / sim:paper)")
    return FolderDataset(path)
