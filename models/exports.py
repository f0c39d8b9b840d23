"""Signature exports for admins: every valid signature of a petition, oldest first, as CSV or
JSON, produced batch by batch so that memory stays the same whatever the petition's size.

Rows are read in keyset pages over `number` (the index on petition and number serves each
page, however deep), as tuples of the columns an export shows, with plain SQL: through the
ORM's row conversion (its ISO date parser above all) reading took five times as long. A
signature that becomes valid while an export runs is included when its number comes after
the page being read, as a reader paging the list would meet it; none is ever repeated."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from .petitions import find_petition
from .tables import Signature, SignatureStatus
from .text import public_name

FORMATS = ("csv", "json")
BATCH = 2000

# number, name (public), country, comment, signedAt, email (None unless asked for: the
# column is then not read).
Row = tuple[int, str, str | None, str | None, str, str | None]

_HEADER = ("number", "name", "country", "comment", "signedAt")

# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
_FORMULA_STARTS = frozenset("=+-@\t\r")


def spreadsheet_safe(cell: str) -> str:
    """`cell` as a spreadsheet shows it as text: prefixed with `'` when it would start a
    formula."""
    return "'" + cell if cell[:1] in _FORMULA_STARTS else cell


def _query(dialect: str, *, emails: bool) -> str:
    """One keyset page: parameters petition, status, the last number read, the page's size.
    PostgreSQL writes `signedAt` itself; SQLite holds `created_at` as ISO text already."""
    if dialect == "postgres":
        signed_at = (
            """to_char("created_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
        )
        marks = ("$1", "$2", "$3", "$4")
    else:
        signed_at, marks = '"created_at"', ("?", "?", "?", "?")
    email = ', "email"' if emails else ""
    return (
        f'SELECT "number", "first_name", "last_name", "show_name", "country", "comment", '
        f'{signed_at}{email} FROM "signature" WHERE "petition_id" = {marks[0]} '
        f'AND "status" = {marks[1]} AND "number" > {marks[2]} ORDER BY "number" LIMIT {marks[3]}'
    )


def _signed_at(stored: str | datetime) -> str:
    """ISO 8601 in UTC to the microsecond (a fixed width, which sorts as text), from a
    `created_at` as the database gives it: a datetime, or SQLite's ISO text (in UTC, as
    Tortoise and the signature writer store it; the common shape needs no parsing)."""
    if isinstance(stored, str):
        if len(stored) == 32 and stored.endswith("+00:00"):
            return stored if stored[10] == "T" else f"{stored[:10]}T{stored[11:]}"
        stored = datetime.fromisoformat(stored)
    if stored.tzinfo is None:  # Tortoise stores UTC
        stored = stored.replace(tzinfo=UTC)
    return stored.astimezone(UTC).isoformat(timespec="microseconds")


