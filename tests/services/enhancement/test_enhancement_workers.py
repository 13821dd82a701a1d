"""The enhancement service's workers, without a broker: worker processes give the same messages as
threads, and a worker process that dies loses no frame set (retried alone; a poison frame set is
dead-lettered as ``worker_crashed``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.common.campus import Camera, Campus, Classroom, dump_campus
from services.common.errors import CorruptImage, WorkerCrashed
from services.common.pb.classroom.v1 import frames_pb2
from services.enhancement.config import EnhancementSettings
from services.enhancement.service import EnhancementService, FrameSetEnhancer
from tests.services.enhancement.test_enhancement_service import CALIBRATION, raw_frame_set


class CrashingEnhancer(FrameSetEnhancer):
    """Kills its worker process for session 'crash-always', and once for 'crash-once:<marker file>'."""

    def __call__(self, payload: bytes) -> tuple[str, bytes]:
        session = frames_pb2.FrameSet.FromString(payload).session_id
        if session == "crash-always":
            os._exit(3)
        if session.startswith("crash-once:"):
            marker = Path(session.split(":", 1)[1])
            if not marker.exists():
                marker.touch()
                os._exit(3)
        return super().__call__(payload)


class CrashingService(EnhancementService):
    enhancer_class = CrashingEnhancer


def _settings(tmp_path: Path, executor: str) -> EnhancementSettings:
    campus = Campus(
        classrooms=(Classroom(id="room-1", cameras=(Camera(id="cam-1", calibration=CALIBRATION),)),)
    )
    dump_campus(campus, tmp_path / "campus.yaml")
    return EnhancementSettings(
        kafka_bootstrap="127.0.0.1:1",  # never connected: process_batch is called directly
        campus_file=tmp_path / "campus.yaml",
        workers=2,
        executor=executor,
    )


def _records(*messages: frames_pb2.FrameSet | bytes) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            value=m if isinstance(m, bytes) else m.SerializeToString(),
            topic="frames.raw.v1",
            partition=0,
            offset=i,
        )
        for i, m in enumerate(messages)
    ]


def _run(service: EnhancementService, records) -> list:
    async def go():
        await service.setup()
        try:
            return await service.process_batch(records)
        finally:
            await service.teardown()

    return asyncio.run(go())


def _enhanced(result) -> frames_pb2.EnhancedFrameSet:
    assert result.bad_input is None, result.bad_input
    (output,) = result.outputs
    message = frames_pb2.EnhancedFrameSet.FromString(output.value)
    # The only fields that depend on when and how fast it ran.
    message.ClearField("published_ts_us")
    message.report.ClearField("processing_ms")
    return message


def test_process_workers_match_threads(tmp_path) -> None:
    corrupt = raw_frame_set(2)
    corrupt.rgb.data = corrupt.rgb.data[:100]
    records = _records(raw_frame_set(0), raw_frame_set(1), corrupt, b"\x08\x96not a frame set")
    by_executor = {
        executor: _run(EnhancementService(_settings(tmp_path, executor)), records)
        for executor in ("process", "thread")
    }
    processes, threads = by_executor["process"], by_executor["thread"]
    for i in (0, 1):
        assert _enhanced(processes[i]) == _enhanced(threads[i])
        assert processes[i].outputs[0].key == b"room-1"
    for i in (2, 3):
        assert type(processes[i].bad_input) is type(threads[i].bad_input)
        assert processes[i].bad_input.detail == threads[i].bad_input.detail
    assert isinstance(processes[2].bad_input, CorruptImage)
    assert processes[3].bad_input.reason_code == "malformed_message"


def test_a_dead_worker_loses_no_frame_set(tmp_path) -> None:
    once = raw_frame_set(1)
    once.session_id = f"crash-once:{tmp_path / 'crashed'}"
    poison = raw_frame_set(2)
    poison.session_id = "crash-always"
    service = CrashingService(_settings(tmp_path, "process"))

    async def go():
        await service.setup()
        try:
            first = await service.process_batch(_records(raw_frame_set(0), once, poison, raw_frame_set(3)))
            # The pool that replaced the broken one keeps serving.
            second = await service.process_batch(_records(raw_frame_set(4)))
            return first, second
        finally:
            await service.teardown()

    first, second = asyncio.run(go())
    assert [r.bad_input is None for r in first] == [True, True, False, True]
    assert isinstance(first[2].bad_input, WorkerCrashed)
    assert first[2].bad_input.reason_code == "worker_crashed"
    assert "killed a worker process twice" in first[2].bad_input.detail
    assert _enhanced(first[1]).session_id == once.session_id  # crashed once, then enhanced on retry
    assert [_enhanced(r).sequence for r in (first[0], first[3], second[0])] == [0, 3, 4]
    # The first crash broke the pool for the whole batch; the poison frame set broke it again alone.
    assert service.worker_crashes == 2


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_unknown_camera_is_bad_input_in_either_executor(tmp_path, executor) -> None:
    stranger = raw_frame_set(0, camera="cam-9")
    (result,) = _run(EnhancementService(_settings(tmp_path, executor)), _records(stranger))
    assert result.bad_input.reason_code == "unknown_camera"
    assert "room-1/cam-9" in result.bad_input.detail
