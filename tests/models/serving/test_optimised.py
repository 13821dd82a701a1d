"""The optimised per-crop stage (``MODELSERVER_OPTIMISE``, the model server's default on the CPU)
gives what the eager networks give on the committed checkpoint: a speed change, not another model.

Asserted on ``InferenceEngine.fuse`` outputs of rendered 20-student frame sets through the live
input path, the trace's batch size and others: keypoints within 1e-3 crop px + 1e-3 relative (in
crop pixels), confidence and occupancy within 1e-4, node features (float16) within 1e-3 + 2e-3
relative (two float16 steps), facial temperature within 1e-3 °C, mean depth within 0.05 mm, gates
within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data.crops import crop_geometry
from models.data.inputs import FusionInput, fusion_input
from models.serving import inference
from models.serving.committed import DEFAULT_CHECKPOINT, DEFAULT_OCCUPANCY_CHECKPOINT
from models.serving.inference import FusionOutput, InferenceEngine
from models.serving.networks import CropStage, stage_mismatch
from services.common import codecs
from services.common.pb.classroom.v1 import inference_pb2
from services.enhancement.frameset import enhance_frame_set
from services.enhancement.params import EnhancementParams
from services.enhancement.pipeline import Enhancer
from services.fusion.observations import seat_regions
from services.simulator.live import SimulatedCamera


@pytest.fixture(scope="module")
def frame_sets() -> list[FusionInput]:
    """Three captures of a rendered 20-student classroom (low light) as the model server decodes them."""
    sim = SimulatedCamera(
        seed=7, students=20, fps=8.0, conditions="low_light", start_time_us=1_772_438_400_000_000
    )
    classroom, _ = sim.campus_classroom("room-1", "front", "course-1")
    camera = classroom.cameras[0]
    enhancer = Enhancer(EnhancementParams())
    out = []
    for sequence in (3, 11, 19):
        message = codecs.encode_frame_set(
            sim.frame_at(sequence), classroom_id="r", session_id="s", camera_id=camera.id
        )
        enhanced = enhance_frame_set(message, camera, enhancer)
        item = inference_pb2.FusionItem(request_id="r", frame_set=enhanced, seats=seat_regions(camera))
        out.append(fusion_input(item))
    return out


@pytest.fixture(scope="module", params=["occupancy model", "keypoint head"])
def engines(request) -> tuple[InferenceEngine, InferenceEngine]:
    occupancy = DEFAULT_OCCUPANCY_CHECKPOINT if request.param == "occupancy model" else None
    eager = InferenceEngine(DEFAULT_CHECKPOINT, occupancy_checkpoint=occupancy)
    optimised = InferenceEngine(DEFAULT_CHECKPOINT, occupancy_checkpoint=occupancy, optimise=True)
    return eager, optimised


def assert_same_outputs(
    eager: FusionOutput, optimised: FusionOutput, seats: np.ndarray, crop_size: int
) -> None:
    geometry = crop_geometry(np.asarray(seats, np.float64), crop_size=crop_size)
    eager_xy = geometry.image_to_crop(eager.keypoints[..., :2])
    optimised_xy = geometry.image_to_crop(optimised.keypoints[..., :2])
    np.testing.assert_allclose(optimised_xy, eager_xy, rtol=1e-3, atol=1e-3)  # crop px
    np.testing.assert_allclose(optimised.keypoints[..., 2], eager.keypoints[..., 2], rtol=0, atol=1e-4)
    np.testing.assert_allclose(optimised.occupancy, eager.occupancy, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        optimised.node_features.astype(np.float32),
        eager.node_features.astype(np.float32),
        rtol=2e-3,
        atol=1e-3,
    )
    np.testing.assert_allclose(optimised.facial_temperature_c, eager.facial_temperature_c, rtol=0, atol=1e-3)
    np.testing.assert_allclose(optimised.mean_depth_mm, eager.mean_depth_mm, rtol=0, atol=0.05)
    assert eager.gates is not None and optimised.gates == pytest.approx(eager.gates, abs=1e-5)


def test_the_committed_checkpoint_is_served_traced(engines):
    eager, optimised = engines
    assert eager.crop_stage_form == "eager" and eager.warmup_s == 0.0
    assert optimised.crop_stage_form.startswith("TorchScript") and optimised.warmup_s > 0
    assert optimised.info == eager.info  # the same model, versions included


def test_optimised_fuse_gives_the_eager_outputs(engines, frame_sets):
    eager, optimised = engines
    crop_size = eager.info.crop_size
    one_seat = FusionInput(
        frame_sets[0].rgb,
        frame_sets[0].depth_mm,
        frame_sets[0].thermal_c,
        frame_sets[0].thermal_equalised,
        frame_sets[0].seats[3:4],
        frame_sets[0].thermal_covered,
    )
    # 20 crops in one pass; 60 in passes of 40 (the trace's batch) and 20; a pass of one crop
    for batch in ([frame_sets[0]], frame_sets, [one_seat]):
        for item, a, b in zip(batch, eager.fuse(batch), optimised.fuse(batch), strict=True):
            assert len(a.keypoints) == len(item.seats) > 0
            assert_same_outputs(a, b, item.seats, crop_size)


def _engine_with(monkeypatch, optimiser) -> InferenceEngine:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(inference, "optimise_crop_stage", optimiser)
    return InferenceEngine(None, untrained_config={"crop_size": 32}, optimise=True)


def test_a_stage_that_cannot_be_traced_is_served_eager(monkeypatch):
    def no_torchscript(stage, example):  # type: ignore[no-untyped-def]
        raise RuntimeError("this torch has no TorchScript")

    engine = _engine_with(monkeypatch, no_torchscript)
    assert engine.crop_stage_form == "eager (trace not served: RuntimeError: this torch has no TorchScript)"
    seats = np.array([[10, 10, 60, 70]], np.float32)
    rng = np.random.default_rng(0)
    frame = FusionInput(
        rng.integers(0, 256, (90, 120, 3), dtype=np.uint8),
        np.full((90, 120), 2000, np.uint16),
        np.full((90, 120), 33.0, np.float32),
        rng.integers(0, 256, (90, 120), dtype=np.uint8),
        seats,
    )
    assert engine.fuse([frame])[0].keypoints.shape == (1, 17, 3)


def test_a_trace_that_computes_something_else_is_not_served(monkeypatch):
    class Shifted(torch.nn.Module):
        """The stage with its keypoints moved by a tenth of a crop pixel."""

        def __init__(self, stage: CropStage) -> None:
            super().__init__()
            self.stage = stage

        def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
            xy, *rest = self.stage(crops)
            return (xy + 0.1, *rest)

    engine = _engine_with(monkeypatch, lambda stage, example: Shifted(stage))
    assert engine.crop_stage_form.startswith("eager (trace not served: ValueError: the trace differs")
    assert "keypoints: differs by up to 0.1" in engine.crop_stage_form


def test_stage_mismatch_names_the_output_and_the_difference():
    eager = (
        torch.full((2, 17, 2), 10.0),
        torch.rand(2, 17),
        torch.rand(2),
        torch.ones(2, 17, 4),
        torch.full((2, 3), 34.0),
        torch.zeros(2),
        torch.zeros(2, 0),
    )
    assert stage_mismatch(eager, eager) is None
    within = (eager[0] + 0.01 * 1e-3, *eager[1:])  # keypoints: 1e-3 px + 1e-3 x 10 px allowed
    assert stage_mismatch(eager, within) is None
    beyond = (*eager[:4], eager[4] + 0.01, *eager[5:])
    assert (
        stage_mismatch(eager, beyond)
        == "facial_temperature_c: differs by up to 0.01 (tolerance 0.001 + 0.0001 x |eager|)"
    )
    nan = stage_mismatch(eager, (*eager[:5], torch.tensor([0.0, float("nan")]), eager[6]))
    assert nan is not None and nan.startswith("torso_depth: NaN")
    shape = stage_mismatch(eager, (*eager[:3], torch.ones(2, 17, 5), *eager[4:]))
    assert shape is not None and shape.startswith("node_features: shape")
