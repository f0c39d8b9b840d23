"""Schema migrations, with Tortoise ORM's own migration system (`tortoise.migrations`).

The migrations live in the `migrations` package at the project root, one subpackage per
Tortoise app: `migrations/models/0001_initial.py`, `migrations/models/0002_….py`, …
They are listed in pyproject.toml's packages, so they import from any working folder
(after `pip install -e .`). The server applies them with `migrate`; what has been applied is
recorded in the database, in Tortoise's `tortoise_migrations` table.

Adding a migration after changing models/tables.py, from the project root:

    tortoise -c models.migrations.TORTOISE_ORM makemigrations --name add_petition_locale

then read the new file in migrations/models/ (Tortoise's generator has rough edges: see
0001_initial.py's docstring) and commit it with the model change. `--name` is optional
(without it the file is `000N_auto_<timestamp>.py`); makemigrations needs no database.
To see its SQL, or to apply it to the database in PETITIONS_DATABASE_URL
(default `sqlite://petitions.sqlite3`, as the server):

    tortoise -c models.migrations.TORTOISE_ORM sqlmigrate models 0002_add_petition_locale
    tortoise -c models.migrations.TORTOISE_ORM migrate

tests/test_migrations.py fails while models/tables.py has changes no migration covers
(`unmigrated_changes`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget
from tortoise.migrations.operations import CreateModel

from .database import open_database, tortoise_config

APP_LABEL = "models"
MIGRATIONS_MODULE = "migrations.models"
DEFAULT_DATABASE_URL = "sqlite://petitions.sqlite3"
# Any constant will do, as long as every migrating process uses the same one.
_POSTGRES_LOCK_KEY = 0x7065746974696F6E  # "petition"


def migrations_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config of `models.database.tortoise_config`, plus where migrations live."""
    config = tortoise_config(database_url, pool_size=3)
    config["apps"][APP_LABEL]["migrations"] = MIGRATIONS_MODULE
    return config


# For Tortoise's CLI (`tortoise -c models.migrations.TORTOISE_ORM …`).
TORTOISE_ORM = migrations_config(os.environ.get("PETITIONS_DATABASE_URL") or DEFAULT_DATABASE_URL)


async def migrate(database_url: str, *, fake_initial: bool = False) -> list[str]:
    """Apply every pending migration; return their names (`models.0001_initial`, …).

    Returns [] when the database is up to date. Each migration runs in a transaction where the
    database allows (PostgreSQL: DDL included). On PostgreSQL, concurrent callers (several
    server processes starting at once) wait for each other on an advisory lock.

    `fake_initial`: a database whose tables were made by `generate_schemas` before there were
    migrations gets its initial migration recorded as applied, without running it, when every
    table that migration creates already exists (it is then among the names returned).
    """
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

    async with _executor(database_url) as executor, _migration_lock(executor.connection):
        if fake_initial and (initial := await _initial_already_there(executor)):
            await executor.migrate(
                [MigrationTarget(app_label=APP_LABEL, name=initial)], fake=True, direction="forward"
            )
            applied.append(f"{APP_LABEL}.{initial}")
        await executor.migrate(direction="forward", progress=progress)
    return applied


async def pending_migrations(database_url: str) -> list[str]:
    """Names of the migrations `migrate` would apply, in order; [] when up to date.

    Changes nothing in the database (not even the migrations table is created).
    """
    async with _executor(database_url) as executor:
        plan = await executor.plan()
    return [f"{step.migration.app_label}.{step.migration.name}" for step in plan]


async def unmigrated_changes() -> list[str]:
    """What `makemigrations` would write now: model changes no migration covers; [] if none.

    Compares the models with the state the migrations build, without a database. Like any
    Tortoise init, this rebinds the model classes (process-wide) to its connection name,
    "sqlite": not for a process with a PostgreSQL context open (tests and tools only).
    """
    config = migrations_config("sqlite://:memory:")
    async with TortoiseContext() as context:
        await context.init(config=config, init_connections=False)
        assert context.apps is not None
        autodetector = MigrationAutodetector(context.apps, config["apps"])
        writers = await autodetector.changes()
    return [
        f"{writer.app_label}.{writer.name}: {operation.describe()}"
        for writer in writers
        for operation in writer.operations
    ]


@asynccontextmanager
async def _executor(database_url: str) -> AsyncIterator[MigrationExecutor]:
    """A migration executor on a Tortoise context of its own, current for the block."""
    config = migrations_config(database_url)
    app = config["apps"][APP_LABEL]
    async with open_database(database_url, pool_size=3, create_schema=False) as context:
        connection = context.db(app["default_connection"])
        # Tortoise's recorder reads any failure to query its table as "nothing applied yet":
        # fail here instead when the database itself is out of reach.
        await connection.execute_query("SELECT 1")
        yield MigrationExecutor(connection, {APP_LABEL: app})


@asynccontextmanager
async def _migration_lock(connection: BaseDBAsyncClient) -> AsyncIterator[None]:
    """On PostgreSQL, hold a session advisory lock on a pooled connection for the block.

    The migrations themselves run on other connections of the pool; everyone who migrates
    takes this lock first, so one process migrates at a time. SQLite: no lock.
    """
    if connection.capabilities.dialect != "postgres":
        yield
        return
    async with connection.acquire_connection() as raw:
        await raw.execute("SELECT pg_advisory_lock($1)", _POSTGRES_LOCK_KEY)
        try:
            yield
        finally:
            await raw.execute("SELECT pg_advisory_unlock($1)", _POSTGRES_LOCK_KEY)


async def _initial_already_there(executor: MigrationExecutor) -> str | None:
    """The app's initial migration, if nothing is recorded yet but all its tables exist."""
    if [key for key in await executor.recorder.applied_migrations() if key.app_label == APP_LABEL]:
        return None
    await executor.loader.build_graph()
    roots = executor.loader.graph.root_nodes(APP_LABEL)
    if not roots:
        return None
    initial = executor.loader.graph.nodes[roots[0]]
    if initial is None:
        return None
    tables = {
        str((operation.options or {}).get("table") or operation.name.lower())
        for operation in initial.operations
        if isinstance(operation, CreateModel)
    }
    return roots[0].name if tables and tables <= await _tables(executor.connection) else None


async def _tables(connection: BaseDBAsyncClient) -> set[str]:
    if connection.capabilities.dialect == "postgres":
        query = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    _, rows = await connection.execute_query(query)
    return {str(row["name"]) for row in rows}
