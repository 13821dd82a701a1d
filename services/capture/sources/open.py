"""``open_source``: the camera source the capture settings name, imported only when named
(the Kinect's pyk4a, the simulator and the data-set reader are each needed by one source alone).

Above every source module: the sources share their types from the package
(services/capture/sources/__init__.py) and never import this opener.
"""

from __future__ import annotations

from services.capture.sources import FrameSource


def open_source(settings) -> FrameSource:  # type: ignore[no-untyped-def]
    """Build the source the settings name (imports what that source needs, and only that)."""
    if settings.source == "simulator":
        from services.capture.sources.simulated import simulated_source

        return simulated_source(settings)
    if settings.source == "dataset":
        from services.capture.sources.recorded import DatasetSource

        return DatasetSource(settings.dataset_path, fps=settings.fps, clip=settings.dataset_clip or None)
    if settings.source == "replay":
        from services.capture.sources.replay import ReplaySource

        return ReplaySource(settings.replay_path, fps=settings.fps)
    if settings.source in ("kinect", "mkv"):
        from services.capture.sources.kinect import kinect_source

        return kinect_source(settings)
    raise ValueError(f"unknown source {settings.source}")
