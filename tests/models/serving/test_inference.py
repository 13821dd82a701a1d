"""InferenceEngine: the binding API of the model server."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from models.data.crops import crop_geometry
from models.data.inputs import FusionInput
from models.networks.checkpoint import atomic_save, build_checkpoint
from models.networks.registry import create_model
from models.serving.inference import InferenceEngine, RecognitionOutput, facial_temperature
from services.common.errors import BadInput
from services.common.vocabulary import BEHAVIOURS, NUM_KEYPOINTS


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    return InferenceEngine(None)


def frame_set(seats: np.ndarray, h: int = 180, w: int = 320, depth: int = 2000, temperature: float = 33.0):
    rng = np.random.default_rng(0)
    return FusionInput(
        rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        depth_mm=np.full((h, w), depth, np.uint16),
        thermal_c=np.full((h, w), temperature, np.float32),
        thermal_equalised=rng.integers(0, 256, (h, w), dtype=np.uint8),
        seats=seats.astype(np.float32),
    )


SEATS = np.array([[10, 10, 90, 100], [100, 20, 170, 110], [200, 40, 300, 170]], np.float32)


def test_untrained_info(engine):
    info = engine.info
    assert not info.trained and info.fusion_version == "untrained-proposed"
    assert info.labels == BEHAVIOURS and info.window_frames == 16 and info.feature_dim == 32
    assert info.crop_size == 96 and info.device == "cpu"


def test_untrained_weights_are_reproducible(engine):
    other = InferenceEngine(None)
    for a, b in zip(engine.pipeline.state_dict().values(), other.pipeline.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_fuse_outputs(engine):
    outputs = engine.fuse([frame_set(SEATS), frame_set(SEATS[:1], depth=1500, temperature=34.5)])
    first, second = outputs
    assert first.keypoints.shape == (3, NUM_KEYPOINTS, 3) and first.keypoints.dtype == np.float32
    assert first.node_features.shape == (3, NUM_KEYPOINTS, 32) and first.node_features.dtype == np.float16
    assert second.keypoints.shape == (1, NUM_KEYPOINTS, 3)
    # uniform scenes: the face reads the scene temperature, the torso the scene depth
    np.testing.assert_allclose(first.facial_temperature_c, 33.0, atol=1e-4)
    np.testing.assert_allclose(second.facial_temperature_c, 34.5, atol=1e-4)
    np.testing.assert_allclose(first.mean_depth_mm, 2000.0)
    np.testing.assert_allclose(second.mean_depth_mm, 1500.0)
    assert ((first.occupancy > 0) & (first.occupancy < 1)).all()
    assert first.gates is not None and sum(first.gates) == pytest.approx(1.0)
    # keypoints come back in analysis pixels: inside each seat's square
    geometry = crop_geometry(SEATS, crop_size=96)
    lo = geometry.origin[:, None, :]
    hi = lo + 96 * geometry.scale[:, None, None]
    assert (first.keypoints[..., :2] >= lo).all() and (first.keypoints[..., :2] <= hi).all()


def test_fuse_batches_frames_without_changing_results(engine):
    alone = engine.fuse([frame_set(SEATS[:1], depth=1500)])[0]
    together = engine.fuse([frame_set(SEATS), frame_set(SEATS[:1], depth=1500)])[1]
    np.testing.assert_allclose(alone.keypoints, together.keypoints, atol=1e-4)
    whole = engine.fuse([frame_set(SEATS)])[0]
    engine.max_crops_per_pass = 2  # 3 seats in passes of 2 and 1
    try:
        chunked = engine.fuse([frame_set(SEATS)])[0]
    finally:
        engine.max_crops_per_pass = 40
    np.testing.assert_allclose(chunked.keypoints, whole.keypoints, atol=1e-4)
    np.testing.assert_array_equal(chunked.node_features, whole.node_features)
    assert chunked.gates == pytest.approx(whole.gates)


def test_fuse_edge_cases_and_bad_input(engine):
    assert engine.fuse([]) == []
    empty = engine.fuse([frame_set(np.zeros((0, 4)))])[0]
    assert empty.keypoints.shape == (0, NUM_KEYPOINTS, 3) and empty.gates is None
    good = frame_set(SEATS)
    with pytest.raises(BadInput, match="frame set 1: seat boxes need"):
        engine.fuse([good, frame_set(np.array([[50, 50, 10, 60]]))])
    bad_depth = FusionInput(good.rgb, good.depth_mm[:-2], good.thermal_c, good.thermal_equalised, SEATS)
    with pytest.raises(BadInput, match="depth_mm"):
        engine.fuse([bad_depth])
    nan = good.thermal_c.copy()
    nan[0, 0] = np.nan
    with pytest.raises(BadInput, match="NaN"):
        engine.fuse([FusionInput(good.rgb, good.depth_mm, nan, good.thermal_equalised, SEATS)])


def test_recognise(engine):
    rng = np.random.default_rng(1)
    keypoints = rng.random((5, 16, NUM_KEYPOINTS, 3), dtype=np.float32)
    features = rng.standard_normal((5, 16, NUM_KEYPOINTS, 32)).astype(np.float16)
    out = engine.recognise(keypoints, features)
    assert isinstance(out, RecognitionOutput)
    np.testing.assert_allclose(out.probabilities.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out.keypoint_attention.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out.frame_attention.sum(1), 1.0, rtol=1e-5)
    assert out.frame_attention.shape == (5, 16)
    # batch composition does not change a window's result
    single = engine.recognise(keypoints[2:3], features[2:3])
    np.testing.assert_allclose(single.probabilities[0], out.probabilities[2], atol=1e-5)
    assert engine.recognise(keypoints[:0], features[:0]).probabilities.shape == (0, 10)


def test_recognise_bad_input(engine):
    kp = np.zeros((2, 16, NUM_KEYPOINTS, 3), np.float32)
    nf = np.zeros((2, 16, NUM_KEYPOINTS, 32), np.float16)
    with pytest.raises(BadInput, match="keypoints must be"):
        engine.recognise(kp[:, :8], nf)
    with pytest.raises(BadInput, match="node_features must be"):
        engine.recognise(kp, nf[..., :16])
    kp[0, 0, 0, 0] = np.inf
    with pytest.raises(BadInput, match="NaN or infinity"):
        engine.recognise(kp, nf)


def test_checkpoint_versions(tmp_path):
    torch.manual_seed(0)
    model = create_model("no_multidilation", enhancement="identity", crop_size=48, feature_dim=16).eval()
    path = tmp_path / "model.pt"
    atomic_save(build_checkpoint(model, dataset_id="unit", window_frames=8), path)
    engine = InferenceEngine(path)
    assert engine.info.trained and engine.info.method == "no_multidilation"
    assert engine.info.window_frames == 8 and engine.info.crop_size == 48 and engine.info.feature_dim == 16
    assert engine.info.fusion_version.startswith("no_multidilation-dcanet@")
    assert engine.info.recognition_version.startswith("no_multidilation-mstgcn@")
    assert len(engine.info.fusion_version.split("@")[1]) == 12
    out = engine.fuse([frame_set(SEATS)])[0]
    assert out.node_features.shape == (3, NUM_KEYPOINTS, 16)
    with pytest.raises(FileNotFoundError):
        InferenceEngine(tmp_path / "missing.pt")


@pytest.mark.gpu
def test_cuda_half_precision_agrees_with_cpu():
    device = os.environ.get("CLASSROOM_TEST_DEVICE", "cuda")
    if not device.startswith("cuda") or not torch.cuda.is_available():
        pytest.skip("needs CUDA (CLASSROOM_TEST_DEVICE=cuda[:N])")
    cpu, gpu = InferenceEngine(None), InferenceEngine(None, device=device)
    assert gpu.info.device.startswith("cuda")
    frames = [frame_set(SEATS)]
    a, b = cpu.fuse(frames)[0], gpu.fuse(frames)[0]
    # half precision: keypoints within a pixel, temperatures within 0.1 C
    np.testing.assert_allclose(b.keypoints[..., :2], a.keypoints[..., :2], atol=1.0)
    np.testing.assert_allclose(b.facial_temperature_c, a.facial_temperature_c, atol=0.1)
    rng = np.random.default_rng(2)
    kp = rng.random((4, 16, NUM_KEYPOINTS, 3), dtype=np.float32)
    nf = rng.standard_normal((4, 16, NUM_KEYPOINTS, 32)).astype(np.float16)
    np.testing.assert_allclose(
        gpu.recognise(kp, nf).probabilities, cpu.recognise(kp, nf).probabilities, atol=2e-2
    )


def test_a_checkpoint_of_another_vocabulary_or_layout_is_refused_in_one_line(tmp_path):
    from models.networks.checkpoint import CheckpointMismatch

    model = create_model("proposed", enhancement="identity", crop_size=48).eval()
    data = build_checkpoint(model)
    renamed = dict(data, labels=[*data["labels"][:-1], "sleeping"])
    atomic_save(renamed, tmp_path / "labels.pt")
    with pytest.raises(CheckpointMismatch, match=r"labels differ.*sleeping.*retrain") as caught:
        InferenceEngine(tmp_path / "labels.pt")
    assert "\n" not in str(caught.value)
    state = {k: v for k, v in data["state_dict"].items() if not k.startswith("recognition.classifier")}
    atomic_save(dict(data, state_dict=state), tmp_path / "layout.pt")
    with pytest.raises(CheckpointMismatch, match="does not fit the architecture") as caught:
        InferenceEngine(tmp_path / "layout.pt")
    assert "\n" not in str(caught.value)
    atomic_save(dict(data, window_fps=15.0), tmp_path / "fps.pt")
    with pytest.raises(CheckpointMismatch, match=r"15\.0 fps"):
        InferenceEngine(tmp_path / "fps.pt")


def test_a_face_outside_thermal_coverage_has_no_temperature(engine):
    """Where the thermal camera does not see, the frame holds the room's ambient fill: the seat
    gets NaN (unset on the wire), never the fill reported as the student's face."""
    covered = np.zeros((180, 320), bool)
    covered[:, 100:] = True  # the first seat (x 10..90) is outside, the others inside
    item = frame_set(SEATS)
    item = FusionInput(
        item.rgb, item.depth_mm, item.thermal_c, item.thermal_equalised, item.seats, thermal_covered=covered
    )
    out = engine.fuse([item])[0]
    assert np.isnan(out.facial_temperature_c[0])
    np.testing.assert_allclose(out.facial_temperature_c[1:], 33.0, atol=1e-4)
    # full coverage (None) reads every face
    assert np.isfinite(engine.fuse([frame_set(SEATS)])[0].facial_temperature_c).all()


def test_facial_temperature_averages_the_face_points_that_are_seen():
    point_c = np.array([[34.0, 35.0, 36.0], [34.0, 35.0, 36.0]], np.float32)
    xy = np.array([[[1, 1], [5, 1], [50, 1]], [[-3, 0], [0, 99], [5, 5]]], np.float64)
    covered = np.zeros((10, 10), bool)
    covered[:, :4] = True
    out = facial_temperature(point_c, xy, covered)
    assert out[0] == pytest.approx(34.0)  # (5, 1) is not covered, (50, 1) is outside the image
    assert np.isnan(out[1])  # off the image or not covered: no reading
    np.testing.assert_allclose(facial_temperature(point_c, xy, None), 35.0)
