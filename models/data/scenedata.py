"""Training windows from a data set in the project's format: SmartClass-Sim (``sim:small``,
``sim:paper``, ``sim:tiny``, optionally ``?seed=N``) or a folder of recordings
(docs/dataset-format.md). This is what ``classroom train --data`` and ``classroom evaluate``
read for every figure about recognition.

A sample is one student over one window (``services.dataset.types.SampleRef``). Its frames go
through exactly what serving does before the model:
- depth and thermal: the section 3.2 NumPy enhancement (restoration, CLAHE, registration to
  colour at the analysis size; ``services.enhancement.pipeline.Enhancer``);
- colour: registered / resized to the analysis size but NOT enhanced, because section 3.5
  trains through the enhancement (the torch twin runs inside the model);
- the clean colour reference, for eqs. 11-12, from the data set's references;
- crops of the student's seat box by ``models.data.crops.extract_student_crops`` (the one crop
  function the model server also uses), ground-truth keypoints mapped into crop pixels.

Empty seats: every window also gives up to ``EMPTY_SEATS_PER_WINDOW`` samples of a seat with
nobody in it (label ``IGNORE_LABEL``, ``occupied`` 0, no visible keypoint), so the keypoint
stage learns the occupancy the fusion service uses to skip empty seats; they train occupancy
and visibility only, never the behaviour classifier, and no accuracy counts them.

Preparing a window costs a render (simulator) or a decode, plus the enhancement, so the crops
are prepared once per (data set, split, crop size, enhancement parameters) and cached under
``var/cache/crops`` as one ``.npz`` per sample (float16 crops). Windows are prepared in
parallel worker processes; the cache is written atomically, so an interrupted preparation
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from models.data.crops import COLOUR, CropGeometry, extract_student_crops
from models.data.windows import WindowSample
from services.common.vocabulary import NUM_KEYPOINTS
from services.dataset.api import open_dataset as open_scene_dataset
from services.enhancement.alignment import resize_to
from services.enhancement.params import EnhancementParams
from services.enhancement.pipeline import Enhancer
from services.simulator.classroom import ROOMS, room_seats

CACHE_ENV = "CLASSROOM_CROP_CACHE"
EMPTY_SEATS_PER_WINDOW = 1
IGNORE_LABEL = -1  # = models.training.losses.IGNORE_LABEL (not imported: training sits above data)
CACHE_FORMAT = 2  # bump when what a cached sample holds changes (2: + occluded)
_MEMORY_BUDGET_BYTES = 6 * 1024**3  # keep a split's samples in memory below this size


def default_crop_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path("var") / "cache" / "crops")


@dataclass(frozen=True)
class SampleMeta:
    """What is known about a sample without preparing it."""

    clip_id: str
    start: int
    student_id: str
    seat_id: str | None
    label: int


def _params_digest(params_file: str | None) -> str:
    params = EnhancementParams() if params_file is None else EnhancementParams.from_json(params_file)
    return params.digest()


def _sample_file(root: Path, meta: SampleMeta) -> Path:
    return root / f"{meta.clip_id}-{meta.start:04d}-{meta.student_id}.npz"


def _load_enhancer(params_file: str | None):
    return Enhancer(None if params_file is None else EnhancementParams.from_json(params_file))


def _aligned_frames(window, size: tuple[int, int], params_file: str | None) -> tuple[list, list[np.ndarray]]:
    """Each frame of ``window`` through section 3.2 as the crops read it (raw colour, restored
    depth, temperature, equalised thermal at the analysis size), and the clean references if any."""
    enhancer = _load_enhancer(params_file)
    aligned, references = [], []
    for t, frame in enumerate(window.frames):
        enhanced = enhancer.process(frame, window.calibration, size)
        raw_colour = resize_to(frame.rgb, size)
        aligned.append((raw_colour, enhanced.depth_mm, enhanced.thermal_c, enhanced.thermal_equalised))
        if window.references is not None:
            references.append(window.references[t].rgb)
    return aligned, references


def _seat_boxes(window, ref, todo: list[SampleMeta]) -> np.ndarray:
    """[len(todo), 4] the seat box of each sample; ValueError for a seat the seat map lacks."""
    seat_boxes = {seat.id: np.asarray(seat.box, np.float64) for seat in window.camera.seats}
    boxes = []
    for m in todo:
        if m.seat_id not in seat_boxes:
            raise ValueError(
                f"{ref.clip_id}: student {m.student_id} sits in seat {m.seat_id!r}, not in the seat map"
            )
        boxes.append(seat_boxes[m.seat_id])
    return np.stack(boxes)


def _reference_crops(
    references: list[np.ndarray], box_array: np.ndarray, size: tuple[int, int], crop_size: int
) -> np.ndarray:
    """[T * students, 3, S, S] the clean reference colour of every seat crop, frame-major."""
    blank_depth = np.zeros(size[::-1], np.uint16)
    blank_thermal = np.zeros(size[::-1], np.float32)
    blank_eq = np.zeros(size[::-1], np.uint8)
    return extract_student_crops(
        [(r, blank_depth, blank_thermal, blank_eq) for r in references],
        [box_array] * len(references),
        crop_size,
    ).tensor.numpy()[:, COLOUR]


def _sample_arrays(
    meta: SampleMeta,
    kp_px: np.ndarray,
    geometry: CropGeometry,
    crops: np.ndarray,
    reference: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """What one cached sample holds, from its crops [T, 6, S, S], its keypoints [T, 17, 3] (analysis
    px + visibility, 0: nobody) and its clean reference crops [T, 3, S, S] if any."""
    frames = len(crops)
    kp = geometry.image_to_crop(kp_px)
    kp[..., 2] = kp_px[..., 2] > 0
    empty = meta.label == IGNORE_LABEL
    arrays: dict[str, np.ndarray] = {
        "crops": crops.astype(np.float16),
        "keypoints": kp.astype(np.float32),
        "label": np.array(meta.label, np.int64),
        "occupied": np.zeros(frames, np.float32) if empty else np.ones(frames, np.float32),
        "occluded": kp_px[..., 2] == 1,  # in the image but hidden (format visibility 1)
    }
    if reference is not None:
        arrays["reference"] = reference.astype(np.float16)
    return arrays


def prepare_window(
    spec: str,
    split: str,
    window_index: int,
    crop_size: int,
    root: str,
    params_file: str | None = None,
    extras: bool = False,
) -> int:
    """Prepare and cache every sample of one window; returns how many were written.

    Runs in a worker process: it opens the data set by ``spec`` itself. ``extras`` adds the
    window's labelled background people (``split_samples``).
    """
    dataset = open_scene_dataset(spec)
    ref = dataset.windows(split)[window_index]
    metas = _window_metas(dataset, ref, split_samples(dataset, split, extras=extras))
    out_root = Path(root)
    todo = [m for m in metas if not _sample_file(out_root, m).is_file()]
    if not todo:
        return 0
    window = dataset.load_window(ref, references=True)
    size = (window.camera.analysis_width, window.camera.analysis_height)
    aligned, references = _aligned_frames(window, size, params_file)
    box_array = _seat_boxes(window, ref, todo)
    crops = extract_student_crops(aligned, [box_array] * len(aligned), crop_size)
    n_students = len(todo)
    frames = len(aligned)
    tensor = crops.tensor.numpy().reshape(frames, n_students, *crops.tensor.shape[1:])
    ref_tensor = None
    if references:
        ref_crops = _reference_crops(references, box_array, size, crop_size)
        ref_tensor = ref_crops.reshape(frames, n_students, 3, crop_size, crop_size)
    # crops are frame-major over the students; a student's square is the same in every frame
    origin = crops.geometry.origin.reshape(frames, n_students, 2)[0]
    scale = crops.geometry.scale.reshape(frames, n_students)[0]
    for j, m in enumerate(todo):
        geometry = CropGeometry(
            origin=np.repeat(origin[j : j + 1], frames, axis=0),
            scale=np.repeat(scale[j : j + 1], frames),
            crop_size=crop_size,
        )
        reference = None if ref_tensor is None else ref_tensor[:, j]
        arrays = _sample_arrays(m, window.keypoints(m.student_id), geometry, tensor[:, j], reference)
        path = _sample_file(out_root, m)
        partial = path.with_suffix(".partial.npz")
        _savez(partial, **arrays)
        os.replace(partial, path)
    return len(todo)


# numpy's stub types **kwds of savez as bool (it also takes allow_pickle=); these are arrays
_savez = cast(Callable[..., None], np.savez)


def _empty_seats(dataset, ref) -> list[str]:
    """Seats of the window's camera with nobody in them (not even a background extra), a few."""
    plan_of = getattr(dataset, "plan", None)
    if plan_of is not None:  # SmartClass-Sim: the plan knows, no rendering
        index = int(ref.clip_id.rsplit("-", 1)[1])
        plan = plan_of(ref.split, index)
        taken = {p.seat_id for p in plan.people}
        free = sorted(s.seat_id for s in room_seats(ROOMS[plan.room]) if s.seat_id not in taken)
    else:
        info = dataset.clip_info(ref.clip_id)
        taken = {st.seat for st in info.students}
        free = sorted(seat.id for seat in info.seats if seat.id not in taken)
        index = ref.start + sum(map(ord, ref.clip_id))
    if not free:
        return []
    # a different free seat from window to window, deterministically
    return [free[(index + k) % len(free)] for k in range(min(EMPTY_SEATS_PER_WINDOW, len(free)))]


