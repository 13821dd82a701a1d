"""Seated-student kinematics: rotations, two-bone IK, keypoints on the body."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.vocabulary import KEYPOINT_INDEX
from services.simulator.behaviours import (
    HAND_RAISING,
    UPRIGHT_SITTING,
    PoseContext,
    behaviour_pose,
    sample_episode,
)
from services.simulator.body import (
    WRIST_R,
    BodyArrays,
    _two_bone_ik,
    body_primitives,
    body_rotation,
    neutral_pose,
    pose_skeletons,
    random_profile,
)
from services.simulator.classroom import ROOMS, room_seats


def test_body_rotation_signs():
    # Forward lean tips the trunk's up axis toward forward (+z); roll to the right tips it toward +x;
    # a right turn swings forward toward +x.
    a = 0.3
    up = np.array([0.0, 1.0, 0.0])
    fwd = np.array([0.0, 0.0, 1.0])
    zero = np.zeros(1)
    np.testing.assert_allclose(
        body_rotation(np.array([a]), zero, zero)[0] @ up, [0, np.cos(a), np.sin(a)], atol=1e-12
    )
    np.testing.assert_allclose(
        body_rotation(zero, np.array([a]), zero)[0] @ up, [np.sin(a), np.cos(a), 0], atol=1e-12
    )
    np.testing.assert_allclose(
        body_rotation(zero, zero, np.array([a]))[0] @ fwd, [np.sin(a), 0, np.cos(a)], atol=1e-12
    )


def test_two_bone_ik_keeps_bone_lengths_and_reaches_reachable_targets():
    shoulder = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = np.array([[300.0, -200.0, 250.0], [2000.0, 0.0, 0.0]])  # second one is out of reach
    l1 = np.array([290.0, 290.0])
    l2 = np.array([255.0, 255.0])
    pole = np.array([[0.0, -1.0, 0.0], [0.0, -1.0, 0.0]])
    elbow, wrist = _two_bone_ik(shoulder, target, l1, l2, pole)
    np.testing.assert_allclose(np.linalg.norm(elbow - shoulder, axis=1), l1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(wrist - elbow, axis=1), l2, atol=1e-9)
    np.testing.assert_allclose(wrist[0], target[0], atol=1e-9)
    # Out of reach: the arm points straight at the target, 1 mm short of full extension.
    np.testing.assert_allclose(wrist[1], [544.0, 0.0, 0.0], atol=1e-9)
    assert elbow[0, 1] < (shoulder[0, 1] + wrist[0, 1]) / 2  # bent toward the pole (down)


def _skeleton(behaviour: int, t: float = 1.5):
    rng = np.random.default_rng(4)
    prof = random_profile(rng, "S01")
    ep = sample_episode(rng, behaviour, prof, 0.0, 10.0, tempo_spread=0.0, amplitude_spread=0.0)
    pose, _ = behaviour_pose(ep, t, prof, PoseContext())
    seat = room_seats(ROOMS["small"])[0]
    body = BodyArrays.of([prof])
    return prof, body, pose_skeletons(body, seat.hip[None], seat.basis[None], pose[None]), pose


def test_raised_hand_is_above_the_head():
    _, _, sk, _ = _skeleton(HAND_RAISING, t=3.0)
    wrists_y = sk.wrists[0, :, 1]
    assert wrists_y.max() > sk.keypoints[0, KEYPOINT_INDEX["head_top"], 1] - 80.0
    _, _, rest, _ = _skeleton(UPRIGHT_SITTING)
    assert rest.wrists[0, :, 1].max() < rest.keypoints[0, KEYPOINT_INDEX["chin"], 1]


def test_neutral_wrists_reach_the_desk():
    prof = random_profile(np.random.default_rng(1), "S01")
    seat = room_seats(ROOMS["small"])[0]
    pose = neutral_pose(prof)
    sk = pose_skeletons(BodyArrays.of([prof]), seat.hip[None], seat.basis[None], pose[None])
    target = seat.hip + seat.basis @ pose[WRIST_R]
    np.testing.assert_allclose(sk.wrists[0, 1], target, atol=1e-6)


@pytest.mark.parametrize("behaviour", range(10))
def test_keypoints_lie_in_or_on_the_students_own_ellipsoids(behaviour: int):
    _, body, sk, _ = _skeleton(behaviour)
    prims = body_primitives(body, sk, np.array([30]), np.array([0]))
    kp = sk.keypoints[0]
    inv = np.linalg.inv(prims.axes)
    local = np.einsum("pij,kpj->kpi", inv, kp[:, None, :] - prims.centre[None])
    radius = np.linalg.norm(local, axis=2).min(axis=1)  # < 1: inside the nearest ellipsoid
    # Landmarks sit on the surface, joints inside limbs; allow 15% for surface points.
    assert (radius <= 1.15).all(), dict(zip(KEYPOINT_INDEX, radius.round(2), strict=True))
