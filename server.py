"""Settings, lifespan, routes, the ASGI `app`, and the `petitions` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypedDict

import strawberry
import uvicorn
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from tortoise.context import TortoiseContext
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

import models
from schema import Context, PetitionRows, ResultCache, is_admin, make_schema
from schema.cache import Changes, Reads
from schema.cohorts import SEND_TEXTS, Cohorts, CohortTransportWSHandler, TextWebSocketAdapter
from schema.compiled import Plans
from subscriptions import Hub

log = logging.getLogger("petitions")


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, read once at start."""

    database_url: str = "sqlite://petitions.sqlite3"
    broadcast_url: str = "memory://"
    admin_token: str | None = None
    allowed_origins: tuple[str, ...] = ("*",)
    introspection: bool = True
    db_pool_size: int = 10
    subscriber_buffer: int = 1000
    ws_compression: bool = False
    channel_prefix: str = "petitions"
    access_log: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        default = cls()
        origins = env.get("PETITIONS_ALLOWED_ORIGINS", ",".join(default.allowed_origins))
        return cls(
            database_url=env.get("PETITIONS_DATABASE_URL") or default.database_url,
            broadcast_url=env.get("PETITIONS_BROADCAST_URL") or default.broadcast_url,
            admin_token=env.get("PETITIONS_ADMIN_TOKEN") or None,
            allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            introspection=_flag(env.get("PETITIONS_INTROSPECTION", "true")),
            db_pool_size=int(env.get("PETITIONS_DB_POOL_SIZE", default.db_pool_size)),
            subscriber_buffer=int(
                env.get("PETITIONS_SUBSCRIBER_BUFFER", default.subscriber_buffer)
            ),
            ws_compression=_flag(env.get("PETITIONS_WS_COMPRESSION", "false")),
            channel_prefix=env.get("PETITIONS_CHANNEL_PREFIX") or default.channel_prefix,
            access_log=_flag(env.get("PETITIONS_ACCESS_LOG", "false")),
        )


class State(TypedDict):
    database: TortoiseContext
    hub: Hub
    cache: ResultCache
    petitions: PetitionRows
    writer: models.SignatureWriter
    settings: Settings


