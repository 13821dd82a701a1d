"""Micro-batching: many callers submit items, one worker runs them through the model together.

A batch closes when it holds ``max_items`` items or when ``max_delay_s`` has passed since
its first item arrived, whichever comes first. The model function runs in one worker
thread (torch uses its own intra-op threads) so the event loop keeps accepting requests
from other classrooms while a batch computes; that is what lets one GPU serve many rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    compute_s: float = 0.0


class MicroBatcher(Generic[In, Out]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Sequence[Out]],
        *,
        max_items: int,
        max_delay_s: float,
        name: str = "batch",
        on_batch: Callable[[int, float, float], None] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.run_batch = run_batch
        self.max_items = max_items
        self.max_delay_s = max_delay_s
        self.name = name
        self.on_batch = on_batch  # (items, waited_s, compute_s) for metrics
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[Out], float]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{name}")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._executor.shutdown(wait=True)

    async def submit_many(self, items: Sequence[In]) -> list[Out]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Out]] = []
        now = time.monotonic()
        for item in items:
            future: asyncio.Future[Out] = loop.create_future()
            futures.append(future)
            self._queue.put_nowait((item, future, now))
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = first[2] + self.max_delay_s
            while len(batch) < self.max_items:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    # Take whatever is already waiting without blocking.
                    try:
                        batch.append(self._queue.get_nowait())
                        continue
                    except asyncio.QueueEmpty:
                        break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            items = [b[0] for b in batch]
            waited = time.monotonic() - first[2]
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, self.run_batch, items)
                if len(outputs) != len(items):
                    raise RuntimeError(
                        f"{self.name}: model returned {len(outputs)} outputs for {len(items)} inputs"
                    )
                for (_, future, _), output in zip(batch, outputs, strict=True):
                    if not future.done():
                        future.set_result(output)
            except Exception as exc:
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                compute = time.perf_counter() - started
                self.stats.batches += 1
                self.stats.items += len(items)
                self.stats.compute_s += compute
                if self.on_batch is not None:
                    self.on_batch(len(items), waited, compute)
                for _ in batch:
                    self._queue.task_done()
