"""Seated students as articulated upper bodies: appearance, pose parameters, kinematics, primitives.

A student's pose is a flat vector of named parameters (``Pose``): trunk and head angles,
wrist targets (anchored to the seat or to the head, blended by a weight), elbow and hand
hints, prop state. Behaviours (behaviours.py) produce these vectors; this module turns a
stack of them into 3-D joints for all students at once (forward kinematics plus two-bone
IK for the arms), then into ellipsoids for the renderer and the 17 keypoints of
services/common/vocabulary.py.

Local frame of a student: x = the student's right, y = up, z = forward (the way they face),
millimetres, origin at the hip centre. Angles: trunk/head pitch > 0 leans forward/down,
roll > 0 leans to the right, yaw > 0 turns to the right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from services.common.vocabulary import KEYPOINT_INDEX, NUM_KEYPOINTS
from services.simulator.geometry import cross, orthonormal_basis
from services.simulator.raster import KIND_ELLIPSOID, Primitives

# --- pose parameter slots -------------------------------------------------------------------
SHIFT_R, SHIFT_F = 0, 1
TRUNK_PITCH, TRUNK_ROLL, TRUNK_YAW = 2, 3, 4
HEAD_PITCH, HEAD_YAW, HEAD_ROLL = 5, 6, 7
WRIST_L = slice(8, 11)  # seat-anchored target, local frame (mm, relative to the hip centre)
WRIST_L_HEAD = slice(11, 14)  # head-anchored target, head frame (mm, relative to the head centre)
WRIST_L_HEAD_W = 14
WRIST_R = slice(15, 18)
WRIST_R_HEAD = slice(18, 21)
WRIST_R_HEAD_W = 21
ELBOW_OUT_L, ELBOW_OUT_R = 22, 23
SHOULDER_RAISE_L, SHOULDER_RAISE_R = 24, 25
HAND_PITCH_L, HAND_PITCH_R = 26, 27
JAW = 28
# Prop state (continuous ones blend; discrete ones switch at the middle of a transition).
PAGE_FLIP = 29  # 0..1 progress of a page turning over, <= 0: no page in the air
PHONE_HAND = 30  # 0 on the desk, 1 left hand, 2 right hand, 3 both
PHONE_SCREEN = 31  # 0 off, 1 lit
CUP_HAND = 32  # 0 on the desk, 1 left, 2 right
PEN_HAND = 33  # 0 on the desk, 1 left, 2 right
BOOK_OPEN = 34  # 0 closed, 1 open
ELBOW_FWD_L, ELBOW_FWD_R = 35, 36  # swing the elbow forward (an elbow propped on the desk)
NUM_POSE = 37
DISCRETE_SLOTS = (PHONE_HAND, PHONE_SCREEN, CUP_HAND, PEN_HAND, BOOK_OPEN)

# Seat geometry shared with the classroom model (mm).
SEAT_HEIGHT = 460.0  # seat surface above the floor
HIP_ABOVE_SEAT = 90.0  # hip joint centre above the seat surface
DESK_TOP_ABOVE_HIP = 740.0 - SEAT_HEIGHT - HIP_ABOVE_SEAT  # desk top relative to the hip centre
DESK_EDGE_FORWARD = 240.0  # the desk's near edge, forward of the hip centre
DESK_DEPTH = 480.0

# Body part codes (Primitives.part); props use codes >= 100.
PART_HEAD, PART_JAW, PART_NOSE, PART_HAIR, PART_EYE, PART_EAR, PART_NECK = 1, 2, 3, 4, 5, 6, 7
PART_TORSO, PART_ABDOMEN, PART_SHOULDER, PART_UPPER_ARM, PART_FOREARM, PART_HAND = 8, 9, 10, 11, 12, 13

# Materials a student owns, in this order, from the student's first material row.
MAT_SKIN, MAT_HAIR, MAT_SHIRT, MAT_EYE, MAT_SLEEVE_END, MAT_HAND, MAT_CUP, MAT_COVER = 0, 1, 2, 3, 4, 5, 6, 7
MATERIALS_PER_STUDENT = 8

# Skin tones (linear RGB reflectance), from light to dark.
SKIN_TONES = np.array(
    [
        [0.62, 0.44, 0.36],
        [0.55, 0.38, 0.29],
        [0.47, 0.31, 0.22],
        [0.38, 0.24, 0.16],
        [0.26, 0.16, 0.10],
        [0.16, 0.10, 0.07],
    ]
)
HAIR_COLOURS = np.array(
    [
        [0.02, 0.02, 0.02],
        [0.05, 0.03, 0.02],
        [0.12, 0.07, 0.04],
        [0.30, 0.20, 0.10],
        [0.45, 0.35, 0.20],
        [0.35, 0.35, 0.35],
    ]
)


@dataclass(frozen=True)
class StudentProfile:
    """Who a student is: body size, looks, skin temperature and movement style."""

    student_id: str
    scale: float  # overall body size
    head_scale: float
    shoulder_half_width: float  # mm
    trunk_length: float  # hip centre to neck base, mm
    upper_arm: float
    forearm: float
    girth: float  # torso width/depth factor
    skin_rgb: tuple[float, float, float]
    hair_rgb: tuple[float, float, float]
    shirt_rgb: tuple[float, float, float]
    long_sleeves: bool
    long_hair: bool
    face_temperature_c: float  # core facial skin temperature
    hand_temperature_drop_c: float  # hands are cooler than the face
    clothing_insulation: float  # 0: clothing at skin temperature, 1: at room temperature
    handedness: int  # +1 right-handed, -1 left-handed
    tempo: float  # personal speed factor for every periodic motion
    amplitude: float  # personal motion amplitude factor
    slouch: float  # habitual forward lean, rad
    head_tilt: float  # habitual head pitch, rad
    fidgetiness: float  # multiplies the fidget rate
    phases: tuple[float, ...] = field(default=(0.0,) * 8)  # personal phases for idle motion


def random_profile(rng: np.random.Generator, student_id: str, size_spread: float = 0.12) -> StudentProfile:
    """A plausible undergraduate: sizes, colours and skin temperature drawn from ``rng``."""
    scale = float(np.clip(1.0 + rng.normal(0.0, size_spread / 2), 1 - size_spread, 1 + size_spread))
    shirt_palette = np.array(
        [
            [0.05, 0.05, 0.06],
            [0.60, 0.60, 0.62],
            [0.08, 0.12, 0.35],
            [0.35, 0.05, 0.05],
            [0.10, 0.30, 0.12],
            [0.55, 0.45, 0.30],
            [0.20, 0.20, 0.22],
            [0.70, 0.55, 0.10],
            [0.30, 0.10, 0.35],
            [0.15, 0.35, 0.50],
        ]
    )
    shirt = shirt_palette[rng.integers(len(shirt_palette))] * rng.uniform(0.8, 1.15)
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1)
    hair = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=[0.35, 0.25, 0.18, 0.1, 0.07, 0.05])]
    return StudentProfile(
        student_id=student_id,
        scale=scale,
        head_scale=float(np.clip(1.0 + rng.normal(0, 0.04), 0.92, 1.08)),
        shoulder_half_width=float(185.0 * scale * rng.uniform(0.9, 1.1)),
        trunk_length=float(500.0 * scale * rng.uniform(0.94, 1.06)),
        upper_arm=float(290.0 * scale * rng.uniform(0.95, 1.05)),
        forearm=float(255.0 * scale * rng.uniform(0.95, 1.05)),
        girth=float(rng.uniform(0.88, 1.2)),
        skin_rgb=tuple(float(v) for v in np.clip(skin, 0.03, 0.9)),  # type: ignore[arg-type]
        hair_rgb=tuple(float(v) for v in hair),  # type: ignore[arg-type]
        shirt_rgb=tuple(float(v) for v in np.clip(shirt, 0.02, 0.9)),  # type: ignore[arg-type]
        long_sleeves=bool(rng.random() < 0.6),
        long_hair=bool(rng.random() < 0.4),
        face_temperature_c=float(np.clip(rng.normal(34.4, 0.5), 33.2, 35.6)),
        hand_temperature_drop_c=float(rng.uniform(1.0, 3.5)),
        clothing_insulation=float(rng.uniform(0.4, 0.7)),
        handedness=1 if rng.random() < 0.88 else -1,
        tempo=float(np.exp(rng.normal(0.0, 0.15))),
        amplitude=float(np.exp(rng.normal(0.0, 0.12))),
        slouch=float(rng.normal(0.04, 0.05)),
        head_tilt=float(rng.normal(0.0, 0.06)),
        fidgetiness=float(np.exp(rng.normal(0.0, 0.4))),
        phases=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 8)),
    )


def neutral_pose(profile: StudentProfile) -> np.ndarray:
    """Sitting upright, forearms resting on the desk, looking ahead."""
    p = np.zeros(NUM_POSE)
    p[TRUNK_PITCH] = profile.slouch
    p[HEAD_PITCH] = profile.head_tilt
    desk_y = DESK_TOP_ABOVE_HIP + 35.0
    p[WRIST_L] = (-150.0, desk_y, DESK_EDGE_FORWARD + 120.0)
    p[WRIST_R] = (150.0, desk_y, DESK_EDGE_FORWARD + 120.0)
    p[HAND_PITCH_L] = p[HAND_PITCH_R] = 0.5
    p[BOOK_OPEN] = 1.0
    return p


# --- vectorised rotations ---------------------------------------------------------------------


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def body_rotation(pitch: np.ndarray, roll: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Local rotation [S, 3, 3]: yaw to the right, then pitch forward, then roll to the right."""
    # In the local frame (x right, y up, z forward): R_x(+a) tips y toward +z (forward lean),
    # R_z(-a) tips y toward +x (right lean), R_y(+a) turns z toward +x (right turn).
    return _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(-roll)


