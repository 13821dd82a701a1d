"""How the model server answers one batch RPC: decode each item, batch the good ones, scatter back.

Both RPCs (FusionKeypoints.Infer, Recognition.Infer) answer this way. An item that does not
decode or validate (``BadInput``) fails alone: its result carries only ``"<reason_code>: <detail>"``
and it is counted as a dead letter. The other items go to the micro-batcher together, and each
output comes back to its item's position, so the results line up with the request's items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from services.common.errors import BadInput
from services.common.metrics import ServiceMetrics
from services.modelserver.batcher import MicroBatcher

Item = TypeVar("Item")
In = TypeVar("In")
Out = TypeVar("Out")
Result = TypeVar("Result")


async def answer_items(
    items: Sequence[Item],
    *,
    decode: Callable[[Item], In],
    batcher: MicroBatcher[In, Out],
    result: Callable[[Item, Out], Result],
    error_result: Callable[[Item, str], Result],
    metrics: ServiceMetrics,
) -> list[Result]:
    """One result per item, in the items' order; the RPC's stage time is observed once they are all in."""
    started = time.perf_counter()
    inputs: dict[int, In] = {}
    errors: dict[int, Result] = {}
    for i, item in enumerate(items):
        try:
            inputs[i] = decode(item)
        except BadInput as exc:
            metrics.count_dead_letter(exc.reason_code)
            errors[i] = error_result(item, f"{exc.reason_code}: {exc.detail}")
    outputs: dict[int, Out] = {}
    if inputs:  # a request of bad items only never reaches the model
        outputs = dict(zip(inputs, await batcher.submit_many(list(inputs.values())), strict=True))
    results = [errors[i] if i in errors else result(item, outputs[i]) for i, item in enumerate(items)]
    metrics.observe_stage(time.perf_counter() - started)
    return results
