"""A real GraphQL-over-websocket client for tests, speaking both subprotocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]
TIMEOUT = 10.0  # seconds: no single wait may hang longer


class SubscriptionEnded(Exception):
    """The server ended the subscription with an error; `errors` holds what it sent."""

    def __init__(self, errors: list[dict[str, Any]], frame: str) -> None:
        super().__init__(frame)
        self.errors = errors
        self.frame = frame


class SubscriptionCompleted(Exception):
    """The server completed the subscription without an error."""


@dataclass
class Subscriber:
    """One websocket speaking one GraphQL subprotocol, with one subscription on it (id "1").

    Every text frame received is kept in `frames`, raw, so tests can search what went over the
    wire."""

    ws: ClientConnection
    protocol: str
    frames: list[str] = field(default_factory=list)
    operation_id: str = "1"

    async def _receive(self) -> dict[str, Any]:
        while True:
            raw = await self.ws.recv()
            assert isinstance(raw, str), raw
            self.frames.append(raw)
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") in {"ka", "ping", "pong"}:
                if message["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def init(self) -> None:
        await self.ws.send(json.dumps({"type": "connection_init"}))
        async with asyncio.timeout(TIMEOUT):
            message = await self._receive()
        assert message["type"] == "connection_ack", message

    async def subscribe(self, query: str, variables: dict[str, Any]) -> None:
        start = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.ws.send(
            json.dumps(
                {
                    "id": self.operation_id,
                    "type": start,
                    "payload": {"query": query, "variables": variables},
                }
            )
        )

    async def next(self, within: float = TIMEOUT) -> dict[str, Any]:
        """The `data` of the next result; `SubscriptionEnded` if the server sent an error."""
        async with asyncio.timeout(within):
            message = await self._receive()
        kind = message["type"]
        assert message.get("id") == self.operation_id, message
        if kind == "error":
            payload = message["payload"]
            errors = payload if isinstance(payload, list) else [payload]
            raise SubscriptionEnded(errors, self.frames[-1])
        if kind == "complete":
            raise SubscriptionCompleted(self.frames[-1])
        assert kind == ("next" if self.protocol == TRANSPORT_WS else "data"), message
        payload = message["payload"]
        if payload.get("errors"):
            raise SubscriptionEnded(payload["errors"], self.frames[-1])
        data: dict[str, Any] = payload["data"]
        return data


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


@asynccontextmanager
async def subscription(
    server_url: str, protocol: str, query: str, variables: dict[str, Any]
) -> AsyncIterator[Subscriber]:
    """A connected, acknowledged websocket with `query` subscribed as operation "1"."""
    async with asyncio.timeout(TIMEOUT):
        ws = await connect(ws_url(server_url), subprotocols=[Subprotocol(protocol)])
    async with ws:
        assert ws.subprotocol == protocol
        subscriber = Subscriber(ws, protocol)
        await subscriber.init()
        await subscriber.subscribe(query, variables)
        yield subscriber
