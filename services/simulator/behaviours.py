"""The paper's 10 learning behaviours (section 4.1, Table 2) as kinematics over time.

Each behaviour samples an ``Episode`` (its timing, tempo, amplitude, side and event times)
and maps (episode, time) to a pose vector (body.py). Pairs that real annotators separate by
timing or by depth/thermal cues are built that way on purpose:

- head-down writing vs note-taking: both write; note-taking looks up to the board every
  one to three seconds, head-down writing keeps the head low and close to the desk (a depth
  cue) with a deeper trunk lean;
- attentive listening vs upright sitting: both sit still; attentive listeners lean in a
  little (depth), follow the lecturer with their head and nod, upright sitters sit back and
  stare at a fixed point.

Distractor motions (``Fidget``: scratching the head, touching the face, stretching,
glancing sideways, looking down) use whatever limbs a behaviour leaves free, so a label is
never a pure function of where the hands are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from services.common.vocabulary import BEHAVIOUR_INDEX, BEHAVIOURS
from services.simulator.body import (
    BOOK_OPEN,
    CUP_HAND,
    DESK_EDGE_FORWARD,
    DESK_TOP_ABOVE_HIP,
    DISCRETE_SLOTS,
    ELBOW_FWD_L,
    ELBOW_FWD_R,
    ELBOW_OUT_L,
    ELBOW_OUT_R,
    HAND_PITCH_L,
    HAND_PITCH_R,
    HEAD_PITCH,
    HEAD_ROLL,
    HEAD_YAW,
    JAW,
    PAGE_FLIP,
    PEN_HAND,
    PHONE_HAND,
    PHONE_SCREEN,
    SHIFT_F,
    SHIFT_R,
    SHOULDER_RAISE_L,
    SHOULDER_RAISE_R,
    TRUNK_PITCH,
    TRUNK_ROLL,
    TRUNK_YAW,
    WRIST_L,
    WRIST_L_HEAD,
    WRIST_L_HEAD_W,
    WRIST_R,
    WRIST_R_HEAD,
    WRIST_R_HEAD_W,
    StudentProfile,
    neutral_pose,
)

HAND_RAISING = BEHAVIOUR_INDEX["hand_raising"]
PAGE_TURNING = BEHAVIOUR_INDEX["page_turning"]
HEAD_DOWN_WRITING = BEHAVIOUR_INDEX["head_down_writing"]
CHIN_RESTING = BEHAVIOUR_INDEX["chin_resting"]
ATTENTIVE_LISTENING = BEHAVIOUR_INDEX["attentive_listening"]
PHONE_USAGE = BEHAVIOUR_INDEX["phone_usage"]
NOTE_TAKING = BEHAVIOUR_INDEX["note_taking"]
DRINKING_WATER = BEHAVIOUR_INDEX["drinking_water"]
SIDE_CONVERSATION = BEHAVIOUR_INDEX["side_conversation"]
UPRIGHT_SITTING = BEHAVIOUR_INDEX["upright_sitting"]

DESK_Y = DESK_TOP_ABOVE_HIP + 35.0  # a wrist resting on the desk
BOOK_Z = DESK_EDGE_FORWARD + 190.0

# Typical episode lengths in seconds (median of a log-normal), for live sessions.
DWELL_MEDIAN_S = {
    HAND_RAISING: 5.0,
    PAGE_TURNING: 10.0,
    HEAD_DOWN_WRITING: 40.0,
    CHIN_RESTING: 25.0,
    ATTENTIVE_LISTENING: 45.0,
    PHONE_USAGE: 30.0,
    NOTE_TAKING: 50.0,
    DRINKING_WATER: 6.0,
    SIDE_CONVERSATION: 15.0,
    UPRIGHT_SITTING: 30.0,
}
# How often each behaviour starts in a live lecture (relative weights).
LIVE_PRIOR = {
    HAND_RAISING: 0.04,
    PAGE_TURNING: 0.07,
    HEAD_DOWN_WRITING: 0.12,
    CHIN_RESTING: 0.09,
    ATTENTIVE_LISTENING: 0.22,
    PHONE_USAGE: 0.08,
    NOTE_TAKING: 0.17,
    DRINKING_WATER: 0.04,
    SIDE_CONVERSATION: 0.06,
    UPRIGHT_SITTING: 0.11,
}

# Limbs and head a behaviour occupies; fidgets may only use the others.
ARM_L, ARM_R, HEAD, TRUNK = 1, 2, 4, 8


@dataclass(frozen=True)
class PoseContext:
    """What a student can see: the lecturer's direction in the seat frame, an occupied neighbour."""

    lecturer_yaw: float = 0.0
    lecturer_pitch: float = -0.08
    neighbour_side: int = 1


