"""ASGI middleware of our own, around every request."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

import models


class DatabaseContext:
    """Enter the lifespan's Tortoise context in every request: Tortoise 1.x finds its
    connections through a context variable, which does not cross into request tasks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        async with models.activate(scope["state"]["database"]):
            await self.app(scope, receive, send)
