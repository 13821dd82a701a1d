"""Training and evaluation windows built through the served input path, cached in chunks.

``ServedWindows(spec, split, crop_size)`` turns every window of a data set (SmartClass-Sim
``sim:<preset>``, or a folder of recordings in the format) into what the model server would
see: each frame set goes through ``models.data.inputs.served_inputs`` (the capture agent's
encoding, section 3.2 as the enhancement service computes it, the model server's decoding and
crops), so a network trained here is trained on its served inputs, JPEG artefacts included.

Every labelled student of a window is a sample (for ``sim:crowd`` that is everyone in the
room). A window is prepared once and cached as one chunk, a folder of ``.npy`` files:

- ``crops.npy``      float16 [N, T, 6, S, S]  the N students' crops (``models/data/crops.py``)
- ``keypoints.npy``  float32 [N, T, 17, 3]    ground truth in crop px + the format's visibility
                                              (0 not annotated, 1 in the image but hidden, 2 seen)
- ``meta.json``      student and seat ids, labels, the window's conditions

Samples are read from the chunks one at a time (``ChunkArray``, positioned reads), so a process
holds what its batch needs, whatever the data set's size; preparation runs in worker processes
with a progress bar, and a chunk is written to a temporary folder and renamed, so an
interrupted preparation resumes where it stopped and never leaves half a chunk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from models.data.inputs import served_inputs
from models.data.windows import WindowSample
from services.common.vocabulary import NUM_BEHAVIOURS, NUM_KEYPOINTS
from services.dataset.api import open_dataset as open_scene_dataset
from services.dataset.format import DatasetError
from services.dataset.types import Dataset, Window, WindowRef
from services.enhancement.params import EnhancementParams
from services.enhancement.pipeline import Enhancer

CACHE_ENV = "CLASSROOM_SERVED_CACHE"
CHUNK_FORMAT = 1  # bump when what a chunk holds changes


def default_served_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path("var") / "cache" / "served")


def load_params(params_file: str | os.PathLike | None) -> EnhancementParams:
    return EnhancementParams() if params_file is None else EnhancementParams.from_json(str(params_file))


@dataclass(frozen=True)
class ChunkMeta:
    """What a window's chunk says about its samples."""

    clip_id: str
    start: int
    student_ids: tuple[str, ...]
    seat_ids: tuple[str, ...]
    labels: tuple[int, ...]
    conditions: tuple[str, ...]


def _window_of(dataset: Dataset, ref: WindowRef) -> Window:
    raw = getattr(dataset, "raw_window", None)  # SmartClass-Sim: straight from the renderer
    return raw(ref) if raw is not None else dataset.load_window(ref, references=False)


