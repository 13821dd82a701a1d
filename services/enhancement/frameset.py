"""Section 3.2 on one wire message: a captured ``FrameSet`` in, the ``EnhancedFrameSet`` out.

The enhancement service runs this for every frame set it consumes, and the training data of
``models/data`` runs it too, so a network is trained on exactly the images the model server
is sent: the same decoding, the same enhancement at the camera's analysis size, the same
re-encoding (JPEG colour, depth on its registration grid, lossless thermal).
"""

from __future__ import annotations

from services.common import codecs
from services.common.campus import Camera
from services.common.errors import InvalidCalibration, WrongResolution
from services.common.pb.classroom.v1 import frames_pb2
from services.enhancement.pipeline import Enhancer


def enhance_frame_set(
    message: frames_pb2.FrameSet,
    camera: Camera,
    enhancer: Enhancer,
    *,
    jpeg_quality: int = 90,
    published_ts_us: int = 0,
) -> frames_pb2.EnhancedFrameSet:
    """Decode, check against the camera's calibration, enhance, encode; BadInput names a bad frame set."""
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
    enhanced = enhancer.process(decoded, calibration, (camera.analysis_width, camera.analysis_height))
    ts = message.capture_ts_us
    report = frames_pb2.EnhancementReport(
        **{k: float(v) for k, v in enhanced.report.items() if k != "method"},
        method=str(enhanced.report.get("method", "")),
    )
    return frames_pb2.EnhancedFrameSet(
        classroom_id=message.classroom_id,
        session_id=message.session_id,
        camera_id=message.camera_id,
        course_id=message.course_id,
        sequence=message.sequence,
        capture_ts_us=ts,
        rgb=codecs.encode_rgb(enhanced.rgb, capture_ts_us=ts, quality=jpeg_quality),
        depth=codecs.encode_depth(enhanced.depth_grid_mm, capture_ts_us=ts),  # registration grid
        thermal_radiometric=codecs.encode_thermal(
            enhanced.thermal_c, capture_ts_us=ts, covered=enhanced.thermal_covered
        ),
        thermal_equalised=codecs.encode_gray8(enhanced.thermal_equalised, capture_ts_us=ts),
        report=report,
        frame_rate=message.frame_rate,
        capture_published_ts_us=message.published_ts_us,
        published_ts_us=published_ts_us,
    )
