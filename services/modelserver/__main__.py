"""python -m services.modelserver [--validate-config]"""

from services.common.entrypoint import main_for
from services.modelserver.config import ModelServerSettings
from services.modelserver.server import ModelServer

if __name__ == "__main__":
    main_for("modelserver", ModelServerSettings, ModelServer)
