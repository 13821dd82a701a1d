"""python -m services.capture [--validate-config]"""

from services.capture.config import CaptureSettings
from services.capture.service import CaptureService
from services.common.entrypoint import main_for

if __name__ == "__main__":
    main_for("capture", CaptureSettings, CaptureService)