@dataclass(frozen=True)
class Episode:
    """One stretch of one behaviour for one student (times in session seconds)."""

    behaviour: int
    start: float
    end: float
    side: int  # +1 right, -1 left: active hand, or the neighbour's side
    tempo: float
    amplitude: float
    events: tuple[float, ...] = ()
    params: tuple[float, ...] = field(default=(0.5,) * 8)
    cup_temperature_c: float = 22.0

    def u(self, k: int) -> float:
        return self.params[k % len(self.params)]


@dataclass(frozen=True)
class Fidget:
    """A short distractor motion laid over a behaviour."""

    kind: str  # scratch_head, touch_face, stretch, glance, look_down
    start: float
    duration: float
    side: int


FIDGET_KINDS = ("scratch_head", "touch_face", "stretch", "glance", "look_down")


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def envelope(t: float, start: float, rise: float, end: float, fall: float) -> float:
    """0 before ``start``, ramps to 1 over ``rise``, holds, ramps back to 0 by ``end``."""
    if t <= start or t >= end:
        return 0.0
    up = smoothstep((t - start) / max(rise, 1e-3))
    down = smoothstep((end - t) / max(fall, 1e-3))
    return min(up, down)


def _hand_slots(side: int) -> tuple[slice, slice, int, int, int, int]:
    """Pose slots of the hand on ``side`` (+1 right, -1 left)."""
    if side > 0:
        return WRIST_R, WRIST_R_HEAD, WRIST_R_HEAD_W, ELBOW_OUT_R, HAND_PITCH_R, SHOULDER_RAISE_R
    return WRIST_L, WRIST_L_HEAD, WRIST_L_HEAD_W, ELBOW_OUT_L, HAND_PITCH_L, SHOULDER_RAISE_L


def _elbow_forward_slot(side: int) -> int:
    return ELBOW_FWD_R if side > 0 else ELBOW_FWD_L


def _hand_code(side: int) -> int:
    return 2 if side > 0 else 1


def _busy_arm(side: int) -> int:
    return ARM_R if side > 0 else ARM_L


def _spaced_events(
    rng: np.random.Generator, start: float, end: float, gap: tuple[float, float], first: float
) -> tuple[float, ...]:
    events = []
    t = start + first
    while t < end:
        events.append(t)
        t += rng.uniform(*gap)
    return tuple(events)


# --- episode sampling ------------------------------------------------------------------------