# --- profiles as arrays -------------------------------------------------------------------------


@dataclass
class BodyArrays:
    """The numbers of a list of profiles stacked for vectorised kinematics."""

    scale: np.ndarray
    head_scale: np.ndarray
    shoulder: np.ndarray
    trunk: np.ndarray
    upper_arm: np.ndarray
    forearm: np.ndarray
    girth: np.ndarray
    long_hair: np.ndarray

    @classmethod
    def of(cls, profiles: list[StudentProfile]) -> BodyArrays:
        return cls(
            scale=np.array([p.scale for p in profiles]),
            head_scale=np.array([p.head_scale for p in profiles]),
            shoulder=np.array([p.shoulder_half_width for p in profiles]),
            trunk=np.array([p.trunk_length for p in profiles]),
            upper_arm=np.array([p.upper_arm for p in profiles]),
            forearm=np.array([p.forearm for p in profiles]),
            girth=np.array([p.girth for p in profiles]),
            long_hair=np.array([p.long_hair for p in profiles]),
        )


@dataclass
class Skeletons:
    """World-space joints of S students (mm) and the frames that orient their parts."""

    hip: np.ndarray  # [S, 3]
    basis: np.ndarray  # [S, 3, 3] seat frame, columns = right, up, forward (world)
    trunk: np.ndarray  # [S, 3, 3] trunk frame (world)
    head: np.ndarray  # [S, 3, 3] head frame (world)
    neck_base: np.ndarray
    head_pivot: np.ndarray
    head_centre: np.ndarray
    shoulders: np.ndarray  # [S, 2, 3] left, right
    elbows: np.ndarray  # [S, 2, 3]
    wrists: np.ndarray  # [S, 2, 3]
    hand_dir: np.ndarray  # [S, 2, 3] unit
    hands: np.ndarray  # [S, 2, 3] hand centres
    keypoints: np.ndarray  # [S, 17, 3]
    jaw: np.ndarray  # [S]


