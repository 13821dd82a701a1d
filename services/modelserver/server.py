"""The gRPC model server: FusionKeypoints and Recognition, standard health checking, batching.

Each RPC carries a batch from one caller (a fusion or recognition worker); the server's
micro-batchers merge batches from many callers (classrooms) before they reach the network,
up to a size limit and a maximum delay. One bad item (an image that does not decode, a
window of the wrong shape) fails alone: its result carries the error, the rest of the batch
is answered. Every response names the checkpoint that produced it and whether it was trained.

With ``MODELSERVER_HEALTH_PORT`` set, a second, plaintext gRPC server answers only
``grpc.health.v1`` from the same health servicer: a probe that cannot speak TLS (the kubelet's
gRPC probe) can then check a model server whose main port requires (mutual) TLS, while frames
and results travel only on the main port.

Start-up, signals, the /metrics and /readyz server and the order of shutdown are the
skeleton's (``services.common.runner``); loading the model and serving gRPC are the server's own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Histogram

from models.data.inputs import FusionInput, fusion_input, validate_fusion_input
from services.common.errors import BadInput
from services.common.lifecycle import StopFlag
from services.common.metrics import HealthServer, ServiceMetrics
from services.common.pb.classroom.v1 import events_pb2, inference_pb2, inference_pb2_grpc, observations_pb2
from services.common.ports import PortInUse, announce_ports, listening, port_in_use_message
from services.common.runner import ShutdownStep, run_service, shut_down
from services.common.settings import env_name
from services.common.tls import server_tls
from services.common.vocabulary import KEYPOINTS, NUM_KEYPOINTS
from services.modelserver.answer import answer_items
from services.modelserver.batcher import MicroBatcher
from services.modelserver.config import ModelServerSettings

log = logging.getLogger("modelserver")

FUSION_SERVICE = "classroom.v1.FusionKeypoints"
RECOGNITION_SERVICE = "classroom.v1.Recognition"

R = TypeVar("R")  # a result message: FusionResult, RecognitionResult


@dataclass(slots=True)
class _Window:
    keypoints: np.ndarray  # [T, 17, 3] float32
    node_features: np.ndarray  # [T, 17, C]


def decode_window(item: inference_pb2.RecognitionItem, *, window_frames: int, feature_dim: int) -> _Window:
    if item.frames != window_frames or item.feature_dim != feature_dim:
        raise BadInput(
            f"window of {item.frames} frames x {item.feature_dim} features; this model takes "
            f"{window_frames} x {feature_dim}"
        )
    expected_kp = window_frames * NUM_KEYPOINTS * 3 * 4
    expected_feat = window_frames * NUM_KEYPOINTS * feature_dim * 2
    if len(item.keypoints) != expected_kp or len(item.node_features) != expected_feat:
        raise BadInput(
            f"window byte sizes {len(item.keypoints)}/{len(item.node_features)}, expected {expected_kp}/{expected_feat}"
        )
    keypoints = np.frombuffer(item.keypoints, dtype="<f4").reshape(window_frames, NUM_KEYPOINTS, 3)
    features = np.frombuffer(item.node_features, dtype="<f2").reshape(
        window_frames, NUM_KEYPOINTS, feature_dim
    )
    if not (np.isfinite(keypoints).all() and np.isfinite(features).all()):
        raise BadInput("window contains NaN or infinity")
    return _Window(keypoints, features)


class ModelServer:
    name = "modelserver"

    def __init__(self, settings: ModelServerSettings, engine=None) -> None:  # type: ignore[no-untyped-def]
        self.settings = settings
        self.stop = StopFlag()
        self.metrics = ServiceMetrics("modelserver")
        self.health = HealthServer(self.metrics, readiness=self._readiness)
        self.batch_size = Histogram(
            "classroom_model_batch_items",
            "items per model batch",
            ["service", "model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.metrics.registry,
        )
        self.batch_seconds = Histogram(
            "classroom_model_batch_seconds",
            "compute time per model batch",
            ["service", "model"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=self.metrics.registry,
        )
        self.engine = engine
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.health_server: grpc.aio.Server | None = None  # plaintext, grpc.health.v1 only
        self.health_port: int | None = None
        self.health_servicer = health.aio.HealthServicer()
        self._fusion_batcher: MicroBatcher | None = None
        self._recognition_batcher: MicroBatcher | None = None

    # -- model -----------------------------------------------------------------------------

    def _load_engine(self):  # type: ignore[no-untyped-def]
        import torch

        from models.serving.inference import InferenceEngine

        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        device = self.settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        checkpoint = self.settings.resolved_checkpoint()
        engine = InferenceEngine(
            checkpoint,
            device=device,
            # a process of its own: keep freed multi-MB activations instead of page-faulting them in again
            tune_allocator=True,
            occupancy_checkpoint=self.settings.resolved_occupancy_checkpoint(checkpoint),
            optimise=self.settings.optimise,
        )
        log.info(
            "per-crop stage ready",
            extra={"form": engine.crop_stage_form, "warmup_s": round(engine.warmup_s, 2)},
        )
        if not engine.info.trained:
            log.warning(
                "serving UNTRAINED weights: outputs are not recognition",
                extra={
                    "fusion_model": engine.info.fusion_version,
                    "recognition_model": engine.info.recognition_version,
                },
            )
        return engine

    def _observer(self, model: str):  # type: ignore[no-untyped-def]
        def observe(items: int, _waited: float, compute: float) -> None:
            self.batch_size.labels("modelserver", model).observe(items)
            self.batch_seconds.labels("modelserver", model).observe(compute)

        return observe

    def _run_fusion(self, inputs: Sequence) -> list:  # type: ignore[type-arg]
        return list(self.engine.fuse(list(inputs)))

    def _run_recognition(self, windows: Sequence[_Window]) -> list:  # type: ignore[type-arg]
        keypoints = np.stack([w.keypoints for w in windows])
        features = np.stack([w.node_features for w in windows])
        out = self.engine.recognise(keypoints, features)
        return [
            (out.probabilities[i], out.keypoint_attention[i], out.frame_attention[i])
            for i in range(len(windows))
        ]

    # -- lifecycle --------------------------------------------------------------------------

    def _readiness(self) -> tuple[bool, str]:
        if self.engine is None:
            return False, "loading model"
        return True, "ok"

    async def start(self) -> int:
        if self.engine is None:
            self.engine = await asyncio.to_thread(self._load_engine)
        self._fusion_batcher = MicroBatcher(
            self._run_fusion,
            max_items=self.settings.max_batch_frames,
            max_delay_s=self.settings.max_delay_ms / 1000,
            name="fusion",
            on_batch=self._observer("fusion"),
        )
        self._recognition_batcher = MicroBatcher(
            self._run_recognition,
            max_items=self.settings.max_batch_windows,
            max_delay_s=self.settings.max_delay_ms / 1000,
            name="recognition",
            on_batch=self._observer("recognition"),
        )
        self._fusion_batcher.start()
        self._recognition_batcher.start()
        options = [
            ("grpc.max_receive_message_length", self.settings.max_message_bytes),
            ("grpc.max_send_message_length", self.settings.max_message_bytes),
            # never share a port with another server silently (gRPC sets SO_REUSEPORT by default)
            ("grpc.so_reuseport", 0),
        ]
        self.server = grpc.aio.server(options=options)
        inference_pb2_grpc.add_FusionKeypointsServicer_to_server(_FusionServicer(self), self.server)
        inference_pb2_grpc.add_RecognitionServicer_to_server(_RecognitionServicer(self), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.server)
        tls = server_tls(
            self.settings.tls_cert_file, self.settings.tls_key_file, self.settings.tls_client_ca_file
        )
        self.port = self._bind(self.server, "gRPC", "port", tls.credentials() if tls is not None else None)
        ports = {"grpc": self.port}
        if self.settings.health_port is not None:
            self.health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.health_server)
            self.health_port = self._bind(self.health_server, "gRPC health", "health_port", None)
            ports["grpc_health"] = self.health_port
            await self.health_server.start()
        await self.server.start()
        announce_ports(None, **ports)
        for service in ("", FUSION_SERVICE, RECOGNITION_SERVICE):
            await self.health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def _bind(
        self, server: grpc.aio.Server, what: str, setting: str, credentials: grpc.ServerCredentials | None
    ) -> int:
        """Bind ``server`` to the port the field ``setting`` names (TLS with ``credentials``); the port got."""
        port = getattr(self.settings, setting)
        address = f"{self.settings.host}:{port}"
        try:
            if credentials is not None:
                return server.add_secure_port(address, credentials)
            return server.add_insecure_port(address)
        except RuntimeError:  # grpc: "Failed to bind to address"
            if port and listening(self.settings.host, port):
                raise PortInUse(
                    port_in_use_message(what, self.settings.host, port, env_name(self.settings, setting))
                ) from None
            raise

    def shutdown_steps(self) -> list[ShutdownStep]:
        """Stop accepting calls, let calls in flight finish (grace), drain the batchers."""
        return [
            ("health NOT_SERVING", self.health_servicer.enter_graceful_shutdown),
            ("gRPC server", self._stop_server),
            ("gRPC health port", self._stop_health_port),
            ("batchers", self._stop_batchers),
        ]

    async def _stop_server(self) -> None:
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_s)

    async def _stop_health_port(self) -> None:
        if self.health_server is not None:  # kept up while draining: probes see NOT_SERVING
            await self.health_server.stop(0)

    async def _stop_batchers(self) -> None:
        for batcher in (self._fusion_batcher, self._recognition_batcher):
            if batcher is not None:
                await batcher.stop()

    async def shutdown(self) -> None:
        """The shutdown steps, for a server started with ``start()`` rather than ``run()``."""
        await shut_down(self.shutdown_steps(), grace_s=self.settings.shutdown_grace_s, log=log)

    async def run(self) -> int:
        """Serve until stopped (``services.common.runner``); returns the exit code."""
        return await run_service(self)

    async def serve(self, metrics_port: int) -> int:
        """Load the model and serve until stopped; 2 for a checkpoint this version cannot serve."""
        try:
            port = await self.start()
        except (FileNotFoundError, ValueError) as exc:  # a checkpoint this version cannot serve: refuse now
            log.error(f"cannot serve: {exc}")
            return 2
        info = self.engine.info
        log.info(
            "serving",
            extra={
                "port": port,
                "health_port": self.health_port,
                "metrics_port": metrics_port,
                "device": info.device,
                "trained": info.trained,
                "fusion_model": info.fusion_version,
                "recognition_model": info.recognition_version,
            },
        )
        while not await self.stop.wait(1.0):
            self.health.beat()
        return 0

    def stopped_fields(self) -> dict[str, Any]:
        return {}

    def model_info(self) -> inference_pb2.ModelInfo:
        info = self.engine.info
        return inference_pb2.ModelInfo(
            fusion_model_version=info.fusion_version,
            recognition_model_version=info.recognition_version,
            trained=info.trained,
            device=info.device,
            window_frames=info.window_frames,
            feature_dim=info.feature_dim,
            labels=list(info.labels),
        )


class _FusionServicer(inference_pb2_grpc.FusionKeypointsServicer):
    def __init__(self, server: ModelServer) -> None:
        self.server = server

    async def Infer(self, request, context):  # type: ignore[no-untyped-def]
        assert self.server._fusion_batcher is not None
        results = await answer_items(
            request.items,
            decode=_fusion_input,
            batcher=self.server._fusion_batcher,
            result=_fusion_result,
            error_result=_error_result(inference_pb2.FusionResult),
            metrics=self.server.metrics,
        )
        info = self.server.engine.info
        return inference_pb2.FusionBatchResponse(
            results=results, model_version=info.fusion_version, model_trained=info.trained
        )

    async def Info(self, request, context):  # type: ignore[no-untyped-def]
        return self.server.model_info()


def _error_result(result_type: Callable[..., R]) -> Callable[[Any, str], R]:
    """The result of an item that failed alone: its request id and the error, nothing else."""

    def error_result(item: Any, error: str) -> R:
        return result_type(request_id=item.request_id, error=error)

    return error_result


def _fusion_input(item: inference_pb2.FusionItem) -> FusionInput:
    """The item decoded and checked (``BadInput`` where it cannot be fused)."""
    decoded = fusion_input(item)
    validate_fusion_input(decoded)
    return decoded


def _fusion_result(item: inference_pb2.FusionItem, out) -> inference_pb2.FusionResult:  # type: ignore[no-untyped-def]
    seats = []
    feature_dim = int(out.node_features.shape[-1]) if out.node_features.size else 0
    for s, seat in enumerate(item.seats):
        kps = out.keypoints[s]
        facial = float(out.facial_temperature_c[s])
        seats.append(
            inference_pb2.SeatResult(
                seat_id=seat.seat_id,
                keypoints=[
                    observations_pb2.Keypoint(x=float(x), y=float(y), confidence=float(c)) for x, y, c in kps
                ],
                node_features=np.ascontiguousarray(out.node_features[s], dtype="<f2").tobytes(),
                feature_dim=feature_dim,
                occupancy=float(out.occupancy[s]),
                # unset, not a made-up value, where the thermal camera did not see the face
                facial_temperature_c=facial if math.isfinite(facial) else None,
                mean_depth_mm=float(out.mean_depth_mm[s]),
                box=seat.box,  # the seat region the keypoints are relative to
            )
        )
    alpha, beta, gamma = out.gates if out.gates is not None else (0.0, 0.0, 0.0)
    return inference_pb2.FusionResult(
        request_id=item.request_id,
        seats=seats,
        gates=observations_pb2.FusionGates(alpha=float(alpha), beta=float(beta), gamma=float(gamma)),
    )


class _RecognitionServicer(inference_pb2_grpc.RecognitionServicer):
    def __init__(self, server: ModelServer) -> None:
        self.server = server

    async def Infer(self, request, context):  # type: ignore[no-untyped-def]
        info = self.server.engine.info
        assert self.server._recognition_batcher is not None
        results = await answer_items(
            request.items,
            decode=partial(decode_window, window_frames=info.window_frames, feature_dim=info.feature_dim),
            batcher=self.server._recognition_batcher,
            result=partial(_recognition_result, labels=info.labels),
            error_result=_error_result(inference_pb2.RecognitionResult),
            metrics=self.server.metrics,
        )
        return inference_pb2.RecognitionBatchResponse(
            results=results, model_version=info.recognition_version, model_trained=info.trained
        )

    async def Info(self, request, context):  # type: ignore[no-untyped-def]
        return self.server.model_info()


def _recognition_result(
    item: inference_pb2.RecognitionItem,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    labels: Sequence[str],
) -> inference_pb2.RecognitionResult:
    """Labels by falling probability, the attention weights and the three keypoints attended most."""
    probabilities, kp_attention, frame_attention = out
    order = np.argsort(-probabilities)
    top = np.argsort(-kp_attention)[:3]
    return inference_pb2.RecognitionResult(
        request_id=item.request_id,
        probabilities=[
            events_pb2.LabelProbability(label=labels[j], probability=float(probabilities[j])) for j in order
        ],
        attention=events_pb2.AttentionSummary(
            keypoint_weights=[float(w) for w in kp_attention],
            frame_weights=[float(w) for w in frame_attention],
            top_keypoints=[KEYPOINTS[j] for j in top],
        ),
    )
