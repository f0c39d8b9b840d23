"""Cohorts: subscribers of the same hot subscription share one execution and one encoded frame.

Ten thousand pages watching one petition's count ask the very same thing; so do a thousand
pages showing its newest signers. Executed one by one, each new signature costs a thousand
GraphQL executions; in a cohort (as Hasura calls it) it costs one, and each member's socket is
sent the same encoded payload behind its own operation id.

A cohort keeps its results in one log, and each member a cursor into it: the member's FIFO of
results not yet sent, from the moment it joined, shared rather than copied. Waves of sends go
over the members: counts at most every `LATEST_WAVE_INTERVAL` and only the latest result (a
burst of signatures becomes one frame carrying the latest count; the contract allows a second),
names and comments every one, in order, as soon as `QUEUE_WAVE_INTERVAL` allows (a burst goes
out in one write). A names member more than the hub's `capacity` results behind is cut off with
the same error as any slow subscriber (it may subscribe again), and the log is trimmed to the
members still in it: a slow socket delays itself alone, and never holds memory without bound.

Sending is the cost that grows with the members. When the server offers the `SEND_TEXTS`
extension (our uvicorn protocol does), a wave writes each member's frames to its transport
synchronously, in one write, with no task woken and no await per frame; a socket whose write
buffer is above `WRITE_LIMIT` is skipped until a later wave (back-pressure: its results wait in
the log, counting toward its cap). Under any other server each member's own task sends its
frames through Starlette, as it would outside a cohort: the same behaviour, only slower.

Hot means: a `graphql-transport-ws` subscription document with one operation whose only root
field is one of `HOT_FIELDS`. Members of one cohort share document, variables, operation name and
admin flag, so they would have received the very same results. Everything else runs through
Strawberry as usual, one execution per subscriber.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

from graphql import FieldNode, OperationDefinitionNode, OperationType
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

import metrics
from subscriptions import FellBehind

from .context import Context
from .documents import Documents, Judged
from .errors import MASKED

log = logging.getLogger("petitions.cohorts")

LATEST_ONLY_FIELDS = frozenset({"signatureCount"})  # a newer result makes an older one moot
HOT_FIELDS = LATEST_ONLY_FIELDS | {"signatureAdded", "commentAdded", "commentRemoved"}
LATEST_WAVE_INTERVAL = 0.5  # seconds between two waves of a count cohort
QUEUE_WAVE_INTERVAL = 0.02  # of a names or comments cohort: one write per socket per burst
RETRY_INTERVAL = 0.5  # before a wave comes back for sockets that were too full to write to
WAVE_CHUNK = 500  # members served at once; the loop serves other work between chunks
WRITE_LIMIT = 64 * 1024  # bytes waiting in a socket's write buffer before a wave skips it

SEND_TEXTS = "petitions.websocket.send_texts"
"""The ASGI scope extension of a server that can write encoded text frames synchronously:
`scope["extensions"][SEND_TEXTS]` is a dict with `"send_texts"`, a callable taking UTF-8 encoded
text frames, writing them in one transport write and returning False (writing nothing) once the
socket is closing, and `"write_buffer_size"`, a callable returning the bytes the transport holds
not yet sent."""

CohortKey = tuple[str, str, str | None, bool]
SendTexts = Callable[[list[bytes]], bool]
WriteBufferSize = Callable[[], int]

_BEHIND = "behind"  # cut off: too far behind the cohort's results
_GONE = "gone"  # its socket is closing
_ENDED = "ended"  # the cohort's execution ended, and this member was sent all of it


def hot_field(judged: Judged, operation_name: str | None) -> str | None:
    """The hot field a fit subscription document asks for and nothing else (no fragments, no
    directives). A document the limits refuse is never hot: Strawberry refuses it."""
    document = judged.document
    if document is None or judged.errors or len(document.definitions) != 1:
        return None
    operation = document.definitions[0]
    if not isinstance(operation, OperationDefinitionNode):
        return None
    if operation.operation is not OperationType.SUBSCRIPTION or operation.directives:
        return None
    name = operation.name.value if operation.name else None
    if operation_name is not None and name != operation_name:
        return None
    [*selections] = operation.selection_set.selections
    if (
        len(selections) == 1
        and isinstance(selections[0], FieldNode)
        and selections[0].name.value in HOT_FIELDS
        and not selections[0].directives
    ):
        return selections[0].name.value
    return None


class _Member:
    """One subscriber: its place in the cohort's log, how to reach its socket, how it ended."""

    __slots__ = ("cursor", "outcome", "prefix", "send_texts", "waiter", "write_buffer_size")

    def __init__(self, prefix: bytes, extension: tuple[SendTexts, WriteBufferSize] | None) -> None:
        self.prefix = prefix  # the frame up to its payload: '{"id":…,"type":"next","payload":'
        self.cursor = 0  # the sequence number of the first result it has not been sent
        self.outcome: str | None = None
        self.send_texts: SendTexts | None = None
        self.write_buffer_size: WriteBufferSize | None = None
        if extension is not None:
            self.send_texts, self.write_buffer_size = extension
        self.waiter: asyncio.Future[None] | None = None  # a bare future: cheaper than an Event

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def finish(self, outcome: str) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.wake()

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter


