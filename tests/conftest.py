"""Fixtures: the real app on a real database, over HTTP in-process and over a real server.

Every test that takes `settings` runs on SQLite + `memory://`, and also on PostgreSQL + Redis
when PETITIONS_TEST_POSTGRES_URL and PETITIONS_TEST_REDIS_URL are set (CI sets both).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from models.migrations import migrate
from server import Settings, create_app

POSTGRES_URL = os.environ.get("PETITIONS_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("PETITIONS_TEST_REDIS_URL")
ADMIN_TOKEN = "test-admin-token"
needs_postgres = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL),
    reason="set PETITIONS_TEST_POSTGRES_URL and PETITIONS_TEST_REDIS_URL to run against "
    "PostgreSQL + Redis",
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """In CI (PETITIONS_TEST_NO_SKIPS=1) a skipped test is a failed one: every backend, the
    browser and axe-core are installed there, so a skip means something is missing."""
    report = yield
    if report.skipped and os.environ.get("PETITIONS_TEST_NO_SKIPS") == "1":
        if not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            report.longrepr = f"skipped, which CI does not allow: {report.longrepr}"
    return report


def database_url_named(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@asynccontextmanager
async def fresh_postgres_database(template: str | None = None) -> AsyncIterator[str]:
    """A newly created PostgreSQL database, dropped afterwards; yields its URL. Empty, or a
    copy of the database named `template`."""
    assert POSTGRES_URL
    name = f"petitions_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
        yield database_url_named(POSTGRES_URL, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once: each test's database starts as a copy (migrating takes
    about half a second; copying, a millisecond)."""
    path = tmp_path_factory.mktemp("template") / "petitions.sqlite3"
    asyncio.run(migrate(f"sqlite://{path}"))
    assert not path.with_name(path.name + "-wal").exists()  # all of it is in the file
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str | None]:
    """The name of a PostgreSQL database migrated once, the template of each test's (None
    without PostgreSQL)."""
    if not POSTGRES_URL:
        yield None
        return
    name = f"petitions_template_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate(database_url_named(POSTGRES_URL, name)))
        yield name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
async def settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    migrated_sqlite: Path,
    migrated_postgres: str | None,
) -> AsyncIterator[Settings]:
    """Settings for a fresh, migrated, empty database of the backend under test."""
    base = Settings(admin_token=ADMIN_TOKEN, channel_prefix=f"test-{uuid.uuid4().hex[:12]}")
    if request.param == "sqlite":
        path = tmp_path / "petitions.sqlite3"
        shutil.copyfile(migrated_sqlite, path)
        yield replace(base, database_url=f"sqlite://{path}")
        return
    # as an operator would have: the server refuses a schema that is behind
    async with fresh_postgres_database(migrated_postgres) as url:
        assert REDIS_URL
        yield replace(base, database_url=url, broadcast_url=REDIS_URL)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The real app with its lifespan running in a task of its own, as under a server."""
    async with LifespanManager(create_app(settings)) as manager:
        yield manager.app


@dataclass
class GraphQLClient:
    """Posts GraphQL documents to the app and returns the decoded JSON answer."""

    http: httpx.AsyncClient

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, admin: bool = False
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def running_server(app: Starlette, ws: Any = "auto") -> AsyncIterator[str]:
    """Serve `app` with a real uvicorn on a free port; yields the base URL. `ws` is uvicorn's
    websocket protocol (e.g. `server.GoingAwayWebSocketProtocol`, as `petitions serve` uses)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False, ws=ws
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def server_url(settings: Settings) -> AsyncIterator[str]:
    async with running_server(create_app(settings)) as url:
        yield url


@pytest.fixture
async def server_gql(server_url: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server_url) as client:
        yield GraphQLClient(client)
