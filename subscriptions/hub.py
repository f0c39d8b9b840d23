"""The broadcaster bridge: one broker connection per process, fanned out to bounded listeners,
and healed when the broker goes away.

broadcaster's `Broadcast` gives every subscriber an unbounded queue and never notices a lost
connection (its issue #144). The hub uses broadcaster's backends directly instead, on one
channel that carries every event: one reader drains the broker and hands each event to the
`Listener`s of its petition (and to observers such as the result cache), which hold at most
`capacity` events (or only the latest, for counts). A probe message goes round the broker every
`probe_interval` seconds; when one does not come back, or the reader fails, the hub reconnects
with back-off, subscribes its channels again, and gives every listener a `Resync`, on which the
subscriptions read the truth from the database (counts are absolute, signatures numbered).
A broker that cannot be reached at start is the same outage: the process starts without it,
unhealthy, and the hub connects with the same back-off and resynchronises.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager, suppress

from broadcaster import BroadcastBackend

from .backends import make_backend
from .channels import DEFAULT_PREFIX, events_channel
from .events import Event, Resync, decode, encode

log = logging.getLogger("petitions.subscriptions")


class FellBehind(Exception):
    """A listener's buffer overflowed: its client could not keep up with the events."""

    def __init__(self) -> None:
        super().__init__("the client fell too far behind the events; subscribe again")


def _supersedes(kept: Event, new: Event) -> bool:
    """Whether the buffered event of a latest-only listener tells more than the new one."""
    if isinstance(kept, Resync):
        return True
    return getattr(kept, "number", 0) > getattr(new, "number", 0)


class Listener:
    """One subscriber's buffer of events from one petition."""

    def __init__(self, kinds: Collection[str], *, latest_only: bool, capacity: int) -> None:
        self.kinds = frozenset(kinds) | {Resync.kind}
        self._latest_only = latest_only
        self._capacity = capacity
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._fell_behind = False

    def put(self, event: Event) -> None:
        if event.kind not in self.kinds:
            return
        if self._latest_only:
            # Keep the newest by the petition's signature clock, not by arrival (processes'
            # events may cross), and never a Resync: it makes the reader ask the database.
            if self._events and _supersedes(self._events[-1], event):
                return
            self._events.clear()
        elif len(self._events) >= self._capacity:
            self._fell_behind = True
            self._events.clear()
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        """The next event; raises `FellBehind` once the buffer has overflowed."""
        while True:
            if self._fell_behind:
                raise FellBehind()
            if self._events:
                return self._events.popleft()
            self._ready.clear()
            await self._ready.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


Observer = Callable[[Event], None]