def sample_episode(
    rng: np.random.Generator,
    behaviour: int,
    profile: StudentProfile,
    start: float,
    end: float,
    *,
    tempo_spread: float,
    amplitude_spread: float,
    window: tuple[float, float] | None = None,
    neighbour_side: int = 1,
) -> Episode:
    """Timing of one behaviour; with ``window`` its characteristic event overlaps that interval."""
    tempo = profile.tempo * math.exp(rng.normal(0.0, tempo_spread))
    amplitude = profile.amplitude * math.exp(rng.normal(0.0, amplitude_spread))
    params = tuple(float(v) for v in rng.random(8))
    side = profile.handedness if rng.random() < 0.85 else -profile.handedness
    events: tuple[float, ...] = ()
    cup_c = 22.0
    if behaviour == HAND_RAISING and window is not None:
        # The hand goes up shortly before or inside the window and stays up through most of it.
        start = window[0] - rng.uniform(-0.35, 2.5)
        end = max(end, window[1] + 0.5)
    elif behaviour == PAGE_TURNING:
        events = _spaced_events(rng, start, end, (1.8, 4.5) if window else (3.0, 9.0), rng.uniform(0.2, 2.0))
        if window is not None:
            turn = rng.uniform(window[0] - 0.3, window[1] - 0.8)
            events = tuple(sorted([e for e in events if abs(e - turn) > 1.6] + [turn]))
    elif behaviour == NOTE_TAKING:
        # Alternating phases: even events start a look-up, odd events start writing again.
        t = start + rng.uniform(-1.5, 0.5)
        evs = []
        while t < end:
            evs.append(t)
            t += rng.uniform(0.6, 1.8) / tempo
            evs.append(t)
            t += rng.uniform(1.0, 2.8) / tempo
        if window is not None and not any(window[0] <= e <= window[1] for e in evs):
            evs.append(rng.uniform(*window))
            evs.sort()
        events = tuple(evs)
    elif behaviour == DRINKING_WATER:
        if window is not None:
            reach = rng.uniform(window[0] - 2.2, window[1] - 1.4)
        else:
            reach = start + rng.uniform(0.3, 1.0)
        events = (reach,)
        cup_c = float(rng.choice([rng.uniform(48.0, 65.0), rng.uniform(8.0, 16.0), rng.uniform(20.0, 24.0)]))
        end = max(end, reach + 4.5)
    elif behaviour == ATTENTIVE_LISTENING:
        events = _spaced_events(rng, start, end, (1.8, 5.0), rng.uniform(0.0, 2.5))
    elif behaviour == SIDE_CONVERSATION:
        side = neighbour_side if neighbour_side != 0 else side
        events = _spaced_events(rng, start, end, (0.8, 2.5), rng.uniform(0.0, 1.0))
    elif behaviour == HEAD_DOWN_WRITING:
        events = _spaced_events(rng, start, end, (2.5, 4.5), rng.uniform(0.0, 3.0))  # line breaks
    elif behaviour == PHONE_USAGE:
        events = _spaced_events(rng, start, end, (0.6, 2.0), rng.uniform(0.0, 1.0))  # scroll bursts
    return Episode(behaviour, start, end, side, tempo, amplitude, events, params, cup_c)


def sample_fidgets(
    rng: np.random.Generator, start: float, end: float, rate_per_min: float, profile: StudentProfile
) -> tuple[Fidget, ...]:
    """Distractor motions as a Poisson process over [start, end)."""
    fidgets = []
    rate = rate_per_min * profile.fidgetiness / 60.0
    if rate <= 0:
        return ()
    t = start + rng.exponential(1.0 / rate)
    while t < end:
        kind = FIDGET_KINDS[rng.integers(len(FIDGET_KINDS))]
        fidgets.append(Fidget(kind, t, float(rng.uniform(0.7, 2.0)), 1 if rng.random() < 0.5 else -1))
        t += rng.exponential(1.0 / rate)
    return tuple(fidgets)


# --- poses -------------------------------------------------------------------------------------


def _rest(p: np.ndarray, side: int, x: float = 150.0, z: float = DESK_EDGE_FORWARD + 120.0) -> None:
    wrist, _, head_w, _, pitch, _ = _hand_slots(side)
    p[wrist] = (side * x, DESK_Y, z)
    p[head_w] = 0.0
    p[pitch] = 0.5


