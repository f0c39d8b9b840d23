"""The process's table of contents: settings, lifespan, routes and the ASGI `app`. Each
mechanism wired up here lives in a module of its own (`serving/`); the `petitions` command
lives in `cli.py`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from tortoise.context import TortoiseContext
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import metrics
import models
from schema import Limits, PetitionRows, Policy, ResultCache, make_schema
from schema.cache import Changes
from schema.rates import RateLimits, parse_rate
from serving import (
    Answer,
    BodyLimit,
    DatabaseContext,
    GraphQLApp,
    keep_connections_out_of_the_collector,
)
from serving import (  # re-exported: `petitions serve --workers` runs uvicorn with it by name
    GoingAwayWebSocketProtocol as GoingAwayWebSocketProtocol,
)
from serving.confirm import confirm_page
from serving.exports import signatures_export
from serving.lane import Service
from serving.mailer import Mailer, parse_smtp_url
from serving.metrics import metrics_endpoint, watch_broadcast
from subscriptions import Hub
from web import KeptPage, Surfaces

log = logging.getLogger("petitions")


class BadSetting(ValueError):
    """A PETITIONS_* variable that does not read as its setting: the process refuses to start."""


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, read once at start."""

    database_url: str = "sqlite://petitions.sqlite3"
    broadcast_url: str = "memory://"
    admin_token: str | None = None
    moderator_token: str | None = None
    allowed_origins: tuple[str, ...] = ("*",)
    introspection: bool = True
    db_pool_size: int = 10
    subscriber_buffer: int = 1000
    ws_compression: bool = False
    channel_prefix: str = "petitions"
    access_log: bool = False
    log_format: str = "text"  # or "json": one object per line
    metrics_token: str | None = None  # set: GET /metrics, for a bearer of it
    # Limits (see the README's "Limits"): each the largest accepted.
    max_body_bytes: int = 65_536
    max_aliases: int = 30
    max_depth: int = 12
    max_directives: int = 50
    max_errors: int = 5
    max_tokens: int = 5_000
    max_cost: int = 20_000
    operation_timeout: float = 10.0
    ws_init_timeout: float = 5.0
    ws_max_message_bytes: int = 65_536
    ws_max_operations: int = 20
    # Abuse: rate limits as "N/Ss" (off when unset), the proxies whose X-Forwarded-For is
    # believed, and what becomes of a new comment.
    sign_limit: str | None = None
    comment_limit: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    comment_moderation: str = "filter"  # filter: the spam filter decides; pre: all held; off
    reports_to_hide: int = 3
    # Signatures you can defend: confirmation by email, what becomes of a signature over the
    # limit ("refuse" or "quarantine"), and block lists whose signatures are held silently.
    confirm_emails: bool = False
    smtp_url: str | None = None
    mail_from: str | None = None
    public_url: str | None = None
    confirm_ttl: float = 7 * 24 * 3600.0  # seconds
    sign_limit_action: str = "refuse"
    blocked_networks: tuple[str, ...] = ()
    blocked_email_domains: tuple[str, ...] = ()

    @property
    def limits(self) -> Limits:
        return Limits(
            aliases=self.max_aliases,
            depth=self.max_depth,
            directives=self.max_directives,
            errors=self.max_errors,
            tokens=self.max_tokens,
            cost=self.max_cost,
            seconds=self.operation_timeout,
        )

    @property
    def intake(self) -> models.Intake:
        """How new signatures are taken (the mailer's wake-up is added by the lifespan)."""
        confirmation = None
        if self.confirm_emails:
            assert self.public_url is not None
            confirmation = models.Confirmation(
                public_url=self.public_url, ttl=timedelta(seconds=self.confirm_ttl)
            )
        return models.Intake(
            confirmation=confirmation,
            blocked_networks=tuple(
                ipaddress.ip_network(network, strict=False) for network in self.blocked_networks
            ),
            blocked_domains=frozenset(
                models.canonical_domain(domain) for domain in self.blocked_email_domains
            ),
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """The settings in `env` (the process's environment); `BadSetting` names any that
        does not read."""
        env = dict(os.environ if env is None else env)
        default = cls()

        def text(name: str) -> str | None:
            return env.get(f"PETITIONS_{name}", "").strip() or None

        def listed(name: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
            value = env.get(f"PETITIONS_{name}")
            if value is None:
                return fallback
            return tuple(item.strip() for item in value.split(",") if item.strip())

        def number(name: str, fallback: Any) -> Any:
            value = text(name)
            if value is None:
                return fallback
            try:
                parsed = type(fallback)(value)
            except ValueError:
                parsed = -1
            if parsed <= 0:
                raise BadSetting(f"PETITIONS_{name} must be a positive number, not {value!r}")
            return parsed

        def rate(name: str) -> str | None:
            value = text(name)
            if value is not None:
                try:
                    parse_rate(value)
                except ValueError:
                    raise BadSetting(
                        f"PETITIONS_{name} must read N/Ss (N and S at least 1), like 5/300s, "
                        f"not {value!r}"
                    ) from None
            return value

        def networks(name: str) -> tuple[str, ...]:
            values = listed(name, ())
            for value in values:
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise BadSetting(
                        f"PETITIONS_{name} must list addresses or networks (CIDR), not {value!r}"
                    ) from None
            return values

        def choice(name: str, fallback: str, choices: set[str]) -> str:
            value = (text(name) or fallback).lower()
            if value not in choices:
                allowed = ", ".join(sorted(choices))
                raise BadSetting(f"PETITIONS_{name} must be one of {allowed}, not {value!r}")
            return value

        def duration(name: str, fallback: float) -> float:
            """Seconds, or a number with a unit: 30s, 15m, 12h, 7d."""
            value = text(name)
            if value is None:
                return fallback
            units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            unit = units.get(value[-1].lower(), 0)
            try:
                seconds = float(value[:-1] if unit else value) * (unit or 1)
            except ValueError:
                seconds = -1
            if seconds <= 0:
                raise BadSetting(
                    f"PETITIONS_{name} must be a positive duration like 7d, 12h or 3600, "
                    f"not {value!r}"
                )
            return seconds

        confirm_emails = _flag(env.get("PETITIONS_CONFIRM_EMAILS", "false"))
        smtp_url = text("SMTP_URL")
        if confirm_emails:
            missing = [
                f"PETITIONS_{name}"
                for name in ("SMTP_URL", "MAIL_FROM", "PUBLIC_URL")
                if text(name) is None
            ]
            if missing:
                raise BadSetting(
                    f"PETITIONS_CONFIRM_EMAILS=true needs {' and '.join(missing)}: the service "
                    "must be able to mail signers a link to confirm"
                )
        if smtp_url is not None:
            try:
                parse_smtp_url(smtp_url)
            except ValueError as error:
                raise BadSetting(f"PETITIONS_SMTP_URL: {error}") from None
        public_url = text("PUBLIC_URL")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise BadSetting(
                f"PETITIONS_PUBLIC_URL must be the site's http(s) address, not {public_url!r}"
            )

        return cls(
            database_url=text("DATABASE_URL") or default.database_url,
            broadcast_url=text("BROADCAST_URL") or default.broadcast_url,
            admin_token=text("ADMIN_TOKEN"),
            moderator_token=text("MODERATOR_TOKEN"),
            allowed_origins=listed("ALLOWED_ORIGINS", default.allowed_origins),
            introspection=_flag(env.get("PETITIONS_INTROSPECTION", "true")),
            db_pool_size=number("DB_POOL_SIZE", default.db_pool_size),
            subscriber_buffer=number("SUBSCRIBER_BUFFER", default.subscriber_buffer),
            ws_compression=_flag(env.get("PETITIONS_WS_COMPRESSION", "false")),
            channel_prefix=text("CHANNEL_PREFIX") or default.channel_prefix,
            access_log=_flag(env.get("PETITIONS_ACCESS_LOG", "false")),
            log_format=choice("LOG_FORMAT", default.log_format, {"text", "json"}),
            metrics_token=text("METRICS_TOKEN"),
            max_body_bytes=number("MAX_BODY_BYTES", default.max_body_bytes),
            max_aliases=number("MAX_ALIASES", default.max_aliases),
            max_depth=number("MAX_DEPTH", default.max_depth),
            max_directives=number("MAX_DIRECTIVES", default.max_directives),
            max_errors=number("MAX_ERRORS", default.max_errors),
            max_tokens=number("MAX_TOKENS", default.max_tokens),
            max_cost=number("MAX_COST", default.max_cost),
            operation_timeout=number("OPERATION_TIMEOUT", default.operation_timeout),
            ws_init_timeout=number("WS_INIT_TIMEOUT", default.ws_init_timeout),
            ws_max_message_bytes=number("WS_MAX_MESSAGE_BYTES", default.ws_max_message_bytes),
            ws_max_operations=number("WS_MAX_OPERATIONS", default.ws_max_operations),
            sign_limit=rate("SIGN_LIMIT"),
            comment_limit=rate("COMMENT_LIMIT"),
            trusted_proxies=networks("TRUSTED_PROXIES"),
            comment_moderation=choice(
                "COMMENT_MODERATION", default.comment_moderation, {"filter", "pre", "off"}
            ),
            reports_to_hide=number("REPORTS_TO_HIDE", default.reports_to_hide),
            confirm_emails=confirm_emails,
            smtp_url=smtp_url,
            mail_from=text("MAIL_FROM"),
            public_url=public_url,
            confirm_ttl=duration("CONFIRM_TTL", default.confirm_ttl),
            sign_limit_action=choice(
                "SIGN_LIMIT_ACTION", default.sign_limit_action, {"refuse", "quarantine"}
            ),
            blocked_networks=networks("BLOCKED_NETWORKS"),
            blocked_email_domains=listed("BLOCKED_EMAIL_DOMAINS", ()),
        )


class State(TypedDict):
    database: TortoiseContext
    roles: models.Roles
    hub: Hub
    cache: ResultCache[Answer]
    pages: ResultCache[KeptPage]
    petitions: PetitionRows
    writer: models.SignatureWriter
    policy: Policy
    settings: Settings


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
    schema = make_schema(introspection=settings.introspection, limits=settings.limits)
    if settings.metrics_token is not None:
        metrics.enable()
    graphql = GraphQLApp(
        schema,
        allowed_origins=settings.allowed_origins,
        graphql_ide="graphiql" if settings.introspection else None,  # useless without it
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        max_subscriptions_per_connection=settings.ws_max_operations,
        max_message_bytes=settings.ws_max_message_bytes,
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
            cache = ResultCache[Answer](changes, enabled=lambda: hub.healthy)
            pages = ResultCache[KeptPage](changes, enabled=lambda: hub.healthy)
            petitions = PetitionRows(changes, enabled=lambda: hub.healthy)
            for observer in (changes.observe, cache.observe, pages.observe, petitions.observe):
                hub.observe(observer)
            await hub.connect()
            mailer = None
            if settings.smtp_url is not None and settings.mail_from is not None:
                mailer = Mailer(settings.smtp_url, settings.mail_from)
                mailer.start()
            intake = settings.intake
            if intake.confirmation is not None and mailer is not None:
                confirmation = replace(intake.confirmation, mail_queued=mailer.wake)
                intake = replace(intake, confirmation=confirmation)
            writer = models.SignatureWriter(hub, intake=intake)
            writer.start()
            policy = Policy(
                rates=RateLimits(
                    {"sign": settings.sign_limit, "comment": settings.comment_limit},
                    storage_url=settings.broadcast_url,
                    prefix=settings.channel_prefix,
                ),
                moderation=models.Moderation(settings.comment_moderation),
                reports_to_hide=settings.reports_to_hide,
                quarantine_over_limit=settings.sign_limit_action == "quarantine",
                confirm_ttl=timedelta(seconds=settings.confirm_ttl),
            )
            watches = [
                asyncio.create_task(
                    keep_connections_out_of_the_collector(lambda: graphql.open_websockets)
                )
            ]
            if metrics.enabled():
                watches.append(asyncio.create_task(watch_broadcast(hub)))
            try:
                yield {
                    "database": database,
                    "roles": models.Roles(settings.admin_token, settings.moderator_token),
                    "hub": hub,
                    "cache": cache,
                    "pages": pages,
                    "petitions": petitions,
                    "writer": writer,
                    "policy": policy,
                    "settings": settings,
                }
            finally:
                for watch in watches:
                    watch.cancel()
                    with suppress(asyncio.CancelledError):
                        await watch
                await writer.stop()  # every accepted signature is written before we go
                if mailer is not None:
                    await mailer.stop()  # what it has not sent waits in the outbox
                await hub.disconnect()
                await policy.rates.close()

    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        ),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        Middleware(DatabaseContext),
    ]
    if settings.trusted_proxies:  # their X-Forwarded-For names the client; nobody else's does
        middleware.insert(
            0, Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    operator = []  # 404 when unset: nobody learns there is anything to guess
    if settings.metrics_token is not None:
        operator.append(Route("/metrics", metrics_endpoint(settings.metrics_token)))
    return Service(  # Starlette, with plain /graphql requests in a lane of their own
        graphql=graphql,
        max_body_bytes=settings.max_body_bytes,
        lane=not settings.trusted_proxies,  # their X-Forwarded-For takes the full stack
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            *operator,
            Route("/confirm/{token}", confirm_page, methods=["GET", "POST"]),
            Route("/petitions/{slug}/signatures.{format}", signatures_export, methods=["GET"]),
            # the pages, the embed, /widget.js, the dashboard and their static files (web/)
            *Surfaces(
                schema, allowed_origins=settings.allowed_origins, public_url=settings.public_url
            ).routes,
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


def __getattr__(name: str) -> Any:
    """`server:app`, for `uvicorn server:app` and `--workers`: made when asked for, so that a
    bad setting is reported by `petitions` (exit 2, naming it), not as a traceback on import."""
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def main(argv: Sequence[str] | None = None) -> int:
    """The `petitions` command, now in `cli.py`; kept for scripts that call `server.main`."""
    from cli import main

    return main(argv)