_CONTEXT = "petitions.context"
_CACHEABLE_BODY = 16_384


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI app, with our context built from the lifespan state, hot public
    reads answered from the result cache, and hot subscriptions served in cohorts."""

    graphql_transport_ws_handler_class = CohortTransportWSHandler
    websocket_adapter_class = TextWebSocketAdapter

    def __init__(self, schema: strawberry.Schema, *args: Any, **kwargs: Any) -> None:
        super().__init__(schema, *args, **kwargs)
        self.open_websockets = 0
        self.cohorts = Cohorts()
        self.plans = Plans(schema)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        state = request.state
        context = Context(
            hub=state.hub,
            writer=state.writer,
            petitions=state.petitions,
            admin=is_admin(request, state.settings.admin_token),
            connection=request,
        )
        request.scope[_CONTEXT] = context
        return context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.open_websockets += 1
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.open_websockets -= 1
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        cache: ResultCache = request.state.cache
        key = await _cache_key(request)
        if key is not None and (kept := cache.get(key)) is not None:
            await _send_json(send, kept, _cache_control(request, cacheable=True), b"hit")
            return
        since = cache.changes.now
        if (compiled := await self._compiled(request)) is not None:
            answer, reads = compiled
            cacheable = _keep(cache, key, answer, reads, since)
            x_cache = b"miss" if key is not None else None
            await _send_json(send, answer, _cache_control(request, cacheable=cacheable), x_cache)
            return
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
            and _keep(cache, key, body, context.reads, since)
        )
        response.headers["Cache-Control"] = _cache_control(request, cacheable=cacheable)
        if key is not None:
            response.headers["X-Cache"] = "miss"
        await response(scope, receive, send)

    async def _compiled(self, request: Request) -> tuple[bytes, Reads] | None:
        """The answer of a hot document's compiled plan (see schema/compiled.py) and what
        it read, or None for Strawberry to answer: any other document, and anything unusual
        about this one."""
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
        plan = self.plans.get(query, operation_name)
        if plan is None or (request.method == "GET" and not plan.reads_only):
            return None  # GET never changes anything: Strawberry refuses it
        context = await self.get_context(request, None)
        answer = await plan.run(context, data.get("variables"))
        return None if answer is None else (answer, context.reads)


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


def _keep(cache: ResultCache, key: bytes | None, body: bytes, reads: Reads, since: int) -> bool:
    """Offer a public answer without errors to the cache, for the identical requests to come;
    whether it may be kept."""
    if key is None or not reads.keepable or b'"errors"' in body:
        return False
    cache.put(key, body, reads, since)
    return True


def _cache_control(request: Request, *, cacheable: bool) -> str:
    """Honest caching for GET: a public answer may be kept a second (a CDN absorbs the
    reloaders; live pages subscribe); anything else is never stored."""
    if cacheable and request.method == "GET":
        return "public, max-age=1"
    return "no-store"


async def _send_json(send: Send, body: bytes, cache_control: str, x_cache: bytes | None) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", cache_control.encode()),
    ]
    if x_cache is not None:
        headers.append((b"x-cache", x_cache))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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


async def healthz(request: Request) -> JSONResponse:
    checks = {"database": True, "broadcast": request.state.hub.healthy}
    try:
        await asyncio.wait_for(models.ping(), timeout=2)
    except Exception:
        checks["database"] = False
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503
    )


def create_app(settings: Settings | None = None) -> Starlette:
    """The whole service as one ASGI app."""
    settings = settings or Settings.from_env()
    graphql = GraphQLApp(
        make_schema(introspection=settings.introspection),
        allowed_origins=settings.allowed_origins,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        await prepare_database(settings)
        async with models.open_database(
            settings.database_url, pool_size=settings.db_pool_size, create_schema=False
        ) as database:
            hub = Hub(
                settings.broadcast_url,
                capacity=settings.subscriber_buffer,
                prefix=settings.channel_prefix,
            )
            changes = Changes()
            cache = ResultCache(changes, enabled=lambda: hub.healthy)
            petitions = PetitionRows(changes, enabled=lambda: hub.healthy)
            for observer in (changes.observe, cache.observe, petitions.observe):
                hub.observe(observer)
            await hub.connect()
            writer = models.SignatureWriter(hub)
            writer.start()
            collector = asyncio.create_task(
                keep_connections_out_of_the_collector(lambda: graphql.open_websockets)
            )
            try:
                yield {
                    "database": database,
                    "hub": hub,
                    "cache": cache,
                    "petitions": petitions,
                    "writer": writer,
                    "settings": settings,
                }
            finally:
                collector.cancel()
                with suppress(asyncio.CancelledError):
                    await collector
                await writer.stop()  # every accepted signature is written before we go
                await hub.disconnect()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            ),
            Middleware(DatabaseContext),
        ],
        lifespan=lifespan,
    )


app = create_app()


class SchemaBehind(RuntimeError):
    """The PostgreSQL schema lacks migrations: `petitions migrate` must run first."""


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite:")


async def prepare_database(settings: Settings) -> None:
    """SQLite creates or upgrades its schema on start; PostgreSQL must be migrated already."""
    from models.migrations import migrate, pending_migrations

    if is_sqlite(settings.database_url):
        await migrate(settings.database_url)
        return
    pending = await pending_migrations(settings.database_url)
    if pending:
        raise SchemaBehind(
            f"the database schema is behind by {len(pending)} migration(s) "
            f"({', '.join(pending)}): run `petitions migrate` first"
        )


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, closing with 1001 (going away) when the process stops,
    instead of 1012 (service restart): clients should reconnect, to another process.

    It also offers the app the `SEND_TEXTS` scope extension (see schema/cohorts.py): encoded
    text frames written now, in one transport write, with the write buffer's size to tell a
    slow socket by. ASGI's `websocket.send` costs a task switch, an event dict and a write per
    frame, which is most of what fanning one count out to ten thousand sockets costs."""

    async def run_asgi(self) -> None:
        self.scope.setdefault("extensions", {})[SEND_TEXTS] = {
            "send_texts": self.send_texts,
            "write_buffer_size": self.transport.get_write_buffer_size,
        }
        await super().run_asgi()

    def send_texts(self, frames: Sequence[bytes]) -> bool:
        """Write UTF-8 encoded text frames at once; False, writing nothing, once the socket is
        closing (or not yet open), as `websocket.send` would then refuse."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return False
        try:
            for frame in frames:
                self.conn.send_text(frame)
        except InvalidState:  # the peer's close arrived: the connection is closing
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent:
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001})
            self.conn.send_close(1001, "server shutting down")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        super().shutdown()


async def _load_demo(settings: Settings) -> models.Petition:
    await prepare_database(settings)
    async with models.open_database(settings.database_url, pool_size=2, create_schema=False):
        return await models.load_demo()


async def _migrate(settings: Settings) -> list[str]:
    from models.migrations import migrate

    return await migrate(settings.database_url)


async def _check_counts(settings: Settings, repair: bool) -> int:
    async with models.open_database(settings.database_url, pool_size=2, create_schema=False):
        differences = await models.count_differences()
        for difference in differences:
            print(f"differs: {difference}")
        if not differences:
            print("check-counts: every counter equals the rows behind it")
            return 0
        if not repair:
            print(f"check-counts: {len(differences)} difference(s); --repair fixes them")
            return 1
        await models.repair_counts(differences)
        left = await models.count_differences()
        print(f"check-counts: repaired {len(differences) - len(left)} counter(s)")
        return 0 if not left else 1


def _raise_open_file_limit() -> None:
    """Every websocket is a file: take the hard limit on open files, not the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1 and settings.broadcast_url.startswith("memory:"):
        print(
            "petitions: --workers needs a shared broadcast backend: with memory:// a signature "
            "taken by one process would never reach subscribers on the others. Set "
            "PETITIONS_BROADCAST_URL=redis://… (or postgres://…).",
            file=sys.stderr,
        )
        return 2
    asyncio.run(prepare_database(settings))  # refuse a schema that is behind, before forking
    _raise_open_file_limit()
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "ws_per_message_deflate": settings.ws_compression,
        "timeout_graceful_shutdown": 30,
        "access_log": settings.access_log,
        "log_level": "info",
    }
    if args.workers > 1:  # each worker imports `server:app`, configured by the same variables
        uvicorn.run(
            "server:app", workers=args.workers, ws="server:GoingAwayWebSocketProtocol", **options
        )
    else:
        uvicorn.run(create_app(settings), ws=GoingAwayWebSocketProtocol, **options)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `petitions` command."""
    parser = argparse.ArgumentParser(prog="petitions", description="The petition service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the GraphQL API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--demo", action="store_true", help="load the demo petition first")
    commands.add_parser("demo", help="load the demo petition and exit")
    commands.add_parser("migrate", help="apply the database migrations")
    check = commands.add_parser("check-counts", help="compare every counter with its rows")
    check.add_argument("--repair", action="store_true", help="set differing counters right")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        if args.command == "migrate":
            applied = asyncio.run(_migrate(settings))
            print(f"migrate: applied {', '.join(applied)}" if applied else "migrate: up to date")
            return 0
        if args.command == "check-counts":
            return asyncio.run(_check_counts(settings, args.repair))
        if args.command == "demo" or args.demo:
            petition = asyncio.run(_load_demo(settings))
            print(f"demo petition: /{petition.slug} ({petition.signature_count} signatures)")
            if args.command == "demo":
                return 0
        return _serve(args, settings)
    except SchemaBehind as error:
        print(f"petitions: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
