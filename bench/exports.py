"""Signature exports: a petition's valid signatures as CSV through `models.exports`, in this
process on the service's database, beside the database's own fastest CSV (the ceiling).

Two petitions are seeded straight into the database (one INSERT … SELECT over a generated
series, as `bench/seed.py` does): 100,000 and 1,000,000 valid signatures (10,000 and 100,000
with `--quick`), with hidden names, countries, comments that need quoting, a formula now and
then, and one quarantined signature in a hundred that the export must leave out. Each is
exported twice: once timed (rows/s, and the growth of this process's resident memory), once
under tracemalloc (the peak of what the export allocated). Memory that stays the same from the
small petition to the large one is the point. The ceiling is PostgreSQL's `COPY (SELECT …) TO
STDOUT WITH CSV` through asyncpg's `copy_from_query` into a sink, or, on SQLite (which has no
COPY), the standard `sqlite3` cursor straight into `csv.writer`: the same columns, the name
and the date made by the database, no Python per row."""

from __future__ import annotations

import asyncio
import csv
import os
import resource
import sqlite3
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench import seed
from bench.phases import Context
from bench.procs import BenchError
from bench.results import Figure, at_most, ratio

SEED_START = datetime(2025, 1, 1, tzinfo=UTC)
_STATUS_EVERY = 100  # one quarantined signature (no number) per this many valid ones
_COMMENT = 'Signed because, "quite simply", it matters.'
_FORMULA = '=HYPERLINK("x")'


@dataclass
class Measured:
    rows: int
    seconds: float
    megabytes: float  # written
    rss_growth_mb: float  # peak resident memory during the export, over the start
    maxrss_growth_mb: float  # growth of the process's high-water mark
    peak_mb: float = 0.0  # tracemalloc's peak, in a run of its own

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def sizes(quick: bool) -> tuple[int, int]:
    return (10_000, 100_000) if quick else (100_000, 1_000_000)


# -- seeding --------------------------------------------------------------------------------

_PETITION_SQL = (
    "INSERT INTO petition (slug, title, target, goal, body, status, signature_count, "
    "comment_count, last_signature_number, created_at) VALUES ({marks})"
)
_SIGNATURE_COLUMNS = (
    "petition_id, number, status, first_name, last_name, email, email_canonical, "
    "email_domain, show_name, country, comment, created_at"
)
# n runs over valid + quarantined rows: the first `valid` are valid, numbered n.
_ROW_EXPRESSIONS = f"""
    CASE WHEN n <= {{valid}} THEN n END,
    CASE WHEN n <= {{valid}} THEN 'VALID' ELSE 'QUARANTINED' END,
    'Export', 'Signer' || n, 'export' || n || '@example.org', 'export' || n || '@example.org',
    'example.org', n % 10 <> 0,
    CASE n % 5 WHEN 0 THEN 'GB' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' WHEN 3 THEN 'DE' END,
    CASE WHEN n % 1000 = 0 THEN '{_FORMULA}' WHEN n % 7 = 0 THEN '{_COMMENT.replace("'", "''")}'
    END"""


def _petition_values(slug: str, valid: int) -> list[Any]:
    return [slug, f"Export {slug}", "The benchmark", "Export every signature.", "…", "OPEN"] + [
        valid,
        0,
        valid,
    ]


