"""python -m services.enhancement [--validate-config]"""

from services.common.entrypoint import main_for
from services.enhancement.config import EnhancementSettings
from services.enhancement.service import EnhancementService

if __name__ == "__main__":
    main_for("enhancement", EnhancementSettings, EnhancementService)
