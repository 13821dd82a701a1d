"""The fusion loop: enhanced frame sets -> one batched gRPC call -> observations, keyed by classroom."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from services.common.bus import Output, RecordResult, StreamService, now_us
from services.common.codecs import parse_message
from services.common.errors import BadInput, MalformedMessage, UnknownCamera
from services.common.model_client import ModelClient
from services.common.pb.classroom.v1 import frames_pb2, inference_pb2
from services.common.tls import client_tls
from services.common.topics import FRAMES_ENHANCED, OBSERVATIONS
from services.fusion.config import FusionSettings
from services.fusion.observations import observation_set, seat_regions


class FusionService(StreamService):
    name = "fusion"
    depends_on = "model server"

    def __init__(self, settings: FusionSettings) -> None:
        super().__init__(settings, input_topic=FRAMES_ENHANCED)
        self.settings: FusionSettings = settings
        self.output_topic = settings.topic_prefix + OBSERVATIONS
        self.client = ModelClient(
            settings.model_server,
            timeout_s=settings.model_timeout_s,
            tls=client_tls(
                settings.model_server_ca_file, settings.model_server_cert_file, settings.model_server_key_file
            ),
        )

    async def teardown(self) -> None:
        await self.client.close()

    def _parse(self, record: ConsumerRecord) -> tuple[frames_pb2.EnhancedFrameSet, inference_pb2.FusionItem]:
        frame_set = parse_message(record.value or b"", frames_pb2.EnhancedFrameSet)
        if not frame_set.classroom_id or not frame_set.camera_id or not frame_set.session_id:
            raise MalformedMessage("enhanced frame set lacks classroom, camera or session id")
        assert self.campus is not None  # FusionSettings.campus_file is required
        camera = self.campus.current.camera(frame_set.classroom_id, frame_set.camera_id)
        if camera is None:
            raise UnknownCamera(
                f"camera {frame_set.classroom_id}/{frame_set.camera_id} is not in the campus file "
                f"({self.campus.describe()}); add it there, no restart needed"
            )
        item = inference_pb2.FusionItem(
            request_id=f"{record.partition}:{record.offset}", frame_set=frame_set, seats=seat_regions(camera)
        )
        return frame_set, item

    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[RecordResult]:
        assert self.campus is not None  # FusionSettings.campus_file is required
        results: list[RecordResult | None] = [None] * len(records)
        parsed: list[tuple[int, frames_pb2.EnhancedFrameSet]] = []
        request = inference_pb2.FusionBatchRequest()
        for i, record in enumerate(records):
            try:
                frame_set, item = self._parse(record)
            except BadInput as exc:
                results[i] = RecordResult([], exc)
                continue
            parsed.append((i, frame_set))
            request.items.append(item)
        if parsed:
            response = await self.client.fuse(request)  # DependencyUnavailable -> the batch is retried
            published_ts_us = now_us()
            for (i, frame_set), result in zip(parsed, response.results, strict=True):
                if result.error:
                    code, _, detail = result.error.partition(": ")
                    error = BadInput(detail or result.error)
                    error.reason_code = code or "bad_input"
                    results[i] = RecordResult([], error)
                    continue
                observations = observation_set(
                    frame_set,
                    result,
                    campus=self.campus.current,
                    model_version=response.model_version + ("" if response.model_trained else " (untrained)"),
                    min_occupancy=self.settings.min_occupancy,
                    published_ts_us=published_ts_us,
                    frame_published_ts_us=frame_set.capture_published_ts_us,
                )
                self.metrics.observe_since_capture((published_ts_us - frame_set.capture_ts_us) / 1e6)
                results[i] = RecordResult(
                    [
                        Output(
                            self.output_topic,
                            frame_set.classroom_id.encode(),
                            observations.SerializeToString(),
                        )
                    ]
                )
        return [r for r in results if r is not None]