# Face landmarks in the head frame (mm at head_scale 1, relative to the head centre).
_FACE = {
    "head_top": (0.0, 108.0, -5.0),
    "nose": (0.0, -20.0, 100.0),
    "chin": (0.0, -101.0, 52.0),
    "left_eye": (-32.0, 16.0, 83.0),
    "right_eye": (32.0, 16.0, 83.0),
    "left_ear": (-76.0, -2.0, -6.0),
    "right_ear": (76.0, -2.0, -6.0),
}

# How far below the visible surface (toward the camera) each keypoint can lie and still count
# as visible: landmarks sit on the surface, joints sit inside limbs.
KEYPOINT_DEPTH_TOLERANCE_MM = np.array(
    [
        {
            "head_top": 30,
            "nose": 25,
            "chin": 30,
            "left_eye": 22,
            "right_eye": 22,
            "left_ear": 35,
            "right_ear": 35,
            "neck": 60,
            "left_shoulder": 75,
            "right_shoulder": 75,
            "left_elbow": 60,
            "right_elbow": 60,
            "left_wrist": 50,
            "right_wrist": 50,
            "left_hand": 40,
            "right_hand": 40,
            "chest": 30,
        }[name]
        for name in KEYPOINT_INDEX
    ],
    dtype=np.float32,
)