class Hub:
    """Publishes events to every process and delivers them to this process's listeners."""

    def __init__(
        self,
        url: str,
        *,
        capacity: int = 1000,
        prefix: str = DEFAULT_PREFIX,
        probe_interval: float = 1.0,
        probe_timeout: float = 10.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.capacity = capacity
        self.prefix = prefix
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.max_backoff = max_backoff
        self._channel = events_channel(prefix)
        self._in_process = url.startswith("memory:")  # nothing between us to go silent
        self._origin = uuid.uuid4().hex  # marks this process's own messages on the wire
        self._probe = f"probe:{self._origin}"
        self._listeners: dict[int, set[Listener]] = {}
        self._observers: list[Observer] = []
        self._backend: BroadcastBackend | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._probe_seen = 0.0
        self._publish_failing = False  # so that an outage is logged once, not once a batch
        self.reconnects = 0  # connections made by the supervisor (after an outage, or at start)

    @property
    def healthy(self) -> bool:
        """Connected, reading, and the last probe came back in time. A dropped connection
        ends the reader at once; the probe catches a line that went silent (a broker that
        stalls, a network that drops packets), so its timeout is generous: a busy machine
        may keep an idle process from reading its echo for seconds."""
        return (
            self._backend is not None
            and self._reader is not None
            and not self._reader.done()
            and (self._in_process or _now() - self._probe_seen <= self.probe_timeout)
        )

    def observe(self, observer: Observer) -> None:
        """Call `observer` with every event from any process (this process's own events both
        when published and when they come back), and with `Resync(0)` whenever events may
        have been missed (the broker was lost, or is back)."""
        self._observers.append(observer)

    async def connect(self) -> None:
        """Try once to connect, then watch the line. A broker that cannot be reached does not
        stop the start: the hub stays unhealthy, and connects with back-off as after a lost
        connection (listeners and observers then get a `Resync`). A bad broadcast URL (a
        `ValueError`) is a configuration error, and raises."""
        try:
            async with asyncio.timeout(self.probe_timeout + 2):
                await self._open()
            connected = True
        except ValueError:
            raise
        except Exception as error:
            log.warning(
                "broadcast backend unreachable at start (%s); serving without it until it "
                "comes, reconnecting in the background",
                type(error).__name__,
            )
            connected = False
        self._supervisor = asyncio.create_task(self._supervise(connected))

    async def disconnect(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
        await self._close()

    async def publish(self, *events: Event) -> None:
        """Send `events`, in order, to every process (this one included). Never raises: the
        changes are already committed, and subscribers repair what they miss from the
        database (on the next event, or on the resync after the broker comes back)."""
        for event in events:  # this process's caches at once: a caller reads its own writes
            for observer in self._observers:
                observer(event)
        backend = self._backend
        try:
            if backend is None:
                raise ConnectionError("not connected")
            for message in encode(events):
                wire = f"{self._origin}|{message}"
                await asyncio.wait_for(backend.publish(self._channel, wire), self.probe_timeout)
        except Exception as error:  # the broker is away; the writes themselves stand
            if not self._publish_failing:  # once an outage: at full load a batch is every ms
                self._publish_failing = True
                log.warning(
                    "could not publish %d event(s): %s; not logging further failures until "
                    "publishing works again",
                    len(events),
                    type(error).__name__,
                )
            return
        if self._publish_failing:
            self._publish_failing = False
            log.info("publishing to the broadcast backend again")

    @asynccontextmanager
    async def listen(
        self, petition_id: int, kinds: Collection[str], *, latest_only: bool = False
    ) -> AsyncIterator[Listener]:
        """Listen to one petition's events. Once this yields, no later event is missed, or
        the listener gets a `Resync` after the broker comes back."""
        listener = Listener(kinds, latest_only=latest_only, capacity=self.capacity)
        listeners = self._listeners.setdefault(petition_id, set())
        listeners.add(listener)
        try:
            yield listener
        finally:
            listeners.discard(listener)
            if not listeners and self._listeners.get(petition_id) is listeners:
                del self._listeners[petition_id]

    def _deliver(self, event: Event, *, observed: bool) -> None:
        if not observed:
            for observer in self._observers:
                observer(event)
        for listener in list(self._listeners.get(event.petition_id, ())):
            listener.put(event)

    async def _open(self) -> None:
        backend = make_backend(self.url, client_name=self.prefix)
        try:
            await backend.connect()
            await backend.subscribe(self._channel)
        except BaseException:
            with suppress(Exception):
                await backend.disconnect()
            raise
        self._backend = backend
        self._probe_seen = _now()
        self._reader = asyncio.create_task(self._read(backend))

    async def _close(self) -> None:
        backend, self._backend = self._backend, None
        if self._reader is not None:
            self._reader.cancel()
            with suppress(BaseException):
                await self._reader
        if backend is not None:
            with suppress(Exception):
                await asyncio.wait_for(backend.disconnect(), timeout=2)

    async def _read(self, backend: BroadcastBackend) -> None:
        while True:
            message = (await backend.next_published()).message
            if message.startswith("probe:"):
                if message == self._probe:
                    self._probe_seen = _now()
                continue
            origin, _, events = message.partition("|")
            for event in decode(events):
                # this process's observers saw its own events when they were published
                self._deliver(event, observed=origin == self._origin)

    async def _supervise(self, connected: bool) -> None:
        """Watch the line while connected; when it is lost (or was never there, at start),
        reconnect with back-off and resynchronise."""
        while True:
            if connected:
                await self._until_lost()
                log.warning("lost the broadcast backend; reconnecting")
                self._resync_all()
                await self._close()
            backoff = 0.1
            while True:
                await asyncio.sleep(backoff)
                try:
                    # in this task: nothing runs between healthy again and the resync below
                    async with asyncio.timeout(self.probe_timeout + 2):
                        await self._open()
                    break
                except Exception as error:
                    log.warning("broadcast backend still away (%s)", type(error).__name__)
                    backoff = min(backoff * 2, self.max_backoff)
            connected = True
            self.reconnects += 1
            log.info("broadcast backend back; resynchronising %d petitions", len(self._listeners))
            self._resync_all()

    async def _until_lost(self) -> None:
        """Send probes until one fails to come back. A loop too busy to read the echo in time
        (a burst of handshakes, say) gets a grace period before the line is declared lost."""
        while True:
            await asyncio.sleep(self.probe_interval)
            if not self.healthy:
                for _ in range(10):
                    await asyncio.sleep(self.probe_interval / 5)
                    if self.healthy:
                        break
                else:
                    return
            if self._backend is not None:
                with suppress(Exception):
                    await asyncio.wait_for(
                        self._backend.publish(self._channel, self._probe), self.probe_timeout
                    )

    def _resync_all(self) -> None:
        for observer in self._observers:
            observer(Resync(0))
        for petition_id, listeners in list(self._listeners.items()):
            for listener in list(listeners):
                listener.put(Resync(petition_id))


def _now() -> float:
    return asyncio.get_running_loop().time()
