"""The simulator's output, pinned to the bit: poses, props, rendered frames and a data-set window.

Training data caches are keyed by ``RENDER_VERSION`` (services/dataset/virtual.py), not by the
code: a change that moves any value here silently mixes old and new frames in a cache. A
refactor must leave these digests as they are. A change meant to alter the output bumps
``RENDER_VERSION`` and updates the digests in the same commit.

The digests were the same with numpy 2.3.5 and 2.4.6 (the simulator needs numpy >= 2 for
``np.vecdot``); they also depend on OpenCV, which draws parts of the sensors' images.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from services.dataset.virtual import PRESETS, RENDER_VERSION, VirtualDataset
from services.simulator.behaviours import (
    PoseContext,
    behaviour_pose,
    fidget_pose,
    idle_motion,
    sample_episode,
    sample_fidgets,
)
from services.simulator.body import random_profile
from services.simulator.classroom import ROOMS
from services.simulator.config import Conditions, SimConfig
from services.simulator.session import build_live_scene

FRAME_FIELDS = ("rgb", "depth_mm", "thermal_c", "reference_rgb", "reference_depth_mm", "reference_thermal_c")
PRIMITIVE_FIELDS = ("kind", "centre", "axes", "material", "owner", "part")

# Digests of the output before issue 21's refactor of props.py, behaviours.py and raster.py.
GOLDEN: dict[str, object] = {
    "render_version": 1,
    "poses": "19ddcd1cc7d12b2c49ddef01",
    "props": "d25df2b5dfb1fd593d06db1c",
    "frames": "be61b5d3382446cd732cf602",
    "frames_hard": "59cdf93fae943b796d252d14",
    "window_tiny": "04ba534a206780f6126fc1c4",
    "window_crowd": "ea76244facb42aafe73fa944",
}


class Digest:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def array(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        self.sha.update(f"{a.dtype}{a.shape}".encode())
        self.sha.update(a.tobytes())

    def json(self, obj: object) -> None:
        self.sha.update(json.dumps(obj, sort_keys=True, default=str).encode())

    def hex(self) -> str:
        return self.sha.hexdigest()[:24]


def poses_digest() -> str:
    """Every behaviour, both hands, with and without a target window, with fidgets and idle motion."""
    digest = Digest()
    for seed in range(6):
        rng = np.random.default_rng([seed, 5])
        profile = random_profile(rng, f"p{seed}")
        ctx = PoseContext(lecturer_yaw=float(rng.uniform(-0.5, 0.5)), neighbour_side=1 if seed % 3 else -1)
        for behaviour in range(10):
            episode = sample_episode(
                rng,
                behaviour,
                profile,
                1.0,
                12.0,
                tempo_spread=0.2,
                amplitude_spread=0.2,
                window=(4.0, 6.0) if seed % 2 else None,
                neighbour_side=ctx.neighbour_side,
            )
            fidgets = sample_fidgets(rng, 0.0, 14.0, 6.0, profile)
            for t in np.arange(0.0, 14.0, 0.125):
                pose, busy = behaviour_pose(episode, float(t), profile, ctx)
                fidget_pose(pose, fidgets, float(t), busy)
                idle_motion(pose, float(t), profile, 1.0)
                digest.array(pose)
                digest.json(busy)
    return digest.hex()


def props_digest() -> str:
    """Two minutes of a lecture: held pens, phones in one or both hands, cups, turning pages."""
    digest = Digest()
    scene = build_live_scene(
        seed=21, students=12, config=SimConfig(), conditions=Conditions(), room=ROOMS["small"]
    )
    for t in np.arange(0.0, 120.0, 0.7):
        prims, skeletons, poses, labels, moving = scene._dynamic([float(t)])[0]
        for name in PRIMITIVE_FIELDS:
            digest.array(getattr(prims, name))
        digest.array(skeletons.keypoints)
        digest.array(poses)
        digest.json([labels, moving])
    return digest.hex()


def frames_digest(conditions: Conditions) -> str:
    digest = Digest()
    scene = build_live_scene(
        seed=11, students=12, config=SimConfig(), conditions=conditions, room=ROOMS["small"]
    )
    for t in (12.0, 55.5):
        frame = scene.render(t, np.random.default_rng([11, int(t * 10)]), references=True, debug=True)
        for name in FRAME_FIELDS:
            digest.array(getattr(frame, name))
        digest.json(frame.annotations)
    return digest.hex()


def window_digest(preset: str, index: int) -> str:
    digest = Digest()
    dataset = VirtualDataset(PRESETS[preset], seed=4)
    info, frames = dataset.render(dataset.plan("train", index), references=True)
    digest.json(info.model_dump(mode="json"))
    for frame in frames[::5]:
        for name in FRAME_FIELDS:
            digest.array(getattr(frame, name))
        digest.json(frame.annotation.model_dump(mode="json"))
    return digest.hex()


def test_poses_are_unchanged() -> None:
    assert poses_digest() == GOLDEN["poses"]


def test_props_are_unchanged() -> None:
    assert props_digest() == GOLDEN["props"]


def test_rendered_frames_are_unchanged() -> None:
    assert frames_digest(Conditions()) == GOLDEN["frames"]
    hard = Conditions(low_light=True, depth_holes=True, severe_occlusion=True, thermal_drift=True)
    assert frames_digest(hard) == GOLDEN["frames_hard"]


def test_data_set_windows_are_unchanged() -> None:
    assert GOLDEN["render_version"] == RENDER_VERSION, "a new render version comes with new digests"
    assert window_digest("tiny", 3) == GOLDEN["window_tiny"]
    assert window_digest("crowd_tiny", 1) == GOLDEN["window_crowd"]
