"""What every service's ``__main__`` does: parse, load settings, set up logs, run, exit.

A service's ``run()`` is a coroutine that goes through the skeleton (``services.common.runner``),
or, for the recognition worker, whose event loop faust's ``Worker`` owns, a plain call; both
return the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from services.common.logs import setup_logging
from services.common.ports import PortInUse
from services.common.settings import load_settings
from services.common.tls import TLSConfigError

S = TypeVar("S", bound=BaseSettings)


def service_main(
    name: str,
    settings_class: type[S],
    make_service: Callable[[S], Any],
    argv: Sequence[str] | None = None,
) -> int:
    """Run a service whose ``run()`` returns (or is a coroutine that returns) the exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=settings_class.__doc__)
    parser.add_argument(
        "--validate-config", action="store_true", help="check the configuration, print the verdict, exit 0/1"
    )
    args = parser.parse_args(argv)
    settings = load_settings(settings_class, validate_only=args.validate_config)
    setup_logging(
        name, level=getattr(settings, "log_level", "INFO"), fmt=getattr(settings, "log_format", "json")
    )
    try:
        service = make_service(settings)
    except TLSConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    try:
        outcome = service.run()
        return int((asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome) or 0)
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        return 130
    except PortInUse as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2


def main_for(name: str, settings_class: type[S], make_service: Callable[[S], Any]) -> None:
    sys.exit(service_main(name, settings_class, make_service))