@dataclass
class _End:
    kind: str  # "complete" or "error"
    errors: list[Any] | None = None


class Cohort:
    """One execution of a hot subscription, fanned out to its members."""

    def __init__(
        self,
        handler: CohortTransportWSHandler,
        operation: Operation[Context, None],
        *,
        latest_only: bool,
        capacity: int,
    ) -> None:
        self.members: set[_Member] = set()
        self.latest_only = latest_only
        self.capacity = capacity
        self.end: _End | None = None
        self._log: deque[bytes] = deque()  # encoded payloads some member has not been sent
        self._latest: dict[bytes, bytes] = {}  # counts: the latest frame, by member prefix
        self._head = 0  # the sequence number of the next result; the log ends just before it
        self._interval = LATEST_WAVE_INTERVAL if latest_only else QUEUE_WAVE_INTERVAL
        self._last_wave = 0.0
        self._timer: asyncio.Handle | None = None  # the next wave, due at `_due`
        self._due = 0.0
        self._chunk: asyncio.Handle | None = None  # the next chunk of the wave in progress
        self._wave: list[_Member] | None = None  # the members of the wave in progress
        self._again = False  # a result arrived during the wave in progress
        self._blocked = False  # a wave skipped a socket whose write buffer was full
        self.task = asyncio.create_task(self._run(handler, operation))

    @property
    def held(self) -> int:
        """Results kept for members not yet sent them (one at most, for counts)."""
        return len(self._log)

    def close(self) -> None:
        self._stop_waves()
        self.task.cancel()

    def join(self, member: _Member) -> None:
        self.members.add(member)
        if self.latest_only and self._log:
            member.cursor = self._head - 1  # the current value at once, as on any subscribe
            self._serve(member)
            if member.send_texts is not None and member.cursor < self._head:
                self._schedule_wave(after=RETRY_INTERVAL)  # its socket was full: later
        else:
            member.cursor = self._head  # every result from now on

    def take(self, member: _Member) -> list[bytes]:
        """What a member without the extension sends next, itself; the waves write the others'."""
        if member.send_texts is not None or member.outcome in {_BEHIND, _GONE}:
            return []
        return self._frames(member)

    def _frames(self, member: _Member) -> list[bytes]:
        """The member's frames of the results it has not been sent, now counted as sent."""
        start, member.cursor = member.cursor, self._head
        if start >= self._head:
            return []
        if self.latest_only:  # one frame for every member under the same operation id
            frame = self._latest.get(member.prefix)
            if frame is None:
                frame = self._latest[member.prefix] = member.prefix + self._log[-1] + b"}"
            return [frame]
        payloads = islice(self._log, start - (self._head - len(self._log)), None)
        prefix = member.prefix
        return [prefix + payload + b"}" for payload in payloads]

    async def _run(
        self, handler: CohortTransportWSHandler, operation: Operation[Context, None]
    ) -> None:
        try:
            source = await handler.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=handler.context,
                root_value=handler.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(source):
                async for result in source:
                    if isinstance(result, PreExecutionError) or not isinstance(
                        result, ExecutionResult
                    ):
                        errors = getattr(result, "errors", None) or []
                        self._finish(_End("error", [error.formatted for error in errors]))
                        return
                    payload: dict[str, Any] = {"data": result.data}
                    if result.errors:
                        payload["errors"] = [error.formatted for error in result.errors]
                    self._append(json.dumps(payload, separators=(",", ":")).encode())
            self._finish(_End("complete"))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a server fault: masked, as every other
            log.warning("a cohort ended on %s", type(error).__name__)
            self._finish(_End("error", [{"message": MASKED}]))

    def _append(self, payload: bytes) -> None:
        if self.latest_only:
            if self._log and self._log[-1] == payload:
                return  # nothing new to tell (a resync that found the same count)
            self._log.clear()
            self._latest.clear()
        self._log.append(payload)
        self._head += 1
        self._schedule_wave()

    def _schedule_wave(self, after: float = 0.0) -> None:
        if self._wave is not None:
            self._again = True  # the wave in progress starts another when it is done
            return
        loop = asyncio.get_running_loop()
        when = max(self._last_wave + self._interval, loop.time() + after)
        if self._timer is not None:
            if self._due <= when:
                return  # the wave already due carries every result so far
            self._timer.cancel()  # a retry for full sockets must not hold new results back
        self._due = when
        self._timer = loop.call_at(when, self._start_wave)  # (uvloop: not always a TimerHandle)

    def _start_wave(self) -> None:
        self._timer = None
        self._last_wave = asyncio.get_running_loop().time()
        self._again = self._blocked = False
        self._wave = list(self.members)
        self._continue_wave(0)

    def _continue_wave(self, start: int) -> None:
        """Serve a chunk of the wave's members, and leave the rest to a later turn of the loop,
        so that requests are served between chunks of a large cohort."""
        wave = self._wave
        assert wave is not None
        for member in wave[start : start + WAVE_CHUNK]:
            if member in self.members:
                self._serve(member)
        if start + WAVE_CHUNK < len(wave):
            loop = asyncio.get_running_loop()
            self._chunk = loop.call_soon(self._continue_wave, start + WAVE_CHUNK)
            return
        self._chunk = self._wave = None
        if not self.latest_only:  # forget what every member has been sent
            oldest = min((member.cursor for member in self.members), default=self._head)
            for _ in range(oldest - (self._head - len(self._log))):
                self._log.popleft()
        if self._again:
            self._schedule_wave()
        elif self._blocked:
            self._schedule_wave(after=RETRY_INTERVAL)

    def _stop_waves(self) -> None:
        for handle in (self._timer, self._chunk):
            if handle is not None:
                handle.cancel()
        self._timer = self._chunk = self._wave = None

    def _serve(self, member: _Member, *, last: bool = False) -> None:
        """Send a member what it has not been sent: write it now with the extension, or wake
        its task. A member too far behind is cut off; a full socket waits for a later wave
        (unless this is the `last` one, before the cohort ends)."""
        if member.cursor >= self._head:
            return
        if not self.latest_only and self._head - member.cursor > self.capacity:
            self._drop(member, _BEHIND)
            return
        if member.send_texts is None or member.write_buffer_size is None:
            member.wake()
            return
        if not last and member.write_buffer_size() > WRITE_LIMIT:
            self._blocked = True
            return
        if not member.send_texts(self._frames(member)):
            self._drop(member, _GONE)

    def _drop(self, member: _Member, outcome: str) -> None:
        self.members.discard(member)
        member.finish(outcome)

    def _finish(self, end: _End) -> None:
        self._stop_waves()
        self.end = end
        for member in list(self.members):
            self._serve(member, last=True)
            member.finish(_ENDED)


