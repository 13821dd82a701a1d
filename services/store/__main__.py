"""python -m services.store [--validate-config]"""

from services.common.entrypoint import main_for
from services.store.config import StoreSettings
from services.store.service import StoreService

if __name__ == "__main__":
    main_for("store", StoreSettings, StoreService)