async def valid_signature_batches(
    petition_id: int, batch: int = BATCH, *, emails: bool = False
) -> AsyncIterator[list[Row]]:
    """The petition's valid signatures, oldest first, `batch` at a time (never an empty list).
    The next page is read while the caller works on this one: two pages in memory at most."""
    connection = Signature._meta.db
    query = _query(connection.capabilities.dialect, emails=emails)

    async def page(last: int) -> list[Any]:
        _, records = await connection.execute_query(
            query, [petition_id, SignatureStatus.VALID.value, last, batch]
        )
        return list(records)

    ahead = asyncio.ensure_future(page(0))
    try:
        while True:
            records = await ahead
            if len(records) == batch:
                ahead = asyncio.ensure_future(page(records[-1][0]))
            if records:
                yield [_row(record) for record in records]
            if len(records) < batch:
                return
    finally:
        _abandon(ahead)


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a page read no one will take (its error, if it failed, is no one's news)."""
    if not task.cancel() and not task.cancelled():
        task.exception()


def _row(record: Any) -> Row:
    number, first, last, show, country, comment, stored = record[:7]
    return (
        number,
        public_name(first, last, bool(show)),
        country,
        comment,
        _signed_at(stored),
        record[7] if len(record) > 7 else None,
    )


async def count_valid(petition_id: int) -> int:
    """How many rows an export of the petition holds (now): a progress bar's total."""
    return await Signature.filter(petition_id=petition_id, status=SignatureStatus.VALID).count()


def _csv_cells(row: Row) -> tuple[object, ...]:
    number, name, country, comment, signed, email = row
    safe = spreadsheet_safe
    if email is None:
        return number, safe(name), safe(country or ""), safe(comment or ""), signed
    return number, safe(name), safe(country or ""), safe(comment or ""), signed, safe(email)


# json.dumps, made once: a batch is encoded in one call (a call per object would cost three
# times as much, most of it setting up the encoder).
_JSON = json.JSONEncoder(ensure_ascii=False)


def _json_object(row: Row) -> dict[str, object]:
    number, name, country, comment, signed, email = row
    item: dict[str, object] = {
        "number": number,
        "name": name,
        "country": country,
        "comment": comment,
        "signedAt": signed,
    }
    if email is not None:
        item["email"] = email
    return item


async def _csv_parts(
    petition_id: int, *, emails: bool, batch: int
) -> AsyncIterator[tuple[str, int]]:
    """The CSV document in parts, each with the number of rows it holds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow((*_HEADER, "email") if emails else _HEADER)
    yield buffer.getvalue(), 0
    async for rows in valid_signature_batches(petition_id, batch, emails=emails):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(map(_csv_cells, rows))
        yield buffer.getvalue(), len(rows)


async def _json_parts(
    petition_id: int, *, emails: bool, batch: int
) -> AsyncIterator[tuple[str, int]]:
    """The JSON array in parts, each with the number of rows it holds: a line a batch."""
    opening = "[\n"
    async for rows in valid_signature_batches(petition_id, batch, emails=emails):
        yield opening + _JSON.encode(list(map(_json_object, rows)))[1:-1], len(rows)
        opening = ",\n"
    yield ("[]\n" if opening == "[\n" else "\n]\n"), 0


async def csv_chunks(petition_id: int, *, emails: bool, batch: int = BATCH) -> AsyncIterator[str]:
    """The CSV export of the petition: a header row, then a chunk per batch of rows."""
    async for text, _ in _csv_parts(petition_id, emails=emails, batch=batch):
        yield text


async def json_chunks(petition_id: int, *, emails: bool, batch: int = BATCH) -> AsyncIterator[str]:
    """The JSON export of the petition (an array of objects), a chunk per batch of rows."""
    async for text, _ in _json_parts(petition_id, emails=emails, batch=batch):
        yield text


_PARTS = {"csv": _csv_parts, "json": _json_parts}
_CHUNKS = {"csv": csv_chunks, "json": json_chunks}


def chunks(fmt: str, petition_id: int, *, emails: bool, batch: int = BATCH) -> AsyncIterator[str]:
    """`csv_chunks` or `json_chunks`, by `fmt`: "csv" or "json" (ValueError for another)."""
    return _CHUNKS[_known(fmt)](petition_id, emails=emails, batch=batch)


def _known(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"no export format {fmt!r}: {' or '.join(FORMATS)}")
    return fmt


async def export(
    slug: str,
    fmt: str,
    *,
    emails: bool,
    write: Callable[[str], object],
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write the export of the petition `slug` (any status: admins export drafts too) through
    `write`, calling `progress` with the rows of each chunk; returns the rows written.
    LookupError when no petition has that slug; ValueError for a format but csv or json."""
    parts = _PARTS[_known(fmt)]
    petition = await find_petition(admin=True, slug=slug)
    if petition is None:
        raise LookupError(f"no petition has the slug {slug!r}")
    written = 0
    async for text, rows in parts(petition.id, emails=emails, batch=BATCH):
        write(text)
        written += rows
        if progress is not None and rows:
            progress(rows)
    return written
