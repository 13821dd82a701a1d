"""``open_dataset``: the resolver of ``classroom train --data`` (and of evaluate's and probe's).

It resolves ``sim:<preset>[?seed=N]`` (SmartClass-Sim) and folders in the data-set format
(docs/dataset-format.md) through ``models/data/scenedata.py``, and ``toy:`` to the procedural
stick figures of models/data/toydata.py (smoke tests only, never a reported figure). Every data
set it returns is a ``models.data.windows.WindowDataset``.
"""

from __future__ import annotations

from models.data.scenedata import SceneWindowDataset
from models.data.toydata import ToyWindowDataset
from models.data.windows import WindowDataset
from services.dataset.format import DatasetError


def open_dataset(
    spec: str,
    split: str,
    seed: int = 0,
    crop_size: int | None = None,
    *,
    workers: int | None = None,
    params_file: str | None = None,
    limit: int | None = None,
    log=print,
    extras: bool = False,
) -> WindowDataset:
    """Resolve ``--data``: ``sim:<preset>[?seed=N]``, a data-set folder, or ``toy:N[:frames[:size]]``.

    ``crop_size`` is the preset's crop size, used where the spec does not name one;
    ``seed`` only seeds the toy set (a SmartClass-Sim seed is part of its spec);
    ``limit`` keeps the first windows of the split (quick checks);
    ``params_file`` is the section 3.2 parameters used to restore depth and thermal;
    ``extras`` adds the labelled background people of a SmartClass-Sim split as samples.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if spec.startswith("toy:"):
        if extras:
            raise ValueError(f"{spec}: a toy data set has no background people (extras)")
        fields = spec[4:].split(":")
        try:
            values = [int(v) for v in fields if v]
        except ValueError as exc:
            raise ValueError(f"bad toy spec {spec!r}: expected toy:N[:frames[:size]]") from exc
        if not values or values[0] <= 0:
            raise ValueError(f"bad toy spec {spec!r}: expected toy:N[:frames[:size]] with N > 0")
        n = values[0] if split == "train" else max(4, values[0] // 4)
        frames = values[1] if len(values) > 1 else 8
        size = values[2] if len(values) > 2 else (crop_size or 32)
        split_seed = {"train": 0, "val": 1, "test": 2}[split]
        return ToyWindowDataset(n, window_frames=frames, crop_size=size, seed=seed * 10 + split_seed)
    try:
        return SceneWindowDataset(
            spec,
            split,
            crop_size or 96,
            workers=workers,
            params_file=params_file,
            limit=limit,
            log=log,
            extras=extras,
        )
    except DatasetError as exc:
        raise ValueError(str(exc)) from exc
