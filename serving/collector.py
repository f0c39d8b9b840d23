"""Garbage-collector tuning for a process holding many long-lived websockets."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable


async def keep_connections_out_of_the_collector(
    open_websockets: Callable[[], int], *, at_least: int = 1000, growth: float = 1.25
) -> None:
    """Keep the garbage collector's full passes short.

    Python's collector stops the world to walk every object it tracks: with 20,000 websockets
    open, three million objects and up to 1.7 s during which no count is sent and no signature
    taken (measured). Those objects live as long as their connections, so once `at_least`
    websockets are open, and again whenever their number has grown by `growth`, what has
    survived a young collection is moved out of the collector's sight (`gc.freeze`): full
    passes then walk only what came after. When more than half of the connections frozen have
    closed, everything is given back to one full collection, which frees what they left in
    cycles. Freezing on each second instead would keep the cyclic garbage of requests in flight
    until such a collection: about 1 MB a second at 2,000 signatures a second (measured)."""
    frozen_with = 0
    try:
        while True:
            await asyncio.sleep(1.0)
            now = open_websockets()
            if now >= max(at_least, frozen_with * growth):
                gc.collect(1)
                gc.freeze()
                frozen_with = now
            elif frozen_with and now < frozen_with / 2:
                gc.unfreeze()
                gc.collect()
                frozen_with = 0
    finally:
        gc.unfreeze()
