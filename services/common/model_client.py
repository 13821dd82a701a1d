"""gRPC clients of the model server, with deadlines; failures that may pass become DependencyUnavailable.

The stream services retry a batch with backoff on DependencyUnavailable (services/common/bus.py),
so a model server that is down or restarting costs latency, never messages.
"""

from __future__ import annotations

import grpc

from services.common.bus import DependencyUnavailable
from services.common.pb.classroom.v1 import inference_pb2, inference_pb2_grpc
from services.common.tls import ClientTLS

# Status codes that say "try again later" rather than "this request is wrong".
TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


class ModelClient:
    """One channel to a model server (or a load balancer in front of several)."""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        tls: ClientTLS | None = None,
    ) -> None:
        self.target = target
        self._credentials = tls.credentials() if tls is not None else None  # files read now: errors at start
        self.timeout_s = timeout_s
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Spread calls over every address a DNS name resolves to (model-server replicas).
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.enable_retries", 0),
            # Reconnect to a restarted model server within half a second: gRPC's own reconnect
            # backoff (1 s, x1.6 per failure, up to 120 s) would leave the channel failing for
            # seconds after the server is back, whatever our retry policy (services/common/retry.py).
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ]
        self._channel: grpc.aio.Channel | None = None

    def _stubs(self) -> tuple[inference_pb2_grpc.FusionKeypointsStub, inference_pb2_grpc.RecognitionStub]:
        if self._channel is None:
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
        return inference_pb2_grpc.FusionKeypointsStub(self._channel), inference_pb2_grpc.RecognitionStub(
            self._channel
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _call(self, method, request, what: str):  # type: ignore[no-untyped-def]
        try:
            return await method(request, timeout=self.timeout_s, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT:
                raise DependencyUnavailable(
                    f"model server {self.target} {what}: {exc.code().name} {exc.details()}"
                ) from exc
            raise

    async def fuse(self, request: inference_pb2.FusionBatchRequest) -> inference_pb2.FusionBatchResponse:
        fusion, _ = self._stubs()
        return await self._call(fusion.Infer, request, "fusion")

    async def recognise(
        self, request: inference_pb2.RecognitionBatchRequest
    ) -> inference_pb2.RecognitionBatchResponse:
        _, recognition = self._stubs()
        return await self._call(recognition.Infer, request, "recognition")

    async def info(self) -> inference_pb2.ModelInfo:
        _, recognition = self._stubs()
        return await self._call(recognition.Info, inference_pb2.ModelInfoRequest(), "info")
