"""The one service skeleton: how every runner's ``run()`` starts, stops and exits.

``run_service(runner)`` is the part the runners share, in this order:

1. SIGINT/SIGTERM set the runner's one ``StopFlag`` (``services.common.lifecycle``);
2. the health/metrics server (/metrics, /healthz, /readyz; ``services.common.metrics``) is up
   before the runner's own loop starts (a configured port held by another program: ``PortInUse``,
   which the entry point turns into exit code 2 and one line);
3. the runner's own loop (``serve``) runs until the flag is set or it ends by itself; its return
   value is the exit code; a loop that raises is logged (``failed``, with the traceback) and
   exits 1, as an uncaught error did;
4. ``stopping`` (with the stop's reason) is logged when a stop was asked for, then the runner's
   shutdown steps run in its order within its ``shutdown_grace_s`` (the settings field every
   service has) plus ``CLOSE_MARGIN_S``: a step that fails or overruns is logged and cut, the
   next still runs; the health server goes down after the last step, and ``stopped`` is logged with the
   runner's figures.

What stays each runner's own (its ``serve`` and its ``shutdown_steps``):

- ``StreamService`` (enhancement, fusion, store; ``services.common.bus``): the consume ->
  process_batch -> produce/dead-letter -> commit loop, retrying a batch while a dependency is
  down; closes the consumer, its dependencies (``teardown``), the producer.
- ``CaptureService`` (``services.capture.service``): a reader thread on the camera, reopened
  every ``reconnect_s`` while it is out, and the publishing loop; halts the reader, awaits the
  sends in flight, flushes and stops the producer, closes the camera, ground truth, recording.
- ``ModelServer`` (``services.modelserver.server``): loads the model and serves gRPC until
  stopped; reports NOT_SERVING, lets calls in flight finish (``server.stop(grace)``), stops the
  health port and drains the micro-batchers.
- ``RecognitionService`` does not go through ``run_service``: faust's ``Worker`` owns its event
  loop, its signal handlers and its shutdown (acked offsets committed, the table's changelog
  flushed), so it shares only the entry point (``services.common.entrypoint``) and starts its
  health server from a faust task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from pydantic_settings import BaseSettings

from services.common.lifecycle import StopFlag
from services.common.metrics import HealthServer
from services.common.ports import PortInUse
from services.common.settings import env_name

# after the grace for work in flight, the time left to close clients and files
CLOSE_MARGIN_S = 5.0
# what a step still gets once an earlier one spent the time: a client left open loses messages
LATE_STEP_S = 1.0

ShutdownStep = tuple[str, Callable[[], Awaitable[None]]]


class RunnerSettings(Protocol):
    """The settings fields the skeleton reads (every service's settings class has them)."""

    @property
    def metrics_host(self) -> str: ...
    @property
    def metrics_port(self) -> int: ...
    @property
    def shutdown_grace_s(self) -> float: ...


class Runner(Protocol):
    """What a runner fills in: a name (its logger), settings, a stop flag, a health server,
    its own loop and its shutdown steps."""

    name: str
    stop: StopFlag
    health: HealthServer

    @property
    def settings(self) -> RunnerSettings: ...

    async def serve(self, metrics_port: int) -> int:
        """The runner's own loop: until the stop flag is set or it ends; returns the exit code."""
        ...

    def shutdown_steps(self) -> Sequence[ShutdownStep]:
        """What to close after the loop, in order, each named for the log."""
        ...

    def stopped_fields(self) -> dict[str, Any]:
        """The figures the ``stopped`` line reports."""
        ...


async def run_service(runner: Runner) -> int:
    """Run ``runner`` through the skeleton (see the module docstring); returns the exit code."""
    log = logging.getLogger(runner.name)
    runner.stop.install_signal_handlers()
    port = await start_health(runner.health, runner.settings)
    exit_code = 1
    try:
        exit_code = await runner.serve(port)
    except PortInUse:  # one line and exit code 2 from the entry point
        raise
    except Exception as exc:
        log.exception("failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if runner.stop.is_set():
            log.info("stopping", extra={"reason": runner.stop.reason})
        await shut_down(runner.shutdown_steps(), grace_s=runner.settings.shutdown_grace_s, log=log)
        await runner.health.stop()
    log.info("stopped", extra=runner.stopped_fields())
    return exit_code


async def start_health(health: HealthServer, settings: RunnerSettings) -> int:
    """Start ``health`` on the settings' metrics address; the port it listens on."""
    return await health.start(
        settings.metrics_host,
        settings.metrics_port,
        # every runner's settings are a pydantic-settings class; the Protocol names only what is read
        setting=env_name(cast(BaseSettings, settings), "metrics_port"),
    )


async def shut_down(steps: Sequence[ShutdownStep], *, grace_s: float, log: logging.Logger) -> None:
    """Run ``steps`` in order within ``grace_s + CLOSE_MARGIN_S`` in all; a step that raises or
    overruns is logged and cut, and the next runs with the time left, or ``LATE_STEP_S`` once it
    is spent (a bound of its own: the whole takes at most one ``LATE_STEP_S`` a step longer)."""
    deadline = time.monotonic() + grace_s + CLOSE_MARGIN_S
    for name, step in steps:
        try:
            await asyncio.wait_for(step(), max(LATE_STEP_S, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("shutdown step cut: grace time spent", extra={"step": name, "grace_s": grace_s})
        except Exception as exc:
            log.warning(
                "shutdown step failed",
                exc_info=True,
                extra={"step": name, "error": f"{type(exc).__name__}: {exc}"},
            )
