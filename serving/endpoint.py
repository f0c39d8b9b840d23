"""The `/graphql` endpoint: Strawberry's ASGI app, with hot public reads answered from the
result cache, hot documents run by compiled plans, refused documents answered from their
verdict, reads that give way to signing, hot subscriptions served in cohorts, the websocket
limits Strawberry lacks, and each request's time and path recorded for `/metrics`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from json import JSONDecodeError
from typing import Any, cast

from cross_web import HTTPException
from graphql import OperationType
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

import metrics
from schema import Context, PetitionSchema, ResultCache
from schema.cache import Reads
from schema.cohorts import Cohorts, CohortTransportWSHandler, TextWebSocketAdapter
from schema.compiled import Plans
from schema.documents import Judged
from schema.errors import MASKED

log = logging.getLogger("petitions.endpoint")

_CONTEXT = "petitions.context"
_CACHEABLE_BODY = 16_384

# While signatures stream in, at most this many reads the cache cannot answer run at once:
# the others wait their turn without costing anything. A page of signers costs the event loop
# about what a signature does, and the readers of a spike far outnumber the signers: left alone
# they would take nearly all of it, and signing would starve behind them. (A queue, not a
# refusal: every read is answered, a little later.)
READS_WHILE_SIGNING = 2

Answer = tuple[bytes, str]
"""A kept answer: its JSON, and the operation (root field) it answers, for the metrics."""


@dataclass(frozen=True)
class _Asked:
    """A request's document and variables, decoded once, and the schema's verdict on it."""

    data: dict[str, Any]
    judged: Judged
    operation_name: str | None

    @property
    def operation(self) -> str:
        """The root field, as the metrics label it ("refused" when the document is)."""
        return self.judged.root_field(self.operation_name) or "refused"

    @property
    def reads_only(self) -> bool:
        operation = self.judged.operation(self.operation_name)
        return operation is not None and operation.operation is OperationType.QUERY


class LimitedWebSocketAdapter(TextWebSocketAdapter):
    """Strawberry's websocket adapter, closing with 1009 (message too big) on a message over
    the app's `max_message_bytes`, before decoding it (Strawberry's loop, with that check)."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        limit: int = getattr(self.view, "max_message_bytes", 0)
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if limit and len(text) > limit // 4 and len(text.encode()) > limit:
                    metrics.refused("body")
                    await self.ws.close(code=1009, reason="message too big")
                    return
                try:
                    yield self.view.decode_json(text)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
        except KeyError as error:  # a binary frame
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass


class InitTimeoutGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol, closing a socket that has not sent `connection_init`
    in time with 4408, as Strawberry's `graphql-transport-ws` handler does."""

    async def handle(self) -> None:
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timer.cancel()

    async def _close_unless_initialised(self) -> None:
        timeout: timedelta = getattr(self.view, "connection_init_wait_timeout", timedelta(0))
        await asyncio.sleep(timeout.total_seconds())
        if not self.connection_acknowledged:
            with suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI app, with our context built from the lifespan state, hot public
    reads answered from the result cache, and hot subscriptions served in cohorts.

    Websockets: `connection_init_wait_timeout` and `max_subscriptions_per_connection` are
    Strawberry's (the legacy protocol's init timeout is ours, below); a message larger than
    `max_message_bytes` closes the socket with 1009, as uvicorn's `ws_max_size` does under
    `petitions serve`, for any other server."""

    graphql_transport_ws_handler_class = CohortTransportWSHandler
    graphql_ws_handler_class = InitTimeoutGraphQLWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter

    def __init__(
        self, schema: PetitionSchema, *args: Any, max_message_bytes: int = 65_536, **kwargs: Any
    ) -> None:
        super().__init__(schema, *args, **kwargs)
        self.max_message_bytes = max_message_bytes
        self.open_websockets = 0
        self.cohorts = Cohorts()
        self.plans = Plans(schema.documents)
        self.reads_while_signing = asyncio.Semaphore(READS_WHILE_SIGNING)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        role = await request.state.roles.role_of(request.headers.get("authorization"))
        context = Context.of(request, role)
        request.scope[_CONTEXT] = context
        return context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.open_websockets += 1
            metrics.websockets(+1)
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.open_websockets -= 1
                metrics.websockets(-1)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope, receive)
        cache: ResultCache[Answer] = request.state.cache
        key = await _cache_key(request)
        if key is not None and (kept := cache.get(key)) is not None:
            await _send_json(request, send, kept[0], cacheable=True, x_cache=b"hit")
            metrics.request(kept[1], "cached", time.perf_counter() - started)
            return
        asked = await self._asked(request)
        if asked is not None and asked.reads_only and request.state.writer.signing:
            async with self.reads_while_signing:  # reads give way (READS_WHILE_SIGNING)
                await self._answer(request, asked, key, started, send)
        else:
            await self._answer(request, asked, key, started, send)

    async def _answer(
        self, request: Request, asked: _Asked | None, key: bytes | None, started: float, send: Send
    ) -> None:
        """Answer a request the cache could not: by a compiled plan, or by Strawberry."""
        scope, receive = request.scope, request.receive
        cache: ResultCache[Answer] = request.state.cache
        since = cache.changes.now
        if asked is not None and (compiled := await self._compiled(request, asked)) is not None:
            answer, reads = compiled
            cacheable = _keep(cache, key, (answer, asked.operation), reads, since)
            x_cache = b"miss" if key is not None else None
            await _send_json(request, send, answer, cacheable=cacheable, x_cache=x_cache)
            metrics.request(asked.operation, "compiled", time.perf_counter() - started)
            return
        operation = "unknown" if asked is None else asked.operation
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = PlainTextResponse(error.reason, status_code=error.status_code)
        context: Context | None = scope.get(_CONTEXT)
        body: bytes | None = getattr(response, "body", None)  # streamed answers are not kept
        cacheable = (
            response.status_code == 200
            and context is not None
            and body is not None
            and _keep(cache, key, (body, operation), context.reads, since)
        )
        if cacheable and request.method == "GET":
            assert body is not None
            await _send_json(request, send, body, cacheable=True, x_cache=b"miss")
        else:
            response.headers["Cache-Control"] = _cache_control(request, cacheable=cacheable)
            if key is not None:
                response.headers["X-Cache"] = "miss"
            await response(scope, receive, send)
        metrics.request(operation, "strawberry", time.perf_counter() - started)

    async def _asked(self, request: Request) -> _Asked | None:
        """The document and variables of a JSON POST or a GET, judged; None for anything
        else (Strawberry answers it)."""
        headers = request.headers
        if "multipart" in headers.get("accept", ""):
            return None  # incremental delivery is Strawberry's
        data: Any
        if request.method == "GET":
            data = dict(request.query_params)
            if "variables" in data:
                try:
                    data["variables"] = json.loads(data["variables"])
                except ValueError:
                    return None
        elif request.method == "POST" and headers.get("content-type", "").startswith(
            "application/json"
        ):
            try:
                data = json.loads(await request.body())
            except ValueError:
                return None
        else:
            return None
        if not isinstance(data, dict) or not isinstance(query := data.get("query"), str):
            return None
        operation_name = data.get("operationName")
        if operation_name is not None and not isinstance(operation_name, str):
            return None
        schema = cast(PetitionSchema, self.schema)  # the benchmark's baseline swaps it
        return _Asked(data, schema.documents.judge(query), operation_name)

    async def _compiled(self, request: Request, asked: _Asked) -> tuple[bytes, Reads] | None:
        """The answer of a hot document's compiled plan (see schema/compiled.py) and what
        it read, or the refusal of a document the limits or the rules refuse (as Strawberry
        would answer it, without its per-request machinery: a flood of refused documents costs
        their parsing and little else); None for Strawberry to answer: any other document, and
        anything unusual about this one."""
        judged = asked.judged
        if judged.errors:
            if judged.limited:
                metrics.refused("limit")
            errors = [error.formatted for error in judged.errors]
            return json.dumps({"data": None, "errors": errors}).encode(), Reads()
        plan = self.plans.get(asked.data["query"], asked.operation_name)
        if plan is None or (request.method == "GET" and not plan.reads_only):
            return None  # GET never changes anything: Strawberry refuses it
        context = await self.get_context(request, None)
        schema = cast(PetitionSchema, self.schema)
        seconds = schema.limits.seconds
        try:
            async with schema.deadlines.within():
                answer = await plan.run(context, asked.data.get("variables"))
        except TimeoutError:  # as PetitionSchema.execute answers one
            log.warning("an operation ran out of its %s s", seconds)
            return _TIMED_OUT, context.reads
        return None if answer is None else (answer, context.reads)


_TIMED_OUT = json.dumps({"data": None, "errors": [{"message": MASKED}]}).encode()


async def _cache_key(request: Request) -> bytes | None:
    """The exact request, for a public query that might be kept; None for anything else."""
    if "authorization" in request.headers:
        return None  # admins see drafts: never share their answers
    if request.method == "GET":
        return b"G" + bytes(request.scope["query_string"])
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
        "application/json"
    ):
        body = await request.body()  # kept by Starlette for Strawberry to read again
        return b"P" + body if len(body) <= _CACHEABLE_BODY else None
    return None


def _keep(
    cache: ResultCache[Answer], key: bytes | None, answer: Answer, reads: Reads, since: int
) -> bool:
    """Offer a public answer without errors to the cache, for the identical requests to come;
    whether it may be kept."""
    if key is None or not reads.keepable or b'"errors"' in answer[0]:
        return False
    cache.put(key, answer, reads, since)
    return True


def _cache_control(request: Request, *, cacheable: bool) -> str:
    """Honest caching for GET: a public answer may be kept a second (a CDN absorbs the
    reloaders; live pages subscribe), then revalidated with its ETag (pollers get 304 while
    nothing changed); anything else is never stored."""
    if cacheable and request.method == "GET":
        return "public, max-age=1"
    return "no-store"


def _etag(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


async def _send_json(
    request: Request, send: Send, body: bytes, *, cacheable: bool, x_cache: bytes | None
) -> None:
    """Send an answer; a cacheable GET carries its ETag, and is answered 304 without a body
    when the client holds that answer already."""
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", _cache_control(request, cacheable=cacheable).encode()),
    ]
    if x_cache is not None:
        headers.append((b"x-cache", x_cache))
    status = 200
    if cacheable and request.method == "GET":
        etag = _etag(body)
        headers.append((b"etag", etag))
        held = request.headers.get("if-none-match")
        if held is not None and etag.decode() in {tag.strip() for tag in held.split(",")}:
            status, body = 304, b""
    if status == 200:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
