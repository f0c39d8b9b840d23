"""A process holding many graphql-transport-ws subscribers: `python -m bench.wsworker …`.

Each subscriber is a bare `asyncio.Protocol` speaking RFC 6455 itself (no task, no queue,
no library layers per socket) so that one process can hold thousands of sockets and read
their frames with as little CPU as possible: the server shares the machine's two cores.

It talks to the orchestrator in JSON lines: it prints {"event": "ready", …} once every
subscriber has its first result (or failed), then answers commands read from stdin:
  {"cmd": "status", "count": C}  subscribers holding a count >= C (counts mode)
  {"cmd": "status", "names": M}  subscribers holding M names, or cut off (names mode)
  {"cmd": "measure", "acks": [[k, count, t, sent], …], "final": C}  per-write delays
  {"cmd": "names", "numbers": {k: number}}  exactly-once / order check (names mode)
  {"cmd": "quit"}
Times are `time.monotonic()` (system-wide), comparable with the writer's."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
from array import array
from bisect import bisect_left
from typing import Any

from bench.procs import raise_fd_limit
from bench.workload import COUNT_SUBSCRIPTION, NAMES_SUBSCRIPTION

TYPE_IN = re.compile(rb'"type":\s*"(\w+)"')
COUNT_IN = re.compile(rb'"signatureCount":\s*(\d+)')
NAME_IN = re.compile(rb'"name":\s*"Bench S(\d+)"')
MAX_SAMPLED_WRITES = 400  # writes whose delay is measured for every subscriber
NEVER_MS = 10**7  # the histogram bucket of a write a subscriber never saw


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    if length:
        mask = (key * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(
            length, "big"
        )
    else:
        masked = b""
    return head + key + masked


class Subscriber(asyncio.Protocol):
    def __init__(self, host: str, port: int, subscribe: bytes, mode: str) -> None:
        self.host = host
        self.port = port
        self.subscribe = subscribe
        self.mode = mode
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.error: str | None = None
        self.last = -1  # counts: latest count; names: unused
        self.times = array("d")
        self.values = array("q")
        self.messages = 0

    # -- asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /graphql HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self._fail(f"handshake refused: {head[:80]!r}")
                return
            self.upgraded = True
            self._send(b'{"type":"connection_init"}')
        self._frames()

    # -- frames
    def _frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10], "big")
                offset = 10
            if second & 0x80:  # servers never mask; skip the key if one does
                offset += 4
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            if opcode in (0x1, 0x2, 0x0):
                self.fragments.append(payload)
                if first & 0x80:
                    message = b"".join(self.fragments)
                    self.fragments = []
                    self._message(message)
            elif opcode == 0x9:
                self._raw(frame(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if self.error is None:
                    self.error = f"closed by server ({code})"
                self._raw(frame(payload[:2], 0x8))
                if self.transport is not None:
                    self.transport.close()
                return

    def _message(self, message: bytes) -> None:
        now = time.monotonic()
        kind_match = TYPE_IN.search(message)
        kind = kind_match.group(1) if kind_match else b""
        if kind == b"next":
            self.messages += 1
            if self.mode == "count":
                found = COUNT_IN.search(message)
                if found:
                    count = int(found.group(1))
                    if count > self.last:
                        self.last = count
                        self.times.append(now)
                        self.values.append(count)
            else:
                found = NAME_IN.search(message)
                if found:
                    self.values.append(int(found.group(1)))
                    self.times.append(now)
                elif self.ready.done():
                    self.error = f"unexpected result: {message[:120]!r}"
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == b"connection_ack":
            self._send(self.subscribe)
            if self.mode == "names" and not self.ready.done():
                # signatureAdded sends nothing until a signature: ready once subscribed.
                self.ready.set_result(None)
        elif kind == b"ping":
            self._send(b'{"type":"pong"}')
        elif kind in (b"error", b"complete"):
            self._fail(f"{kind.decode()}: {message[:200]!r}")
        elif kind != b"pong":
            self._fail(f"unexpected message: {message[:120]!r}")

    def _send(self, text: bytes) -> None:
        self._raw(frame(text))

    def _raw(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))


async def connect_all(
    host: str,
    ports: list[int],
    n: int,
    subscribe: bytes,
    mode: str,
    parallel: int,
    within: float,
    deadline: float,
) -> tuple[list[Subscriber], dict[str, Any]]:
    """Open `n` subscribers, `parallel` handshakes at a time; each may take `within` s, and
    none starts after `deadline` s (a server too slow to accept them all is a finding, not
    a reason to wait for ever)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(parallel)
    subscribers: list[Subscriber] = []
    report: dict[str, Any] = {"failed": 0, "timed_out": 0, "not_started": 0, "failures": []}
    stop_at = time.monotonic() + deadline

    async def one(index: int) -> None:
        port = ports[index % len(ports)]
        async with gate:
            if time.monotonic() > stop_at:
                report["not_started"] += 1
                return
            transport = None
            try:
                async with asyncio.timeout(within):
                    transport, protocol = await loop.create_connection(
                        lambda: Subscriber(host, port, subscribe, mode), host, port
                    )
                    await protocol.ready
                subscribers.append(protocol)
            except TimeoutError:
                report["timed_out"] += 1
                if transport is not None:
                    transport.abort()
            except (OSError, ConnectionError) as error:
                report["failed"] += 1
                if len(report["failures"]) < 5:
                    report["failures"].append(f"{type(error).__name__}: {error}"[:200])
                if transport is not None:
                    transport.abort()

    await asyncio.gather(*(one(i) for i in range(n)))
    return subscribers, report


def count_status(subscribers: list[Subscriber], target: int) -> dict[str, Any]:
    return {
        "at_least": sum(1 for s in subscribers if s.last >= target),
        "closed": sum(1 for s in subscribers if s.closed or s.error),
        "messages": sum(s.messages for s in subscribers),
    }


