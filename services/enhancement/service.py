"""The enhancement loop: decode a captured frame set, run section 3.2, publish it aligned to colour.

Frame sets of one poll are enhanced in parallel by ``workers`` worker processes (the default,
``executor="process"``) or threads (``executor="thread"``); results keep their order. A
worker receives the message's wire bytes and returns the enhanced message's wire bytes, so
only compressed images cross the process boundary. Processes are the default because the
section 3.2 code makes about 550 short NumPy/OpenCV calls per frame set and the GIL hand-offs
between them cost threads a third of the throughput on 2 cores (docs/benchmarks.md, issue 4).

Any problem with one frame set (corrupt image, missing modality, a resolution that does not
match the camera's calibration) dead-letters that frame set only. A worker process that dies
(a crash in native code, the OOM killer) breaks the pool: the pool is replaced and every
frame set that was in flight is retried alone; one that kills a worker again is dead-lettered
as ``worker_crashed`` and the service keeps going.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import cv2
from aiokafka import ConsumerRecord

from models.serving.committed import DEFAULT_CHECKPOINT  # a path module: no torch
from services.common import codecs
from services.common.bus import Output, RecordResult, StreamService, now_us
from services.common.campus import Campus
from services.common.errors import (
    BadInput,
    UnknownCamera,
    WorkerCrashed,
)
from services.common.topics import FRAMES_ENHANCED, FRAMES_RAW
from services.enhancement.config import EnhancementSettings
from services.enhancement.frameset import enhance_frame_set
from services.enhancement.pipeline import EnhancementParams, Enhancer, opencv_threads, tune_allocator


def load_params(settings: EnhancementSettings) -> EnhancementParams:
    if settings.params_file is not None:
        return EnhancementParams.from_json(settings.params_file)
    trained = DEFAULT_CHECKPOINT.with_name("enhancement.json")
    return EnhancementParams.from_json(trained) if trained.is_file() else EnhancementParams()


class FrameSetEnhancer:
    """One frame set, wire bytes in, (classroom key, enhanced wire bytes) out, or BadInput.

    What every worker runs, thread or process; it pickles (campus, parameters, settings only).
    """

    def __init__(self, campus: Campus, params: EnhancementParams, jpeg_quality: int) -> None:
        self.campus = campus
        self.enhancer = Enhancer(params)
        self.jpeg_quality = jpeg_quality

    def __call__(self, payload: bytes) -> tuple[str, bytes]:
        message = codecs.parse_frame_set(payload)
        camera = self.campus.camera(message.classroom_id, message.camera_id)
        if camera is None:
            raise UnknownCamera(
                f"camera {message.classroom_id}/{message.camera_id} is not in the campus file in force; "
                "add it there, no restart needed"
            )
        out = enhance_frame_set(
            message, camera, self.enhancer, jpeg_quality=self.jpeg_quality, published_ts_us=now_us()
        )
        return message.classroom_id, out.SerializeToString()


# --- worker processes ---------------------------------------------------------------------------

_worker: FrameSetEnhancer | None = None


def start_worker(enhancer: FrameSetEnhancer, cv2_threads: int) -> None:
    """Initializer of a worker process: keep the frame-set enhancer, size OpenCV's pool."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the service stops us
    tune_allocator()
    cv2.setNumThreads(cv2_threads)
    _worker = enhancer


def enhance_in_worker(payload: bytes) -> tuple[str, bytes]:
    if _worker is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("enhancement worker used before start_worker")
    return _worker(payload)


def worker_pid() -> int:
    return os.getpid()


def process_pool(enhancer: FrameSetEnhancer, workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes (never forked: the service runs threads) holding ``enhancer``."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(enhancer, opencv_threads(workers)),
    )