class Cohorts:
    """The live cohorts of one app, by what their members asked."""

    def __init__(self) -> None:
        self._cohorts: dict[CohortKey, Cohort] = {}

    def join(
        self,
        key: CohortKey,
        handler: CohortTransportWSHandler,
        operation: Operation[Context, None],
        member: _Member,
        *,
        latest_only: bool,
        capacity: int,
    ) -> Cohort:
        cohort = self._cohorts.get(key)
        if cohort is None or cohort.end is not None:
            cohort = Cohort(handler, operation, latest_only=latest_only, capacity=capacity)
            self._cohorts[key] = cohort
        cohort.join(member)
        return cohort

    def leave(self, key: CohortKey, cohort: Cohort, member: _Member) -> None:
        cohort.members.discard(member)
        if not cohort.members:
            cohort.close()
            if self._cohorts.get(key) is cohort:
                del self._cohorts[key]

    def __len__(self) -> int:
        return len(self._cohorts)

    def __iter__(self) -> Iterator[Cohort]:
        """The cohorts now, each with its `members` and what it `held` for them."""
        return iter(list(self._cohorts.values()))


class CohortTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, serving hot subscriptions from cohorts."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        documents: Documents | None = getattr(self.schema, "documents", None)
        judged = None if documents is None else documents.judge(operation.query)
        asked = judged.operation(operation.operation_name) if judged else None
        root = judged.root_field(operation.operation_name) if judged else None
        if asked is None or asked.operation is not OperationType.SUBSCRIPTION or root is None:
            await self._run_operation(operation, judged)  # a refusal, a query, a mutation
            return
        metrics.subscriptions(root, +1)
        try:
            await self._run_operation(operation, judged)
        finally:
            metrics.subscriptions(root, -1)

    async def _run_operation(
        self, operation: Operation[Context, None], judged: Judged | None
    ) -> None:
        cohorts: Cohorts | None = getattr(self.view, "cohorts", None)
        field = None if judged is None else hot_field(judged, operation.operation_name)
        if cohorts is None or field is None:
            await super().run_operation(operation)
            return
        try:
            variables = json.dumps(operation.variables or {}, sort_keys=True)
        except (TypeError, ValueError):
            await super().run_operation(operation)
            return
        key: CohortKey = (operation.query, variables, operation.operation_name, self.context.admin)
        prefix = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        member = _Member(prefix.encode(), _send_texts_extension(self.websocket))
        cohort = cohorts.join(
            key,
            self,
            operation,
            member,
            latest_only=field in LATEST_ONLY_FIELDS,
            capacity=self.context.hub.capacity,
        )
        try:
            while True:
                frames = cohort.take(member)
                for frame in frames:
                    await _send_text(self.websocket, frame.decode())
                if frames:
                    continue
                if member.outcome is not None:
                    break
                await member.wait()
            if member.outcome == _GONE:
                return
            end = cohort.end
            if member.outcome == _BEHIND:  # the words of any subscriber that fell behind
                end = _End("error", [{"message": str(FellBehind())}])
            assert end is not None
            if end.kind == "error":
                await operation.send_operation_message(
                    {"id": operation.id, "type": "error", "payload": end.errors or []}
                )
            else:
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
        finally:
            cohorts.leave(key, cohort, member)


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's ASGI websocket adapter, able to send an already encoded frame."""

    async def send_text(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error


def _send_texts_extension(websocket: Any) -> tuple[SendTexts, WriteBufferSize] | None:
    """The server's `SEND_TEXTS` extension for this socket, when it offers one."""
    if not isinstance(websocket, TextWebSocketAdapter):
        return None
    extension = (websocket.ws.scope.get("extensions") or {}).get(SEND_TEXTS)
    if not isinstance(extension, dict):
        return None
    send_texts, write_buffer_size = extension.get("send_texts"), extension.get("write_buffer_size")
    if not callable(send_texts) or not callable(write_buffer_size):
        return None
    return cast(SendTexts, send_texts), cast(WriteBufferSize, write_buffer_size)


async def _send_text(websocket: Any, text: str) -> None:
    if isinstance(websocket, TextWebSocketAdapter):
        await websocket.send_text(text)
    else:  # another server integration: encode again, the slow way
        await websocket.send_json(json.loads(text))