def _write(
    p: np.ndarray, side: int, t: float, tempo: float, amplitude: float, intensity: float, drift: float
) -> None:
    """Writing hand on the paper: fast small strokes, pen lifts, a slow drift along the line."""
    wrist, _, head_w, elbow, pitch, _ = _hand_slots(side)
    f = 3.8 * tempo
    x = side * 60.0 + drift + intensity * amplitude * 7.0 * math.sin(2 * math.pi * f * t)
    y = DESK_Y - 5.0 + intensity * 3.5 * abs(math.sin(2 * math.pi * 0.9 * f * t + 0.7))
    z = DESK_EDGE_FORWARD + 170.0 + intensity * amplitude * 4.0 * math.sin(2 * math.pi * 1.7 * f * t)
    p[wrist] = (x, y, z)
    p[head_w] = 0.0
    p[pitch] = 0.85
    p[elbow] = 0.15


def _look_at_lecturer(p: np.ndarray, ctx: PoseContext, weight: float = 1.0) -> None:
    yaw = ctx.lecturer_yaw - p[TRUNK_YAW]
    p[HEAD_YAW] += weight * float(np.clip(yaw, -0.9, 0.9))
    p[HEAD_PITCH] += weight * (ctx.lecturer_pitch - p[TRUNK_PITCH] * 0.8)


# One function per behaviour: each sets pose ``p`` (the student's neutral pose) for time ``t``
# and returns the limbs it keeps busy.


