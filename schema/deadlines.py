"""Operations that run for at most a few seconds, watched by one timer instead of one each.

`asyncio.timeout` puts a timer in the event loop's heap for every operation, where it stays,
cancelled, until its time comes: at 2,000 signatures a second and a 10 s limit, 20,000 of them,
and about 6 µs of a signature's time (measured), for a limit that almost never fires. Here the
tasks running an operation are noted with their deadline, and one timer, while any are noted,
looks at them a few times a second and cancels those past it; `within()` turns that
cancellation into `TimeoutError`, as `asyncio.timeout` does.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._period = min(1.0, seconds / 4)
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._watching = False

    def within(self) -> _Within:
        """`async with deadlines.within():` runs the block for at most `seconds`."""
        return _Within(self)

    def _watch(self) -> None:
        now = asyncio.get_running_loop().time()
        for task, deadline in list(self._running.items()):
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._watching = bool(self._running)
        if self._watching:
            asyncio.get_running_loop().call_later(self._period, self._watch)


class _Within:
    __slots__ = ("deadlines", "task")

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines

    async def __aenter__(self) -> None:
        deadlines = self.deadlines
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        loop = asyncio.get_running_loop()
        deadlines._running[task] = loop.time() + deadlines.seconds
        if not deadlines._watching:
            deadlines._watching = True
            loop.call_later(deadlines._period, deadlines._watch)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        deadlines, task = self.deadlines, self.task
        del deadlines._running[task]
        if task in deadlines._expired:
            deadlines._expired.discard(task)
            if task.uncancel() == 0 and kind is asyncio.CancelledError:
                raise TimeoutError from error
