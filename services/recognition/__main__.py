"""python -m services.recognition [--validate-config]"""

import argparse
import sys

from services.common.logs import setup_logging
from services.common.settings import load_settings
from services.recognition.config import RecognitionSettings


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.recognition", description=RecognitionSettings.__doc__
    )
    parser.add_argument("--validate-config", action="store_true", help="check the configuration and exit 0/1")
    args = parser.parse_args()
    settings = load_settings(RecognitionSettings, validate_only=args.validate_config)
    setup_logging("recognition", level=settings.log_level, fmt=settings.log_format)
    from services.recognition.service import RecognitionService

    return RecognitionService(settings).run()


if __name__ == "__main__":
    sys.exit(main())
