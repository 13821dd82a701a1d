"""The store loop: parse behaviour events, write them in one transaction per batch, retry on outages.

Idempotent: events have deterministic ids and inserts skip ids already stored, so a
replay after a crash or a rebalance never makes a second row or double-counts an
aggregate. While the database is unreachable the batch is retried with backoff and
nothing is committed to Kafka, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from services.common.bus import DependencyUnavailable, RecordResult, StoppedDuringOutage, StreamService
from services.common.codecs import parse_message
from services.common.db.crud import Recorded, record_events, sync_campus
from services.common.db.engine import make_engine
from services.common.db.models import BehaviourEvent
from services.common.db.schema import upgrade_schema
from services.common.errors import BadInput, ConflictingEvent, MalformedMessage
from services.common.pb.classroom.v1 import events_pb2
from services.common.topics import BEHAVIOURS
from services.common.vocabulary import BEHAVIOUR_INDEX, NUM_KEYPOINTS
from services.store.config import StoreSettings


def _ts(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


def event_row(message: events_pb2.BehaviourEvent) -> BehaviourEvent:
    """Check one event and turn it into a table row; raises BadInput naming the problem."""
    missing = [
        f
        for f in ("event_id", "classroom_id", "session_id", "student_id", "label")
        if not getattr(message, f)
    ]
    if missing:
        raise MalformedMessage(f"behaviour event lacks {', '.join(missing)}")
    if message.label not in BEHAVIOUR_INDEX:
        raise BadInput(f"unknown behaviour label {message.label!r}")
    if not (0 < message.window_start_us <= message.window_end_us):
        raise BadInput("window start/end are missing or reversed")
    if not (message.segment_start_us <= message.segment_end_us):
        raise BadInput("segment start is after its end")
    if not 0.0 <= message.confidence <= 1.0:
        raise BadInput(f"confidence {message.confidence} outside [0, 1]")
    attention = message.attention
    if attention.keypoint_weights and len(attention.keypoint_weights) != NUM_KEYPOINTS:
        raise BadInput(
            f"{len(attention.keypoint_weights)} keypoint attention weights, expected {NUM_KEYPOINTS}"
        )
    return BehaviourEvent(
        event_id=message.event_id,
        session_id=message.session_id,
        classroom_id=message.classroom_id,
        course_id=message.course_id,
        camera_id=message.camera_id,
        student_id=message.student_id,
        seat_id=message.seat_id,
        window_start=_ts(message.window_start_us),
        window_end=_ts(message.window_end_us),
        segment_start=_ts(message.segment_start_us),
        segment_end=_ts(message.segment_end_us),
        label=message.label,
        confidence=message.confidence,
        top5=json.dumps([[p.label, round(p.probability, 5)] for p in message.top5]),
        attention=json.dumps(
            {
                "keypoints": [round(w, 5) for w in attention.keypoint_weights],
                "frames": [round(w, 5) for w in attention.frame_weights],
                "top_keypoints": list(attention.top_keypoints),
            }
        ),
        model_version=message.model_version,
        model_trained=message.model_trained,
        created_at=datetime.now(UTC),
    )


def _is_outage(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError) or bool(exc.connection_invalidated)


class StoreService(StreamService):
    name = "store"
    depends_on = "database"

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings, input_topic=BEHAVIOURS)
        self.settings: StoreSettings = settings
        self.engine = make_engine(settings.database_url)
        self.rows_written = 0
        self._schema_ready = False
        self._campus_dirty = False  # the campus file changed: sync it before the next write

    async def setup(self) -> None:
        # The database may still be starting: keep trying until it answers or we are stopped.
        try:
            await self.dependency.call(
                lambda: asyncio.to_thread(self._prepare_database),
                retry_on=(DependencyUnavailable,),
                sleep=self._wait_unless_stopped,
            )
        except StoppedDuringOutage:
            return

    def _prepare_database(self) -> None:
        try:
            upgrade_schema(self.engine)
            self._sync_campus()
        except DBAPIError as exc:
            raise DependencyUnavailable(f"database: {exc.orig}") from exc
        self._schema_ready = True

    async def teardown(self) -> None:
        self.engine.dispose()

    def _sync_campus(self) -> None:
        """Classrooms, courses and instructors of the campus file into SQL (idempotent)."""
        if self.campus is not None:
            with Session(self.engine) as session:
                sync_campus(session=session, campus=self.campus.current)
                session.commit()
        self._campus_dirty = False

    async def campus_changed(self) -> None:
        self._campus_dirty = True  # synced before the next batch is written, with its retries

    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[RecordResult]:
        if self._campus_dirty:
            try:
                await asyncio.to_thread(self._sync_campus)
            except DBAPIError as exc:
                raise DependencyUnavailable(f"database: {exc}") from exc
        results: list[RecordResult] = []
        rows: list[BehaviourEvent] = []
        for record in records:
            try:
                message = parse_message(record.value or b"", events_pb2.BehaviourEvent)
                rows.append(event_row(message))
                results.append(RecordResult([]))
            except BadInput as exc:
                results.append(RecordResult([], exc))
        if rows:
            try:
                recorded = await asyncio.to_thread(self._write, rows)
            except DBAPIError as exc:
                if _is_outage(exc):
                    raise DependencyUnavailable(f"database: {exc.orig}") from exc
                # Not an outage: some row is unacceptable. Write one by one so only it is dead-lettered.
                await self._write_individually(records, rows, results)
            else:
                good = [i for i, r in enumerate(results) if r.bad_input is None]
                self._account(recorded, rows, good, results)
        return results

    def _write(self, rows: list[BehaviourEvent]) -> Recorded:
        if not self._schema_ready:
            self._prepare_database()
        with Session(self.engine) as session:
            recorded = record_events(session=session, events=rows)
            session.commit()
            return recorded

    def _account(
        self, recorded: Recorded, rows: list[BehaviourEvent], indices: list[int], results: list[RecordResult]
    ) -> None:
        """Count what was written; an event whose id is stored with other content is dead-lettered
        (reason ``conflicting_event``, counted there) and logged, never dropped silently.
        ``indices``: where each of ``rows`` sits in ``results``."""
        self.rows_written += recorded.inserted
        for position, (index, row) in enumerate(zip(indices, rows, strict=True)):
            differ = recorded.conflicts.get(position)
            if not differ:
                continue
            detail = (
                f"event {row.event_id} is stored already with another {', '.join(differ)}; "
                "two sessions or models share this id: not stored"
            )
            self.log.warning("conflicting event id", extra={"event_id": row.event_id, "fields": list(differ)})
            results[index] = RecordResult([], ConflictingEvent(detail))

    async def _write_individually(
        self, records: Sequence[ConsumerRecord], rows: list[BehaviourEvent], results: list[RecordResult]
    ) -> None:
        good = [i for i, r in enumerate(results) if r.bad_input is None]
        for index, row in zip(good, rows, strict=True):
            try:
                recorded = await asyncio.to_thread(self._write, [row])
            except DBAPIError as exc:
                if _is_outage(exc):
                    raise DependencyUnavailable(f"database: {exc.orig}") from exc
                results[index] = RecordResult([], BadInput(f"database refused the event: {exc.orig}"))
            else:
                self._account(recorded, [row], [index], results)
