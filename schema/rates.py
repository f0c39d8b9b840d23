"""Rate limits per client address, counted by the `limits` library: in memory, or in Redis when
the broadcast backend is Redis, so that every process counts against the same limit."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import redis.asyncio as redis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

import metrics

log = logging.getLogger("petitions.rates")

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s\s*$")


def parse_rate(text: str) -> RateLimitItem:
    """`N/Ss` (e.g. `5/300s`): at most N in any S seconds."""
    found = _RATE.match(text)
    if found is None or int(found[1]) < 1 or int(found[2]) < 1:
        raise ValueError(f"a rate reads N/Ss, like 5/300s, not {text!r}")
    return RateLimitItemPerSecond(int(found[1]), int(found[2]))


class RateLimits:
    """`allow(kind, *keys)` counts one attempt of `kind` ("sign", "comment") by those keys and
    says whether it is within the configured rate; a kind without a rate is always allowed.

    Counting fails open: when Redis cannot be reached, every attempt is allowed (and the
    outage logged once), since signing must go on while the broker is away."""

    def __init__(self, rates: dict[str, str | None], storage_url: str, prefix: str) -> None:
        self._items = {kind: parse_rate(rate) for kind, rate in rates.items() if rate}
        self._storage: Storage | None = None
        self._pool: redis.ConnectionPool | None = None
        if self._items:
            if storage_url.startswith(("redis://", "rediss://")):
                # Our own pool, so that `close` can let go of its connections.
                self._pool = redis.ConnectionPool.from_url(storage_url)
                options: dict[str, Any] = {"connection_pool": self._pool}
                self._storage = RedisStorage(
                    storage_url, implementation="redispy", key_prefix=f"{prefix}:rate", **options
                )
            else:
                self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage) if self._storage else None
        self._failing = False

    async def allow(self, kind: str, *keys: str) -> bool:
        item = self._items.get(kind)
        if item is None or self._limiter is None:
            return True
        try:
            async with asyncio.timeout(1.0):
                allowed = await self._limiter.hit(item, kind, *keys)
        except Exception as error:
            if not self._failing:
                log.warning("rate limits not counted (%s): allowing", type(error).__name__)
            self._failing = True
            return True
        if self._failing:
            log.info("rate limits counted again")
            self._failing = False
        if not allowed:
            metrics.refused("rate")
        return allowed

    async def close(self) -> None:
        """Close the connections to Redis (at shutdown; nothing to do in memory)."""
        if self._pool is not None:
            await self._pool.aclose()
