"""One whole suite on this machine: embedded broker, topics, model server, services, simulated rooms.

Used by `classroom demo` (with the dashboard) and `classroom bench pipeline` (headless, several
classrooms). It writes a campus file for the simulated classrooms, starts every service as a
child process with its settings in the environment, follows progress through each service's
Prometheus endpoint and a tap on the behaviours topic, and stops everything in pipeline order.
"""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.cli.processes import Supervisor
from services.common.campus import Campus, dump_campus
from services.common.embedded_broker import EmbeddedBroker
from services.common.kafka_security import client_kwargs
from services.common.ports import PORTS_FILE_ENV, read_ports
from services.common.topics import BEHAVIOURS, ensure_topics, topic_specs

STAGES = ("capture", "enhancement", "fusion", "recognition", "store")
READY_TIMEOUT_S = 180.0
STOP_ORDER = ["capture", "enhancement", "fusion", "recognition", "store", "modelserver"]


@dataclass
class RunOptions:
    workdir: Path
    classrooms: int = 1
    students: int = 20
    fps: float = 15.0
    width: int = 640
    height: int = 360
    seed: int = 7
    database_url: str | None = None
    checkpoint: str | None = None
    partitions: int = 2
    enhancement_workers: int = 2
    realtime: bool = True
    # simulator: each capture agent renders its classroom live; replay: each classroom is rendered
    # once into a recording (replay_seconds long, looped) and replayed at near-zero CPU, so a
    # capacity test measures the suite and not the renderer (no ground truth then)
    camera: str = "simulator"
    replay_seconds: float = 30.0
    recordings_dir: Path | None = None  # where recordings are kept for reuse (default: workdir/recordings)
    # a running Kafka (host:port[,host:port]) to use instead of the embedded broker; left running
    broker: str | None = None