def split_samples(dataset, split: str, *, extras: bool = False) -> list:
    """A split's samples; with ``extras`` also its labelled background people, for data sets
    that label them (SmartClass-Sim: ``VirtualDataset.extra_samples``)."""
    samples = list(dataset.samples(split))
    if extras:
        extra_samples = getattr(dataset, "extra_samples", None)
        if extra_samples is None:
            raise ValueError(
                f"{dataset.name}: this data set does not label its background people, so they cannot "
                "be training samples (label them as students instead)"
            )
        samples += extra_samples(split)
    return samples


def _window_metas(dataset, ref, samples) -> list[SampleMeta]:
    """The window's samples: its students (from ``samples``) and a few empty seats."""
    metas = [_meta(s) for s in samples if s.window == ref]
    metas += [
        SampleMeta(ref.clip_id, ref.start, f"empty-{seat}", seat, IGNORE_LABEL)
        for seat in _empty_seats(dataset, ref)
    ]
    return metas


def _window_conditions(dataset, ref) -> list[str]:
    """A window's condition tags without rendering or decoding it."""
    plan = getattr(dataset, "plan", None)
    if plan is not None:  # SmartClass-Sim: the plan knows
        return list(plan(ref.split, int(ref.clip_id.rsplit("-", 1)[1])).conditions.tags)
    return list(dataset.clip_info(ref.clip_id).conditions)


