"""The cheap camera for capacity tests: frame sets recorded once, replayed at the camera rate.

A recording (``CAPTURE_RECORD_TO`` on any capture agent) is a file of the frame sets the agent
published, already encoded (JPEG colour, lossless depth and thermal), each preceded by its
length (4 bytes, big-endian). Replaying it (``CAPTURE_SOURCE=replay``,
``CAPTURE_REPLAY_PATH``) costs the agent almost no CPU: nothing is rendered, decoded or encoded
again, so a capacity test measures the suite, not the simulator's renderer. The recording is
read again from the start when it ends (``loop``). The agent gives each frame set its own ids,
sequence and timestamps on the wall clock, as for any other source.

A recording holds images of whoever was in front of the camera: make them of simulated
classrooms (``classroom demo``, ``CAPTURE_SOURCE=simulator``); the README says where they are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from services.capture.sources import CameraUnavailable
from services.common.calibration import CameraCalibration
from services.common.errors import BadInput
from services.common.pb.classroom.v1 import frames_pb2

_LENGTH = struct.Struct(">I")


class Recorder:
    """Appends published frame sets to a recording."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("ab")

    def write(self, payload: bytes) -> None:
        self._file.write(_LENGTH.pack(len(payload)) + payload)

    def close(self) -> None:
        self._file.close()


def read_recording(path: Path) -> Iterator[frames_pb2.FrameSet]:
    """Every frame set of a recording, in order; BadInput names the first damaged one."""
    with path.open("rb") as file:
        index = 0
        while header := file.read(_LENGTH.size):
            if len(header) < _LENGTH.size:
                raise BadInput(f"{path}: cut short after {index} frame sets")
            (size,) = _LENGTH.unpack(header)
            payload = file.read(size)
            if len(payload) < size:
                raise BadInput(f"{path}: frame set {index} is cut short ({len(payload)} of {size} bytes)")
            message = frames_pb2.FrameSet()
            try:
                message.ParseFromString(payload)
            except Exception as exc:  # protobuf's DecodeError
                raise BadInput(f"{path}: frame set {index} is not a FrameSet ({exc})") from exc
            yield message
            index += 1


class ReplaySource:
    """Recorded frame sets at ``fps``, looped; ``encoded``: the agent publishes them as they are."""

    live = False
    degraded = ""  # one source: its frame sets are whole or absent
    encoded = True

    def __init__(self, path: Path | None, *, fps: float, loop: bool = True) -> None:
        if path is None or not Path(path).is_file():
            raise CameraUnavailable(f"replay: no recording at {path} (CAPTURE_REPLAY_PATH)")
        self.path = Path(path)
        self.frame_rate = fps
        self.loop = loop
        self.calibration: CameraCalibration | None = None  # the campus file has the camera's
        try:
            first = next(read_recording(self.path), None)
        except BadInput as exc:
            raise CameraUnavailable(f"replay: {exc.detail}") from exc
        if first is None:
            raise CameraUnavailable(f"replay: {self.path} holds no frame set")

    def __iter__(self) -> Iterator[frames_pb2.FrameSet]:
        while True:
            try:
                yield from read_recording(self.path)
            except BadInput as exc:  # a damaged recording is a camera that stopped delivering
                raise CameraUnavailable(f"replay: {exc.detail}") from exc
            if not self.loop:
                return

    def close(self) -> None:
        pass


def record_simulated(
    path: Path,
    *,
    seed: int,
    students: int,
    fps: float,
    seconds: float,
    size: tuple[int, int] = (640, 360),
    progress: bool = False,
) -> int:
    """Render a simulated classroom once into a recording for the replay camera; frame sets written."""
    from services.common import codecs
    from services.common.progress import progress_bar
    from services.simulator.live import SimulatedCamera

    camera = SimulatedCamera(seed=seed, students=students, fps=fps, rgb_size=size)
    frames = max(1, round(seconds * fps))
    recorder = Recorder(path)
    try:
        for sequence in progress_bar(
            range(frames), desc=f"recording {path.name}", unit="frame set", disable=not progress
        ):
            message = codecs.encode_frame_set(
                camera.frame_at(sequence),
                classroom_id="recorded",
                session_id="recorded",
                camera_id="recorded",
                frame_rate=fps,
                source="simulator",
            )
            recorder.write(message.SerializeToString())
    finally:
        recorder.close()
        close = getattr(camera, "close", None)
        if close is not None:
            close()
    return frames
