"""The recognition worker (faust) as a real process against the embedded broker and a real model server:
windows survive a restart of the service, a model server that starts late costs nothing, bad input is
dead-lettered."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.pb.classroom.v1 import deadletter_pb2, events_pb2
from services.common.ports import bind_free_port
from services.common.topics import BEHAVIOURS, DEAD_LETTER, OBSERVATIONS
from tests.fixtures import ModelServerThread
from tests.kafka_helpers import consume_all, produce
from tests.observations import observation_set

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
SLOT_US = 125_000


def start_worker(broker, prefix: str, model_port: int, state_dir: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "RECOGNITION_KAFKA_BOOTSTRAP": broker.bootstrap,
        "RECOGNITION_TOPIC_PREFIX": prefix,
        "RECOGNITION_MODEL_SERVER": f"127.0.0.1:{model_port}",
        "RECOGNITION_SESSION_TIMEOUT_MS": "6000",
        "RECOGNITION_STATE_DIR": str(state_dir),
        "RECOGNITION_LOG_FORMAT": "text",
        # faust's own INFO lines (rebalances, recovery) go to the log shown when the test fails
        "CLASSROOM_LIBRARY_LOG_LEVEL": "INFO",
        "RECOGNITION_FAUST_LOGLEVEL": "info",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.recognition"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop_worker(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def test_windows_survive_a_restart_and_a_late_model_server(broker, topic_prefix, tmp_path) -> None:
    model_port = bind_free_port()
    log = tmp_path / "recognition.log"
    students = ["s-ana", "s-bo"]
    model = None
    worker = start_worker(broker, topic_prefix, model_port, tmp_path / "state", log)
    try:
        time.sleep(3)  # the worker is up and finds no model server
        model = ModelServerThread(model_port).start()
        feature_dim = model.server.engine.info.feature_dim
        first = [observation_set(k, students=students, feature_dim=feature_dim) for k in range(60)]
        produce(
            broker.bootstrap, topic_prefix + OBSERVATIONS, [(b"room-1", o.SerializeToString()) for o in first]
        )
        before = consume_all(broker.bootstrap, topic_prefix + BEHAVIOURS, expect=6, timeout=120)
        assert len(before) == 6, log.read_text()[-3000:]
        assert stop_worker(worker) == 0
        # While the worker is down, the camera keeps sending.
        second = [observation_set(k, students=students, feature_dim=feature_dim) for k in range(60, 120)]
        bad = [
            (b"room-1", b"\x0a\x03abc\x12\xff"),
            (b"room-1", observation_set(120, students=["s-x"], feature_dim=3).SerializeToString()),
        ]
        produce(
            broker.bootstrap,
            topic_prefix + OBSERVATIONS,
            [(b"room-1", o.SerializeToString()) for o in second] + bad,
        )
        worker = start_worker(broker, topic_prefix, model_port, tmp_path / "state", log)
        events = consume_all(broker.bootstrap, topic_prefix + BEHAVIOURS, expect=14, timeout=120)
        letters = consume_all(broker.bootstrap, topic_prefix + DEAD_LETTER, expect=2, timeout=30)
    finally:
        if worker.poll() is None:
            stop_worker(worker)
        if model is not None:
            model.stop()
    parsed = [events_pb2.BehaviourEvent.FromString(r.value) for r in events]
    assert len(parsed) == 14 and len({e.event_id for e in parsed}) == 14, log.read_text()[-12000:]
    t0_slot = first[0].capture_ts_us // SLOT_US
    for student in students:
        ends = sorted(e.window_end_us // SLOT_US - 1 - t0_slot for e in parsed if e.student_id == student)
        # Window ending at slot 39 spans slots 24..39: half of it was stored before the restart.
        assert ends == [15, 23, 31, 39, 47, 55, 63]
        mine = sorted((e for e in parsed if e.student_id == student), key=lambda e: e.window_end_us)
        for a, b in itertools.pairwise(mine):
            assert a.segment_end_us == b.segment_start_us  # no gap, no double counting
    event = parsed[0]
    assert event.model_trained is False and event.model_version
    assert len(event.top5) == 5 and len(event.attention.keypoint_weights) == 17
    # Dead letters are at-least-once: a redelivery after the group rebalances (the stopped
    # worker's session expiring) may repeat one; each bad record must be there, nothing else.
    dead = [deadletter_pb2.DeadLetter.FromString(r.value) for r in letters]
    by_record = {(d.source_partition, d.source_offset): d.reason_code for d in dead}
    assert sorted(by_record.values()) == ["bad_input", "malformed_message"]
