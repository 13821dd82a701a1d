"""Virtual SmartClass-Sim data sets: a deterministic function of (preset, seed, window index).

The ``paper`` preset matches Table 2 (20 students, 10 classes x 1,500 samples, 80/10/10
by student) without 100 GB of files: a window is only rendered when it is loaded, and
kept in a disk cache in the ordinary folder format (where it pays: reading a cached
window is several times faster than rendering it). ``export`` writes a whole preset (or
the first windows of each split) as a normal data-set folder.

Two kinds of preset:
- ``subjects`` (``paper``, ``small``, ``tiny``): a fixed set of subjects, split by student, in
  every window of their split (below);
- ``fresh`` (``crowd``, ``crowd_tiny``): every window draws new people (body, clothing, size,
  seat), a new room and camera mounting, new conditions; every occupant is a labelled sample,
  so one training run sees thousands of different people. People never repeat, so validation
  and test people are disjoint from training and from each other by construction (ids name
  the split and window: ``train00012-07``). Labels are balanced within each window (every
  behaviour once per ten people, in a random order).

Design of a ``subjects`` preset:
- subjects are split by student (cross-subject, like NTU X-Sub): test students never
  appear in train windows; everyone else in a window is a background extra (a random
  person, marked ``extra``), never a sample;
- every window of a split holds all of that split's subjects, each with one label; over
  each block of 10 windows every subject performs every behaviour once (a random order
  per block), so labels are exactly balanced per split and per student;
- seats, room, conditions, timing and extras are drawn per window from the seed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from services.common.frames import CapturedFrameSet
from services.common.vocabulary import BEHAVIOURS, NUM_BEHAVIOURS
from services.dataset.format import (
    ANNOTATIONS_FILE,
    SPLITS,
    ClipEntry,
    ClipInfo,
    ClipStudent,
    FrameAnnotation,
    SeatBox,
    SensorFiles,
    clip_dir,
)
from services.dataset.reader import (
    clip_camera,
    folder_source,
    load_clip_info,
    memory_source,
    parse_annotations,
    read_window,
)
from services.dataset.types import SampleRef, Window, WindowRef
from services.dataset.writer import (
    EncodedFrame,
    FrameData,
    encode_frame,
    label_segments,
    write_clip,
    write_manifest,
)
from services.simulator.body import random_profile
from services.simulator.classroom import ROOMS, RoomLayout, Seat, room_seats
from services.simulator.config import NAMED_CONDITIONS, Conditions, SimConfig
from services.simulator.recording import frame_data
from services.simulator.scene import ClassroomScene
from services.simulator.session import Occupant, build_window_scene, subject_profile

# Bump when rendering changes, so caches of older renders are not mixed in.
RENDER_VERSION = 1
_BASE_TS_US = 1_772_438_400_000_000  # 2026-03-02 08:00 UTC: the simulated semester starts
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class DatasetPreset:
    name: str
    subjects: int
    split_subjects: tuple[int, int, int]  # train, val, test
    split_windows: tuple[int, int, int]  # multiples of 10 (one block = every class once per subject)
    rooms: tuple[str, ...]  # classrooms of ROOMS the windows are spread over
    extra_occupancy: tuple[float, float] = (0.5, 1.0)  # share of the free seats taken by extras
    sim: SimConfig = field(default_factory=SimConfig)
    window_frames: int = 16
    window_fps: float = 8.0
    description: str = ""
    people: str = "subjects"  # "subjects": fixed subjects split by student; "fresh": new people per window
    occupancy: tuple[float, float] = (0.6, 1.0)  # fresh: share of the room's seats taken, drawn per window
    room_weights: tuple[float, ...] | None = None  # fresh: how often each of ``rooms`` is drawn (None: equal)

    @property
    def fresh(self) -> bool:
        return self.people == "fresh"

    def __post_init__(self) -> None:
        if self.people not in ("subjects", "fresh"):
            raise ValueError(f"preset {self.name}: people must be 'subjects' or 'fresh', not {self.people!r}")
        if self.fresh:
            if self.subjects or any(self.split_subjects):
                raise ValueError(f"preset {self.name}: a fresh-people preset has no fixed subjects")
            if self.room_weights is not None and len(self.room_weights) != len(self.rooms):
                raise ValueError(f"preset {self.name}: one room weight per room")
            if not 0.0 < self.occupancy[0] <= self.occupancy[1] <= 1.0:
                raise ValueError(f"preset {self.name}: occupancy must be 0 < low <= high <= 1")
            return
        if sum(self.split_subjects) != self.subjects:
            raise ValueError(
                f"preset {self.name}: split subjects {self.split_subjects} do not add up to {self.subjects}"
            )
        if any(w % NUM_BEHAVIOURS for w in self.split_windows):
            raise ValueError(f"preset {self.name}: windows per split must be multiples of {NUM_BEHAVIOURS}")
        for split, n in zip(SPLITS, self.split_subjects, strict=True):
            if n and not any(ROOMS[r].seats >= n for r in self.rooms):
                raise ValueError(f"preset {self.name}: no room holds the {n} {split} subjects")

    def samples_per_class(self, split: str) -> int:
        """Exact for ``subjects`` presets; for ``fresh`` ones the expected number (people vary per window)."""
        k = SPLITS.index(split)
        if self.fresh:
            weights = np.asarray(self.room_weights or [1.0] * len(self.rooms), float)
            seats = np.array([ROOMS[r].seats for r in self.rooms], float)
            mean_people = float((weights / weights.sum() * seats).sum() * np.mean(self.occupancy))
            return round(self.split_windows[k] * mean_people / NUM_BEHAVIOURS)
        return self.split_windows[k] // NUM_BEHAVIOURS * self.split_subjects[k]


PRESETS: dict[str, DatasetPreset] = {
    "paper": DatasetPreset(
        "paper",
        subjects=20,
        split_subjects=(16, 2, 2),
        split_windows=(750, 750, 750),
        rooms=("medium", "large", "hall"),
        description="Table 2: 20 students, 10 classes x 1,500 samples, 80/10/10 by student, three classrooms",
    ),
    "small": DatasetPreset(
        "small",
        subjects=12,
        split_subjects=(8, 2, 2),
        split_windows=(120, 60, 60),
        rooms=("small", "medium"),
        description="CI and training on a laptop: 120 samples per class (96/12/12), 240 windows",
    ),
    "tiny": DatasetPreset(
        "tiny",
        subjects=6,
        split_subjects=(4, 1, 1),
        split_windows=(10, 10, 10),
        rooms=("small",),
        description="smoke tests: 6 samples per class, 30 windows",
    ),
    "crowd": DatasetPreset(
        "crowd",
        subjects=0,
        split_subjects=(0, 0, 0),
        split_windows=(720, 30, 60),
        rooms=("small", "medium", "large", "hall"),
        room_weights=(0.15, 0.35, 0.3, 0.2),
        people="fresh",
        description=(
            "people at scale: every window new people, room, camera and conditions, everyone "
            "labelled; about 15,000 train / 620 validation / 1,190 test people"
        ),
    ),
    "crowd_tiny": DatasetPreset(
        "crowd_tiny",
        subjects=0,
        split_subjects=(0, 0, 0),
        split_windows=(3, 1, 1),
        rooms=("small",),
        occupancy=(0.5, 0.8),
        people="fresh",
        description="smoke tests of the fresh-people path: 5 windows of a small room",
    ),
}


def parse_sim_options(spec: str) -> tuple[DatasetPreset, int, str | None]:
    """``sim:<preset>[?seed=N][&conditions=NAME]`` -> (preset, seed, conditions or None).

    ``conditions`` (a name of ``NAMED_CONDITIONS``: normal, low_light, occlusion, movement, ...)
    renders every window under that one condition instead of the preset's random mix; the
    rest of each window (students, behaviours, seats, timing) stays the same, so the sets are
    paired scenario by scenario (the robustness study of section 4.2.3).
    """
    m = re.fullmatch(r"sim:([a-z0-9_]+)(?:\?(.*))?", spec.strip())
    if not m:
        raise ValueError(
            f"{spec!r}: expected sim:<preset>[?seed=N][&conditions=NAME], presets: {', '.join(PRESETS)}"
        )
    name = m.group(1)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    seed, conditions = 0, None
    for part in (m.group(2) or "").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if key == "seed" and value.isdigit():
            seed = int(value)
        elif key == "conditions" and value in NAMED_CONDITIONS:
            conditions = value
        else:
            raise ValueError(
                f"{spec!r}: bad option {part!r}; options: seed=N, conditions={'|'.join(NAMED_CONDITIONS)}"
            )
    return PRESETS[name], seed, conditions


def parse_sim_spec(spec: str) -> tuple[DatasetPreset, int]:
    """``sim:<preset>`` or ``sim:<preset>?seed=N``."""
    preset, seed, conditions = parse_sim_options(spec)
    if conditions is not None:
        raise ValueError(f"{spec!r}: conditions= is not accepted here")
    return preset, seed


@dataclass(frozen=True)
class PlannedPerson:
    student_id: str
    seat_id: str
    label: int
    subject: int  # subject index, or -1 for an extra
    extra_key: int = 0


@dataclass(frozen=True)
class WindowPlan:
    split: str
    index: int
    room: str
    room_seed: int
    people: tuple[PlannedPerson, ...]
    conditions: Conditions
    t0: float
    start_ts_us: int

    @property
    def clip_id(self) -> str:
        return f"{self.split}-{self.index:05d}"


class VirtualDataset:
    """A preset rendered on demand (same API as FolderDataset)."""

    def __init__(
        self,
        preset: DatasetPreset,
        *,
        seed: int = 0,
        cache_dir: Path | None = None,
        conditions: str | None = None,
    ) -> None:
        if conditions is not None and conditions not in NAMED_CONDITIONS:
            raise ValueError(f"unknown conditions {conditions!r}; known: {', '.join(NAMED_CONDITIONS)}")
        self.preset = preset
        self.seed = seed
        self.fixed_conditions = conditions
        self.name = f"sim-{preset.name}-seed{seed}" + (f"-{conditions}" if conditions else "")
        self.cache_root = None if cache_dir is None else Path(cache_dir) / f"{self.name}-r{RENDER_VERSION}"
        perm = np.random.default_rng([seed, 31]).permutation(preset.subjects)
        a, b, _ = preset.split_subjects
        self._split_subjects = {
            "train": sorted(perm[:a].tolist()),
            "val": sorted(perm[a : a + b].tolist()),
            "test": sorted(perm[a + b :].tolist()),
        }

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        """Student ids per split; for a fresh-people preset every person of every window (planned)."""
        if self.preset.fresh:
            return {
                split: [p.student_id for ref in self.windows(split) for p in self._plan_of(ref).people]
                for split in SPLITS
            }
        return {s: [f"S{i + 1:02d}" for i in idx] for s, idx in self._split_subjects.items()}

    # --- planning (cheap, no rendering) ---------------------------------------------------------

    @cached_property
    def _room_seeds(self) -> dict[str, int]:
        return {
            r: int(np.random.default_rng([self.seed, 71, k]).integers(2**31))
            for k, r in enumerate(self.preset.rooms)
        }

    def plan(self, split: str, index: int) -> WindowPlan:
        p = self.preset
        code = _SPLIT_CODE[split]
        if not 0 <= index < p.split_windows[code]:
            raise IndexError(f"{split} has {p.split_windows[code]} windows, not {index + 1}")
        if p.fresh:
            return self._plan_fresh(split, index)
        subjects = self._split_subjects[split]
        block, slot = divmod(index, NUM_BEHAVIOURS)
        rng = np.random.default_rng([self.seed, 51, code, index])
        rooms = [r for r in p.rooms if ROOMS[r].seats >= len(subjects)]
        room = rooms[int(rng.integers(len(rooms)))]
        seats = room_seats(ROOMS[room])
        order = rng.permutation(len(seats))
        people = []
        for j, subject in enumerate(subjects):
            label = int(
                np.random.default_rng([self.seed, 41, code, block, j]).permutation(NUM_BEHAVIOURS)[slot]
            )
            people.append(PlannedPerson(f"S{subject + 1:02d}", seats[order[j]].seat_id, label, subject))
        free = order[len(subjects) :]
        n_extra = round(rng.uniform(*p.extra_occupancy) * len(free))
        for k in range(n_extra):
            people.append(
                PlannedPerson(
                    f"extra-{k + 1:02d}", seats[free[k]].seat_id, int(rng.integers(NUM_BEHAVIOURS)), -1, k
                )
            )
        conditions = p.sim.condition_mix.sample(rng)  # drawn always, so the rest of the plan is the same
        if self.fixed_conditions is not None:
            conditions = Conditions.from_tags(NAMED_CONDITIONS[self.fixed_conditions])
        t0 = float(rng.uniform(60.0, 3600.0))
        start_ts = _BASE_TS_US + (code * 100_000 + index) * 4_000_000_000 + round(t0 * 1e6)
        return WindowPlan(split, index, room, self._room_seeds[room], tuple(people), conditions, t0, start_ts)

    def _plan_fresh(self, split: str, index: int) -> WindowPlan:
        """A window of a fresh-people preset: its own room, camera, conditions and people."""
        p = self.preset
        code = _SPLIT_CODE[split]
        rng = np.random.default_rng([self.seed, 52, code, index])
        weights = np.asarray(p.room_weights or [1.0] * len(p.rooms), float)
        room = p.rooms[int(rng.choice(len(p.rooms), p=weights / weights.sum()))]
        room_seed = int(rng.integers(2**31))
        seats = room_seats(ROOMS[room])
        n = max(1, round(rng.uniform(*p.occupancy) * len(seats)))
        chosen = sorted(rng.choice(len(seats), size=n, replace=False).tolist())
        # every behaviour once per ten people, in a random order, on randomly chosen seats
        labels = np.resize(rng.permutation(NUM_BEHAVIOURS), n)[rng.permutation(n)]
        people = tuple(
            PlannedPerson(f"{split}{index:05d}-{j:02d}", seats[s].seat_id, int(labels[j]), -1, j)
            for j, s in enumerate(chosen)
        )
        conditions = p.sim.condition_mix.sample(rng)
        if self.fixed_conditions is not None:
            conditions = Conditions.from_tags(NAMED_CONDITIONS[self.fixed_conditions])
        t0 = float(rng.uniform(60.0, 3600.0))
        start_ts = _BASE_TS_US + (code * 100_000 + index) * 4_000_000_000 + round(t0 * 1e6)
        return WindowPlan(split, index, room, room_seed, people, conditions, t0, start_ts)

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")

    def windows(self, split: str) -> list[WindowRef]:
        self._check_split(split)
        n = self.preset.split_windows[_SPLIT_CODE[split]]
        frames = tuple(range(self.preset.window_frames))
        return [WindowRef(split, f"{split}-{i:05d}", 0, frames) for i in range(n)]

    def samples(self, split: str) -> list[SampleRef]:
        return self._people(split, extras=False)

    def extra_samples(self, split: str) -> list[SampleRef]:
        """The split's background extras as samples: every extra is a random person drawn for
        one window only (never a subject of any split), rendered performing one behaviour
        for the whole window, so its label and keypoints are as exact as a subject's.

        Not part of ``samples`` (no figure counts them); training may add them
        (``classroom train --train-extras``) to see many more bodies than the split's few
        subjects. Their labels are uniform at random, not balanced per block.
        """
        return self._people(split, extras=True)

    def _people(self, split: str, *, extras: bool) -> list[SampleRef]:
        out = []
        for ref in self.windows(split):
            plan = self.plan(split, int(ref.clip_id.rsplit("-", 1)[1]))
            for person in plan.people:
                # everyone in a fresh-people window is a sample; nobody is an extra
                extra = person.subject < 0 and not self.preset.fresh
                if extra == extras:
                    out.append(
                        SampleRef(
                            ref, person.student_id, person.seat_id, BEHAVIOURS[person.label], person.label
                        )
                    )
        return out

    # --- rendering ----------------------------------------------------------------------------

    def render(self, plan: WindowPlan, *, references: bool = True) -> tuple[ClipInfo, list[FrameData]]:
        """Render a planned window: its clip.json and frames (images + annotations)."""
        room = ROOMS[plan.room]
        seats = {s.seat_id: s for s in room_seats(room)}
        scene = self._window_scene(plan, room, self._occupants(plan, seats))
        frames = [self._render_frame(scene, plan, k, references) for k in range(self.preset.window_frames)]
        info = self._clip_info(plan, scene, list(seats.values()), frames, references=references)
        return info, frames

    def _occupants(self, plan: WindowPlan, seats: dict[str, Seat]) -> list[Occupant]:
        """The window's people on their seats: subjects with their fixed bodies, extras drawn anew."""
        p = self.preset
        occupants = []
        for person in plan.people:
            if person.subject >= 0:
                profile = subject_profile(self.seed, person.subject, p.sim.difficulty)
            else:
                rng = np.random.default_rng(
                    [self.seed, 61, _SPLIT_CODE[plan.split], plan.index, person.extra_key]
                )
                profile = random_profile(rng, person.student_id, p.sim.difficulty.body_size_spread)
            extra = person.subject < 0 and not p.fresh
            occupants.append(Occupant(profile, seats[person.seat_id], person.label, extra=extra))
        return occupants

    def _window_scene(self, plan: WindowPlan, room: RoomLayout, occupants: list[Occupant]) -> ClassroomScene:
        """The scene of the window's span, everyone held to their planned behaviour."""
        p = self.preset
        duration = p.window_frames / p.window_fps
        scene = build_window_scene(
            config=p.sim,
            room=room,
            room_seed=plan.room_seed,
            occupants=occupants,
            conditions=plan.conditions,
            window=(plan.t0, plan.t0 + duration),
            seed=(self.seed, 91, _SPLIT_CODE[plan.split], plan.index),
        )
        for st, person in zip(scene.students, plan.people, strict=True):
            st.fixed_label = person.label
        return scene

    def _render_frame(self, scene: ClassroomScene, plan: WindowPlan, k: int, references: bool) -> FrameData:
        """Frame set ``k`` of the window, its noise drawn from its own seed, with its annotation."""
        p = self.preset
        t = plan.t0 + k / p.window_fps
        rng = np.random.default_rng([self.seed, 81, _SPLIT_CODE[plan.split], plan.index, k])
        rgb_ts = plan.start_ts_us + round(k / p.window_fps * 1e6)
        return frame_data(scene.render(t, rng, sequence=k, rgb_ts_us=rgb_ts, references=references), k)

    def _clip_info(
        self,
        plan: WindowPlan,
        scene: ClassroomScene,
        seats: list[Seat],
        frames: list[FrameData],
        *,
        references: bool,
    ) -> ClipInfo:
        """The window's clip.json: timing, calibration, seat map, sensors, people and behaviour segments."""
        p = self.preset
        cfg = p.sim
        return ClipInfo(
            id=plan.clip_id,
            split=plan.split,
            frames=p.window_frames,
            fps=p.window_fps,
            start_ts_us=plan.start_ts_us,
            classroom_id=f"sim-{plan.room}-{plan.room_seed}",
            camera_id="front",
            analysis_size=cfg.analysis_size,
            calibration=scene.rig.calibration,
            seats=[SeatBox(id=k, box=v) for k, v in scene.seat_boxes(seats).items()],
            sensors={
                "rgb": SensorFiles(extension="jpg", width=cfg.rgb_size[0], height=cfg.rgb_size[1]),
                "depth": SensorFiles(extension="png", width=cfg.depth_size[0], height=cfg.depth_size[1]),
                "thermal": SensorFiles(
                    extension="png", width=cfg.thermal_size[0], height=cfg.thermal_size[1]
                ),
            },
            references=references,
            conditions=plan.conditions.tags,
            students=[
                ClipStudent(id=x.student_id, seat=x.seat_id, extra=x.subject < 0 and not p.fresh)
                for x in plan.people
            ],
            labels=label_segments([f.annotation for f in frames]),
            source={
                "simulator": "SmartClass-Sim",
                "render_version": RENDER_VERSION,
                "preset": p.name,
                "seed": self.seed,
                "window": plan.index,
                "room": plan.room,
                "t0_s": plan.t0,
            },
        )

    def _plan_of(self, ref: WindowRef) -> WindowPlan:
        return self.plan(ref.split, int(ref.clip_id.rsplit("-", 1)[1]))

    def _cached(self, clip_id: str) -> bool:
        return (
            self.cache_root is not None and (clip_dir(self.cache_root, clip_id) / ANNOTATIONS_FILE).is_file()
        )

    def encoded(self, ref: WindowRef, *, references: bool = True) -> tuple[ClipInfo, list[EncodedFrame]]:
        info, frames = self.render(self._plan_of(ref), references=references)
        return info, [encode_frame(f, info) for f in frames]

    def raw_window(self, ref: WindowRef) -> Window:
        """A window straight from the renderer: sensor-native frames as a camera delivers them,
        never encoded as data-set files (so a served-path encoding is the only one they see)."""
        info, frames = self.render(self._plan_of(ref), references=False)
        captured = [
            CapturedFrameSet(
                f.rgb,
                f.depth_mm,
                f.thermal_c,
                f.rgb_ts_us,
                f.depth_ts_us,
                f.thermal_ts_us,
                sequence=f.annotation.sequence,
                annotations=f.annotation.model_dump(mode="json"),
            )
            for f in frames
        ]
        return Window(
            ref=ref,
            frames=[captured[i] for i in ref.frame_indices],
            references=None,
            calibration=info.calibration,
            camera=clip_camera(info),
            classroom_id=info.classroom_id,
            conditions=list(info.conditions),
            fps=info.fps,
        )

    def load_window(self, ref: WindowRef, *, references: bool = True) -> Window:
        if self.cache_root is not None:
            if not self._cached(ref.clip_id):
                info, encoded = self.encoded(ref, references=True)
                write_clip(self.cache_root, info, encoded)
            info = load_clip_info(self.cache_root, ref.clip_id)
            annotations = parse_annotations(clip_dir(self.cache_root, ref.clip_id) / ANNOTATIONS_FILE, info)
            return read_window(
                folder_source(self.cache_root, ref.clip_id),
                info,
                annotations,
                ref,
                references=references,
                fps=info.fps,
            )
        info, encoded = self.encoded(ref, references=references)
        files = {rel: data for enc in encoded for rel, data in enc.files.items()}
        annotations = [enc.annotation for enc in encoded]
        return read_window(
            memory_source(info.id, files), info, annotations, ref, references=references, fps=info.fps
        )

    def load_annotations(self, ref: WindowRef) -> list[FrameAnnotation]:
        if self.cache_root is not None and self._cached(ref.clip_id):
            info = load_clip_info(self.cache_root, ref.clip_id)
            return parse_annotations(clip_dir(self.cache_root, ref.clip_id) / ANNOTATIONS_FILE, info)
        return [
            FrameAnnotation.model_validate(f.annotations)
            for f in self.load_window(ref, references=False).frames
        ]

    # --- export -------------------------------------------------------------------------------

    def export(
        self,
        out: Path,
        *,
        splits: Sequence[str] = SPLITS,
        limit: int | None = None,
        workers: int = 1,
        references: bool = True,
        progress=None,
    ) -> list[ClipEntry]:
        """Write windows as a folder data set (all, or the first ``limit`` of each split)."""
        out = Path(out)
        jobs = []
        for split in splits:
            refs = self.windows(split)
            jobs.extend(refs[:limit] if limit is not None else refs)
        entries = []
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(
                        _export_one,
                        self.preset.name,
                        self.seed,
                        out,
                        ref,
                        references,
                        None,
                        self.fixed_conditions,
                    )
                    for ref in jobs
                ]
                for fut in futures:
                    entries.append(fut.result())
                    if progress:
                        progress(entries[-1])
        else:
            for ref in jobs:
                entries.append(_export_one(self.preset.name, self.seed, out, ref, references, dataset=self))
                if progress:
                    progress(entries[-1])
        write_manifest(
            out,
            name=self.name,
            source={
                "simulator": "SmartClass-Sim",
                "preset": self.preset.name,
                "seed": self.seed,
                "render_version": RENDER_VERSION,
            },
            splits=self.splits,
            clips=entries,
            window={
                "frames": self.preset.window_frames,
                "fps": self.preset.window_fps,
                "hop": self.preset.window_frames // 2,
            },
        )
        return entries


def _export_one(
    preset: str,
    seed: int,
    out: Path,
    ref: WindowRef,
    references: bool,
    dataset: VirtualDataset | None = None,
    conditions: str | None = None,
) -> ClipEntry:
    ds = dataset or VirtualDataset(PRESETS[preset], seed=seed, conditions=conditions)
    info, encoded = ds.encoded(ref, references=references)
    write_clip(out, info, encoded)
    return ClipEntry(id=info.id, split=info.split, frames=info.frames)
