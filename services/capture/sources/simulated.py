"""The simulator as a camera source (SmartClass-Sim, services/simulator)."""

from __future__ import annotations

from collections.abc import Iterator

from services.common.calibration import CameraCalibration
from services.common.frames import CapturedFrameSet


class SimulatedSource:
    """Frame sets rendered by SmartClass-Sim, with exact ground truth in ``annotations``."""

    live = False  # rendered as fast as asked: the agent paces it
    degraded = ""  # one source: its frame sets are whole or absent

    def __init__(self, camera) -> None:  # type: ignore[no-untyped-def]
        self.camera = camera
        self.calibration: CameraCalibration = camera.calibration
        self.frame_rate: float = camera.frame_rate

    def __iter__(self) -> Iterator[CapturedFrameSet]:
        return iter(self.camera)

    def close(self) -> None:
        close = getattr(self.camera, "close", None)
        if close is not None:
            close()


def simulated_source(settings) -> SimulatedSource:  # type: ignore[no-untyped-def]
    from services.simulator.live import SimulatedCamera

    return SimulatedSource(
        SimulatedCamera(
            seed=settings.sim_seed,
            students=settings.sim_students,
            fps=settings.fps,
            rgb_size=(settings.sim_width, settings.sim_height),
            conditions=settings.sim_conditions,
        )
    )
