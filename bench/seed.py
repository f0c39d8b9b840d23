"""Straight-to-the-database work: a petition with a million signatures in seconds, fresh
PostgreSQL databases, and the reads the correctness checks compare with.

The seed is one set-based INSERT … SELECT over a generated series inside one transaction (a
recursive CTE on SQLite, `generate_series` on PostgreSQL): the fastest bulk insert either
offers, with rows the service could have written itself — numbers 1..N dense, a unique
canonical email each, names, `show_name`, `created_at` one second apart — and the petition's
`signature_count` and `last_signature_number` set to N, its figures (by country, by bucket) and
its milestones as the service would have kept them."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

SEED_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Counters:
    signature_count: int
    last_signature_number: int
    rows: int
    max_number: int
    distinct_numbers: int
    distinct_emails: int


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def sqlite_path(url: str) -> str:
    return url[len("sqlite://") :]


def _sqlite(url: str) -> sqlite3.Connection:
    connection = sqlite3.connect(sqlite_path(url), timeout=60, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 60000")
    return connection


def _petition_values(slug: str, n: int) -> tuple[object, ...]:
    return (
        slug,
        f"Benchmark petition {slug}",
        "The benchmark",
        "Hold a million signatures and still page fast.",
        "A petition seeded straight into the database by bench/seed.py.",
        "OPEN",
        n,
        0,
        n,
    )


_PETITION_COLUMNS = (
    "slug, title, target, goal, body, status, signature_count, comment_count, "
    "last_signature_number, created_at"
)
_SIGNATURE_COLUMNS = (
    "petition_id, number, first_name, last_name, email, email_canonical, show_name, created_at"
)


_MILESTONES = "100, 1000, 10000, 100000, 1000000"
_BUCKET_STARTS = {  # as each backend stores a UTC datetime (see migration 0004)
    "MINUTE": ("minute", "%Y-%m-%d %H:%M:00"),
    "HOUR": ("hour", "%Y-%m-%d %H:00:00"),
    "DAY": ("day", "%Y-%m-%d 00:00:00"),
}


def figures_statements(*, postgres: bool) -> list[str]:
    """What the service keeps beside the rows it writes, for one seeded petition (its id the
    only parameter): the counters by country and by bucket, and the milestones its numbered
    valid signatures reached, set-based, as migration 0004 backfills them."""
    p = "$1" if postgres else "?"
    valid = f'"petition_id" = {p} AND "status" = \'VALID\''
    statements = [
        'INSERT INTO "country_count" ("petition_id", "country", "count") '
        'SELECT "petition_id", "country", COUNT(*) FROM "signature" '
        f'WHERE {valid} AND "country" IS NOT NULL GROUP BY "petition_id", "country"',
        'INSERT INTO "milestone" ("petition_id", "count", "reached_at") '
        'SELECT "petition_id", "number", "created_at" FROM "signature" '
        f'WHERE {valid} AND "number" IN ({_MILESTONES})',
    ]
    for interval, (unit, text) in _BUCKET_STARTS.items():
        if postgres:
            start = f"date_trunc('{unit}', \"created_at\" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        else:
            start = f"strftime('{text}', \"created_at\") || '+00:00'"
        statements.append(
            'INSERT INTO "bucket_count" ("petition_id", "interval", "start", "count") '
            f'SELECT "petition_id", \'{interval}\', {start}, COUNT(*) FROM "signature" '
            f"WHERE {valid} GROUP BY 1, 3"
        )
    return statements


def _seed_sqlite(url: str, slug: str, n: int) -> int:
    connection = _sqlite(url)
    try:
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA cache_size = -262144")  # 256 MB for the index builds
        connection.execute("BEGIN IMMEDIATE")
        created = (SEED_START - timedelta(seconds=1)).isoformat(sep=" ", timespec="microseconds")
        cursor = connection.execute(
            f"INSERT INTO petition ({_PETITION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (*_petition_values(slug, n), created),
        )
        petition_id = cursor.lastrowid
        assert petition_id is not None
        epoch = int(SEED_START.timestamp())
        connection.execute(
            f"""
            WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
            INSERT INTO signature ({_SIGNATURE_COLUMNS})
            SELECT ?, n, 'Seed', 'Signer' || n, 'seed' || n || '@example.org',
                   'seed' || n || '@example.org', 1,
                   datetime(? + n, 'unixepoch') || '.000000+00:00'
            FROM seq
            """,
            (n, petition_id, epoch),
        )
        for statement in figures_statements(postgres=False):
            connection.execute(statement, (petition_id,))
        connection.execute("COMMIT")
        return int(petition_id)
    finally:
        connection.close()


async def _seed_postgres(url: str, slug: str, n: int) -> int:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            petition_id = await connection.fetchval(
                f"INSERT INTO petition ({_PETITION_COLUMNS}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING id",
                *_petition_values(slug, n),
                SEED_START - timedelta(seconds=1),
            )
            await connection.execute(
                f"""
                INSERT INTO signature ({_SIGNATURE_COLUMNS})
                SELECT $1, n, 'Seed', 'Signer' || n, 'seed' || n || '@example.org',
                       'seed' || n || '@example.org', true,
                       $2::timestamptz + n * interval '1 second'
                FROM generate_series(1, $3::int) AS n
                """,
                petition_id,
                SEED_START,
                n,
            )
            for statement in figures_statements(postgres=True):
                await connection.execute(statement, petition_id)
        await connection.execute("ANALYZE signature")
        await connection.execute("ANALYZE petition")
        return int(petition_id)
    finally:
        await connection.close()


async def seed_deep_petition(url: str, slug: str, n: int) -> int:
    """Create an open petition `slug` with `n` signatures; returns its primary key."""
    if is_sqlite(url):
        return await asyncio.to_thread(_seed_sqlite, url, slug, n)
    return await _seed_postgres(url, slug, n)


_COUNTERS_SQL = """
SELECT p.signature_count, p.last_signature_number,
       (SELECT COUNT(*) FROM signature s WHERE s.petition_id = p.id),
       (SELECT COALESCE(MAX(number), 0) FROM signature s WHERE s.petition_id = p.id),
       (SELECT COUNT(DISTINCT number) FROM signature s WHERE s.petition_id = p.id),
       (SELECT COUNT(DISTINCT email_canonical) FROM signature s WHERE s.petition_id = p.id)
