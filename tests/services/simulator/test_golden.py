"""The simulator's output, pinned to the bit: poses, props, rendered frames and a data-set window.

Training data caches are keyed by ``RENDER_VERSION`` (services/dataset/virtual.py), not by the
code: a change that moves any value here silently mixes old and new frames in a cache. A
refactor must leave these digests as they are. A change meant to alter the output bumps
``RENDER_VERSION`` and updates the digests in the same commit.

Bit-exact output is defined per floating-point platform: numpy's trigonometry and
exponentials run other SIMD kernels on an AVX-512 machine than on an AVX2 one (the same wheel,
other last bits), and OpenCV draws parts of the sensors' images. So the digests are kept per
platform (``platform()``): the first AVX-512 set was the same with numpy 2.3.5 and 2.4.6; the AVX2 set
was recorded from the landed commit 7ef0077 with numpy 2.4.6 and OpenCV 5.1.0 (and gives the
same digests at later commits). AVX-512 machines differ among themselves: an AMD EPYC with
AVX-512 up to the Ice Lake group (numpy 2.4.6, OpenCV 5.1.0) gives the first set's poses but
other props and frames, so a platform may hold several recorded sets (which feature told the
first machine apart was not recorded) and the output must match one of them. On a platform
with no set the tests skip and say how to record one: run this file's functions on the last
landed commit and add their digests.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

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
RENDER_VERSION_PINNED = 1
GOLDEN_BY_PLATFORM: dict[str, list[dict[str, str]]] = {
    "x86-avx512": [
        {
            "poses": "19ddcd1cc7d12b2c49ddef01",
            "props": "d25df2b5dfb1fd593d06db1c",
            "frames": "be61b5d3382446cd732cf602",
            "frames_hard": "59cdf93fae943b796d252d14",
            "window_tiny": "04ba534a206780f6126fc1c4",
            "window_crowd": "ea76244facb42aafe73fa944",
        },
        {  # AMD EPYC, AVX-512 up to the Ice Lake group; recorded from the simulator of landed 200cf69
            "poses": "19ddcd1cc7d12b2c49ddef01",
            "props": "693e26f38e4cb6264a5e6c22",
            "frames": "6ecb910a4cbdac10cf2ee5f6",
            "frames_hard": "84e73204abca4ce24359056d",
            "window_tiny": "59ca8e20b436d45ae594bddd",
            "window_crowd": "53ea9eae238f44984cee3189",
        },
    ],
    "x86-avx2": [
        {
            "poses": "a2dca1eece50e96355a062e4",
            "props": "957b059d581c2161104543ef",
            "frames": "07afa2f29916de83db1fd8ec",
            "frames_hard": "307368ee6de5db1aba6bba6b",
            "window_tiny": "04628ef7aa4e227303114391",
            "window_crowd": "e20b58c3827de4d25f137ba0",
        }
    ],
}


def platform() -> str:
    """The floating-point platform the digests depend on: numpy's widest SIMD kernels here."""
    features = np._core._multiarray_umath.__cpu_features__  # type: ignore[attr-defined]
    if features.get("AVX512_SKX"):
        return "x86-avx512"
    if features.get("AVX2") and features.get("FMA3"):
        return "x86-avx2"
    return "other"


def golden(name: str) -> tuple[str, ...]:
    """The digests of ``name`` recorded on this platform (one per recorded set)."""
    recorded = GOLDEN_BY_PLATFORM.get(platform())
    if recorded is None:
        pytest.skip(
            f"no digests recorded for platform {platform()!r}: record them from the last landed commit"
        )
    return tuple(digests[name] for digests in recorded)


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
    assert poses_digest() in golden("poses")


def test_props_are_unchanged() -> None:
    assert props_digest() in golden("props")


def test_rendered_frames_are_unchanged() -> None:
    assert frames_digest(Conditions()) in golden("frames")
    hard = Conditions(low_light=True, depth_holes=True, severe_occlusion=True, thermal_drift=True)
    assert frames_digest(hard) in golden("frames_hard")


def test_data_set_windows_are_unchanged() -> None:
    assert RENDER_VERSION_PINNED == RENDER_VERSION, "a new render version comes with new digests"
    assert window_digest("tiny", 3) in golden("window_tiny")
    assert window_digest("crowd_tiny", 1) in golden("window_crowd")
