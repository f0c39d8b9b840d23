"""`GET /metrics`: the process's figures (see metrics.py) for Prometheus, behind a bearer token,
and the watch that keeps `petitions_broadcast_up` current in every process."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import metrics
from subscriptions import Hub


def metrics_endpoint(token: str) -> Callable[[Request], Awaitable[Response]]:
    """The `/metrics` route: Prometheus' text format to a request bearing `token`, 401 to any
    other."""
    expected = f"Bearer {token}".encode()

    async def endpoint(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return PlainTextResponse(
                "A bearer token (PETITIONS_METRICS_TOKEN) is needed.",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body, content_type = metrics.render()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return endpoint


async def watch_broadcast(hub: Hub, every: float = 1.0) -> None:
    """Tell `petitions_broadcast_up` whether the hub is healthy, every `every` seconds: each
    worker writes its own, since any one of them may be the one scraped."""
    while True:
        metrics.broadcast(hub.healthy)
        await asyncio.sleep(every)
