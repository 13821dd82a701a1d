"""Building classroom scenes: who sits where, doing what, when.

Two kinds of schedule drive the same scene:
- live sessions (``build_live_scene``): every student runs an endless chain of behaviour
  episodes with realistic dwell times (seconds to minutes) drawn lazily as time advances;
- data-set windows (``build_window_scene``): each labelled student performs one given
  behaviour throughout a 2-second window (its characteristic event inside the window, its
  onset at most ``Difficulty.onset_max_s`` late), after a different behaviour before it.

Everything is a deterministic function of the seeds passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.common.vocabulary import NUM_BEHAVIOURS
from services.simulator.behaviours import (
    DWELL_MEDIAN_S,
    LIVE_PRIOR,
    SIDE_CONVERSATION,
    Episode,
    sample_episode,
    sample_fidgets,
)
from services.simulator.body import StudentProfile, random_profile
from services.simulator.classroom import RoomLayout, Seat, room_seats
from services.simulator.config import Conditions, Difficulty, SimConfig
from services.simulator.props import DeskProps
from services.simulator.rig import build_rig
from services.simulator.scene import BehaviourTrack, ClassroomScene, SceneStudent, Shift, busy_props


def subject_profile(dataset_seed: int, index: int, difficulty: Difficulty) -> StudentProfile:
    """The fixed identity of data-set subject ``index`` (S01, S02, ...)."""
    rng = np.random.default_rng([dataset_seed, 101, index])
    return random_profile(rng, f"S{index + 1:02d}", difficulty.body_size_spread)


def _shifts(rng: np.random.Generator, start: float, end: float, scale: float) -> list[Shift]:
    shifts = []
    t = start + rng.exponential(6.0)
    while t < end:
        shifts.append(
            Shift(
                start=t,
                duration=float(rng.uniform(0.8, 2.2)),
                offset=(
                    float(rng.normal(0.0, 70.0) * scale),
                    float(rng.normal(0.0, 50.0) * scale),
                    float(rng.normal(0.0, 0.07) * scale),
                    float(rng.normal(0.0, 0.06) * scale),
                ),
            )
        )
        t += shifts[-1].duration + rng.exponential(5.0)
    return shifts


def neighbour_sides(seats: list[Seat], partner_seats: dict[str, str] | None = None) -> dict[str, int]:
    """For each occupied seat, the side (+1 right, -1 left) of an occupied neighbour in the row."""
    by_pos = {(s.row, s.column): s for s in seats}
    sides = {}
    for s in seats:
        options = [side for side in (1, -1) if (s.row, s.column + side) in by_pos]
        partner = (partner_seats or {}).get(s.seat_id)
        if partner is not None:
            p = next(x for x in seats if x.seat_id == partner)
            options = [1 if p.column > s.column else -1]
        sides[s.seat_id] = options[0] if options else 1
    return sides


# --- live sessions -------------------------------------------------------------------------------


class _LiveSchedule:
    """Extends a track with behaviour episodes, distractors and shifts as time advances."""

    def __init__(
        self,
        seed: tuple[int, ...],
        profile: StudentProfile,
        difficulty: Difficulty,
        neighbour_side: int,
        movement: bool,
    ) -> None:
        self.seed = seed
        self.profile = profile
        self.difficulty = difficulty
        self.neighbour_side = neighbour_side
        self.movement = movement
        self.covered = -1e9
        self.count = 0

    def first_episode(self, t0: float) -> Episode:
        rng = np.random.default_rng([*self.seed, 0])
        behaviour = self._pick(rng, None)
        # Start mid-episode so a fresh session does not begin with everyone switching at once.
        dwell = self._dwell(rng, behaviour)
        start = t0 - rng.uniform(0.0, dwell)
        return self._episode(rng, behaviour, start, start + dwell)

    def _pick(self, rng: np.random.Generator, previous: int | None) -> int:
        weights = np.array([LIVE_PRIOR[b] for b in range(NUM_BEHAVIOURS)])
        if previous is not None:
            weights[previous] = 0.0
        return int(rng.choice(NUM_BEHAVIOURS, p=weights / weights.sum()))

    def _dwell(self, rng: np.random.Generator, behaviour: int) -> float:
        return float(max(2.5, DWELL_MEDIAN_S[behaviour] * math.exp(rng.normal(0.0, 0.6))))

    def _episode(self, rng: np.random.Generator, behaviour: int, start: float, end: float) -> Episode:
        d = self.difficulty
        return sample_episode(
            rng,
            behaviour,
            self.profile,
            start,
            end,
            tempo_spread=d.tempo_spread,
            amplitude_spread=d.amplitude_spread,
            neighbour_side=self.neighbour_side,
        )

    def __call__(self, track: BehaviourTrack, t: float) -> None:
        while track.episodes[-1].start <= t + 5.0:
            self.count += 1
            rng = np.random.default_rng([*self.seed, self.count])
            last = track.episodes[-1]
            behaviour = self._pick(rng, last.behaviour)
            start = last.end
            track.episodes.append(self._episode(rng, behaviour, start, start + self._dwell(rng, behaviour)))
        if t + 5.0 > self.covered:
            rng = np.random.default_rng([*self.seed, 77, int(max(self.covered, t) // 60.0)])
            start = max(self.covered, t - 5.0)
            end = start + 60.0
            track.fidgets = tuple(
                f for f in track.fidgets if f.start + f.duration > t - 10.0
            ) + sample_fidgets(rng, start, end, self.difficulty.fidget_rate_per_min, self.profile)
            if self.movement:
                track.shifts = [s for s in track.shifts if s.start + s.duration > t - 30.0][-1:] + _shifts(
                    rng, start, end, self.difficulty.movement_scale
                )
            self.covered = end
        # Keep memory bounded in endless sessions: drop episodes long over.
        while len(track.episodes) > 3 and track.episodes[1].end < t - 30.0:
            track.episodes.pop(0)


def build_live_scene(
    *,
    seed: int,
    students: int,
    config: SimConfig,
    conditions: Conditions,
    room: RoomLayout,
    start_s: float = 0.0,
) -> ClassroomScene:
    """A lecture with ``students`` people in ``room``, behaviours switching on their own."""
    rng = np.random.default_rng([seed, 1])
    seats = room_seats(room)
    chosen = sorted(rng.choice(len(seats), size=students, replace=False).tolist())
    occupied = [seats[i] for i in chosen]
    sides = neighbour_sides(occupied)
    people = []
    for k, seat in enumerate(occupied):
        profile = random_profile(
            np.random.default_rng([seed, 2, k]), f"S{k + 1:02d}", config.difficulty.body_size_spread
        )
        schedule = _LiveSchedule(
            (seed, 3, k), profile, config.difficulty, sides[seat.seat_id], conditions.student_movement
        )
        track = BehaviourTrack([schedule.first_episode(start_s)], extend=schedule)
        props = DeskProps.sample(
            np.random.default_rng([seed, 4, k]),
            profile.handedness,
            need=("book", "notebook", "pen", "phone", "cup"),
        )
        people.append(SceneStudent(profile, seat, track, props, False, sides[seat.seat_id]))
    rig = build_rig(
        np.random.default_rng([seed, 5]), room, config, temporal_offset=conditions.temporal_offset
    )
    return ClassroomScene(
        config=config,
        room=room,
        room_seed=seed,
        rig=rig,
        students=people,
        conditions=conditions,
        seed=(seed, 6),
    )


# --- data-set windows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Occupant:
    """Someone in a data-set window: a subject with a label, or an extra (label drawn at random)."""

    profile: StudentProfile
    seat: Seat
    label: int
    extra: bool = False


def window_track(
    rng: np.random.Generator,
    occupant: Occupant,
    window: tuple[float, float],
    difficulty: Difficulty,
    neighbour_side: int,
    movement: bool,
) -> BehaviourTrack:
    """The labelled behaviour over ``window``, after some other behaviour."""
    t0, t1 = window
    prof = occupant.profile
    others = [b for b in range(NUM_BEHAVIOURS) if b != occupant.label]
    before = int(rng.choice(others))
    onset = (
        t0 + rng.uniform(0.0, difficulty.onset_max_s) if rng.random() < 0.35 else t0 - rng.uniform(0.5, 20.0)
    )
    ep = sample_episode(
        rng,
        occupant.label,
        prof,
        onset,
        t1 + rng.uniform(1.0, 15.0),
        tempo_spread=difficulty.tempo_spread,
        amplitude_spread=difficulty.amplitude_spread,
        window=window,
        neighbour_side=neighbour_side,
    )
    prev = sample_episode(
        rng,
        before,
        prof,
        min(ep.start, onset) - 30.0,
        min(ep.start, onset),
        tempo_spread=difficulty.tempo_spread,
        amplitude_spread=difficulty.amplitude_spread,
        neighbour_side=neighbour_side,
    )
    fidgets = sample_fidgets(rng, t0 - 4.0, t1 + 1.0, difficulty.fidget_rate_per_min, prof)
    shifts = _shifts(rng, t0 - 6.0, t1 + 1.0, difficulty.movement_scale) if movement else []
    return BehaviourTrack([prev, ep], fidgets, shifts)


def build_window_scene(
    *,
    config: SimConfig,
    room: RoomLayout,
    room_seed: int,
    occupants: list[Occupant],
    conditions: Conditions,
    window: tuple[float, float],
    seed: tuple[int, ...],
) -> ClassroomScene:
    """A classroom rendered for one data-set window (times in session seconds)."""
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    seats = [o.seat for o in occupants]
    # Neighbours who both chat face each other.
    chatting = {o.seat.seat_id for o in occupants if o.label == SIDE_CONVERSATION}
    partners: dict[str, str] = {}
    by_pos = {(s.row, s.column): s for s in seats}
    for s in seats:
        if s.seat_id in chatting and s.seat_id not in partners:
            for side in (1, -1):
                other = by_pos.get((s.row, s.column + side))
                if other is not None and other.seat_id in chatting and other.seat_id not in partners:
                    partners[s.seat_id] = other.seat_id
                    partners[other.seat_id] = s.seat_id
                    break
    sides = neighbour_sides(seats, partners)
    people = []
    for o in occupants:
        side = sides[o.seat.seat_id]
        track = window_track(rng, o, window, config.difficulty, side, conditions.student_movement)
        props = DeskProps.sample(rng, o.profile.handedness, need=busy_props(o.label))
        people.append(SceneStudent(o.profile, o.seat, track, props, o.extra, side))
    rig = build_rig(
        np.random.default_rng([room_seed, 5]), room, config, temporal_offset=conditions.temporal_offset
    )
    return ClassroomScene(
        config=config,
        room=room,
        room_seed=room_seed,
        rig=rig,
        students=people,
        conditions=conditions,
        seed=tuple(seed),
    )
