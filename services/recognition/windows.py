"""Sliding windows per student on a fixed time grid, stored as small table entries.

Cameras run at their own frame rates; the recognition network takes ``T`` frames on a
``WINDOW_FPS`` grid (docs/contracts.md). A frame's grid slot is ``capture_ts // slot_us``
(absolute, so every service instance and every restart agrees). The first observation of
a student in a slot is kept; later ones in the same slot are skipped.

State lives in a key-value table (a faust Table backed by a compacted changelog topic, so it
survives a restart of the service): one entry per (student, slot mod T) holding that slot's
keypoints and node features, plus one ``meta`` entry per student with the contiguous run and
the last emitted slot. Updates are idempotent: re-applying an observation that is already
stored changes nothing, so a redelivered message after a crash is harmless.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import asdict, dataclass

import numpy as np

from services.common.vocabulary import NUM_KEYPOINTS

# Slots without an observation that a window may bridge by holding the last one.
MAX_GAP_SLOTS = 2


# why an observation is not used (WindowTracker.skipped, classroom_observations_skipped_total)
SKIP_REASONS = ("slot_taken", "late")


@dataclass
class StudentMeta:
    first_slot: int  # start of the current contiguous run
    last_slot: int  # newest slot stored
    last_emitted: int  # end slot of the newest window turned into an event (-1: none)
    seat_id: str
    course_id: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> StudentMeta:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class SlotEntry:
    slot: int
    capture_ts_us: int
    sequence: int
    keypoints: np.ndarray  # float32 [17, 3]: x, y normalised to the seat's crop square, confidence
    node_features: np.ndarray  # float16 [17, C]

    _HEADER = struct.Struct("<qqQI")

    def encode(self) -> bytes:
        c = self.node_features.shape[1]
        return (
            self._HEADER.pack(self.slot, self.capture_ts_us, self.sequence, c)
            + np.ascontiguousarray(self.keypoints, dtype="<f4").tobytes()
            + np.ascontiguousarray(self.node_features, dtype="<f2").tobytes()
        )

    @classmethod
    def slot_in(cls, raw: bytes) -> int:
        """The slot an encoded entry holds, read from its header alone."""
        return int(cls._HEADER.unpack_from(raw)[0])

    @classmethod
    def decode(cls, raw: bytes) -> SlotEntry:
        slot, ts, sequence, c = cls._HEADER.unpack_from(raw)
        offset = cls._HEADER.size
        kp_bytes = NUM_KEYPOINTS * 3 * 4
        keypoints = np.frombuffer(raw, dtype="<f4", count=NUM_KEYPOINTS * 3, offset=offset).reshape(
            NUM_KEYPOINTS, 3
        )
        features = np.frombuffer(raw, dtype="<f2", count=NUM_KEYPOINTS * c, offset=offset + kp_bytes).reshape(
            NUM_KEYPOINTS, c
        )
        return cls(slot, ts, sequence, keypoints, features)


@dataclass(frozen=True)
class ReadyWindow:
    """A complete window to send to the recognition model."""

    student_key: str
    end_slot: int
    keypoints: np.ndarray  # float32 [T, 17, 3]
    node_features: np.ndarray  # float16 [T, 17, C]
    window_start_us: int
    window_end_us: int
    segment_start_us: int
    segment_end_us: int
    first_sequence: int
    last_sequence: int


class WindowTracker:
    """The windowing rules over a mutable key-value table (bytes -> bytes)."""

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        *,
        frames: int,
        fps: float,
        hop: int,
        on_skip: Callable[[str, str, int], None] | None = None,
        on_gap: Callable[[str, int], None] | None = None,
    ) -> None:
        self.table = table
        self.frames = frames
        self.hop = hop
        self.slot_us = round(1e6 / fps)
        # an observation not used, and why (SKIP_REASONS): counted here, reported to on_skip
        self.skipped: Counter[str] = Counter()
        self.on_skip = on_skip
        # windows a gap longer than MAX_GAP_SLOTS kept from being emitted (the run starts again
        # after it): counted here, reported to on_gap(student_key, windows)
        self.not_emitted = 0
        self.on_gap = on_gap

    def slot_of(self, capture_ts_us: int) -> int:
        return capture_ts_us // self.slot_us

    @staticmethod
    def student_key(classroom_id: str, session_id: str, camera_id: str, student_id: str) -> str:
        return f"{classroom_id}|{session_id}|{camera_id}|{student_id}"

    def _meta_key(self, student_key: str) -> bytes:
        return f"{student_key}|meta".encode()

    def _slot_key(self, student_key: str, slot: int) -> bytes:
        return f"{student_key}|{slot % self.frames}".encode()

    def meta(self, student_key: str) -> StudentMeta | None:
        raw = self.table.get(self._meta_key(student_key))
        return StudentMeta.decode(raw) if raw else None

    def observe(
        self,
        student_key: str,
        *,
        capture_ts_us: int,
        keypoints: np.ndarray,
        node_features: np.ndarray,
        seat_id: str,
        course_id: str,
        sequence: int = 0,
    ) -> ReadyWindow | None:
        """Store one observation; return the window it completes, if it completes one.

        The caller turns the window into an event and then calls ``mark_emitted``; a crash in
        between re-emits the same window (same event id) on redelivery, never a different one.
        """
        slot = self.slot_of(capture_ts_us)
        meta = self.meta(student_key)
        if meta is not None and slot <= meta.last_slot:
            # not newer than the newest stored slot: the slot is taken (the camera runs faster
            # than the window grid, or a redelivery), or it is late (out of order; its slot was
            # bridged or dropped already). Either way it is not used, and counted.
            raw = self.table.get(self._slot_key(student_key, slot))
            reason = "slot_taken" if raw and SlotEntry.slot_in(raw) == slot else "late"
            self.skipped[reason] += 1
            if self.on_skip is not None:
                self.on_skip(reason, student_key, meta.last_slot - slot)
            return self._pending_window(student_key, meta)
        if meta is None or slot - meta.last_slot > MAX_GAP_SLOTS + 1:
            if meta is not None:
                self._count_gap(student_key, meta, slot)
            meta = StudentMeta(
                first_slot=slot, last_slot=slot, last_emitted=-1, seat_id=seat_id, course_id=course_id
            )
        else:
            meta.last_slot = slot
            meta.seat_id, meta.course_id = seat_id, course_id
        entry = SlotEntry(
            slot, capture_ts_us, sequence, keypoints.astype(np.float32), node_features.astype(np.float16)
        )
        self.table[self._slot_key(student_key, slot)] = entry.encode()
        self.table[self._meta_key(student_key)] = meta.encode()
        return self._pending_window(student_key, meta)

    def _count_gap(self, student_key: str, meta: StudentMeta, slot: int) -> None:
        """Windows that end one hop apart between the last one emitted and the first one the new
        run can complete (``frames`` slots after ``slot``) are not emitted: count them."""
        last = meta.last_emitted if meta.last_emitted >= 0 else meta.first_slot + self.frames - 1 - self.hop
        missed = max(0, (slot + self.frames - 1 - last) // self.hop - 1)
        if missed:
            self.not_emitted += missed
            if self.on_gap is not None:
                self.on_gap(student_key, missed)

    def _pending_window(self, student_key: str, meta: StudentMeta) -> ReadyWindow | None:
        end = meta.last_slot
        if end - meta.first_slot + 1 < self.frames:
            return None
        if meta.last_emitted >= 0 and end - meta.last_emitted < self.hop:
            return None
        return self._assemble(student_key, meta, end)

    def _assemble(self, student_key: str, meta: StudentMeta, end: int) -> ReadyWindow | None:
        start = end - self.frames + 1
        entries: list[SlotEntry] = []
        held: SlotEntry | None = None
        for slot in range(start, end + 1):
            raw = self.table.get(self._slot_key(student_key, slot))
            entry = SlotEntry.decode(raw) if raw else None
            if entry is not None and entry.slot == slot:
                held = entry
            elif held is None:
                # Look back for the newest stored slot before the window to hold from.
                return None
            entries.append(held)  # a missing slot (dropped frame) holds the previous observation
        keypoints = np.stack([e.keypoints for e in entries])
        features = np.stack([e.node_features for e in entries])
        window_start = start * self.slot_us
        window_end = (end + 1) * self.slot_us
        first_event = meta.last_emitted < 0
        segment_start = (
            window_start if first_event else max(window_start, (meta.last_emitted + 1) * self.slot_us)
        )
        return ReadyWindow(
            student_key=student_key,
            end_slot=end,
            keypoints=keypoints,
            node_features=features,
            window_start_us=window_start,
            window_end_us=window_end,
            segment_start_us=segment_start,
            segment_end_us=window_end,
            first_sequence=entries[0].sequence,
            last_sequence=entries[-1].sequence,
        )

    def mark_emitted(self, student_key: str, end_slot: int) -> None:
        meta = self.meta(student_key)
        if meta is not None and end_slot > meta.last_emitted:
            meta.last_emitted = end_slot
            self.table[self._meta_key(student_key)] = meta.encode()


def event_id(student_key: str, end_slot: int) -> str:
    """Deterministic: the same window of the same student always gets the same id."""
    return hashlib.sha256(f"{student_key}|{end_slot}".encode()).hexdigest()[:32]
