"""A data-set folder as a camera source: replays the clips of a data set (docs/dataset-format.md).

Any folder in the project's format works: a SmartClass-Sim export (``classroom simulate``),
a recorded simulator session, or real recordings converted with ``classroom dataset convert``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

from services.capture.sources import CameraUnavailable
from services.common.calibration import CameraCalibration
from services.common.frames import CapturedFrameSet
from services.dataset.format import ANNOTATIONS_FILE, ClipInfo, DatasetError, FrameAnnotation, clip_dir
from services.dataset.reader import FolderDataset, folder_source, parse_annotations, read_frame

log = logging.getLogger("capture")


def resample(times_us: list[int], clip_fps: float, fps: float) -> list[int]:
    """Indices of the recorded frames to play so that the clip plays at its own speed at ``fps``.

    Output frame k is due at ``k / fps`` seconds after the clip's first frame and shows the
    recorded frame nearest in time (recording timestamps, so skipped captures are honoured);
    it is played while the middle of its period lies inside the recording (the last frame
    lasts one recorded period). At ``fps`` equal to the clip's rate this is every frame once.
    """
    if not times_us:
        return []
    t0 = times_us[0]
    rel = [t - t0 for t in times_us]
    out_period = 1e6 / fps
    end = rel[-1] + 1e6 / clip_fps  # the recording covers [0, end)
    picks: list[int] = []
    i = 0
    k = 0
    while k * out_period + out_period / 2 < end:
        due = k * out_period
        while i + 1 < len(rel) and abs(rel[i + 1] - due) < abs(rel[i] - due):
            i += 1
        picks.append(i)
        k += 1
    return picks


class DatasetSource:
    """Frame sets read from a data-set folder, clip after clip, with the recorded ground truth.

    - Clips play in the order of ``manifest.json`` (every split), or only ``clip`` when given.
    - Each clip is resampled by its recorded timestamps to ``fps`` (nearest frame, see
      ``resample``), so a recording plays at its own speed whatever its frame rate: the agent
      publishes ``fps`` frame sets per second (``frame_rate``), and the recognition windows,
      which are on a time grid, see the motion as recorded.
    - Frame sets keep the recording's timestamps (the agent re-stamps them to the time of
      publishing, keeping each sensor's offset); ``sequence`` counts 0, 1, 2, ... across all
      clips (a frame that cannot be read leaves a gap, as a dropped frame does), and
      ``annotations`` holds the frame's annotation from ``annotations.jsonl`` (ground truth,
      never published with the frame) with ``sequence`` set to the published one and
      ``clip_id``, ``frame`` and ``recorded_sequence`` saying where it came from.
    - One calibration for the whole replay: every frame set the agent publishes refers to
      one calibration (``<classroom>/<camera>`` in the campus file). A data set whose clips
      were recorded with different calibrations (another room, camera or rig) is refused
      when the source opens, with ``CameraUnavailable`` naming the first clip that differs;
      play such clips one at a time with ``clip`` (``CAPTURE_DATASET_CLIP``).
    - A missing folder, a folder that is not a data set, an unknown ``clip`` or a broken
      ``clip.json`` raise ``CameraUnavailable`` (the agent reports it and retries). A clip
      whose annotations cannot be read, or a frame whose image is missing or corrupt, found
      during the replay is logged and skipped: replaying the data set again could only
      publish the same frames twice.
    """

    live = False  # a recording: the agent paces it to fps
    degraded = ""  # one source: its frame sets are whole or absent

    def __init__(self, path: str | Path | None, *, fps: float, clip: str | None = None) -> None:
        if path is None:
            raise CameraUnavailable("the dataset source needs a data-set folder (CAPTURE_DATASET_PATH)")
        if not fps > 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.path = Path(path)
        if not self.path.is_dir():
            why = "is not a folder" if self.path.exists() else "does not exist"
            raise CameraUnavailable(f"data-set folder {self.path} {why}")
        try:
            self.dataset = FolderDataset(self.path)
        except DatasetError as exc:
            raise CameraUnavailable(f"data-set folder {self.path} cannot be read: {exc}") from None
        listed = self.dataset.clip_ids()
        if clip is not None:
            if clip not in listed:
                raise CameraUnavailable(f"data set {self.path} has no clip {clip!r} in its manifest")
            self.clips = [clip]
        else:
            self.clips = listed
        if not self.clips:
            raise CameraUnavailable(f"data set {self.path} lists no clips")
        self._infos: dict[str, ClipInfo] = {}
        for clip_id in self.clips:
            try:
                self._infos[clip_id] = self.dataset.clip_info(clip_id)
            except DatasetError as exc:
                raise CameraUnavailable(
                    f"data set {self.path}: clip {clip_id} cannot be read: {exc}"
                ) from None
        first = self.clips[0]
        self.calibration: CameraCalibration = self._infos[first].calibration
        for clip_id in self.clips[1:]:
            if self._infos[clip_id].calibration != self.calibration:
                raise CameraUnavailable(
                    f"data set {self.path}: clip {clip_id} was recorded with another calibration than "
                    f"clip {first} (the agent publishes under one calibration); play one clip at a time "
                    "with CAPTURE_DATASET_CLIP"
                )
        self.frame_rate: float = float(fps)
        self._closed = False

    def _annotations(self, clip_id: str, info: ClipInfo) -> list[FrameAnnotation] | None:
        try:  # parsed here, per clip, so a long replay does not keep every clip's annotations
            return parse_annotations(clip_dir(self.path, clip_id) / ANNOTATIONS_FILE, info)
        except DatasetError as exc:
            log.error("clip skipped: annotations cannot be read", extra={"clip": clip_id, "error": str(exc)})
            return None

    def __iter__(self) -> Iterator[CapturedFrameSet]:
        sequence = 0
        for clip_id in self.clips:
            if self._closed:
                return
            info = self._infos[clip_id]
            annotations = self._annotations(clip_id, info)
            if annotations is None:
                continue
            fetch = folder_source(self.path, clip_id)
            times = [a.rgb_ts_us for a in annotations]
            index_read, frames = -1, None
            for index in resample(times, info.fps, self.frame_rate):
                if self._closed:
                    return
                if index != index_read:
                    index_read = index
                    try:
                        frames = read_frame(fetch, info, annotations[index])
                    except DatasetError as exc:
                        log.error(
                            "frame skipped: cannot be read",
                            extra={"clip": clip_id, "frame": index, "error": str(exc)},
                        )
                        frames = None
                if frames is None:
                    sequence += 1  # a gap, as for a dropped frame
                    continue
                recorded = annotations[index]
                # A new frame set each time (the agent re-stamps what it is given, in place); the
                # ground truth names the published sequence and where the frame came from.
                yield dataclasses.replace(
                    frames,
                    sequence=sequence,
                    annotations={
                        **(frames.annotations or {}),
                        "sequence": sequence,
                        "clip_id": clip_id,
                        "frame": recorded.frame,
                        "recorded_sequence": recorded.sequence,
                    },
                )
                sequence += 1

    def close(self) -> None:
        self._closed = True
