"""The model server over real gRPC on loopback: health, fusion and recognition batches, bad items fail alone."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.pb.classroom.v1 import inference_pb2, inference_pb2_grpc, observations_pb2
from services.common.vocabulary import BEHAVIOURS, NUM_KEYPOINTS
from services.modelserver.config import ModelServerSettings
from services.modelserver.server import ModelServer
from tests.frames import enhanced_frame_set

pytestmark = pytest.mark.integration


def seats(n: int) -> list[inference_pb2.SeatRegion]:
    return [
        inference_pb2.SeatRegion(
            seat_id=f"S{i}", box=observations_pb2.Box(x0=20 + 60 * i, y0=100, x1=80 + 60 * i, y1=200)
        )
        for i in range(n)
    ]


async def _scenario():
    server = ModelServer(ModelServerSettings(port=0, device="cpu", max_delay_ms=5, checkpoint="untrained"))
    port = await server.start()
    # MODELSERVER_OPTIMISE's default: the per-crop stage served as its checked trace
    assert server.engine.crop_stage_form.startswith("TorchScript")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="classroom.v1.FusionKeypoints")
            )
            fusion = inference_pb2_grpc.FusionKeypointsStub(channel)
            info = await fusion.Info(inference_pb2.ModelInfoRequest())
            corrupt = enhanced_frame_set(1)
            corrupt.rgb.data = corrupt.rgb.data[:100]
            request = inference_pb2.FusionBatchRequest(
                items=[
                    inference_pb2.FusionItem(request_id="a", frame_set=enhanced_frame_set(0), seats=seats(3)),
                    inference_pb2.FusionItem(request_id="b", frame_set=corrupt, seats=seats(2)),
                    inference_pb2.FusionItem(request_id="c", frame_set=enhanced_frame_set(2), seats=seats(1)),
                ]
            )
            fused = await fusion.Infer(request, timeout=60)
            recognition = inference_pb2_grpc.RecognitionStub(channel)
            t, c = info.window_frames, info.feature_dim
            good = inference_pb2.RecognitionItem(
                request_id="w0",
                frames=t,
                feature_dim=c,
                keypoints=np.random.default_rng(0).random((t, NUM_KEYPOINTS, 3), dtype=np.float32).tobytes(),
                node_features=np.zeros((t, NUM_KEYPOINTS, c), np.float16).tobytes(),
            )
            short = inference_pb2.RecognitionItem(request_id="w1", frames=t - 1, feature_dim=c)
            recognised = await recognition.Infer(
                inference_pb2.RecognitionBatchRequest(items=[good, short]), timeout=60
            )
    finally:
        await server.shutdown()
    return health, info, fused, recognised


def test_model_server_answers_batches_and_isolates_bad_items() -> None:
    health, info, fused, recognised = asyncio.run(_scenario())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert list(info.labels) == list(BEHAVIOURS)
    # Untrained weights are never passed off as recognition.
    assert info.trained is False and fused.model_trained is False and recognised.model_trained is False
    assert "untrained" in fused.model_version
    a, b, c = fused.results
    assert (a.request_id, len(a.seats), a.error) == ("a", 3, "")
    assert b.error.startswith("corrupt_image") and not b.seats
    assert len(c.seats) == 1
    seat = a.seats[0]
    assert len(seat.keypoints) == NUM_KEYPOINTS
    assert len(seat.node_features) == NUM_KEYPOINTS * seat.feature_dim * 2
    assert (seat.box.x0, seat.box.x1) == (20, 80)
    gates = a.gates
    assert gates.alpha + gates.beta + gates.gamma == pytest.approx(1.0, abs=1e-4)  # eq. 5 constraint
    w0, w1 = recognised.results
    assert not w0.error and len(w0.probabilities) == len(BEHAVIOURS)
    probabilities = [p.probability for p in w0.probabilities]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(
        1.0, abs=1e-4
    )
    assert sum(w0.attention.keypoint_weights) == pytest.approx(1.0, abs=1e-4)
    assert len(w0.attention.top_keypoints) == 3
    assert w1.error.startswith("bad_input")


def test_fusion_items_take_depth_on_its_registration_grid() -> None:
    from models.data.inputs import fusion_input as decode_fusion_item
    from services.common import codecs
    from services.common.errors import WrongResolution

    full = enhanced_frame_set(0)
    depth = codecs.decode_image(full.depth, name="depth")
    grid = np.ascontiguousarray(depth[::2, ::2])  # 320x180: what the enhancement service sends
    full.depth.CopyFrom(codecs.encode_depth(grid, capture_ts_us=full.capture_ts_us))
    decoded = decode_fusion_item(inference_pb2.FusionItem(request_id="g", frame_set=full, seats=seats(1)))
    assert decoded.depth_mm.shape == decoded.rgb.shape[:2] == (360, 640)
    np.testing.assert_array_equal(decoded.depth_mm, np.repeat(np.repeat(grid, 2, 0), 2, 1))
    full.depth.CopyFrom(codecs.encode_depth(np.zeros((180, 300), np.uint16), capture_ts_us=0))
    with pytest.raises(WrongResolution, match="300x180"):
        decode_fusion_item(inference_pb2.FusionItem(request_id="h", frame_set=full, seats=seats(1)))


def test_a_checkpoint_it_cannot_serve_stops_it_at_start_with_one_line(tmp_path, caplog):
    from models.networks.checkpoint import atomic_save, build_checkpoint
    from models.networks.registry import create_model

    data = build_checkpoint(create_model("proposed", enhancement="identity", crop_size=48))
    atomic_save(dict(data, keypoints=list(reversed(data["keypoints"]))), tmp_path / "other.pt")
    server = ModelServer(ModelServerSettings(port=0, device="cpu", checkpoint=str(tmp_path / "other.pt")))
    with caplog.at_level("ERROR", logger="modelserver"):
        assert asyncio.run(server.run()) == 2
    refusals = [r.getMessage() for r in caplog.records if r.name == "modelserver"]
    assert len(refusals) == 1 and "keypoints differ" in refusals[0] and "\n" not in refusals[0]