@dataclass
class Tap:
    """Reads behaviour events as they are published: counts and capture->event latencies."""

    bootstrap: str
    topic: str
    latencies_s: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.monotonic() of each latency
    event_ids: Counter[str] = field(default_factory=Counter)  # more than 1: published again
    per_student: Counter[tuple[str, str]] = field(default_factory=Counter)  # (classroom, student) -> events
    events: int = 0
    untrained: int = 0
    model_versions: set[str] = field(default_factory=set)
    session_ids: set[str] = field(default_factory=set)
    window_s: float = 2.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="behaviour-tap").start()

    def _run(self) -> None:
        from kafka import KafkaConsumer

        from services.common.pb.classroom.v1 import events_pb2

        # kafka-python, not aiokafka: the tap is a plain thread beside the supervisor, with no event loop;
        # plaintext, as the services this pipeline starts (it sets no Kafka security in their environment)
        consumer = KafkaConsumer(
            self.topic,
            **client_kwargs(self.bootstrap, client_id="classroom-behaviour-tap"),
            group_id=f"tap-{time.time_ns()}",
            auto_offset_reset="latest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        try:
            while not self._stop.is_set():
                for batch in consumer.poll(timeout_ms=500).values():
                    for record in batch:
                        event = events_pb2.BehaviourEvent.FromString(record.value)
                        self.events += 1
                        self.untrained += not event.model_trained
                        self.model_versions.add(event.model_version)
                        self.session_ids.add(event.session_id)
                        self.event_ids[event.event_id] += 1
                        self.per_student[(event.classroom_id, event.student_id)] += 1
                        self.window_s = (event.window_end_us - event.window_start_us) / 1e6
                        if event.frame_published_ts_us:
                            self.latencies_s.append(
                                (event.published_ts_us - event.frame_published_ts_us) / 1e6
                            )
                            self.received_at.append(time.monotonic())
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()


def scrape(port: int) -> dict[str, float]:
    """Counters of one service's /metrics, summed over labels except topic/reason kept in the name."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def readyz(port: int) -> tuple[bool, str]:
    """(ready, detail) from one service's /readyz; not ready while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            body = json.loads(response.read() or b"{}")
            return bool(body.get("ready")), str(body.get("detail", ""))
    except urllib.error.HTTPError as exc:  # 503: not ready, with its reason
        try:
            return False, str(json.loads(exc.read() or b"{}").get("detail", exc.reason))
        except ValueError:
            return False, str(exc.reason)
    except (OSError, ValueError) as exc:
        return False, f"not answering ({exc})"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class PipelineRun:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.workdir = options.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.workdir / "logs")
        # the embedded broker, started and stopped with the run; None when options.broker is given
        self.broker = (
            None if options.broker else EmbeddedBroker(log_path=self.workdir / "logs" / "broker.log")
        )
        self.database_url = options.database_url or f"sqlite:///{self.workdir / 'classroom.db'}"
        self.port_files: dict[str, Path] = {}  # child -> the file it announces its ports in
        self.model_port = 0  # the model server's gRPC port, once it has announced it
        self.tap: Tap | None = None
        self.campus_file = self.workdir / "campus.yaml"
        self.ground_truth = self.workdir / "ground_truth.jsonl"
        self.started = 0.0
        self.rooms: list[tuple[str, str, str, int]] = []  # classroom, camera, course, seed

    # -- set-up ------------------------------------------------------------------------------

    def write_campus(self) -> Campus:
        from services.simulator.live import SimulatedCamera

        classrooms, courses = [], []
        for i in range(self.options.classrooms):
            room, camera_id, course_id = f"room-{101 + i}", "front", f"COURSE-{101 + i}"
            seed = self.options.seed + i
            camera = SimulatedCamera(
                seed=seed,
                students=self.options.students,
                fps=self.options.fps,
                rgb_size=(self.options.width, self.options.height),
            )
            classroom, course = camera.campus_classroom(room, camera_id, course_id)
            classrooms.append(classroom)
            courses.append(course.model_copy(update={"instructors": ("instructor",)}))
            self.rooms.append((room, camera_id, course_id, seed))
            close = getattr(camera, "close", None)
            if close:
                close()
        campus = Campus(name="Demo campus (simulated)", classrooms=tuple(classrooms), courses=tuple(courses))
        dump_campus(campus, self.campus_file)
        return campus

    def common_env(self, prefix: str, name: str) -> dict[str, str]:
        return {
            f"{prefix}_KAFKA_BOOTSTRAP": self.bootstrap,
            f"{prefix}_METRICS_PORT": "0",  # the child binds any free port and announces it
            f"{prefix}_SESSION_TIMEOUT_MS": "6000",
            f"{prefix}_LOG_FORMAT": "json",
        }

    def start_child(self, name: str, module: str, env: dict[str, str]) -> None:
        """Start a service; it announces the ports it bound in its own ports file."""
        path = self.workdir / "ports" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.port_files[name] = path
        self.supervisor.start(name, module, {**env, PORTS_FILE_ENV: str(path)})

    def port(self, name: str, kind: str = "metrics") -> int | None:
        """The port ``name`` announced for ``kind`` (metrics, grpc), None while it has not."""
        path = self.port_files.get(name)
        announced = read_ports(path) if path is not None else None
        return None if announced is None else announced.get(kind)

    @property
    def ports(self) -> dict[str, int]:
        """Metrics port of every child that has announced one."""
        found = {name: self.port(name) for name in self.port_files}
        return {name: port for name, port in found.items() if port is not None}

    def kill(self, name: str) -> None:
        """SIGKILL a child and its process group (a crash), and reap it."""
        self.supervisor.signal(name, signal.SIGKILL)
        self.supervisor.child(name).process.wait(30)

    def restart(self, name: str, **overrides: str) -> None:
        """Start a child that has exited again, with its environment and ``overrides``."""
        child = self.supervisor.child(name)
        self.start_child(name, child.module, {**child.env, **overrides})

    def restart_modelserver(self) -> None:
        """The model server again on the gRPC port fusion and recognition already call."""
        self.restart("modelserver", MODELSERVER_PORT=str(self.model_port))
        self.wait_for_port("modelserver", "grpc")

    def wait_for_port(self, name: str, kind: str, timeout_s: float = READY_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout_s
        while (port := self.port(name, kind)) is None:
            self.check_children()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not announce its {kind} port within {timeout_s:.0f} s")
            time.sleep(0.1)
        return port

    @property
    def bootstrap(self) -> str:
        """The broker the run's services and taps connect to."""
        if self.broker is not None:
            return self.broker.bootstrap
        assert self.options.broker is not None  # no embedded broker only when one is given
        return self.options.broker

    def start(self) -> None:
        """Broker and topics, campus file, model server, the stages from the store back to
        enhancement, the behaviours tap, and, once all are ready, one capture agent per classroom."""
        self.started = time.monotonic()
        if self.broker is not None:
            self.broker.start()
        # a given broker that does not answer ends the run here with a ConnectionError
        ensure_topics(self.bootstrap, topic_specs(partitions=self.options.partitions))
        self.write_campus()
        self._start_modelserver()
        self._start_stages()
        self.tap = Tap(self.bootstrap, BEHAVIOURS)
        self.tap.start()
        # Cameras start once every stage consumes and the model server answers, so the first
        # frames do not wait behind group joins and table recovery (and a stage that never gets
        # ready fails the run with its reason instead of a silent zero in the summary).
        self.wait_ready(["modelserver", "store", "recognition", "fusion", "enhancement"])
        recordings = self.record_classrooms() if self.options.camera == "replay" else {}
        for room, camera_id, course_id, seed in self.rooms:
            self._start_capture(room, camera_id, course_id, seed, recordings.get(room))

    def _start_modelserver(self) -> None:
        """The model server on any free port; waits for it to announce its gRPC port."""
        model_env = {
            "MODELSERVER_PORT": "0",
            "MODELSERVER_METRICS_PORT": "0",
            "MODELSERVER_LOG_FORMAT": "json",
        }
        if self.options.checkpoint:
            model_env["MODELSERVER_CHECKPOINT"] = self.options.checkpoint
        self.start_child("modelserver", "services.modelserver", model_env)
        # the model server binds its gRPC port after loading the model; fusion and recognition need it
        self.model_port = self.wait_for_port("modelserver", "grpc")

    def _start_stages(self) -> None:
        """Store, recognition, fusion and enhancement: the consumers before their producers."""
        model = f"127.0.0.1:{self.model_port}"
        campus = str(self.campus_file)
        self.start_child(
            "store",
            "services.store",
            {
                **self.common_env("STORE", "store"),
                "STORE_DATABASE_URL": self.database_url,
                "STORE_CAMPUS_FILE": campus,
            },
        )
        self.start_child(
            "recognition",
            "services.recognition",
            {
                **self.common_env("RECOGNITION", "recognition"),
                "RECOGNITION_MODEL_SERVER": model,
                "RECOGNITION_STATE_DIR": str(self.workdir / "recognition"),
            },
        )
        self.start_child(
            "fusion",
            "services.fusion",
            {
                **self.common_env("FUSION", "fusion"),
                "FUSION_MODEL_SERVER": model,
                "FUSION_CAMPUS_FILE": campus,
            },
        )
        self.start_child(
            "enhancement",
            "services.enhancement",
            {
                **self.common_env("ENHANCE", "enhancement"),
                "ENHANCE_CAMPUS_FILE": campus,
                "ENHANCE_WORKERS": str(self.options.enhancement_workers),
            },
        )

    def _start_capture(
        self, room: str, camera_id: str, course_id: str, seed: int, recording: Path | None
    ) -> None:
        """One classroom's capture agent: its simulated camera live, or ``recording`` replayed."""
        name = f"capture-{room}"
        env = {
            **self.common_env("CAPTURE", name),
            "CAPTURE_CLASSROOM_ID": room,
            "CAPTURE_CAMERA_ID": camera_id,
            "CAPTURE_COURSE_ID": course_id,
            "CAPTURE_SOURCE": "simulator",
            "CAPTURE_SIM_SEED": str(seed),
            "CAPTURE_SIM_STUDENTS": str(self.options.students),
            "CAPTURE_FPS": str(self.options.fps),
            "CAPTURE_SIM_WIDTH": str(self.options.width),
            "CAPTURE_SIM_HEIGHT": str(self.options.height),
            "CAPTURE_REALTIME": "true" if self.options.realtime else "false",
            "CAPTURE_GROUND_TRUTH_OUT": str(self.ground_truth),
        }
        if recording is not None:
            env.update({"CAPTURE_SOURCE": "replay", "CAPTURE_REPLAY_PATH": str(recording)})
        self.start_child(name, "services.capture", env)

    def record_classrooms(self) -> dict[str, Path]:
        """Each simulated classroom rendered once into a recording for the replay camera (reused
        when the recordings folder already has it)."""
        from services.capture.sources.replay import record_simulated

        out = {}
        for room, _camera, _course, seed in self.rooms:
            folder = self.options.recordings_dir or self.workdir / "recordings"
            name = f"{room}-seed{seed}-{self.options.students}st-{self.options.fps:g}fps-{self.options.replay_seconds:g}s.rec"
            path = folder / name
            if not path.is_file():
                tmp = path.with_suffix(".partial")
                tmp.unlink(missing_ok=True)
                record_simulated(
                    tmp,
                    seed=seed,
                    students=self.options.students,
                    fps=self.options.fps,
                    seconds=self.options.replay_seconds,
                    size=(self.options.width, self.options.height),
                    progress=True,
                )
                tmp.rename(path)
            out[room] = path
        return out

    def wait_ready(self, names: list[str], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll each service's /readyz until all answer ready; raise with the laggards' reasons."""
        deadline = time.monotonic() + timeout_s
        waiting = {name: "not answering yet" for name in names}
        while waiting:
            self.check_children()
            for name in list(waiting):
                port = self.port(name)
                if port is None:
                    waiting[name] = "starting (no metrics port announced yet)"
                    continue
                ready, detail = readyz(port)
                if ready:
                    del waiting[name]
                else:
                    waiting[name] = detail
            if not waiting:
                return
            if time.monotonic() > deadline:
                reasons = "; ".join(f"{name}: {detail}" for name, detail in waiting.items())
                raise RuntimeError(f"not ready after {timeout_s:.0f} s: {reasons}")
            time.sleep(0.25)

    # -- progress ----------------------------------------------------------------------------

    def counters(self) -> dict[str, float]:
        """Frame sets (or events) each stage has put out so far."""
        out: dict[str, float] = {"capture": 0.0}
        for name, port in self.ports.items():
            try:
                metrics = scrape(port)
            except OSError:
                continue
            produced = metrics.get("classroom_messages_out_total", 0.0)
            consumed = metrics.get("classroom_messages_in_total", 0.0)
            if name.startswith("capture"):
                out["capture"] += produced
            elif name == "store":
                out["store"] = consumed
            else:
                out[name] = produced
            out[f"{name}.dead_letters"] = metrics.get("classroom_dead_letters_total", 0.0)
            stage = "capture" if name.startswith("capture") else name
            out[f"{stage}.shed"] = out.get(f"{stage}.shed", 0.0) + metrics.get(
                "classroom_frames_shed_total", 0.0
            )
        return out

    def _count_this_run(self, session_column: Any) -> int:
        """Rows of the table of ``session_column`` (its session id) that belong to this run's class sessions (the database may hold
        earlier runs: the demo's SQLite file is kept between runs)."""
        from sqlalchemy import func
        from sqlalchemy.exc import SQLAlchemyError
        from sqlmodel import Session, col, select

        from services.common.db.engine import make_engine

        sessions = sorted(self.tap.session_ids) if self.tap else []
        if not sessions:
            return 0
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                query = select(func.count()).where(col(session_column).in_(sessions))
                return int(session.exec(query).one())
        except SQLAlchemyError:
            return 0
        finally:
            engine.dispose()

    def events_written(self) -> int:
        from services.common.db.models import BehaviourEvent

        return self._count_this_run(BehaviourEvent.session_id)

    def students_with_events(self) -> int:
        from services.common.db.models import StudentSessionSummary

        return self._count_this_run(StudentSessionSummary.session_id)

    def check_children(self) -> None:
        failed = self.supervisor.failed()
        if failed:
            child = failed[0]
            raise RuntimeError(
                f"{child.name} exited with code {child.process.returncode}; last log lines:\n"
                + self.supervisor.tail(child)
            )

    # -- tear-down ---------------------------------------------------------------------------

    def stop(self) -> None:
        if self.tap is not None:
            self.tap.stop()
        order = [c.name for c in self.supervisor.children if c.name.startswith("capture")] + STOP_ORDER[1:]
        self.supervisor.stop(order)
        if self.broker is not None:
            self.broker.stop()

    def summary(self, counts_start: dict[str, float], counts_end: dict[str, float], seconds: float) -> dict:
        stages = {}
        for stage in STAGES:
            total = counts_end.get(stage, 0.0)
            stages[stage] = {
                "total": int(total),
                "per_s": round((total - counts_start.get(stage, 0.0)) / max(seconds, 1e-6), 2),
                "dead_letters": int(counts_end.get(f"{stage}.dead_letters", 0.0)),
                # frame sets this stage skipped as too old while measuring (FrameStageSettings.shed_after_s)
                "shed": int(counts_end.get(f"{stage}.shed", 0.0) - counts_start.get(f"{stage}.shed", 0.0)),
            }
        latencies = self.tap.latencies_s if self.tap else []
        return {
            "classrooms": self.options.classrooms,
            "students_per_classroom": self.options.students,
            "measured_seconds": round(seconds, 1),
            "stages": stages,
            "events_written": self.events_written(),
            "students_with_events": self.students_with_events(),
            "latency_capture_to_event_s": {
                "p50": round(percentile(latencies, 50), 3),
                "p95": round(percentile(latencies, 95), 3),
                "n": len(latencies),
                "window_s": self.tap.window_s if self.tap else None,
            },
            "model_versions": sorted(self.tap.model_versions) if self.tap else [],
            "untrained_events": self.tap.untrained if self.tap else 0,
            "database_url": self.database_url,
            "agreement": self.agreement(),
        }

    def agreement(self) -> dict | None:
        """Events against the simulator's ground truth (services/cli/agreement.py), if any was written."""
        from sqlalchemy.exc import SQLAlchemyError

        from services.cli.agreement import measure_agreement

        if not self.ground_truth.is_file():
            return None
        try:
            # this run's sessions only: the store and the ground-truth file keep earlier runs
            sessions = self.tap.session_ids if self.tap else set()
            return measure_agreement(self.database_url, self.ground_truth, session_ids=sessions)
        except (SQLAlchemyError, OSError):
            return None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def dump(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2))