def _seed_sqlite(url: str, slug: str, valid: int) -> int:
    connection = sqlite3.connect(seed.sqlite_path(url), timeout=60, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 60000")
        connection.execute("PRAGMA cache_size = -262144")
        connection.execute("BEGIN IMMEDIATE")
        cursor = connection.execute(
            _PETITION_SQL.format(marks=",".join("?" * 10)),
            [*_petition_values(slug, valid), SEED_START.isoformat(sep=" ")],
        )
        petition_id = int(cursor.lastrowid or 0)
        total = valid + valid // _STATUS_EVERY
        connection.execute(
            f"""
            WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
            INSERT INTO signature ({_SIGNATURE_COLUMNS})
            SELECT ?, {_ROW_EXPRESSIONS.format(valid=valid)},
                   datetime(? + n, 'unixepoch') || '.000000+00:00'
            FROM seq
            """,
            (total, petition_id, int(SEED_START.timestamp())),
        )
        for statement in seed.figures_statements(postgres=False):
            connection.execute(statement, (petition_id,))
        connection.execute("COMMIT")
        return petition_id
    finally:
        connection.close()


async def _seed_postgres(url: str, slug: str, valid: int) -> int:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            marks = ",".join(f"${n}" for n in range(1, 11))
            petition_id = await connection.fetchval(
                _PETITION_SQL.format(marks=marks) + " RETURNING id",
                *_petition_values(slug, valid),
                SEED_START,
            )
            await connection.execute(
                f"""
                INSERT INTO signature ({_SIGNATURE_COLUMNS})
                SELECT $1, {_ROW_EXPRESSIONS.format(valid=valid)},
                       $2::timestamptz + n * interval '1 second'
                FROM generate_series(1, $3::int) AS n
                """,
                petition_id,
                SEED_START,
                valid + valid // _STATUS_EVERY,
            )
            for statement in seed.figures_statements(postgres=True):
                await connection.execute(statement, petition_id)
        await connection.execute("ANALYZE signature")
        return int(petition_id)
    finally:
        await connection.close()


async def seed_export_petition(url: str, slug: str, valid: int) -> int:
    """An open petition `slug` with `valid` valid signatures (and 1 % quarantined); its key."""
    if seed.is_sqlite(url):
        return await asyncio.to_thread(_seed_sqlite, url, slug, valid)
    return await _seed_postgres(url, slug, valid)


# -- measuring ------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")
_MB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux


def _rows_in(fmt: str) -> Callable[[bytes], int]:
    """How many signatures a part of an export holds: CSV lines (no seeded comment spans two),
    or JSON objects (a key written inside a string would be escaped)."""
    if fmt == "csv":
        return lambda data: data.count(b"\n")
    return lambda data: data.count(b'{"number": ')


async def _drain(
    chunks: AsyncIterator[str], count: Callable[[bytes], int], sample: Callable[[], None]
) -> tuple[int, int]:
    """Consume an export as a response sends it (encoded): (signatures, bytes)."""
    rows = size = 0
    async for chunk in chunks:
        data = chunk.encode()
        size += len(data)
        rows += count(data)
        sample()
    return rows, size


async def _timed(fmt: str, make: Callable[[], AsyncIterator[str]]) -> Measured:
    start_rss, start_max = _rss(), _maxrss()
    peak_rss = start_rss

    def sample() -> None:
        nonlocal peak_rss
        peak_rss = max(peak_rss, _rss())

    began = time.perf_counter()
    rows, size = await _drain(make(), _rows_in(fmt), sample)
    seconds = time.perf_counter() - began
    return Measured(
        rows=rows - (fmt == "csv"),  # the header
        seconds=seconds,
        megabytes=size / _MB,
        rss_growth_mb=(peak_rss - start_rss) / _MB,
        maxrss_growth_mb=(_maxrss() - start_max) / _MB,
    )


async def _traced_peak(fmt: str, make: Callable[[], AsyncIterator[str]]) -> float:
    """The most the export held at once, in MB, as tracemalloc counts Python's allocations."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await _drain(make(), _rows_in(fmt), lambda: None)
        return tracemalloc.get_traced_memory()[1] / _MB
    finally:
        tracemalloc.stop()


async def _export(url: str, petition_id: int, fmt: str) -> Measured:
    import models
    from models.exports import chunks

    async with models.open_database(url, pool_size=2, create_schema=False):

        def make() -> AsyncIterator[str]:
            return chunks(fmt, petition_id, emails=False)

        measured = await _timed(fmt, make)
        if fmt == "csv":
            measured.peak_mb = await _traced_peak(fmt, make)
    return measured


_PG_SIGNED_AT = """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
_CEILING_COLUMNS = (
    "number, CASE WHEN show_name THEN first_name || ' ' || last_name ELSE 'Anonymous' END, "
    "country, comment, {signed_at} FROM signature "
    "WHERE petition_id = {mark} AND status = 'VALID' ORDER BY number"
)


async def _postgres_ceiling(url: str, petition_id: int) -> Measured:
    query = "SELECT " + _CEILING_COLUMNS.format(signed_at=_PG_SIGNED_AT, mark="$1")
    lines = size = 0

    async def sink(data: bytes) -> None:
        nonlocal lines, size
        lines += data.count(b"\n")
        size += len(data)

    connection = await asyncpg.connect(url)
    try:
        began = time.perf_counter()
        await connection.copy_from_query(query, petition_id, output=sink, format="csv", header=True)
        seconds = time.perf_counter() - began
    finally:
        await connection.close()
    return Measured(lines - 1, seconds, size / _MB, 0.0, 0.0)


class _Sink:
    def __init__(self) -> None:
        self.lines = self.size = 0

    def write(self, text: str) -> None:
        self.lines += 1
        self.size += len(text.encode())


def _sqlite_ceiling(url: str, petition_id: int) -> Measured:
    query = "SELECT " + _CEILING_COLUMNS.format(
        signed_at="substr(created_at, 1, 10) || 'T' || substr(created_at, 12)", mark="?"
    )
    connection = sqlite3.connect(seed.sqlite_path(url), timeout=60)
    try:
        sink = _Sink()
        writer = csv.writer(sink)
        began = time.perf_counter()
        writer.writerow(("number", "name", "country", "comment", "signedAt"))
        writer.writerows(connection.execute(query, (petition_id,)))
        seconds = time.perf_counter() - began
    finally:
        connection.close()
    return Measured(sink.lines - 1, seconds, sink.size / _MB, 0.0, 0.0)


async def _ceiling(url: str, petition_id: int) -> Measured:
    if seed.is_sqlite(url):
        return await asyncio.to_thread(_sqlite_ceiling, url, petition_id)
    return await _postgres_ceiling(url, petition_id)


# -- the phase ------------------------------------------------------------------------------


async def exports(ctx: Context) -> None:
    run, url = ctx.run, ctx.deployment.database_url
    small, large = sizes(ctx.plan.quick)
    ceiling_name = "sqlite3 → csv" if seed.is_sqlite(url) else "COPY"
    raw: dict[str, Any] = {"sizes": [small, large], "ceiling": ceiling_name}
    keys: dict[int, int] = {}
    for valid in (small, large):
        began = time.monotonic()
        keys[valid] = await seed_export_petition(url, f"bench-export-{valid}", valid)
        raw[f"seed_{valid}_seconds"] = round(time.monotonic() - began, 2)
    await _export(url, keys[small], "csv")  # warm-up: imports, caches, the first allocations
    measured: dict[tuple[str, int], Measured] = {}
    for valid in (small, large):
        measured["csv", valid] = await _export(url, keys[valid], "csv")
    measured["json", large] = await _export(url, keys[large], "json")
    ceiling = await _ceiling(url, keys[large])
    for (fmt, valid), result in [*measured.items(), (("ceiling", large), ceiling)]:
        raw[f"{fmt}_{valid}"] = {**result.__dict__, "rows_per_second": round(result.rate)}
        if result.rows != valid:
            raise BenchError(f"{fmt} export of {valid:,} valid signatures: {result.rows:,} rows")
    run.raw["exports"] = raw

    big, little, json_big = measured["csv", large], measured["csv", small], measured["json", large]
    run.add(
        Figure(
            "export_csv",
            f"export: CSV of {large:,} signatures (models.exports)",
            big.rate,
            "rows/s",
            ratio(big.rate, ceiling.rate),
            ceiling_name,
            note=f"{big.seconds:.1f} s, {big.megabytes:.0f} MB; {small:,} rows: "
            f"{little.rate:,.0f} rows/s",
        )
    )
    run.add(
        Figure(
            "export_json",
            f"export: JSON of {large:,} signatures (models.exports)",
            json_big.rate,
            "rows/s",
            ratio(json_big.rate, ceiling.rate),
            ceiling_name,
            note=f"{json_big.seconds:.1f} s, {json_big.megabytes:.0f} MB",
        )
    )
    run.add(
        Figure(
            "export_ceiling",
            "export ceiling: COPY … TO STDOUT CSV (SQLite: sqlite3 → csv.writer)",
            ceiling.rate,
            "rows/s",
            note=f"{ceiling.seconds:.1f} s, {ceiling.megabytes:.0f} MB",
        )
    )
    growth = ratio(big.peak_mb, little.peak_mb)
    run.add(
        Figure(
            "export_peak",
            f"export: CSV peak memory (tracemalloc), {large:,} rows",
            big.peak_mb,
            "MB",
            growth,
            f"{small:,} rows",
            f"≤ 1.25× at {small:,} rows",
            at_most(growth, 1.25),
            note=f"{small:,} rows: {little.peak_mb:.2f} MB",
        )
    )
    run.add(
        Figure(
            "export_rss",
            f"export: CSV resident memory growth, {large:,} rows",
            big.rss_growth_mb,
            "MB",
            note=f"{small:,} rows: {little.rss_growth_mb:.1f} MB; high-water mark growth "
            f"{big.maxrss_growth_mb:.1f} MB ({small:,}: {little.maxrss_growth_mb:.1f} MB)",
        )
    )