FROM petition p WHERE p.id = {param}
"""


def _sqlite_counters(url: str, petition_id: int) -> Counters:
    connection = _sqlite(url)
    try:
        row = connection.execute(_COUNTERS_SQL.format(param="?"), (petition_id,)).fetchone()
    finally:
        connection.close()
    return Counters(*(int(x) for x in row))


async def counters(url: str, petition_id: int) -> Counters:
    """The petition's stored counters beside counts of its rows."""
    if is_sqlite(url):
        return await asyncio.to_thread(_sqlite_counters, url, petition_id)
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(_COUNTERS_SQL.format(param="$1"), petition_id)
    finally:
        await connection.close()
    assert row is not None
    return Counters(*(int(x) for x in row))


_NAMES_SQL = "SELECT number, first_name, last_name FROM signature WHERE petition_id = {param}"


def _sqlite_names(url: str, petition_id: int) -> list[tuple[int, str, str]]:
    connection = _sqlite(url)
    try:
        rows = connection.execute(_NAMES_SQL.format(param="?"), (petition_id,)).fetchall()
    finally:
        connection.close()
    return [(int(a), str(b), str(c)) for a, b, c in rows]


async def signer_names(url: str, petition_id: int) -> list[tuple[int, str, str]]:
    """(number, first name, last name) of every signature of the petition."""
    if is_sqlite(url):
        return await asyncio.to_thread(_sqlite_names, url, petition_id)
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(_NAMES_SQL.format(param="$1"), petition_id)
    finally:
        await connection.close()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def database_named(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_postgres_database(admin_url: str) -> str:
    """A new, empty database on the server of `admin_url`; returns its URL."""
    name = f"petitions_bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return database_named(admin_url, name)


async def drop_postgres_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
