"""Virtual SmartClass-Sim data sets: balanced labels, cross-subject splits, determinism, cache."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from services.common.vocabulary import BEHAVIOURS
from services.dataset.api import open_dataset
from services.dataset.virtual import PRESETS, VirtualDataset, parse_sim_spec


@pytest.mark.parametrize(
    ("preset", "per_class"),
    [("paper", {"train": 1200, "val": 150, "test": 150}), ("small", {"train": 96, "val": 12, "test": 12})],
)
def test_labels_are_balanced_per_split_and_per_student(preset, per_class):
    ds = VirtualDataset(PRESETS[preset], seed=0)
    for split, expected in per_class.items():
        samples = ds.samples(split)
        assert Counter(s.label for s in samples) == {b: expected for b in BEHAVIOURS}
        per_student = Counter((s.student_id, s.label) for s in samples)
        assert set(per_student.values()) == {expected // len(ds.splits[split])}
    # Table 2: 15,000 samples, 80/10/10.
    if preset == "paper":
        assert sum(len(ds.samples(s)) for s in ("train", "val", "test")) == 15_000


def test_splits_are_disjoint_by_student_and_windows_hold_only_their_split():
    ds = VirtualDataset(PRESETS["paper"], seed=3)
    sets = {k: set(v) for k, v in ds.splits.items()}
    assert sum(len(v) for v in sets.values()) == 20
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    for split in ("train", "val", "test"):
        for index in (0, 7, 333, 749):
            plan = ds.plan(split, index)
            subjects = [p.student_id for p in plan.people if p.subject >= 0]
            assert set(subjects) == sets[split]  # everyone else in the window is a background extra
            extras = [p for p in plan.people if p.subject < 0]
            assert all(p.student_id.startswith("extra-") for p in extras)
            seats = [p.seat_id for p in plan.people]
            assert len(seats) == len(set(seats))
    assert {s.student_id for s in ds.samples("test")} == sets["test"]


def test_plans_depend_on_the_seed_only():
    a, b, c = (VirtualDataset(PRESETS["small"], seed=s) for s in (5, 5, 6))
    assert a.plan("train", 17) == b.plan("train", 17)
    assert a.splits == b.splits
    assert a.plan("train", 17) != c.plan("train", 17)


def test_same_window_same_bytes_with_and_without_cache(tmp_path):
    ref = open_dataset("sim:tiny", cache=False).windows("val")[3]
    fresh = open_dataset("sim:tiny", cache=False).load_window(ref)
    again = open_dataset("sim:tiny", cache=False).load_window(ref)
    cached_ds = open_dataset("sim:tiny", cache=tmp_path)
    first = cached_ds.load_window(ref)  # renders and writes the cache
    second = cached_ds.load_window(ref)  # reads the cache
    for other in (again, first, second):
        for a, b in zip(fresh.frames, other.frames, strict=True):
            assert a.rgb.tobytes() == b.rgb.tobytes()
            assert a.depth_mm.tobytes() == b.depth_mm.tobytes()
            assert a.thermal_c.tobytes() == b.thermal_c.tobytes()
            assert a.annotations == b.annotations
    assert [f.annotations for f in fresh.frames] == [
        a.model_dump(mode="json") for a in cached_ds.load_annotations(ref)
    ]
    # A window is 16 frames at 8 fps with references in the colour view at the analysis size.
    assert len(fresh.frames) == 16 and len(fresh.references) == 16
    assert fresh.references[0].rgb.shape == (360, 640, 3)
    ts = [f.rgb_ts_us for f in fresh.frames]
    assert np.all(np.diff(ts) == 125_000)


def test_sample_labels_hold_in_every_frame_of_the_window():
    ds = open_dataset("sim:tiny", cache=False)
    ref = ds.windows("train")[2]
    window = ds.load_window(ref, references=False)
    expected = {s.student_id: s.label for s in ds.samples("train") if s.window == ref}
    for ann in window.annotations:
        labels = {st["student_id"]: st["label"] for st in ann["students"] if not st["extra"]}
        assert labels == expected
    kp = window.keypoints(next(iter(expected)))
    assert kp.shape == (16, 17, 3)


def test_sim_spec_parsing():
    assert parse_sim_spec("sim:paper")[1] == 0
    preset, seed = parse_sim_spec("sim:small?seed=42")
    assert preset.name == "small" and seed == 42
    for bad in ("sim:", "sim:large", "sim:small?seed=x", "paper"):
        with pytest.raises(ValueError):
            parse_sim_spec(bad)


def test_extra_samples_are_the_background_people_with_the_labels_they_perform():
    ds = open_dataset("sim:tiny", cache=False)
    extras = ds.extra_samples("train")
    subjects = ds.samples("train")
    assert extras and all(s.student_id.startswith("extra-") for s in extras)
    assert not {(s.window, s.student_id) for s in extras} & {(s.window, s.student_id) for s in subjects}
    planned = sum(p.subject < 0 for i in range(len(ds.windows("train"))) for p in ds.plan("train", i).people)
    assert len(extras) == planned
    ref = ds.windows("train")[2]
    window = ds.load_window(ref, references=False)
    expected = {s.student_id: s.label for s in extras if s.window == ref}
    assert expected
    for ann in window.annotations:
        labels = {st["student_id"]: st["label"] for st in ann["students"] if st["extra"]}
        assert labels == expected
    assert window.keypoints(next(iter(expected)))[..., 2].max() > 0


# --- fresh-people presets (sim:crowd) ---------------------------------------------------------------


def test_crowd_sees_thousands_of_people_each_split_its_own():
    ds = VirtualDataset(PRESETS["crowd"], seed=0)
    people = {split: [s.student_id for s in ds.samples(split)] for split in ("train", "val", "test")}
    assert len(people["train"]) >= 5_000 and len(people["test"]) >= 1_000
    for split, ids in people.items():
        assert len(set(ids)) == len(ids)  # nobody appears twice
        assert set(ids) == set(ds.splits[split])
    assert not (set(people["train"]) & set(people["val"]) or set(people["train"]) & set(people["test"]))
    assert not set(people["val"]) & set(people["test"])


def test_crowd_windows_label_everyone_and_balance_the_behaviours():
    ds = VirtualDataset(PRESETS["crowd"], seed=0)
    rooms = Counter()
    for index in range(40):
        plan = ds.plan("train", index)
        rooms[plan.room] += 1
        labels = Counter(p.label for p in plan.people)
        # every behaviour once per ten people: counts differ by at most one within a window
        assert max(labels.values()) - min(labels.get(b, 0) for b in range(len(BEHAVIOURS))) <= 1
        assert plan.room_seed == ds.plan("train", index).room_seed  # deterministic
    assert len(rooms) >= 3  # rooms, cameras and people change from window to window
    assert len({ds.plan("train", i).room_seed for i in range(40)}) == 40
    counts = Counter(s.label for s in ds.samples("test"))
    assert max(counts.values()) - min(counts.values()) <= 0.15 * max(counts.values())


def test_a_crowd_window_renders_with_everyone_a_labelled_student():
    ds = VirtualDataset(PRESETS["crowd_tiny"], seed=0)
    ref = ds.windows("val")[0]
    window = ds.raw_window(ref)
    plan = ds.plan("val", 0)
    students = window.annotations[0]["students"]
    assert {s["student_id"] for s in students} == {p.student_id for p in plan.people}
    assert not any(s["extra"] for s in students)
    assert {s["seat_id"] for s in students} <= {seat.id for seat in window.camera.seats}
    assert len(window.frames) == PRESETS["crowd_tiny"].window_frames
    assert window.frames[0].rgb.shape == (360, 640, 3)


def test_a_fresh_preset_has_no_fixed_subjects():
    from services.dataset.virtual import DatasetPreset

    with pytest.raises(ValueError, match="no fixed subjects"):
        DatasetPreset(
            "x",
            subjects=2,
            split_subjects=(1, 1, 0),
            split_windows=(1, 1, 1),
            rooms=("small",),
            people="fresh",
        )
    with pytest.raises(ValueError, match="unknown preset 'crowdd'"):
        parse_sim_spec("sim:crowdd")
