"""A minimal HTTP/1.1 keep-alive client on asyncio streams: the lightest load a Python process
can put on a server (no pooling layers, no header objects), for when `wrk` is absent."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 64 * 1024 * 1024


class HTTPError(Exception):
    """The connection broke or the server answered something this client cannot read."""


class Connection:
    """One keep-alive connection to one `http://127.0.0.1:PORT` origin."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port
        self._host_header = f"{self.host}:{self.port}".encode()
        self.last_head = b""  # the header block of the last answer
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def header(self, name: bytes) -> str | None:
        """A header of the last answer, or None."""
        for line in self.last_head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower():
                return value.strip().decode(errors="replace")
        return None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and read its whole answer: `(status, body)`."""
        reader, writer = await self._connect()
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method.encode(),
            target.encode(),
            self._host_header,
            headers,
        )
        if body or method == "POST":
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        writer.write(head + b"\r\n" + body)
        try:
            return await self._response(reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as error:
            self.close()
            raise HTTPError(f"{type(error).__name__}: {error}") from error

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        self.last_head = head
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = await _read_chunked(reader)
        elif length >= 0:
            if length > MAX_BODY:
                raise ValueError("body too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_BODY)
            close = True
        if close:
            self.close()
        return status, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    for _ in range(1_000_000):
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ValueError("body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    raise ValueError("too many chunks")


async def graphql(
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    within: float = 30.0,
) -> dict[str, Any]:
    """POST one GraphQL document to `url` + /graphql and decode the answer (one-off requests)."""
    connection = Connection(url)
    headers = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    try:
        async with asyncio.timeout(within):
            status, answer = await connection.request("POST", "/graphql", body, headers)
    finally:
        connection.close()
    if status != 200:
        raise HTTPError(f"HTTP {status}: {answer[:300]!r}")
    decoded: dict[str, Any] = json.loads(answer)
    return decoded


async def get(url: str, target: str, *, within: float = 30.0) -> tuple[int, bytes]:
    """One GET on a fresh connection."""
    connection = Connection(url)
    try:
        async with asyncio.timeout(within):
            return await connection.request("GET", target)
    finally:
        connection.close()
