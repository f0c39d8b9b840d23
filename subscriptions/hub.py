"""The broadcaster bridge: one upstream subscription per petition channel in this process,
fanned out to bounded local listeners.

broadcaster gives every subscriber an unbounded queue; here a single pump per channel drains it
at once and hands events to `Listener`s that hold at most `capacity` events (or only the latest
one, for counts), so a slow client can never make the process grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from broadcaster import Broadcast

from .channels import DEFAULT_PREFIX, petition_channel
from .events import Event, decode, encode

log = logging.getLogger("petitions.subscriptions")


class FellBehind(Exception):
    """A listener's buffer overflowed: its client could not keep up with the events."""


class Listener:
    """One subscriber's buffer of events from one petition."""

    def __init__(self, kinds: Collection[str], *, latest_only: bool, capacity: int) -> None:
        self.kinds = frozenset(kinds)
        self._latest_only = latest_only
        self._capacity = capacity
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._fell_behind = False

    def put(self, event: Event) -> None:
        if event.kind not in self.kinds:
            return
        if self._latest_only:
            self._events.clear()
        elif len(self._events) >= self._capacity:
            self._fell_behind = True
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        """The next event; raises `FellBehind` once the buffer has overflowed."""
        while True:
            if self._fell_behind:
                raise FellBehind("the client fell too far behind the events; subscribe again")
            if self._events:
                return self._events.popleft()
            self._ready.clear()
            await self._ready.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


@dataclass
class _Channel:
    listeners: set[Listener] = field(default_factory=set)
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    pump: asyncio.Task[None] | None = None


class Hub:
    """Publishes events to every process and delivers them to this process's listeners."""

    def __init__(self, url: str, *, capacity: int = 1000, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = url
        self.capacity = capacity
        self.prefix = prefix
        self._broadcast = Broadcast(url)
        self._channels: dict[str, _Channel] = {}
        self._connected = False

    async def connect(self) -> None:
        await self._broadcast.connect()
        self._connected = True

    @property
    def healthy(self) -> bool:
        """Connected, and broadcaster's listener has not died."""
        task: asyncio.Task[None] | None = getattr(self._broadcast, "_listener_task", None)
        return self._connected and task is not None and not task.done()

    async def disconnect(self) -> None:
        for channel in list(self._channels.values()):
            if channel.pump is not None:
                channel.pump.cancel()
        with suppress(Exception):
            await self._broadcast.disconnect()

    async def publish(self, event: Event) -> None:
        """Send `event` to every process. Never raises: the change is already committed, and
        subscribers repair a missed event from the database on the next one."""
        try:
            await self._broadcast.publish(
                petition_channel(event.petition_id, self.prefix), encode(event)
            )
        except Exception as error:  # the broker is away; the write itself stands
            log.warning("could not publish a %s event: %s", event.kind, type(error).__name__)

    @asynccontextmanager
    async def listen(
        self, petition_id: int, kinds: Collection[str], *, latest_only: bool = False
    ) -> AsyncIterator[Listener]:
        """Listen to one petition's events. Once this yields, no later event is missed."""
        name = petition_channel(petition_id, self.prefix)
        listener = Listener(kinds, latest_only=latest_only, capacity=self.capacity)
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
            channel.pump = asyncio.create_task(self._pump(name, channel))
        channel.listeners.add(listener)
        try:
            await asyncio.shield(channel.ready)
            yield listener
        finally:
            channel.listeners.discard(listener)
            if not channel.listeners and self._channels.get(name) is channel:
                del self._channels[name]
                if channel.pump is not None:
                    channel.pump.cancel()

    async def _pump(self, name: str, channel: _Channel) -> None:
        try:
            async with self._broadcast.subscribe(name) as subscriber:
                channel.ready.set_result(None)
                while True:
                    event = decode((await subscriber.get()).message)
                    for listener in list(channel.listeners):
                        listener.put(event)
        except Exception as error:
            if not channel.ready.done():
                channel.ready.set_exception(error)
            raise