def names_status(subscribers: list[Subscriber], target: int) -> dict[str, Any]:
    return {
        "complete": sum(1 for s in subscribers if len(s.values) >= target or s.error),
        "closed": sum(1 for s in subscribers if s.closed or s.error),
        "messages": sum(s.messages for s in subscribers),
    }


def measure_counts(
    subscribers: list[Subscriber], acks: list[list[float]], final: int
) -> dict[str, Any]:
    """For a sample of writes (k, count c, acknowledged at t, sent at s), each subscriber's
    delay until it held a count >= c: from the acknowledgement (clamped at 0: a subscriber
    may hear of a write before its writer does) and from the sending. Sparse histograms in
    whole milliseconds."""
    ordered = sorted(acks, key=lambda a: a[2])
    step = max(1, len(ordered) // MAX_SAMPLED_WRITES)
    sample = ordered[::step]
    after_ack: dict[int, int] = {}
    after_send: dict[int, int] = {}
    missed = 0
    for subscriber in subscribers:
        values, times = subscriber.values, subscriber.times
        for _, count, acked, sent in sample:
            index = bisect_left(values, int(count))
            if index == len(values):
                missed += 1
                from_ack = from_send = NEVER_MS
            else:
                from_ack = max(0, int((times[index] - acked) * 1000))
                from_send = max(0, int((times[index] - sent) * 1000))
            after_ack[from_ack] = after_ack.get(from_ack, 0) + 1
            after_send[from_send] = after_send.get(from_send, 0) + 1
    return {
        "histogram": after_ack,
        "histogram_from_send": after_send,
        "sampled_writes": len(sample),
        "missed": missed,
        "stale": sum(1 for s in subscribers if s.last < final),
        "errors": _errors(subscribers),
        "messages": sum(s.messages for s in subscribers),
    }


def check_names(
    subscribers: list[Subscriber], numbers: dict[int, int], ignore: set[int]
) -> dict[str, Any]:
    """Every subscriber should hold every expected signature once, in number order; names
    in `ignore` (the barrier's probe) are left out."""
    expected = sorted(numbers.values())
    total = len(expected)
    result: dict[str, Any] = {
        "subscribers": len(subscribers),
        "complete": 0,
        "cut_off": 0,
        "late": 0,
        "missing": 0,
        "gaps": 0,
        "duplicates": 0,
        "out_of_order": 0,
        "unknown": 0,
        "errors": _errors(subscribers),
    }
    for subscriber in subscribers:
        got = [numbers.get(k, -1) for k in subscriber.values if k not in ignore]
        result["unknown"] += sum(1 for g in got if g < 0)
        got = [g for g in got if g >= 0]
        distinct = set(got)
        result["duplicates"] += len(got) - len(distinct)
        result["out_of_order"] += sum(1 for a, b in zip(got, got[1:], strict=False) if b < a)
        highest = max(got, default=0)
        # A gap: a number below the highest received that never came. A missing tail
        # (numbers above the highest) is lateness, or the cut-off of a slow subscriber.
        gaps = sum(1 for number in expected if number < highest and number not in distinct)
        result["gaps"] += gaps
        result["missing"] += total - len(distinct & set(expected))
        if len(distinct) == total and not gaps:
            result["complete"] += 1
        elif subscriber.error:
            result["cut_off"] += 1
        else:
            result["late"] += 1
    return result


def _errors(subscribers: list[Subscriber]) -> dict[str, int]:
    found: dict[str, int] = {}
    for subscriber in subscribers:
        if subscriber.error:
            key = subscriber.error[:100]
            found[key] = found.get(key, 0) + 1
    return found


def emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    query = COUNT_SUBSCRIPTION if args.mode == "count" else NAMES_SUBSCRIPTION
    subscribe = json.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": query, "variables": {"id": args.petition}},
        },
        separators=(",", ":"),
    ).encode()
    ports = [int(p) for p in args.ports.split(",")]
    started = time.monotonic()
    subscribers, report = await connect_all(
        args.host,
        ports,
        args.n,
        subscribe,
        args.mode,
        args.parallel,
        args.connect_within,
        args.connect_deadline,
    )
    emit(
        {
            "event": "ready",
            "connected": len(subscribers),
            **report,
            "seconds": time.monotonic() - started,
        }
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        for _ in range(1_000_000):
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "quit":
                emit({"event": "bye"})
                return
            if command["cmd"] == "status":
                if "count" in command:
                    emit(count_status(subscribers, int(command["count"])))
                else:
                    emit(names_status(subscribers, int(command["names"])))
            elif command["cmd"] == "measure":
                final = command.get("final") or max((int(a[1]) for a in command["acks"]), default=0)
                emit(measure_counts(subscribers, command["acks"], int(final)))
            elif command["cmd"] == "names":
                numbers = {int(k): int(v) for k, v in command["numbers"].items()}
                emit(check_names(subscribers, numbers, set(command.get("ignore", []))))
    finally:
        for subscriber in subscribers:
            if subscriber.transport is not None:
                subscriber.transport.abort()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wsworker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="comma-separated server ports")
    parser.add_argument("--petition", required=True, help="the petition's global ID")
    parser.add_argument("--mode", choices=["count", "names"], required=True)
    parser.add_argument("-n", type=int, required=True, help="subscribers to hold")
    parser.add_argument("--parallel", type=int, default=64, help="handshakes in flight")
    parser.add_argument("--connect-within", type=float, default=30.0, help="per subscriber")
    parser.add_argument("--connect-deadline", type=float, default=120.0, help="for them all")
    args = parser.parse_args(argv)
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve(args))
        return 0
    uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