class EnhancementService(StreamService):
    name = "enhancement"
    #: what the workers run (a subclass for tests that need a worker to crash)
    enhancer_class: type[FrameSetEnhancer] = FrameSetEnhancer

    def __init__(self, settings: EnhancementSettings) -> None:
        super().__init__(settings, input_topic=FRAMES_RAW)
        self.settings: EnhancementSettings = settings
        self.output_topic = settings.topic_prefix + FRAMES_ENHANCED
        assert self.campus is not None  # EnhancementSettings.campus_file is required
        self.params = load_params(settings)
        self.enhancer = self.enhancer_class(self.campus.current, self.params, settings.jpeg_quality)
        self.worker_crashes = 0
        self.pool: Executor = self._new_pool()

    def _new_pool(self) -> Executor:
        if self.settings.executor == "process":
            return process_pool(self.enhancer, self.settings.workers)
        # `workers` frame sets in flight share the cores; OpenCV's own pool gets what is left.
        cv2.setNumThreads(opencv_threads(self.settings.workers))
        return ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="enhance")

    async def _start_workers(self) -> None:
        """Start every worker process now, so that no frame set waits for one to import."""
        if isinstance(self.pool, ProcessPoolExecutor):
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(self.pool, worker_pid) for _ in range(self.settings.workers))
            )

    async def setup(self) -> None:
        await self._start_workers()

    async def teardown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def enhance(self, payload: bytes) -> tuple[str, bytes]:
        """One frame set on the calling thread (see ``FrameSetEnhancer``)."""
        return self.enhancer(payload)

    async def _submit(self, payload: bytes) -> tuple[str, bytes]:
        loop = asyncio.get_running_loop()
        if isinstance(self.pool, ProcessPoolExecutor):
            return await loop.run_in_executor(self.pool, enhance_in_worker, payload)
        return await loop.run_in_executor(self.pool, self.enhancer, payload)

    async def _replace_pool(self) -> None:
        self.worker_crashes += 1
        self.metrics.count_retry("WorkerCrashed")
        await self._renew_pool()

    async def _renew_pool(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()
        await self._start_workers()

    async def campus_changed(self) -> None:
        """Workers hold the campus (calibrations, seat maps): new ones get the new campus."""
        assert self.campus is not None
        self.enhancer = self.enhancer_class(self.campus.current, self.params, self.settings.jpeg_quality)
        if isinstance(self.pool, ProcessPoolExecutor):
            self.pool.shutdown(wait=True)  # frame sets in flight finish with the campus they started with
            self.pool = self._new_pool()
            await self._start_workers()

    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[RecordResult]:
        payloads = [record.value or b"" for record in records]
        outcomes: list[tuple[str, bytes] | BaseException] = list(
            await asyncio.gather(*(self._submit(p) for p in payloads), return_exceptions=True)
        )
        crashed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, BrokenProcessPool)]
        if crashed:
            self.log.warning(
                "an enhancement worker process died; retrying its frame sets one at a time",
                extra={"frame_sets": len(crashed)},
            )
            await self._replace_pool()
            for i in crashed:  # alone, so that a frame set that kills a worker again is the one blamed
                try:
                    outcomes[i] = await self._submit(payloads[i])
                except BrokenProcessPool:
                    outcomes[i] = WorkerCrashed(
                        f"enhancing this frame set killed a worker process twice "
                        f"(offset {records[i].offset} of {records[i].topic}[{records[i].partition}])"
                    )
                    await self._replace_pool()
                except Exception as exc:  # sorted below like any other outcome
                    outcomes[i] = exc
        return [self._result(outcome) for outcome in outcomes]

    def _result(self, outcome: tuple[str, bytes] | BaseException) -> RecordResult:
        if isinstance(outcome, BadInput):
            return RecordResult([], outcome)
        if isinstance(outcome, ValueError):  # the enhancement library's own checks on pixel content
            return RecordResult([], BadInput(str(outcome)))
        if isinstance(outcome, BaseException):
            raise outcome
        key, value = outcome
        return RecordResult([Output(self.output_topic, key.encode(), value)])
