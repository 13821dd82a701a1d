"""One batch RPC's items: a bad item keeps its position and error text, the good ones are batched
together and come back in place, and a request of bad items only never reaches the batcher."""

from __future__ import annotations

import asyncio

from services.common.errors import BadInput, MalformedMessage
from services.common.metrics import ServiceMetrics
from services.modelserver.answer import answer_items
from services.modelserver.batcher import MicroBatcher


def decode(item: str) -> int:
    if not item.isdigit():
        raise MalformedMessage(f"{item!r} is not a number")
    return int(item)


def answer(item: str, out: int) -> tuple[str, int | str]:
    return item, out


def error(item: str, text: str) -> tuple[str, int | str]:
    return item, text


def dead_letters(metrics: ServiceMetrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value(
        "classroom_dead_letters_total", {"service": metrics.service, "reason": reason}
    )


def stage_observations(metrics: ServiceMetrics) -> float | None:
    return metrics.registry.get_sample_value("classroom_stage_seconds_count", {"service": metrics.service})


def test_a_bad_item_keeps_its_position_and_error_and_the_good_ones_share_one_batch() -> None:
    batches: list[list[int]] = []
    metrics = ServiceMetrics("modelserver")

    def square(inputs):
        batches.append(list(inputs))
        return [n * n for n in inputs]

    async def scenario():
        batcher = MicroBatcher(square, max_items=8, max_delay_s=0.01)
        batcher.start()
        try:
            return await answer_items(
                ["2", "x", "3", "4"],
                decode=decode,
                batcher=batcher,
                result=answer,
                error_result=error,
                metrics=metrics,
            )
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert results == [("2", 4), ("x", "malformed_message: 'x' is not a number"), ("3", 9), ("4", 16)]
    assert batches == [[2, 3, 4]]
    assert dead_letters(metrics, "malformed_message") == 1
    assert stage_observations(metrics) == 1


class UntouchableBatcher:
    """Fails the test if anything is submitted, even an empty list."""

    async def submit_many(self, items):
        raise AssertionError(f"the batcher was given {items!r}")


def test_a_request_of_bad_items_only_never_reaches_the_batcher() -> None:
    metrics = ServiceMetrics("modelserver")

    def refuse(item: str) -> int:
        raise BadInput(f"{item} refused")

    results = asyncio.run(
        answer_items(
            ["a", "b"],
            decode=refuse,
            batcher=UntouchableBatcher(),  # type: ignore[arg-type]
            result=answer,
            error_result=error,
            metrics=metrics,
        )
    )
    assert results == [("a", "bad_input: a refused"), ("b", "bad_input: b refused")]
    assert dead_letters(metrics, "bad_input") == 2
    assert stage_observations(metrics) == 1


def test_an_empty_request_answers_nothing() -> None:
    metrics = ServiceMetrics("modelserver")
    results = asyncio.run(
        answer_items(
            [],
            decode=decode,
            batcher=UntouchableBatcher(),  # type: ignore[arg-type]
            result=answer,
            error_result=error,
            metrics=metrics,
        )
    )
    assert results == []