def prepare_chunk(
    spec: str, split: str, window_index: int, crop_size: int, root: str, params_file: str | None
) -> int:
    """Prepare one window's chunk (runs in a worker process); returns how many samples it holds."""
    dataset = open_scene_dataset(spec, cache=False)
    ref = dataset.windows(split)[window_index]
    target = Path(root) / _chunk_name(ref)
    if (target / "meta.json").is_file():
        return len(json.loads((target / "meta.json").read_text())["labels"])
    samples = [s for s in dataset.samples(split) if s.window == ref]
    window = _window_of(dataset, ref)
    seat_order: list[str | None] = [seat.id for seat in window.camera.seats]
    for s in samples:
        if s.seat_id not in seat_order:
            raise DatasetError(
                f"{ref.clip_id}: student {s.student_id} sits in seat {s.seat_id!r}, not in the seat map"
            )
        if not 0 <= s.label_index < NUM_BEHAVIOURS:
            raise DatasetError(f"{ref.clip_id}: student {s.student_id} has no known behaviour ({s.label!r})")
    rows = [seat_order.index(s.seat_id) for s in samples]
    enhancer = Enhancer(load_params(params_file))
    frames = len(window.frames)
    crops = np.empty((len(samples), frames, 6, crop_size, crop_size), np.float16)
    keypoints = np.zeros((len(samples), frames, NUM_KEYPOINTS, 3), np.float32)
    for t, captured in enumerate(window.frames):
        student_crops, _ = served_inputs(captured, window.camera, enhancer, crop_size)
        crops[:, t] = student_crops.tensor.numpy()[rows]
        truth = {st["student_id"]: st for st in (captured.annotations or {}).get("students", [])}
        for j, s in enumerate(samples):
            st = truth.get(s.student_id)
            if st is None or st.get("keypoints") is None:
                continue  # not annotated in this frame: visibility 0, no keypoint target
            kp_px = np.asarray(st["keypoints"], np.float64)[None]
            row = rows[j]
            geometry = type(student_crops.geometry)(
                origin=student_crops.geometry.origin[row : row + 1],
                scale=student_crops.geometry.scale[row : row + 1],
                crop_size=crop_size,
            )
            keypoints[j, t, :, :2] = geometry.image_to_crop(kp_px)[0, :, :2]
            keypoints[j, t, :, 2] = kp_px[0, :, 2]
    meta = ChunkMeta(
        clip_id=ref.clip_id,
        start=ref.start,
        student_ids=tuple(s.student_id for s in samples),
        seat_ids=tuple(str(s.seat_id) for s in samples),
        labels=tuple(int(s.label_index) for s in samples),
        conditions=tuple(window.conditions),
    )
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "crops.npy", crops)
    np.save(partial / "keypoints.npy", keypoints)
    (partial / "meta.json").write_text(json.dumps(asdict(meta)) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return len(samples)


class ChunkArray:
    """One ``.npy`` array of a chunk, read a sample (or one frame of it) at a time with ``pread``:
    memory holds what a batch asks for, never the chunk (the operating system may cache the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as f:
                major, _ = np.lib.format.read_magic(f)
                header = (
                    np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                )
                self.shape, fortran, self.dtype = header(f)
                self.offset = f.tell()
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"{path}: cached chunk unreadable ({exc}); delete its folder to prepare it again"
            ) from exc
        if fortran:
            raise DatasetError(
                f"{path}: unexpected Fortran-ordered array; delete its folder to prepare it again"
            )

    def read(self, sample: int, frame: int | None = None) -> np.ndarray:
        """``array[sample]`` or ``array[sample, frame]``."""
        inner = self.shape[2:] if frame is not None else self.shape[1:]
        count = int(np.prod(inner))
        first = sample * int(np.prod(self.shape[1:])) + (frame or 0) * int(np.prod(self.shape[2:]))
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, count * self.dtype.itemsize, self.offset + first * self.dtype.itemsize)
        finally:
            os.close(fd)
        if len(data) != count * self.dtype.itemsize:
            raise DatasetError(
                f"{self.path}: cached chunk is cut short; delete its folder to prepare it again"
            )
        return np.frombuffer(data, self.dtype).reshape(inner)


def _chunk_name(ref: WindowRef) -> str:
    return f"{ref.clip_id}-{ref.start:04d}"


class ServedWindows:
    """One split of a data set as served-path windows (the ``WindowDataset`` protocol of
    ``models/data/windows.py``), prepared on first use and read from its chunks sample by sample."""

    def __init__(
        self,
        spec: str,
        split: str,
        crop_size: int,
        *,
        cache_dir: str | os.PathLike | None = None,
        params_file: str | os.PathLike | None = None,
        workers: int | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = print,
        limit: int | None = None,
    ) -> None:
        self.spec = spec
        self.split = split
        self.crop_size = int(crop_size)
        self.params_file = None if params_file is None else str(params_file)
        dataset = open_scene_dataset(spec, cache=False)
        self.source_name = dataset.name
        windows = list(dataset.windows(split))
        if not windows:
            raise DatasetError(f"{spec}: split {split!r} has no windows")
        self._all_windows = windows
        self._windows = windows[:limit] if limit is not None else windows
        self.window_frames = len(self._windows[0].frame_indices)
        digest = load_params(self.params_file).digest()
        root = Path(cache_dir) if cache_dir is not None else default_served_cache()
        self.cache_root = root / f"{dataset.name}-{split}-c{self.crop_size}-e{digest}-f{CHUNK_FORMAT}"
        self.dataset_id = f"{dataset.name}/{split}/served/crop{self.crop_size}/enh{digest}"
        self._log = log or (lambda _m: None)
        self.prepare(workers=workers, progress=progress)
        self._metas = [self._read_meta(ref) for ref in self._windows]
        self._index = [(w, j) for w, m in enumerate(self._metas) for j in range(len(m.labels))]
        if not self._index:
            raise DatasetError(f"{spec}: split {split!r} has no labelled students")

    # --- preparation ------------------------------------------------------------------------------

    def missing(self) -> list[int]:
        """Indices (in the split's window list) of windows whose chunk is not cached yet."""
        position = {ref: k for k, ref in enumerate(self._all_windows)}
        return [
            position[ref]
            for ref in self._windows
            if not (self.cache_root / _chunk_name(ref) / "meta.json").is_file()
        ]

    def prepare(self, *, workers: int | None = None, progress: bool = True) -> None:
        from services.common.progress import progress_bar

        todo = self.missing()
        if not todo:
            return
        self.cache_root.mkdir(parents=True, exist_ok=True)
        (self.cache_root / "source.json").write_text(
            json.dumps({"spec": self.spec, "split": self.split, "crop_size": self.crop_size}) + "\n"
        )
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        self._log(
            f"preparing {len(todo)} {self.split} windows of {self.spec} through the served path "
            f"(render/decode, capture encoding, section 3.2, crops {self.crop_size} px) with "
            f"{workers} worker(s) into {self.cache_root}"
        )
        args = (self.crop_size, str(self.cache_root), self.params_file)
        bar = progress_bar(total=len(todo), desc=f"{self.split} windows", unit="window", disable=not progress)
        try:
            if workers == 1:
                for index in todo:
                    prepare_chunk(self.spec, self.split, index, *args)
                    bar.update()
                return
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(prepare_chunk, self.spec, self.split, i, *args) for i in todo]
                for future in as_completed(futures):
                    future.result()
                    bar.update()
        finally:
            bar.close()

    def _read_meta(self, ref: WindowRef) -> ChunkMeta:
        path = self.cache_root / _chunk_name(ref) / "meta.json"
        try:
            data = json.loads(path.read_text())
            return ChunkMeta(
                clip_id=str(data["clip_id"]),
                start=int(data["start"]),
                student_ids=tuple(data["student_ids"]),
                seat_ids=tuple(data["seat_ids"]),
                labels=tuple(int(y) for y in data["labels"]),
                conditions=tuple(data["conditions"]),
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DatasetError(
                f"{path}: cached chunk unreadable ({exc}); delete its folder to prepare it again"
            ) from exc

    # --- arrays ---------------------------------------------------------------------------------------

    @cached_property
    def _arrays(self) -> list[tuple[ChunkArray, ChunkArray]]:
        out = []
        for ref, meta in zip(self._windows, self._metas, strict=True):
            folder = self.cache_root / _chunk_name(ref)
            crops, keypoints = ChunkArray(folder / "crops.npy"), ChunkArray(folder / "keypoints.npy")
            n, t, s = len(meta.labels), self.window_frames, self.crop_size
            if crops.shape != (n, t, 6, s, s) or keypoints.shape != (n, t, NUM_KEYPOINTS, 3):
                raise DatasetError(
                    f"{folder}: cached chunk does not match the data set; delete it to prepare it again"
                )
            out.append((crops, keypoints))
        return out

    # --- WindowDataset ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    def labels(self) -> np.ndarray:
        return np.array([self._metas[w].labels[j] for w, j in self._index], np.int64)

    def sample_ids(self) -> list[str]:
        return [self._metas[w].student_ids[j] for w, j in self._index]

    def conditions(self, index: int) -> list[str]:
        """Condition tags of the sample's window (low_light, severe_occlusion, ...)."""
        return list(self._metas[self._index[index][0]].conditions)

    def frame(self, index: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """One frame of one sample: crop float32 [6, S, S] and keypoints [17, 3] (format visibility)."""
        w, j = self._index[index]
        crops, keypoints = self._arrays[w]
        return crops.read(j, t).astype(np.float32), keypoints.read(j, t)

    def raw_keypoints(self, index: int) -> np.ndarray:
        """[T, 17, 3] ground truth in crop px with the format's visibility (0, 1 hidden, 2 seen)."""
        w, j = self._index[index]
        return self._arrays[w][1].read(j)

    def __getitem__(self, index: int) -> WindowSample:
        w, j = self._index[index]
        crops, keypoints = self._arrays[w]
        kp = keypoints.read(j).astype(np.float32)
        occluded = kp[..., 2] == 1
        kp[..., 2] = kp[..., 2] > 0
        return WindowSample(
            crops=crops.read(j).astype(np.float32),
            keypoints=kp,
            label=int(self._metas[w].labels[j]),
            occluded=occluded,
        )


class JoinedWindows:
    """The windows of several served data sets as one training set (``classroom train
    --extra-train``): more people for the same validation split. Every part has the same crop
    size, window length and section 3.2 parameters; samples keep their parts' order."""

    def __init__(self, parts: list[ServedWindows]) -> None:
        if not parts:
            raise ValueError("JoinedWindows needs at least one data set")
        first = parts[0]
        for part in parts[1:]:
            if (part.crop_size, part.window_frames, part.params_file) != (
                first.crop_size,
                first.window_frames,
                first.params_file,
            ):
                raise DatasetError(
                    f"{part.spec} differs from {first.spec} in crop size, window length or section 3.2 "
                    "parameters: training data sets must agree"
                )
        self.parts = parts
        self.crop_size = first.crop_size
        self.window_frames = first.window_frames
        self.params_file = first.params_file
        self.dataset_id = "+".join(p.dataset_id for p in parts)
        self._starts = np.cumsum([0] + [len(p) for p in parts])

    def _locate(self, index: int) -> tuple[ServedWindows, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.parts[k], index - int(self._starts[k])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def labels(self) -> np.ndarray:
        return np.concatenate([p.labels() for p in self.parts])

    def frame(self, index: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        part, i = self._locate(index)
        return part.frame(i, t)

    def __getitem__(self, index: int) -> WindowSample:
        part, i = self._locate(index)
        return part[i]
