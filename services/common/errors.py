"""Errors that describe bad input. A service turns each into a dead letter with its reason code."""

from __future__ import annotations


class BadInput(Exception):
    """Input that can never be processed as it is: dead-letter it and keep going."""

    reason_code = "bad_input"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConflictingEvent(BadInput):
    """A behaviour event whose id is stored already with other content (another session's or
    another model's event under the same id): kept out of SQL, counted, logged, dead-lettered."""

    reason_code = "conflicting_event"


class MalformedMessage(BadInput):
    """The bytes are not the protobuf message the topic carries."""

    reason_code = "malformed_message"


class CorruptImage(BadInput):
    """An encoded image that does not decode, or decodes to something else than it claims."""

    reason_code = "corrupt_image"


class MissingModality(BadInput):
    """A frame set without one of its three images."""

    reason_code = "missing_modality"


class WrongResolution(BadInput):
    """An image whose size differs from what its header or the camera's calibration says."""

    reason_code = "wrong_resolution"


class OversizedMessage(BadInput):
    """A message above the configured campus limit (Apache Kafka refuses ~1 MB by default)."""

    reason_code = "oversized_message"


class InvalidCalibration(BadInput):
    """Calibration that does not fit the frame it should map."""

    reason_code = "invalid_calibration"


class UnknownCamera(BadInput):
    """A frame set from a classroom or camera that the campus file does not list."""

    reason_code = "unknown_camera"


class WorkerCrashed(BadInput):
    """A message whose processing killed a worker process twice (once on retry alone): a poison message."""

    reason_code = "worker_crashed"
