"""Opening the database: a Tortoise context of our own, made current wherever we run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext, _current_context, require_context

MODELS_MODULE = "models"


def tortoise_config(database_url: str, *, pool_size: int = 10) -> dict[str, Any]:
    """The Tortoise config for one database URL (`sqlite://…` or `postgres://…`)."""
    connection: str | dict[str, Any] = database_url
    # Tortoise caches its SQL per connection name, across contexts: naming the connection
    # after its dialect keeps a SQLite and a PostgreSQL database apart in one process (tests).
    name = "sqlite"
    if database_url.startswith(("postgres://", "postgresql://")):
        name = "postgres"
        from tortoise.backends.base.config_generator import expand_db_url

        connection = expand_db_url(database_url)
        connection["credentials"].setdefault("minsize", 1)
        connection["credentials"]["maxsize"] = pool_size
    return {
        "connections": {name: connection},
        "apps": {"models": {"models": [MODELS_MODULE], "default_connection": name}},
        "use_tz": True,
        "timezone": "UTC",
    }


@asynccontextmanager
async def open_database(
    database_url: str, *, pool_size: int = 10, create_schema: bool = True
) -> AsyncIterator[TortoiseContext]:
    """Open the database for the duration of the block and make it current in this task.

    Tortoise 1.x finds its connections through a context variable. A server's lifespan runs
    in a task of its own, so requests must enter the context too: see `activate`.
    """
    context = TortoiseContext()
    token = _current_context.set(context)
    try:
        await context.init(config=tortoise_config(database_url, pool_size=pool_size))
        if create_schema:
            await context.generate_schemas(safe=True)
        yield context
    finally:
        await context.close_connections()
        _current_context.reset(token)


class activate:  # lower case: it reads as a function, `async with activate(context):`
    """Make `context` the current Tortoise context for the block (one request, say). A class,
    not a generator: it runs around every request."""

    __slots__ = ("context", "token")

    def __init__(self, context: TortoiseContext) -> None:
        self.context = context

    async def __aenter__(self) -> None:
        self.token = _current_context.set(self.context)

    async def __aexit__(self, *exc_info: object) -> None:
        _current_context.reset(self.token)


async def ping() -> None:
    """Raise unless the database answers."""
    await require_context().db().execute_query("SELECT 1")


def marks(connection: BaseDBAsyncClient, count: int) -> list[str]:
    """Parameter placeholders in the connection's dialect."""
    if connection.capabilities.dialect == "postgres":
        return [f"${n}" for n in range(1, count + 1)]
    return ["?"] * count
