"""ASGI middleware of our own, around every request."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import metrics
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


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413, before reading past the limit: at once
    when its Content-Length says so, else (chunked) as soon as the chunks read exceed it.
    Starlette has no such limit and uvicorn reads whatever it is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:  # the server holds the body to this length
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.refused("body")
        message = f"The request body is larger than the {self.max_bytes:,} bytes allowed."
        response = JSONResponse({"errors": [{"message": message}]}, status_code=413)
        await response(scope, receive, send)
