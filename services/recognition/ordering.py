"""Each partition's records in offset order, or read again: a guard around faust's fetch loop.

faust-streaming 0.15.3 can drop records whose hand-off to the agent races a flow suspension
(``Consumer._drain_messages``: ``wait_first(callback(message), suspend_flow.wait())``, then the
read offset moves on anyway), as happens at start and in every rebalance. The agent then sees
offsets 60, 116, 117, ... and the windows built from 61-115 are never made
(tests/services/recognition/test_recognition_service.py caught it about one run in four).

The observations topic has no gaps of its own (plain producers, no compaction, no
transactions), so a forward jump in a partition's offsets means the consumer skipped records.
``OffsetOrder.admit`` then seeks the partition back to the first missing offset and passes over
the records after the gap until the missing ones arrive (the passed-over ones come again after
them; faust commits only up to the first unacknowledged offset, so nothing past the gap is
committed meanwhile). A redelivery (an offset at or below the expected one) is admitted: the
windows are idempotent. If the missing offset has not come back after ``give_up_s`` it is
taken for a real gap, logged as an error and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

log = logging.getLogger("recognition")

GIVE_UP_S = 30.0


class ConsumerView(Protocol):
    """What the guard needs of the consumer: assignments seen, committed offsets, seeking."""

    def rebalances(self) -> int: ...

    def committed(self) -> Mapping[Any, int]: ...

    async def earliest(self, tp: Any) -> int | None: ...

    async def seek(self, tp: Any, offset: int) -> None: ...


class FaustConsumerView:
    """ConsumerView over a running faust app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def rebalances(self) -> int:
        return int(self.app.rebalancing_count)

    def committed(self) -> Mapping[Any, int]:
        # filled by faust's perform_seek after every assignment (the offsets it resumed from)
        return getattr(self.app.consumer, "_committed_offset", None) or {}

    async def earliest(self, tp: Any) -> int | None:
        offset = (await self.app.consumer.earliest_offsets(tp)).get(tp)
        return offset if isinstance(offset, int) and offset >= 0 else None

    async def seek(self, tp: Any, offset: int) -> None:
        await self.app.consumer.seek(tp, offset)


class OffsetOrder:
    def __init__(self, consumer: ConsumerView, metrics: Any, *, give_up_s: float = GIVE_UP_S) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.give_up_s = give_up_s
        self._expected: dict[Any, int] = {}  # tp -> the offset that should come next
        self._seeking: dict[Any, float] = {}  # tp -> when it was sought back
        self._asked_earliest: set[Any] = set()
        self._rebalances = -1

    async def admit(self, tp: Any, offset: int) -> bool:
        """True: handle this record. False: pass it over (it comes again after the skipped ones)."""
        if self.consumer.rebalances() != self._rebalances:
            # a new assignment: each partition continues from the offset faust resumed it at
            self._rebalances = self.consumer.rebalances()
            self._expected = {
                t: o for t, o in self.consumer.committed().items() if isinstance(o, int) and o >= 0
            }
            self._seeking.clear()
            self._asked_earliest.clear()
        expected = self._expected.get(tp)
        if expected is None and tp not in self._asked_earliest:
            # nothing committed yet: the group starts at the beginning (auto_offset_reset earliest)
            self._asked_earliest.add(tp)
            expected = await self.consumer.earliest(tp)
            if expected is not None:
                self._expected[tp] = expected
        if expected is None or offset <= expected:
            if expected is not None and offset < expected:
                log.info(
                    "redelivery", extra={"partition": _partition(tp), "offset": offset, "expected": expected}
                )
            self._expected[tp] = offset + 1
            self._seeking.pop(tp, None)
            return True
        since = self._seeking.get(tp)
        if since is None:
            log.warning(
                "the consumer skipped records; reading them again",
                extra={"partition": _partition(tp), "from_offset": expected, "to_offset": offset},
            )
            self.metrics.count_retry("skipped_records")
            self._seeking[tp] = time.monotonic()
            await self.consumer.seek(tp, expected)
            return False
        if time.monotonic() - since > self.give_up_s:
            log.error(
                "records missing from the partition, going on without them",
                extra={"partition": _partition(tp), "from_offset": expected, "to_offset": offset},
            )
            self.metrics.count_dead_letter("offset_gap")
            self._expected[tp] = offset + 1
            self._seeking.pop(tp, None)
            return True
        return False


def _partition(tp: Any) -> int | None:
    return getattr(tp, "partition", None)
