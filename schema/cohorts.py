"""Cohorts: subscribers of the same hot subscription share one execution and one encoded frame.

Ten thousand pages watching one petition's count ask the very same thing. Executed one by one,
each new count costs ten thousand GraphQL executions; in a cohort (as Hasura calls it) it costs
one, and each member's socket is sent the same encoded payload behind its own operation id.
Members keep only the latest payload not yet sent, so a slow socket delays itself alone, and
a cohort sends at most one wave every `WAVE_INTERVAL` seconds: a burst of signatures becomes
one frame per member carrying the latest count (the contract allows a second).

Hot means: a `graphql-transport-ws` subscription document with one operation whose only root
field is `signatureCount`. Members of one cohort share document, variables, operation name and
admin flag, so they would have received the very same results. Everything else runs through
Strawberry as usual, one execution per subscriber.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from .context import Context

log = logging.getLogger("petitions.cohorts")

HOT_FIELDS = frozenset({"signatureCount"})
WAVE_INTERVAL = 0.5  # seconds between two waves of one cohort
WAVE_CHUNK = 500  # members woken at once; the loop serves other work between chunks

CohortKey = tuple[str, str, str | None, bool]


@lru_cache(maxsize=1000)
def is_hot(query: str, operation_name: str | None) -> bool:
    """A subscription to one hot field and nothing else (no fragments, no directives)."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    if len(document.definitions) != 1:
        return False
    operation = document.definitions[0]
    if not isinstance(operation, OperationDefinitionNode):
        return False
    if operation.operation is not OperationType.SUBSCRIPTION or operation.directives:
        return False
    name = operation.name.value if operation.name else None
    if operation_name is not None and name != operation_name:
        return False
    [*selections] = operation.selection_set.selections
    return (
        len(selections) == 1
        and isinstance(selections[0], FieldNode)
        and selections[0].name.value in HOT_FIELDS
        and not selections[0].directives
    )


class _Member:
    """One subscriber's slot: the latest payload it has not been sent yet."""

    __slots__ = ("ended", "pending", "waiter")

    def __init__(self) -> None:
        self.pending: str | None = None
        self.ended = False
        self.waiter: asyncio.Future[None] | None = None  # a bare future: cheaper than an Event

    def offer(self, payload: str) -> None:
        self.pending = payload
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self) -> str | None:
        """The next payload to send, or None once the cohort has ended."""
        while True:
            if self.pending is not None:
                payload, self.pending = self.pending, None
                return payload
            if self.ended:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


@dataclass
class _End:
    kind: str  # "complete" or "error"
    errors: list[Any] | None = None


class Cohort:
    """One execution of a hot subscription, fanned out to its members."""

    def __init__(
        self, handler: CohortTransportWSHandler, operation: Operation[Context, None]
    ) -> None:
        self.members: set[_Member] = set()
        self.latest: str | None = None
        self.end: _End | None = None
        self._sent: str | None = None
        self._last_wave = 0.0
        self._wave: asyncio.TimerHandle | None = None
        self._waving: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._run(handler, operation))

    def close(self) -> None:
        if self._wave is not None:
            self._wave.cancel()
        if self._waving is not None:
            self._waving.cancel()
        self.task.cancel()

    def join(self, member: _Member) -> None:
        self.members.add(member)
        if self.latest is not None:
            member.offer(self.latest)  # the current value at once, as on any subscribe
        if self.end is not None:
            member.end()

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
                    self.latest = json.dumps(payload, separators=(",", ":"))
                    self._schedule_wave()
            self._finish(_End("complete"))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a server fault: masked, as every other
            log.warning("a cohort ended on %s", type(error).__name__)
            self._finish(_End("error", [{"message": "Internal server error."}]))

    def _schedule_wave(self) -> None:
        if self._wave is not None:
            return  # the wave already due carries the latest payload
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_wave + WAVE_INTERVAL - loop.time())
        self._wave = loop.call_later(delay, self._send_wave)

    def _send_wave(self) -> None:
        self._wave = None
        self._last_wave = asyncio.get_running_loop().time()
        if self.latest is None or self.latest == self._sent:
            return
        self._sent = self.latest
        if self._waving is not None:
            self._waving.cancel()  # its members get this newer payload instead
        members = list(self.members)
        for member in members[:WAVE_CHUNK]:
            member.offer(self.latest)
        if len(members) > WAVE_CHUNK:
            self._waving = asyncio.create_task(self._offer_rest(members, self.latest))

    async def _offer_rest(self, members: list[_Member], payload: str) -> None:
        """Wake a large cohort a chunk at a time, so requests are served between chunks."""
        for start in range(WAVE_CHUNK, len(members), WAVE_CHUNK):
            await asyncio.sleep(0)
            for member in members[start : start + WAVE_CHUNK]:
                member.offer(payload)

    def _finish(self, end: _End) -> None:
        if self._wave is not None:
            self._wave.cancel()
            self._send_wave()
        self.end = end
        for member in self.members:
            member.end()


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
    ) -> Cohort:
        cohort = self._cohorts.get(key)
        if cohort is None or cohort.end is not None:
            cohort = self._cohorts[key] = Cohort(handler, operation)
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


class CohortTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, serving hot subscriptions from cohorts."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        cohorts: Cohorts | None = getattr(self.view, "cohorts", None)
        if cohorts is None or not is_hot(operation.query, operation.operation_name):
            await super().run_operation(operation)
            return
        try:
            variables = json.dumps(operation.variables or {}, sort_keys=True)
        except (TypeError, ValueError):
            await super().run_operation(operation)
            return
        key: CohortKey = (operation.query, variables, operation.operation_name, self.context.admin)
        member = _Member()
        cohort = cohorts.join(key, self, operation, member)
        frame = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        try:
            while (payload := await member.next()) is not None:
                await _send_text(self.websocket, frame + payload + "}")
            end = cohort.end
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


async def _send_text(websocket: Any, text: str) -> None:
    if isinstance(websocket, TextWebSocketAdapter):
        await websocket.send_text(text)
    else:  # another server integration: encode again, the slow way
        await websocket.send_json(json.loads(text))