def _apply(frames: np.ndarray, local: np.ndarray) -> np.ndarray:
    """frames [S, 3, 3] (columns = axes) times local vectors [S, 3] or [3]."""
    return np.einsum("sij,sj->si", frames, np.broadcast_to(local, (frames.shape[0], 3)))


def _two_bone_ik(
    shoulder: np.ndarray, target: np.ndarray, l1: np.ndarray, l2: np.ndarray, pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and reachable wrist for arms [N] reaching from ``shoulder`` toward ``target``."""
    d = target - shoulder
    dist = np.linalg.norm(d, axis=1)
    reach = np.clip(dist, np.abs(l1 - l2) + 1.0, l1 + l2 - 1.0)
    axis = d / np.maximum(dist, 1e-6)[:, None]
    wrist = shoulder + axis * reach[:, None]
    along = (l1 * l1 - l2 * l2 + reach * reach) / (2.0 * reach)
    height = np.sqrt(np.maximum(l1 * l1 - along * along, 0.0))
    perp = pole - (pole * axis).sum(1, keepdims=True) * axis
    norm = np.linalg.norm(perp, axis=1, keepdims=True)
    fallback, _ = orthonormal_basis(axis)
    perp = np.where(norm > 1e-6, perp / np.maximum(norm, 1e-9), fallback)
    elbow = shoulder + axis * along[:, None] + perp * height[:, None]
    return elbow, wrist


def pose_skeletons(body: BodyArrays, hip: np.ndarray, basis: np.ndarray, pose: np.ndarray) -> Skeletons:
    """Forward kinematics for S students: hip centres [S, 3], seat frames [S, 3, 3], poses [S, NUM_POSE]."""
    s = len(hip)
    hip = hip + _apply(basis, np.stack([pose[:, SHIFT_R], np.zeros(s), pose[:, SHIFT_F]], 1))
    trunk = basis @ body_rotation(pose[:, TRUNK_PITCH], pose[:, TRUNK_ROLL], pose[:, TRUNK_YAW])
    head = trunk @ body_rotation(pose[:, HEAD_PITCH], pose[:, HEAD_ROLL], pose[:, HEAD_YAW])
    neck_base, head_pivot, head_centre = _neck_and_head(body, hip, trunk, head)
    shoulders = _shoulders(body, hip, trunk, pose)
    targets = _wrist_targets(body, hip, basis, head, head_centre, pose)
    elbows, wrists = _reach(body, basis, shoulders, targets, pose)
    hand_dir = _hand_directions(basis, elbows, wrists, pose)
    sk = Skeletons(
        hip=hip,
        basis=basis,
        trunk=trunk,
        head=head,
        neck_base=neck_base,
        head_pivot=head_pivot,
        head_centre=head_centre,
        shoulders=shoulders,
        elbows=elbows,
        wrists=wrists,
        hand_dir=hand_dir,
        hands=wrists + hand_dir * (70.0 * body.scale)[:, None, None],
        keypoints=np.empty((s, NUM_KEYPOINTS, 3)),
        jaw=np.clip(pose[:, JAW], 0.0, 1.0),
    )
    _place_keypoints(body, sk)
    return sk


def _neck_and_head(
    body: BodyArrays, hip: np.ndarray, trunk: np.ndarray, head: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The neck's base, the head's pivot and the head's centre [S, 3] up the trunk."""
    zeros = np.zeros(len(hip))
    neck_base = hip + _apply(trunk, np.stack([zeros, body.trunk, zeros], 1))
    head_pivot = neck_base + _apply(trunk, np.stack([zeros, 95.0 * body.scale, 12.0 * body.scale], 1))
    hs = body.head_scale
    head_centre = head_pivot + _apply(head, np.stack([zeros, 72.0 * hs, 18.0 * hs], 1))
    return neck_base, head_pivot, head_centre


def _shoulders(body: BodyArrays, hip: np.ndarray, trunk: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Left and right shoulders [S, 2, 3], each raised by its pose slot."""
    zeros = np.zeros(len(hip))
    shoulders = np.empty((len(hip), 2, 3))
    for side, sign, raise_slot in ((0, -1.0, SHOULDER_RAISE_L), (1, 1.0, SHOULDER_RAISE_R)):
        local = np.stack(
            [sign * body.shoulder, body.trunk - 45.0 * body.scale + pose[:, raise_slot], -10.0 + zeros], 1
        )
        shoulders[:, side] = hip + _apply(trunk, local)
    return shoulders


def _wrist_targets(
    body: BodyArrays,
    hip: np.ndarray,
    basis: np.ndarray,
    head: np.ndarray,
    head_centre: np.ndarray,
    pose: np.ndarray,
) -> np.ndarray:
    """Where each wrist reaches [S, 2, 3]: its seat-anchored target blended toward its head-anchored one."""
    hs = body.head_scale
    targets = np.empty((len(hip), 2, 3))
    for side, seat_slot, head_slot, w_slot in (
        (0, WRIST_L, WRIST_L_HEAD, WRIST_L_HEAD_W),
        (1, WRIST_R, WRIST_R_HEAD, WRIST_R_HEAD_W),
    ):
        seat_target = hip + _apply(basis, pose[:, seat_slot])
        head_target = head_centre + _apply(head, pose[:, head_slot] * hs[:, None])
        w = np.clip(pose[:, w_slot], 0.0, 1.0)[:, None]
        targets[:, side] = seat_target * (1.0 - w) + head_target * w
    return targets


def _reach(
    body: BodyArrays, basis: np.ndarray, shoulders: np.ndarray, targets: np.ndarray, pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Elbows and wrists [S, 2, 3] of both arms reaching from the shoulders toward the targets."""
    s = len(shoulders)
    up = basis[:, :, 1]
    right = basis[:, :, 0]
    fwd = basis[:, :, 2]
    poles = np.empty((s, 2, 3))
    for side, sign, slot, fwd_slot in (
        (0, -1.0, ELBOW_OUT_L, ELBOW_FWD_L),
        (1, 1.0, ELBOW_OUT_R, ELBOW_FWD_R),
    ):
        out = pose[:, slot][:, None]
        forward = pose[:, fwd_slot][:, None]
        # Elbows hang down and back, swing outward with ELBOW_OUT (a raised arm) and forward
        # with ELBOW_FWD (an elbow propped on the desk).
        poles[:, side] = -up * 0.8 + fwd * (forward - 0.35) + right * sign * (0.35 + out)
    l1 = np.repeat(body.upper_arm, 2)
    l2 = np.repeat(body.forearm, 2)
    elbows, wrists = _two_bone_ik(
        shoulders.reshape(-1, 3), targets.reshape(-1, 3), l1, l2, poles.reshape(-1, 3)
    )
    return elbows.reshape(s, 2, 3), wrists.reshape(s, 2, 3)


def _hand_directions(
    basis: np.ndarray, elbows: np.ndarray, wrists: np.ndarray, pose: np.ndarray
) -> np.ndarray:
    """Unit directions of the hands [S, 2, 3]: the forearm's, pitched down by the hand-pitch slots."""
    up = basis[:, :, 1]
    fwd = basis[:, :, 2]
    forearm_dir = wrists - elbows
    forearm_dir /= np.linalg.norm(forearm_dir, axis=2, keepdims=True)
    down = np.broadcast_to(-up[:, None, :], forearm_dir.shape)
    down_perp = down - (down * forearm_dir).sum(2, keepdims=True) * forearm_dir
    dn = np.linalg.norm(down_perp, axis=2, keepdims=True)
    down_perp = np.where(
        dn > 1e-6, down_perp / np.maximum(dn, 1e-9), np.broadcast_to(fwd[:, None, :], (*dn.shape[:2], 3))
    )
    pitch = np.stack([pose[:, HAND_PITCH_L], pose[:, HAND_PITCH_R]], 1)[:, :, None]
    return forearm_dir * np.cos(pitch) + down_perp * np.sin(pitch)


def _place_keypoints(body: BodyArrays, sk: Skeletons) -> None:
    """Fill ``sk.keypoints``: face landmarks in the head frame, neck and chest on the trunk, the arm joints."""
    hs = body.head_scale
    zeros = np.zeros(len(sk.hip))
    keypoints = sk.keypoints
    for name, face_local in _FACE.items():
        keypoints[:, KEYPOINT_INDEX[name]] = sk.head_centre + _apply(
            sk.head, np.asarray(face_local) * hs[:, None]
        )
    keypoints[:, KEYPOINT_INDEX["chin"]] -= sk.head[:, :, 1] * (sk.jaw * 12.0)[:, None]
    keypoints[:, KEYPOINT_INDEX["neck"]] = sk.neck_base + _apply(
        sk.trunk, np.stack([zeros, zeros + 10.0, 30.0 * body.scale], 1)
    )
    keypoints[:, KEYPOINT_INDEX["chest"]] = sk.hip + _apply(
        sk.trunk, np.stack([zeros, 0.66 * body.trunk, 100.0 * body.girth * body.scale], 1)
    )
    for side, prefix in ((0, "left"), (1, "right")):
        keypoints[:, KEYPOINT_INDEX[f"{prefix}_shoulder"]] = sk.shoulders[:, side]
        keypoints[:, KEYPOINT_INDEX[f"{prefix}_elbow"]] = sk.elbows[:, side]
        keypoints[:, KEYPOINT_INDEX[f"{prefix}_wrist"]] = sk.wrists[:, side]
        keypoints[:, KEYPOINT_INDEX[f"{prefix}_hand"]] = sk.hands[:, side]


def _segment_axes(
    a: np.ndarray, b: np.ndarray, radius: np.ndarray, overlap: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """Ellipsoids spanning segments a->b [N, 3] with cross radius [N]: (centres, axes)."""
    d = b - a
    length = np.linalg.norm(d, axis=1)
    axis = d / np.maximum(length, 1e-6)[:, None]
    e1, e2 = orthonormal_basis(axis)
    half = length / 2.0 + overlap * radius
    axes = np.stack([e1 * radius[:, None], e2 * radius[:, None], axis * half[:, None]], axis=2)
    return (a + b) / 2.0, axes


def _oriented_axes(frames: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Axes [N, 3, 3] of ellipsoids aligned with ``frames`` [N, 3, 3] with semi-axes [N, 3]."""
    return frames * semi[:, None, :]


class _Part(NamedTuple):
    """One ellipsoid of every student: centres [S, 3], axes [S, 3, 3], material offset, part code."""

    centre: np.ndarray
    axes: np.ndarray
    material: int
    part: int


def body_primitives(
    body: BodyArrays, sk: Skeletons, material_base: np.ndarray, owners: np.ndarray
) -> Primitives:
    """The ellipsoids of S students (about 19 each); ``material_base[s]`` is the student's first material."""
    head, long_hair_slot = _head_parts(body, sk)
    parts = [*head, *_neck_and_trunk_parts(body, sk), *_arm_parts(body, sk, 0), *_arm_parts(body, sk, 1)]
    # Only long-haired students keep the hair that falls down the back.
    keep: np.ndarray = np.ones((len(sk.hip), len(parts)), bool)
    keep[:, long_hair_slot] = body.long_hair
    return _student_major(parts, keep, material_base, owners)


def _head_parts(body: BodyArrays, sk: Skeletons) -> tuple[list[_Part], int]:
    """Head, jaw, nose, hair, eyes and ears, placed in the head frame; and the long hair's slot."""
    hs = body.head_scale

    def head_point(local: tuple[float, float, float]) -> np.ndarray:
        return sk.head_centre + _apply(sk.head, np.asarray(local) * hs[:, None])

    def head_semi(v: tuple[float, float, float]) -> np.ndarray:
        return _oriented_axes(sk.head, np.asarray(v) * hs[:, None])

    jaw_drop = (sk.jaw * 10.0)[:, None]
    parts = [
        _Part(head_point((0.0, 10.0, 0.0)), head_semi((72.0, 100.0, 90.0)), MAT_SKIN, PART_HEAD),
        # Lower face and jaw; it drops a little while talking.
        _Part(
            head_point((0.0, -52.0, 22.0)) - sk.head[:, :, 1] * jaw_drop,
            head_semi((58.0, 56.0, 66.0)),
            MAT_SKIN,
            PART_JAW,
        ),
        _Part(head_point((0.0, -14.0, 90.0)), head_semi((13.0, 22.0, 16.0)), MAT_SKIN, PART_NOSE),
        _Part(head_point((0.0, 24.0, -10.0)), head_semi((76.0, 96.0, 93.0)), MAT_HAIR, PART_HAIR),
    ]
    long_hair_slot = len(parts)
    parts.append(_Part(head_point((0.0, -25.0, -32.0)), head_semi((84.0, 150.0, 82.0)), MAT_HAIR, PART_HAIR))
    for x in (-32.0, 32.0):
        parts.append(_Part(head_point((x, 16.0, 80.0)), head_semi((11.0, 6.0, 6.0)), MAT_EYE, PART_EYE))
    for x in (-72.0, 72.0):
        parts.append(_Part(head_point((x, -2.0, -6.0)), head_semi((10.0, 28.0, 16.0)), MAT_SKIN, PART_EAR))
    return parts, long_hair_slot


def _neck_and_trunk_parts(body: BodyArrays, sk: Skeletons) -> list[_Part]:
    """The neck up to the head's pivot, then the torso and the abdomen in the trunk frame."""
    s = len(sk.hip)
    sc = body.scale
    g = body.girth
    c, a = _segment_axes(sk.neck_base, sk.head_pivot + sk.head[:, :, 1] * 10.0, 50.0 * sc, overlap=0.2)
    torso_semi = np.stack([body.shoulder * 0.9, 0.36 * body.trunk, 105.0 * g * sc], 1)
    abdomen_semi = np.stack([body.shoulder * 0.8 * g, 0.34 * body.trunk, 100.0 * g * sc], 1)
    return [
        _Part(c, a, MAT_SKIN, PART_NECK),
        _Part(
            sk.hip + _apply(sk.trunk, np.stack([np.zeros(s), 0.64 * body.trunk, np.zeros(s)], 1)),
            _oriented_axes(sk.trunk, torso_semi),
            MAT_SHIRT,
            PART_TORSO,
        ),
        _Part(
            sk.hip + _apply(sk.trunk, np.stack([np.zeros(s), 0.27 * body.trunk, 5.0 + np.zeros(s)], 1)),
            _oriented_axes(sk.trunk, abdomen_semi),
            MAT_SHIRT,
            PART_ABDOMEN,
        ),
    ]


def _arm_parts(body: BodyArrays, sk: Skeletons, side: int) -> list[_Part]:
    """Shoulder, upper arm, forearm and hand of one side (0 left, 1 right)."""
    sc = body.scale
    sphere = np.eye(3)[None] * (58.0 * sc)[:, None, None]
    upper_c, upper_a = _segment_axes(sk.shoulders[:, side], sk.elbows[:, side], 47.0 * sc)
    fore_c, fore_a = _segment_axes(sk.elbows[:, side], sk.wrists[:, side], 37.0 * sc)
    # Hand: flat ellipsoid along the hand direction, palm facing the forearm's down side.
    d = sk.hand_dir[:, side]
    across = cross(d, sk.basis[:, :, 1])
    n = np.linalg.norm(across, axis=1, keepdims=True)
    across = np.where(n > 1e-6, across / np.maximum(n, 1e-9), sk.basis[:, :, 0])
    thick = cross(d, across)
    frame = np.stack([across, thick, d], axis=2)
    return [
        _Part(sk.shoulders[:, side], sphere, MAT_SHIRT, PART_SHOULDER),
        _Part(upper_c, upper_a, MAT_SHIRT, PART_UPPER_ARM),
        _Part(fore_c, fore_a, MAT_SLEEVE_END, PART_FOREARM),
        _Part(
            sk.wrists[:, side] + d * (62.0 * sc)[:, None],
            _oriented_axes(frame, np.stack([42.0 * sc, 22.0 * sc, 62.0 * sc], 1)),
            MAT_HAND,
            PART_HAND,
        ),
    ]


def _student_major(
    parts: list[_Part], keep: np.ndarray, material_base: np.ndarray, owners: np.ndarray
) -> Primitives:
    """The parts of every student, student by student, less those ``keep`` [S, parts] drops."""
    s, count = keep.shape
    centre = np.stack([p.centre for p in parts], axis=1).reshape(-1, 3)
    axis_arr = np.stack([p.axes for p in parts], axis=1).reshape(-1, 3, 3)
    material = np.stack([material_base + p.material for p in parts], axis=1).reshape(-1).astype(np.int32)
    part = np.tile(np.asarray([p.part for p in parts], np.int16), s)
    owner = np.repeat(np.asarray(owners, np.int32), count)
    kept = keep.reshape(-1)
    return Primitives(
        kind=np.full(int(kept.sum()), KIND_ELLIPSOID, np.int8),
        centre=centre[kept],
        axes=axis_arr[kept],
        material=material[kept],
        owner=owner[kept],
        part=part[kept],
    )
