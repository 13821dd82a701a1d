"""Train what you serve: one frame set through the live path (the capture agent's encoding, the
enhancement service's worker, the fusion service's request, the model server's decoding and its
engine) and through the training path (``served_inputs``) gives the same network inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data.inputs import FusionInput, fusion_input, model_inputs, served_inputs
from models.networks.checkpoint import atomic_save, build_checkpoint
from models.networks.registry import create_model
from models.serving.inference import InferenceEngine
from services.capture.config import CaptureSettings
from services.capture.service import frame_set_message
from services.common import codecs
from services.common.campus import Campus
from services.common.codecs import parse_message
from services.common.errors import BadInput
from services.common.pb.classroom.v1 import frames_pb2, inference_pb2
from services.enhancement.params import EnhancementParams
from services.enhancement.pipeline import Enhancer
from services.enhancement.service import FrameSetEnhancer
from services.fusion.observations import seat_regions
from services.simulator.live import SimulatedCamera

CROP = 48


@pytest.fixture(scope="module")
def live():
    sim = SimulatedCamera(
        seed=5, students=4, fps=8.0, conditions="low_light", start_time_us=1_772_438_400_000_000
    )
    classroom, course = sim.campus_classroom("room-1", "front", "course-1")
    return sim, classroom.cameras[0], Campus(classrooms=(classroom,), courses=(course,))


def _live_path_item(sim, camera, campus, sequence: int) -> inference_pb2.FusionItem:
    """capture -> enhancement worker -> fusion's request item, with the services' own code."""
    settings = CaptureSettings(kafka_bootstrap="unused:9092", classroom_id="room-1", camera_id="front")
    raw = frame_set_message(
        sim.frame_at(sequence), settings, session_id="s-1", frame_rate=8.0, source="simulator"
    )
    key, enhanced_bytes = FrameSetEnhancer(campus, EnhancementParams(), jpeg_quality=90)(
        raw.SerializeToString()
    )
    assert key == "room-1"
    enhanced = parse_message(enhanced_bytes, frames_pb2.EnhancedFrameSet)
    return inference_pb2.FusionItem(request_id="0:1", frame_set=enhanced, seats=seat_regions(camera))


def test_live_path_and_training_path_give_the_same_crops(live):
    sim, camera, campus = live
    item = _live_path_item(sim, camera, campus, 3)
    served = model_inputs([fusion_input(item)], CROP)  # what the model server's engine crops
    trained, seat_ids = served_inputs(sim.frame_at(3), camera, Enhancer(EnhancementParams()), CROP)
    assert seat_ids == [s.id for s in camera.seats]
    assert served.tensor.shape == trained.tensor.shape == (len(camera.seats), 6, CROP, CROP)
    # the same bytes through the same decoder: equal, not merely close
    assert torch.equal(served.tensor, trained.tensor)
    np.testing.assert_array_equal(served.geometry.origin, trained.geometry.origin)
    np.testing.assert_array_equal(served.depth_reference_mm, trained.depth_reference_mm)
    # the colour is the enhanced one, not the raw capture: a low-light frame comes out brighter
    raw = model_inputs(
        [
            FusionInput(
                rgb=sim.frame_at(3).rgb,
                depth_mm=np.zeros(sim.frame_at(3).rgb.shape[:2], np.uint16),
                thermal_c=np.full(sim.frame_at(3).rgb.shape[:2], 22.0, np.float32),
                thermal_equalised=np.zeros(sim.frame_at(3).rgb.shape[:2], np.uint8),
                seats=np.array([s.box for s in camera.seats], np.float32),
            )
        ],
        CROP,
    )
    assert float(trained.tensor[:, :3].mean()) > 1.2 * float(raw.tensor[:, :3].mean())


def test_the_engine_reads_the_training_crops(live, tmp_path):
    sim, camera, campus = live
    torch.manual_seed(0)
    model = create_model("proposed", enhancement="identity", crop_size=CROP).eval()
    path = tmp_path / "model.pt"
    atomic_save(build_checkpoint(model), path)
    engine = InferenceEngine(path)
    out = engine.fuse([fusion_input(_live_path_item(sim, camera, campus, 4))])[0]
    crops, _ = served_inputs(sim.frame_at(4), camera, Enhancer(EnhancementParams()), CROP)
    with torch.inference_mode():
        xy = model.forward_fusion(crops.tensor).keypoints.xy.numpy()
    np.testing.assert_allclose(out.keypoints[..., :2], crops.geometry.crop_to_image(xy), atol=1e-2)


def test_a_frame_set_without_colour_is_refused_by_name(live):
    sim, camera, campus = live
    item = _live_path_item(sim, camera, campus, 2)
    item.frame_set.ClearField("rgb")
    with pytest.raises(BadInput, match="lacks rgb"):
        fusion_input(item)


def test_pixels_the_thermal_camera_does_not_see_are_no_reading_on_the_wire(live):
    """The simulated thermal camera sees the middle of the room only: outside it the wire says
    "no reading" (raw 0) instead of a made-up temperature, and the networks still read the
    ambient fill they were trained on, bit for bit."""
    sim, camera, campus = live
    frame = sim.frame_at(3)
    message = codecs.encode_frame_set(frame, classroom_id="r", session_id="s", camera_id=camera.id)
    enhanced = Enhancer(EnhancementParams()).process(
        codecs.decode_frame_set(message), camera.calibration, (camera.analysis_width, camera.analysis_height)
    )
    covered = enhanced.thermal_covered
    assert 0.1 < covered.mean() < 0.9  # the test needs both
    assert enhanced.report["thermal_coverage"] == pytest.approx(covered.mean())

    item = _live_path_item(sim, camera, campus, 3)
    report = item.frame_set.report
    assert report.HasField("thermal_ambient_c") and report.thermal_coverage == pytest.approx(covered.mean())
    raw = codecs.decode_image(item.frame_set.thermal_radiometric, name="thermal")
    np.testing.assert_array_equal(raw == codecs.THERMAL_NO_READING, ~covered)
    decoded = fusion_input(item)
    np.testing.assert_array_equal(decoded.thermal_covered, covered)
    # the same temperatures the frame had before raw 0 marked the fill: encoded without coverage
    legacy = codecs.thermal16_to_celsius(
        codecs.decode_image(codecs.encode_thermal(enhanced.thermal_c, capture_ts_us=0), name="thermal")
    )
    np.testing.assert_array_equal(decoded.thermal_c, legacy)
    # an older producer (no ambient in its report) gets the median of the readings as fill
    item.frame_set.report.ClearField("thermal_ambient_c")
    old = fusion_input(item)
    assert np.isfinite(old.thermal_c).all() and old.thermal_c.min() > 0.0
    np.testing.assert_array_equal(old.thermal_c[covered], decoded.thermal_c[covered])