def _meta(s) -> SampleMeta:
    return SampleMeta(s.window.clip_id, s.window.start, s.student_id, s.seat_id, s.label_index)


class SceneWindowDataset:
    """One split of a format data set as training windows (models/data/windows.py WindowDataset)."""

    def __init__(
        self,
        spec: str,
        split: str,
        crop_size: int,
        *,
        cache_dir: str | Path | None = None,
        params_file: str | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = print,
        memory: bool | None = None,
        limit: int | None = None,
        extras: bool = False,
    ) -> None:
        self.spec = spec
        self.split = split
        self.crop_size = int(crop_size)
        self.params_file = params_file
        self.extras = bool(extras)
        dataset = open_scene_dataset(spec)
        self.source_name = dataset.name
        windows = list(dataset.windows(split))
        if limit is not None:
            windows = windows[:limit]
        self._windows = windows
        window_set = set(windows)
        samples = [s for s in split_samples(dataset, split, extras=extras) if s.window in window_set]
        if not samples:
            raise ValueError(f"{spec}: split {split!r} has no samples")
        by_window: dict = {}
        for sample in samples:
            by_window.setdefault(sample.window, []).append(sample)
        self._meta = [m for ref in windows for m in _window_metas(dataset, ref, by_window.get(ref, []))]
        self._conditions = {(r.clip_id, r.start): _window_conditions(dataset, r) for r in windows}
        self._window_index = {ref: k for k, ref in enumerate(dataset.windows(split))}
        self.window_frames = len(windows[0].frame_indices)
        digest = _params_digest(params_file)
        root = Path(cache_dir) if cache_dir is not None else default_crop_cache()
        self.cache_root = root / f"{dataset.name}-{split}-c{self.crop_size}-e{digest}-f{CACHE_FORMAT}"
        self.dataset_id = (
            f"{dataset.name}/{split}{'+extras' if extras else ''}/crop{self.crop_size}/enh{digest}"
        )
        self._log = log or (lambda _m: None)
        self.prepare(workers=workers)
        per_sample = self.window_frames * 9 * self.crop_size**2 * 4
        self._memory: dict[int, WindowSample] | None = (
            {} if (memory if memory is not None else per_sample * len(self) < _MEMORY_BUDGET_BYTES) else None
        )

    # --- preparation ------------------------------------------------------------------------

    def missing_windows(self) -> list[int]:
        """Indices (in the split's window list) of windows with a sample not yet cached."""
        index = {(r.clip_id, r.start): k for r, k in self._window_index.items()}
        missing = {
            index[(m.clip_id, m.start)] for m in self._meta if not _sample_file(self.cache_root, m).is_file()
        }
        return sorted(missing)

    def prepare(self, *, workers: int | None = None) -> None:
        todo = self.missing_windows()
        if not todo:
            return
        self.cache_root.mkdir(parents=True, exist_ok=True)
        (self.cache_root / "source.json").write_text(
            json.dumps({"spec": self.spec, "split": self.split, "crop_size": self.crop_size}) + "\n"
        )
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        self._log(
            f"preparing {len(todo)} {self.split} windows of {self.spec} (render/decode, section 3.2 "
            f"enhancement, crops {self.crop_size}px) with {workers} worker(s) into {self.cache_root}"
        )
        began = time.perf_counter()
        args = (self.crop_size, str(self.cache_root), self.params_file, self.extras)
        if workers == 1:
            for k, index in enumerate(todo, 1):
                prepare_window(self.spec, self.split, index, *args)
                self._progress(k, len(todo), began)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(prepare_window, self.spec, self.split, i, *args) for i in todo]
            for k, future in enumerate(as_completed(futures), 1):
                future.result()
                self._progress(k, len(todo), began)

    def _progress(self, done: int, total: int, began: float) -> None:
        if done == total or done % max(1, total // 10) == 0:
            elapsed = time.perf_counter() - began
            self._log(f"  {done}/{total} windows prepared ({elapsed:.0f} s)")

    # --- WindowDataset ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._meta)

    def meta(self, index: int) -> SampleMeta:
        return self._meta[index]

    def conditions(self, index: int) -> list[str]:
        """Condition tags of the sample's window (low_light, severe_occlusion, ...)."""
        m = self._meta[index]
        return self._conditions[(m.clip_id, m.start)]

    def labels(self) -> np.ndarray:
        return np.array([m.label for m in self._meta], np.int64)

    def __getitem__(self, index: int) -> WindowSample:
        if self._memory is not None and index in self._memory:
            return self._memory[index]
        meta = self._meta[index]
        path = _sample_file(self.cache_root, meta)
        try:
            with np.load(path) as data:
                sample = WindowSample(
                    crops=data["crops"].astype(np.float32),
                    keypoints=data["keypoints"],
                    label=int(data["label"]),
                    reference=data["reference"].astype(np.float32) if "reference" in data else None,
                    occupied=data["occupied"],
                    occluded=data.get("occluded"),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(
                f"{path}: cached sample unreadable ({exc}); delete it to prepare it again"
            ) from exc
        if sample.label != meta.label or sample.keypoints.shape != (self.window_frames, NUM_KEYPOINTS, 3):
            raise ValueError(
                f"{path}: cached sample does not match the data set; delete it to prepare it again"
            )
        if self._memory is not None:
            self._memory[index] = sample
        return sample
