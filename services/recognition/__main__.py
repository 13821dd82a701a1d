"""python -m services.recognition [--validate-config]"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.common.entrypoint import main_for
from services.recognition.config import RecognitionSettings

if TYPE_CHECKING:
    from services.recognition.service import RecognitionService


def make_service(settings: RecognitionSettings) -> RecognitionService:
    """The faust worker, imported only here: ``--validate-config`` answers without loading faust
    (a second or more at start)."""
    from services.recognition.service import RecognitionService

    return RecognitionService(settings)


if __name__ == "__main__":
    main_for("recognition", RecognitionSettings, make_service)
