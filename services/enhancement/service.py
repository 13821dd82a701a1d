"""The enhancement loop: decode a captured frame set, run section 3.2, publish it aligned to colour.

Frame sets of one poll are enhanced in parallel threads (OpenCV releases the GIL), results
keep their order. Any problem with one frame set (corrupt image, missing modality, a
resolution that does not match the camera's calibration) dead-letters that frame set only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
from aiokafka import ConsumerRecord

from services.common import codecs
from services.common.bus import Output, RecordResult, StreamService, now_us
from services.common.campus import load_campus
from services.common.errors import BadInput, InvalidCalibration, UnknownCamera, WrongResolution
from services.common.pb.classroom.v1 import frames_pb2
from services.common.topics import FRAMES_ENHANCED, FRAMES_RAW
from services.enhancement.config import EnhancementSettings
from services.enhancement.pipeline import EnhancementParams, Enhancer, opencv_threads


def load_params(settings: EnhancementSettings) -> EnhancementParams:
    if settings.params_file is not None:
        return EnhancementParams.from_json(settings.params_file)
    from services.modelserver.config import DEFAULT_CHECKPOINT

    trained = DEFAULT_CHECKPOINT.with_name("enhancement.json")
    return EnhancementParams.from_json(trained) if trained.is_file() else EnhancementParams()


class EnhancementService(StreamService):
    name = "enhancement"

    def __init__(self, settings: EnhancementSettings) -> None:
        super().__init__(settings, input_topic=FRAMES_RAW)
        self.settings: EnhancementSettings = settings
        self.campus = load_campus(settings.campus_file)
        self.output_topic = settings.topic_prefix + FRAMES_ENHANCED
        self.enhancer = Enhancer(load_params(settings))
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="enhance")
        # `workers` frame sets in flight share the cores; OpenCV's own pool gets what is left.
        cv2.setNumThreads(opencv_threads(settings.workers))

    async def teardown(self) -> None:
        self.pool.shutdown(wait=True)

    def enhance(self, payload: bytes) -> tuple[str, bytes]:
        """One frame set: wire bytes in, (classroom key, enhanced wire bytes) out, or BadInput."""
        message = codecs.parse_frame_set(payload)
        camera = self.campus.camera(message.classroom_id, message.camera_id)
        if camera is None:
            raise UnknownCamera(
                f"camera {message.classroom_id}/{message.camera_id} is not in the campus file"
            )
        if camera.calibration is None:
            raise InvalidCalibration(f"camera {message.classroom_id}/{message.camera_id} has no calibration")
        decoded = codecs.decode_frame_set(message)
        calibration = camera.calibration
        for name, image, intrinsics in (
            ("rgb", decoded.rgb, calibration.rgb),
            ("depth", decoded.depth_mm, calibration.depth.intrinsics),
            ("thermal", decoded.thermal_c, calibration.thermal.intrinsics),
        ):
            if image.shape[1] != intrinsics.width or image.shape[0] != intrinsics.height:
                raise WrongResolution(
                    f"{name} is {image.shape[1]}x{image.shape[0]}, the camera's calibration is for "
                    f"{intrinsics.width}x{intrinsics.height}"
                )
        enhanced = self.enhancer.process(
            decoded, calibration, (camera.analysis_width, camera.analysis_height)
        )
        ts = message.capture_ts_us
        report = frames_pb2.EnhancementReport(
            **{k: float(v) for k, v in enhanced.report.items() if k != "method"},
            method=str(enhanced.report.get("method", "")),
        )
        out = frames_pb2.EnhancedFrameSet(
            classroom_id=message.classroom_id,
            session_id=message.session_id,
            camera_id=message.camera_id,
            course_id=message.course_id,
            sequence=message.sequence,
            capture_ts_us=ts,
            rgb=codecs.encode_rgb(enhanced.rgb, capture_ts_us=ts, quality=self.settings.jpeg_quality),
            depth=codecs.encode_depth(enhanced.depth_mm, capture_ts_us=ts),
            thermal_radiometric=codecs.encode_thermal(enhanced.thermal_c, capture_ts_us=ts),
            thermal_equalised=codecs.encode_gray8(enhanced.thermal_equalised, capture_ts_us=ts),
            report=report,
            frame_rate=message.frame_rate,
            capture_published_ts_us=message.published_ts_us,
            published_ts_us=now_us(),
        )
        return message.classroom_id, out.SerializeToString()

    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[RecordResult]:
        loop = asyncio.get_running_loop()

        async def one(record: ConsumerRecord) -> RecordResult:
            try:
                key, value = await loop.run_in_executor(self.pool, self.enhance, record.value or b"")
                return RecordResult([Output(self.output_topic, key.encode(), value)])
            except BadInput as exc:
                return RecordResult([], exc)
            except ValueError as exc:  # the enhancement library's own checks on pixel content
                return RecordResult([], BadInput(str(exc)))

        return list(await asyncio.gather(*(one(r) for r in records)))
