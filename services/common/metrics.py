"""Prometheus metrics and the health/readiness endpoints every service serves.

One small aiohttp server per process: ``/metrics`` (Prometheus text format), ``/healthz``
(the process is alive and its loop turns) and ``/readyz`` (connected to what it needs:
broker, model server, database). Metric names are shared by all services and carry a
``service`` label, so one dashboard shows the whole pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from services.common.ports import PortInUse, announce_ports, is_address_in_use, port_in_use_message

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """The metric families of one service process."""

    def __init__(self, service: str) -> None:
        """Longer than 60 lines because it is one flat list of declarations, kept in one piece so
        that every metric's name, help and labels read together; nothing here branches."""
        self.service = service
        self.registry = CollectorRegistry()
        labels = ["service"]
        self.messages_in = Counter(
            "classroom_messages_in_total", "messages consumed", [*labels, "topic"], registry=self.registry
        )
        self.messages_out = Counter(
            "classroom_messages_out_total", "messages produced", [*labels, "topic"], registry=self.registry
        )
        self.dead_letters = Counter(
            "classroom_dead_letters_total",
            "messages sent to the dead-letter topic",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "classroom_retries_total",
            "retried calls to a dependency",
            [*labels, "dependency"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "classroom_consumer_lag",
            "messages behind the partition end",
            [*labels, "topic", "partition"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "classroom_stage_seconds",
            "time to process one message in this stage",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.capture_to_here_seconds = Histogram(
            "classroom_capture_to_stage_seconds",
            "time from capture to this stage's output",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.skipped = Counter(
            "classroom_observations_skipped_total",
            "inputs this stage did not use, by reason",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.not_emitted = Counter(
            "classroom_windows_not_emitted_total",
            "windows a gap in a student's observations kept from being emitted, by reason",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.shed = Counter(
            "classroom_frames_shed_total",
            "frame sets skipped because they were older than the stage's shed_after_s when they arrived",
            [*labels, "classroom"],
            registry=self.registry,
        )
        self.ahead = Counter(
            "classroom_frames_ahead_total",
            "frame sets whose capture time was more than the stage's shed_after_s ahead of its clock when they "
            "arrived (processed; the capturing host's clock runs ahead)",
            [*labels, "classroom"],
            registry=self.registry,
        )
        self.frame_age = Gauge(
            "classroom_frame_age_seconds",
            "age (now - capture time) of the classroom's last frame set to reach this stage; negative: the "
            "capturing host's clock runs ahead of this one",
            [*labels, "classroom"],
            registry=self.registry,
        )
        self.ready = Gauge("classroom_ready", "1 when the service is ready", labels, registry=self.registry)
        self.ready.labels(service).set(0)

    # Convenience wrappers so call sites stay short.
    def count_in(self, topic: str, n: int = 1) -> None:
        self.messages_in.labels(self.service, topic).inc(n)

    def count_out(self, topic: str, n: int = 1) -> None:
        self.messages_out.labels(self.service, topic).inc(n)

    def count_dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(self.service, reason).inc()

    def count_skipped(self, reason: str, n: int = 1) -> None:
        self.skipped.labels(self.service, reason).inc(n)

    def count_not_emitted(self, reason: str, n: int = 1) -> None:
        self.not_emitted.labels(self.service, reason).inc(n)

    def count_shed(self, classroom: str) -> None:
        self.shed.labels(self.service, classroom).inc()

    def count_ahead(self, classroom: str) -> None:
        self.ahead.labels(self.service, classroom).inc()

    def set_frame_age(self, classroom: str, seconds: float) -> None:
        self.frame_age.labels(self.service, classroom).set(seconds)

    def count_retry(self, dependency: str) -> None:
        self.retries.labels(self.service, dependency).inc()

    def observe_stage(self, seconds: float) -> None:
        self.stage_seconds.labels(self.service).observe(seconds)

    def observe_since_capture(self, seconds: float) -> None:
        self.capture_to_here_seconds.labels(self.service).observe(seconds)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(self.service, topic, str(partition)).set(lag)

    def set_ready(self, ready: bool) -> None:
        self.ready.labels(self.service).set(1 if ready else 0)


class HealthServer:
    """Serves /metrics, /healthz and /readyz on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, metrics: ServiceMetrics, *, readiness: Callable[[], tuple[bool, str]]) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.heartbeat = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def beat(self) -> None:
        """Called by the service loop on every turn; /healthz fails when the loop is stuck."""
        self.heartbeat = time.monotonic()

    async def start(self, host: str, port: int, *, setting: str = "METRICS_PORT") -> int:
        """Listen on ``host:port`` (0: any free port), announce it (services.common.ports), return it.
        PortInUse (one line naming ``setting``) if another program holds a configured port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if is_address_in_use(exc):
                raise PortInUse(port_in_use_message("metrics", host, port, setting)) from None
            raise
        # a listening TCP site's server is the loop's Server, which has .sockets
        server = cast("asyncio.Server | None", site._server)
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else port
        announce_ports(metrics=self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        stalled = time.monotonic() - self.heartbeat
        if stalled > 60:
            return web.json_response({"status": "stalled", "seconds_since_heartbeat": stalled}, status=503)
        return web.json_response({"status": "ok"})

    async def _ready(self, _request: web.Request) -> web.Response:
        ready, detail = self.readiness()
        self.metrics.set_ready(ready)
        return web.json_response({"ready": ready, "detail": detail}, status=200 if ready else 503)
