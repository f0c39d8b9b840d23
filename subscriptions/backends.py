"""broadcaster backends, chosen by URL, with its Redis backend repaired.

broadcaster 0.3's `RedisBackend` can start reading before its first SUBSCRIBE is registered,
find no channel, and then never read again; and when its connection drops it waits forever
instead of failing. The backend below reads only once subscribed and ends its reader with the
error, so that the hub notices, reconnects and resynchronises.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

from broadcaster import BroadcastBackend, Event
from broadcaster._backends.memory import MemoryBackend
from broadcaster._backends.postgres import PostgresBackend
from redis import asyncio as redis


class BackendLost(ConnectionError):
    """The connection to the broker is gone; the hub reconnects."""


class RedisBackend(BroadcastBackend):
    def __init__(self, url: str, client_name: str | None = None) -> None:
        self._url = url
        self._client_name = client_name
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        # No silent reconnects: events published while it was away would be missed unseen.
        self._conn = redis.Redis.from_url(
            self._url, retry=None, socket_connect_timeout=5, client_name=self._client_name
        )
        self._pubsub = self._conn.pubsub(ignore_subscribe_messages=True)
        await self._conn.ping()

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._conn.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._conn.publish(channel, message)

    async def next_published(self) -> Event:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise BackendLost("the Redis pub/sub connection was lost") from item
        return item

    async def _read(self) -> None:
        try:
            while True:
                message = await self._pubsub.get_message(timeout=None)
                if message is not None and message["type"] == "message":
                    await self._queue.put(
                        Event(message["channel"].decode(), message["data"].decode())
                    )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self._queue.put(error)


class PostgresNotifyBackend(PostgresBackend):
    """broadcaster's LISTEN/NOTIFY backend, failing loudly when its connection ends."""

    async def connect(self) -> None:
        await super().connect()
        self._conn.add_termination_listener(self._terminated)

    def _terminated(self, connection: Any) -> None:
        self._listen_queue.put_nowait(Event("", ""))

    async def next_published(self) -> Event:
        event = await super().next_published()
        if not event.channel:
            raise BackendLost("the PostgreSQL LISTEN connection was lost")
        return event


def make_backend(url: str, client_name: str | None = None) -> BroadcastBackend:
    """The backend for a broadcast URL: memory://, redis://, rediss:// or postgres://.

    `client_name` names Redis connections (CLIENT LIST), so operators can tell them apart."""
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme in {"redis", "rediss"}:
        return RedisBackend(url, client_name)
    if scheme in {"postgres", "postgresql"}:
        return PostgresNotifyBackend(url)
    raise ValueError(f"unsupported broadcast URL scheme {scheme!r}: use memory, redis or postgres")