def _hand_raising(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """The active arm rises (half raise to straight arm, sometimes waving); eyes on the lecturer."""
    a = ep.amplitude
    tempo = ep.tempo
    side = ep.side
    wrist, _, head_w, elbow, pitch, shoulder = _hand_slots(side)
    height = 0.5 + 0.5 * min(1.0, ep.u(0) * 1.3) * min(a, 1.15)  # half raise .. straight arm
    rise = (0.35 + 0.6 * ep.u(1)) / tempo
    lift = envelope(t, ep.start, rise, ep.end, 0.6 / tempo)
    wave = 35.0 * math.sin(2 * math.pi * 1.4 * tempo * t) if ep.u(2) < 0.25 else 0.0
    raised = np.array(
        [side * (190.0 + 90.0 * (1 - height)) + wave, 455.0 + 520.0 * height, 60.0 + 140.0 * (1 - height)]
    )
    rest = p[wrist].copy()
    p[wrist] = rest + (raised - rest) * lift
    p[head_w] = 0.0
    p[pitch] = 0.5 * (1 - lift) - 0.15 * lift
    p[elbow] = lift * 0.7 * (1 - height)
    p[shoulder] = lift * 30.0 * height
    p[TRUNK_ROLL] -= side * 0.05 * lift
    p[TRUNK_PITCH] -= 0.04 * lift
    _look_at_lecturer(p, ctx, 0.8)
    return _busy_arm(side) | HEAD | TRUNK


def _page_turning(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Hands on the book; at each event the hand carries a page over the spine and returns."""
    a = ep.amplitude
    tempo = ep.tempo
    side = ep.side
    wrist, _, _, elbow, pitch, _ = _hand_slots(side)
    p[PEN_HAND] = 0
    p[HEAD_PITCH] += 0.38 + 0.2 * ep.u(0)
    p[TRUNK_PITCH] += 0.1 + 0.08 * ep.u(1)
    p[HEAD_YAW] += 0.07 * math.sin(2 * math.pi * 0.3 * tempo * t + ep.u(2) * 6)
    _rest(p, side, 175.0, BOOK_Z)
    _rest(p, -side, 175.0, BOOK_Z)
    duration = (0.55 + 0.5 * ep.u(3)) / tempo
    for e in ep.events:
        if e <= t < e + 1.9 * duration:
            phase = (t - e) / duration
            if phase < 1.0:
                x = side * (175.0 - 240.0 * smoothstep(phase))
                lift = 95.0 * a * math.sin(math.pi * phase)
                p[PAGE_FLIP] = phase
            else:
                back = (phase - 1.0) / 0.9
                x = side * (-65.0 + 240.0 * smoothstep(back))
                lift = 35.0 * math.sin(math.pi * min(back, 1.0))
            p[wrist] = (x, DESK_Y + lift, BOOK_Z - 25.0 + 0.3 * lift)
            p[pitch] = 0.75
            p[elbow] = 0.1
            break
    return _busy_arm(side) | HEAD


def _head_down_writing(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Head low and close to the desk, deep trunk lean, the pen drifting along a line."""
    a = ep.amplitude
    tempo = ep.tempo
    side = ep.side
    p[PEN_HAND] = _hand_code(side)
    p[TRUNK_PITCH] += 0.26 + 0.16 * ep.u(0)
    p[HEAD_PITCH] += 0.5 + 0.28 * ep.u(1)
    p[HEAD_ROLL] += side * 0.08 * ep.u(2)
    line = 0.0
    prev = [e for e in ep.events if e <= t]
    if prev:
        line = min((t - prev[-1]) * 22.0 * tempo, 70.0)
    _write(p, side, t, tempo, a, 1.0, side * line)
    _rest(p, -side, 165.0, DESK_EDGE_FORWARD + 200.0)
    return _busy_arm(side) | HEAD | TRUNK


def _chin_resting(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """A hand (sometimes both) props up the chin or cheek, its elbow on the desk."""
    tempo = ep.tempo
    side = ep.side
    _, head_slot, head_w, elbow, pitch, shoulder = _hand_slots(side)
    p[TRUNK_PITCH] += 0.18 + 0.15 * ep.u(0)
    p[TRUNK_ROLL] += side * (0.03 + 0.06 * ep.u(1))
    p[HEAD_ROLL] += side * (0.05 + 0.12 * ep.u(2))
    p[HEAD_PITCH] += 0.05 + 0.18 * ep.u(3) + 0.02 * math.sin(2 * math.pi * 0.15 * tempo * t)
    cheek = ep.u(4) < 0.35
    p[head_slot] = (side * 58.0, -118.0, 42.0) if cheek else (side * 12.0, -178.0, 38.0)
    p[head_w] = 1.0
    p[pitch] = -0.35
    p[elbow] = 0.08
    p[_elbow_forward_slot(side)] = 1.1  # the elbow props the head up from the desk
    p[shoulder] = 12.0
    busy = _busy_arm(side) | HEAD | TRUNK
    if ep.u(5) < 0.25:
        _, hs2, hw2, _, pitch2, _ = _hand_slots(-side)
        p[hs2] = (-side * 12.0, -178.0, 38.0)
        p[hw2] = 1.0
        p[pitch2] = -0.35
        p[_elbow_forward_slot(-side)] = 1.1
        busy |= _busy_arm(-side)
    return busy


def _attentive_listening(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Leaning in a little, following the lecturer with the head and nodding now and then."""
    a = ep.amplitude
    tempo = ep.tempo
    p[TRUNK_PITCH] += 0.07 + 0.12 * ep.u(0)
    p[SHIFT_F] += 15.0 + 25.0 * ep.u(1)
    _look_at_lecturer(p, ctx)
    for e in ep.events:
        if e <= t < e + 0.9 / tempo:
            p[HEAD_PITCH] += 0.13 * a * math.sin(math.pi * (t - e) * tempo / 0.9)
    if ep.u(2) < 0.4:  # hands folded on the desk
        _rest(p, 1, 45.0, DESK_EDGE_FORWARD + 140.0)
        _rest(p, -1, 45.0, DESK_EDGE_FORWARD + 150.0)
    return HEAD | TRUNK


def _phone_usage(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Head down to a lit phone held in one or both hands, on the desk or in the lap, scrolling."""
    side = ep.side
    p[PHONE_HAND] = 3 if ep.u(0) < 0.5 else _hand_code(side)
    p[PHONE_SCREEN] = 1
    p[HEAD_PITCH] += 0.48 + 0.3 * ep.u(1)
    p[TRUNK_PITCH] += 0.08 + 0.15 * ep.u(2)
    in_lap = ep.u(3) < 0.45
    y = 95.0 if in_lap else DESK_Y + 20.0 + 80.0 * ep.u(4)
    z = DESK_EDGE_FORWARD - 50.0 if in_lap else DESK_EDGE_FORWARD + 40.0
    scroll = 0.0
    for e in ep.events:
        if e <= t < e + 0.5:
            scroll = 7.0 * math.sin(2 * math.pi * (t - e) * 2.0)
    wrist, _, _, _, pitch, _ = _hand_slots(side)
    p[wrist] = (side * 60.0, y + scroll, z)
    p[pitch] = 0.2
    if p[PHONE_HAND] == 3:
        w2, _, _, _, pitch2, _ = _hand_slots(-side)
        p[w2] = (-side * 60.0, y, z)
        p[pitch2] = 0.2
        return ARM_L | ARM_R | HEAD | TRUNK
    else:
        return _busy_arm(side) | HEAD | TRUNK


def _note_taking(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Writing, with a look up at the board every one to three seconds."""
    a = ep.amplitude
    tempo = ep.tempo
    side = ep.side
    p[PEN_HAND] = _hand_code(side)
    # Between an even and the next odd event the student looks up at the board.
    up = 0.0
    ev = ep.events
    for i in range(0, len(ev) - 1, 2):
        up = max(up, envelope(t, ev[i], 0.3 / tempo, ev[i + 1], 0.3 / tempo))
    write_pitch = 0.3 + 0.22 * ep.u(0)
    p[TRUNK_PITCH] += 0.13 + 0.1 * ep.u(1) - 0.05 * up
    p[HEAD_PITCH] += write_pitch * (1 - up)
    _look_at_lecturer(p, ctx, up)
    _write(p, side, t, tempo, a, 0.7 * (1 - up), 0.0)
    wrist, _, _, _, _, _ = _hand_slots(side)
    p[wrist.start + 1] += 15.0 * up
    _rest(p, -side, 165.0, DESK_EDGE_FORWARD + 200.0)
    return _busy_arm(side) | HEAD | TRUNK


def _drinking_water(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Reach for the cup, lift it to the mouth, drink with the head tilted back, put it down."""
    tempo = ep.tempo
    side = ep.side
    wrist, head_slot, head_w, elbow, pitch, _ = _hand_slots(side)
    reach = ep.events[0] if ep.events else ep.start
    t_reach, t_lift = 0.5 / tempo, (0.55 + 0.4 * ep.u(0)) / tempo
    t_drink = (1.0 + 1.8 * ep.u(1)) / tempo
    t_lower = 0.6 / tempo
    cup_spot = np.array([side * 210.0, DESK_Y + 45.0, DESK_EDGE_FORWARD + 200.0])
    rest = p[wrist].copy()
    k = t - reach
    lift_w = 0.0
    to_cup = 0.0
    if 0 <= k < t_reach:
        to_cup = smoothstep(k / t_reach)
    elif t_reach <= k < t_reach + t_lift:
        to_cup, lift_w = 1.0, smoothstep((k - t_reach) / t_lift)
    elif t_reach + t_lift <= k < t_reach + t_lift + t_drink:
        to_cup, lift_w = 1.0, 1.0
    elif t_reach + t_lift + t_drink <= k < t_reach + t_lift + t_drink + t_lower:
        to_cup, lift_w = 1.0, 1.0 - smoothstep((k - t_reach - t_lift - t_drink) / t_lower)
    elif t_reach + t_lift + t_drink + t_lower <= k < t_reach + t_lift + t_drink + t_lower + t_reach:
        to_cup = 1.0 - smoothstep((k - t_reach - t_lift - t_drink - t_lower) / t_reach)
    p[wrist] = rest + (cup_spot - rest) * to_cup
    p[head_slot] = (side * 25.0, -150.0, 135.0)
    p[head_w] = lift_w
    p[pitch] = 0.3 * (1 - lift_w) - 0.1 * lift_w
    p[elbow] = 0.25 * lift_w
    drinking = 1.0 if t_reach + t_lift * 0.7 <= k < t_reach + t_lift + t_drink else 0.0
    tilt = smoothstep(min(1.0, max(0.0, (k - t_reach - t_lift * 0.7) / 0.5))) * drinking
    p[HEAD_PITCH] -= (0.22 + 0.25 * ep.u(2)) * tilt
    p[CUP_HAND] = _hand_code(side) if to_cup > 0.5 else 0
    return _busy_arm(side) | HEAD


def _side_conversation(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Turned towards the neighbour, talking in bursts, sometimes gesturing."""
    a = ep.amplitude
    tempo = ep.tempo
    side = ep.side
    p[TRUNK_YAW] += side * (0.15 + 0.25 * ep.u(0))
    p[TRUNK_ROLL] += side * 0.04
    p[HEAD_YAW] += side * (0.55 + 0.45 * ep.u(1)) * min(a, 1.2)
    p[HEAD_PITCH] += 0.05 * ep.u(2)
    talking = 0.0
    gesture = 0.0
    for i, e in enumerate(ep.events):
        if e <= t < e + 1.1 / tempo:
            if i % 2 == 0:
                talking = 1.0
            elif ep.u(3) < 0.6:
                gesture = envelope(t, e, 0.3, e + 1.1 / tempo, 0.3)
    p[JAW] = talking * (0.5 + 0.5 * math.sin(2 * math.pi * 4.2 * tempo * t))
    p[HEAD_PITCH] += (1 - talking) * 0.05 * math.sin(2 * math.pi * 1.2 * t)
    wrist, _, _, _, pitch, _ = _hand_slots(side)
    rest = p[wrist].copy()
    g = np.array([side * 170.0, DESK_Y + 130.0, DESK_EDGE_FORWARD + 30.0])
    g[0] += 30.0 * math.sin(2 * math.pi * 1.6 * t)
    p[wrist] = rest + (g - rest) * gesture
    p[pitch] = 0.5 - 0.6 * gesture
    return HEAD | TRUNK | (_busy_arm(side) if gesture > 0 else 0)


def _upright_sitting(p: np.ndarray, ep: Episode, t: float, ctx: PoseContext) -> int:
    """Sitting back, staring at a fixed point; arms crossed, in the lap or resting."""
    p[TRUNK_PITCH] += -0.07 + 0.06 * ep.u(0)
    p[SHIFT_F] -= 20.0 + 15.0 * ep.u(1)
    p[HEAD_YAW] += -0.35 + 0.7 * ep.u(2)
    p[HEAD_PITCH] += -0.06 + 0.12 * ep.u(3)
    arms = ep.u(4)
    if arms < 0.35:  # arms crossed
        p[WRIST_L] = (125.0, 330.0, 150.0)
        p[WRIST_R] = (-125.0, 315.0, 165.0)
        p[ELBOW_OUT_L] = p[ELBOW_OUT_R] = 0.5
        p[HAND_PITCH_L] = p[HAND_PITCH_R] = 0.0
    elif arms < 0.6:  # hands in the lap, under the desk
        p[WRIST_L] = (-90.0, 95.0, 170.0)
        p[WRIST_R] = (90.0, 95.0, 170.0)
    return 0


_BEHAVIOUR_POSES: dict[int, Callable[[np.ndarray, Episode, float, PoseContext], int]] = {
    HAND_RAISING: _hand_raising,
    PAGE_TURNING: _page_turning,
    HEAD_DOWN_WRITING: _head_down_writing,
    CHIN_RESTING: _chin_resting,
    ATTENTIVE_LISTENING: _attentive_listening,
    PHONE_USAGE: _phone_usage,
    NOTE_TAKING: _note_taking,
    DRINKING_WATER: _drinking_water,
    SIDE_CONVERSATION: _side_conversation,
    UPRIGHT_SITTING: _upright_sitting,
}


def behaviour_pose(
    ep: Episode, t: float, profile: StudentProfile, ctx: PoseContext
) -> tuple[np.ndarray, int]:
    """Pose vector at time ``t`` and the limbs the behaviour keeps busy."""
    pose_of = _BEHAVIOUR_POSES.get(ep.behaviour)
    if pose_of is None:
        raise ValueError(f"unknown behaviour index {ep.behaviour} (expected 0..{len(BEHAVIOURS) - 1})")
    p = neutral_pose(profile)
    busy = pose_of(p, ep, t, ctx)
    return p, busy


def fidget_pose(p: np.ndarray, fidgets: tuple[Fidget, ...], t: float, busy: int) -> None:
    """Lay active distractor motions over pose ``p`` on limbs the behaviour leaves free."""
    for f in fidgets:
        if not (f.start <= t < f.start + f.duration):
            continue
        w = envelope(t, f.start, 0.3, f.start + f.duration, 0.3)
        if f.kind in ("scratch_head", "touch_face"):
            side = f.side if not busy & _busy_arm(f.side) else -f.side
            if busy & _busy_arm(side):
                continue
            _, head_slot, head_w, elbow, pitch, _ = _hand_slots(side)
            p[head_slot] = (
                (side * 60.0, 95.0, -10.0) if f.kind == "scratch_head" else (side * 62.0, -70.0, 55.0)
            )
            p[head_w] = max(p[head_w], w)
            p[pitch] = p[pitch] * (1 - w) - 0.3 * w
            p[elbow] += 0.3 * w
        elif f.kind == "stretch":
            if busy & (ARM_L | ARM_R | TRUNK):
                continue
            for side in (-1, 1):
                wrist, _, head_w, elbow, pitch, _ = _hand_slots(side)
                target = np.array([side * 230.0, 900.0, 40.0])
                p[wrist] = p[wrist] * (1 - w) + target * w
                p[head_w] *= 1 - w
                p[elbow] += 0.3 * w
            p[TRUNK_PITCH] -= 0.08 * w
        elif f.kind == "glance":
            if busy & HEAD:
                continue
            p[HEAD_YAW] += f.side * 0.6 * w
        elif f.kind == "look_down":
            if busy & HEAD:
                continue
            p[HEAD_PITCH] += 0.4 * w


def idle_motion(p: np.ndarray, t: float, profile: StudentProfile, scale: float) -> None:
    """Breathing and small postural sway every living student shows."""
    ph = profile.phases
    p[TRUNK_PITCH] += scale * 0.012 * math.sin(2 * math.pi * 0.27 * t + ph[0])
    p[HEAD_PITCH] += (
        scale
        * 0.025
        * (math.sin(2 * math.pi * 0.11 * t + ph[1]) + 0.5 * math.sin(2 * math.pi * 0.37 * t + ph[2]))
    )
    p[HEAD_YAW] += (
        scale
        * 0.03
        * (math.sin(2 * math.pi * 0.07 * t + ph[3]) + 0.5 * math.sin(2 * math.pi * 0.23 * t + ph[4]))
    )
    p[SHIFT_R] += scale * 6.0 * math.sin(2 * math.pi * 0.05 * t + ph[5])


def blend_poses(previous: np.ndarray, current: np.ndarray, weight: float) -> np.ndarray:
    """Interpolate continuous slots; discrete prop slots switch at the middle."""
    out = previous + (current - previous) * weight
    source = current if weight >= 0.5 else previous
    for slot in DISCRETE_SLOTS:
        out[slot] = source[slot]
    out[PAGE_FLIP] = current[PAGE_FLIP] if weight >= 0.5 else previous[PAGE_FLIP]
    out[BOOK_OPEN] = source[BOOK_OPEN]
    return out
