"""Windowing rules: grid slots, hops, gaps, idempotent replays, and state that survives in the table."""

from __future__ import annotations

import numpy as np

from services.recognition.windows import SlotEntry, StudentMeta, WindowTracker, event_id

SLOT = 125_000  # 8 fps


def obs(value: float, c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    return np.full((17, 3), value, np.float32), np.full((17, c), value, np.float16)


def feed(tracker: WindowTracker, key: str, slots: list[int], *, offset_us: int = 10_000):
    windows = []
    for s in slots:
        kp, feat = obs(float(s))
        w = tracker.observe(
            key,
            capture_ts_us=s * SLOT + offset_us,
            keypoints=kp,
            node_features=feat,
            seat_id="A1",
            course_id="c",
        )
        if w is not None:
            windows.append(w)
            tracker.mark_emitted(key, w.end_slot)
    return windows


def test_first_window_after_t_slots_then_one_per_hop() -> None:
    table: dict[bytes, bytes] = {}
    tracker = WindowTracker(table, frames=16, fps=8.0, hop=8)
    windows = feed(tracker, "r|s|c|st", list(range(100, 140)))
    assert [w.end_slot for w in windows] == [115, 123, 131, 139]
    first, second = windows[0], windows[1]
    # The window holds slots 100..115 in order.
    assert first.keypoints[:, 0, 0].tolist() == [float(s) for s in range(100, 116)]
    # The first event covers its whole window; later ones only their hop: no double counting.
    assert (first.segment_start_us, first.segment_end_us) == (100 * SLOT, 116 * SLOT)
    assert (second.segment_start_us, second.segment_end_us) == (116 * SLOT, 124 * SLOT)
    assert second.window_end_us - second.window_start_us == 16 * SLOT


def test_two_frames_in_one_slot_keep_the_first() -> None:
    table: dict[bytes, bytes] = {}
    tracker = WindowTracker(table, frames=16, fps=8.0, hop=8)
    kp, feat = obs(1.0)
    tracker.observe(
        "k", capture_ts_us=5 * SLOT + 1, keypoints=kp, node_features=feat, seat_id="A", course_id="c"
    )
    kp2, feat2 = obs(2.0)
    tracker.observe(
        "k", capture_ts_us=5 * SLOT + 60_000, keypoints=kp2, node_features=feat2, seat_id="A", course_id="c"
    )
    stored = SlotEntry.decode(table[b"k|5"])
    assert stored.keypoints[0, 0] == 1.0 and stored.capture_ts_us == 5 * SLOT + 1


def test_small_gaps_hold_the_last_observation_large_gaps_restart() -> None:
    table: dict[bytes, bytes] = {}
    tracker = WindowTracker(table, frames=16, fps=8.0, hop=8)
    slots = [s for s in range(0, 16) if s not in (5, 6)]  # two dropped slots
    windows = feed(tracker, "k", slots)
    assert [w.end_slot for w in windows] == [15]
    assert windows[0].keypoints[5:7, 0, 0].tolist() == [4.0, 4.0]
    # A gap longer than MAX_GAP_SLOTS starts a new run: no window until 16 new slots.
    assert feed(tracker, "k", list(range(30, 45))) == []
    assert [w.end_slot for w in feed(tracker, "k", [45])] == [45]


def test_replayed_observations_change_nothing_and_re_emit_the_same_window() -> None:
    table: dict[bytes, bytes] = {}
    tracker = WindowTracker(table, frames=16, fps=8.0, hop=8)
    kp, feat = obs(0.0)
    window = None
    for s in range(16):
        window = tracker.observe(
            "k", capture_ts_us=s * SLOT, keypoints=kp, node_features=feat, seat_id="A", course_id="c"
        )
    assert window is not None and window.end_slot == 15
    snapshot = dict(table)
    # Crash before mark_emitted: the redelivered last observation yields the same window again.
    again = tracker.observe(
        "k", capture_ts_us=15 * SLOT, keypoints=kp, node_features=feat, seat_id="A", course_id="c"
    )
    assert again is not None and again.end_slot == 15
    assert event_id(again.student_key, again.end_slot) == event_id(window.student_key, window.end_slot)
    assert table == snapshot
    tracker.mark_emitted("k", 15)
    assert (
        tracker.observe(
            "k", capture_ts_us=15 * SLOT, keypoints=kp, node_features=feat, seat_id="A", course_id="c"
        )
        is None
    )


def test_state_lives_only_in_the_table() -> None:
    table: dict[bytes, bytes] = {}
    feed(WindowTracker(table, frames=16, fps=8.0, hop=8), "k", list(range(0, 10)))
    # A new tracker (a restarted service) over the recovered table continues the run.
    windows = feed(WindowTracker(table, frames=16, fps=8.0, hop=8), "k", list(range(10, 16)))
    assert [w.end_slot for w in windows] == [15]
    assert StudentMeta.decode(table[b"k|meta"]).last_emitted == 15
    # Entries are bounded: T slot entries + 1 meta per student, whatever the session length.
    feed(WindowTracker(table, frames=16, fps=8.0, hop=8), "k", list(range(16, 200)))
    assert len(table) == 17


def test_observations_not_used_are_counted_by_reason() -> None:
    table: dict[bytes, bytes] = {}
    calls: list[tuple[str, str, int]] = []
    tracker = WindowTracker(table, frames=16, fps=8.0, hop=8, on_skip=lambda *a: calls.append(a))
    feed(tracker, "r|s|c|st", [*range(100, 105), *range(106, 111)])  # slot 105 never arrives
    assert tracker.skipped == {}
    feed(tracker, "r|s|c|st", [108], offset_us=60_000)  # a second frame set in a slot already used
    feed(tracker, "r|s|c|st", [105])  # slot 105 arrives after 110: late, its slot stays empty
    assert tracker.skipped == {"slot_taken": 1, "late": 1}
    assert calls == [("slot_taken", "r|s|c|st", 2), ("late", "r|s|c|st", 5)]


def test_windows_a_long_gap_keeps_from_being_emitted_are_counted() -> None:
    table: dict[bytes, bytes] = {}
    gaps: list[tuple[str, int]] = []
    tracker = WindowTracker(table, frames=16, fps=8.0, hop=8, on_gap=lambda *a: gaps.append(a))
    assert [w.end_slot for w in feed(tracker, "k", list(range(0, 24)))] == [15, 23]
    # slots 24..33 never arrive (frames shed, a camera down): without them windows would have
    # ended at 31, 39 and 47; the new run's first ends at 34 + 15 = 49, so two are missing
    assert [w.end_slot for w in feed(tracker, "k", list(range(34, 58)))] == [49, 57]
    assert gaps == [("k", 2)] and tracker.not_emitted == 2
    # a gap a window can bridge costs nothing
    feed(tracker, "k", [59, 60])
    assert tracker.not_emitted == 2
