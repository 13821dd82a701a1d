"""python -m services.fusion [--validate-config]"""

from services.common.entrypoint import main_for
from services.fusion.config import FusionSettings
from services.fusion.service import FusionService

if __name__ == "__main__":
    main_for("fusion", FusionSettings, FusionService)
