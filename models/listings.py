"""A petition's public lists (its valid signatures, its published comments) read a page at a
time by one SQL statement of a fixed shape, not built through the ORM on every request.

These are the hottest reads there are: every page view asks for the newest signers, right
after every signature. Building the query with Tortoise and turning each row into a model
instance cost more than the database's own work; the statements here are written once per
shape (PostgreSQL prepares each once per connection, asyncpg keeps it), and the rows come
back as plain tuples with the few conversions SQLite needs.

On SQLite the statement runs on a read-only connection of its own, in the event loop's thread:
an indexed read of a dozen rows takes tens of microseconds, less than handing it to
Tortoise's connection thread and back, and it never waits in line behind the writer's batches
there (in WAL mode readers and the writer do not block each other)."""

from __future__ import annotations

import os
import sqlite3
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import quote

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import require_context

from .tables import CommentStatus, SignatureStatus


class SignatureRow(NamedTuple):
    id: int
    number: int
    first_name: str
    last_name: str
    show_name: bool
    country: str | None
    comment: str | None
    created_at: datetime
    status: SignatureStatus


class CommentRow(NamedTuple):
    id: int
    author_name: str
    body: str
    created_at: datetime
    status: CommentStatus


Row = TypeVar("Row", SignatureRow, CommentRow)

_OPERATORS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


@dataclass(frozen=True)
class Listing(Generic[Row]):
    """One table's rows of one status, by petition, ordered by a unique integer `key`."""

    table: str
    row: type[Row]
    key: str
    status: str

    def _where(self, bounds: tuple[tuple[str, int], ...], postgres: bool) -> tuple[str, int]:
        """The WHERE clause for the petition, the status and `bounds` ((operator, value)
        pairs on the key), and how many parameters it takes."""
        clauses = ['"petition_id" = {}', '"status" = {}']
        clauses += [f'"{self.key}" {_OPERATORS[op]} {{}}' for op, _ in bounds]
        count = len(clauses)
        marks = [f"${n}" for n in range(1, count + 1)] if postgres else ["?"] * count
        return " AND ".join(clauses).format(*marks), count

    async def page(
        self,
        petition_id: int,
        bounds: tuple[tuple[str, int], ...],
        *,
        descending: bool,
        limit: int,
    ) -> list[Row]:
        """Up to `limit` rows within `bounds`, by the key, descending or not."""
        client = require_context().db()
        postgres = client.capabilities.dialect == "postgres"
        where, count = self._where(bounds, postgres)
        columns = ", ".join(f'"{name}"' for name in self.row._fields)
        limit_mark = f"${count + 1}" if postgres else "?"
        order = "DESC" if descending else "ASC"
        sql = (
            f'SELECT {columns} FROM "{self.table}" WHERE {where} '
            f'ORDER BY "{self.key}" {order} LIMIT {limit_mark}'
        )
        values: list[Any] = [petition_id, self.status, *(value for _, value in bounds), limit]
        rows = await _query(client, sql, values)
        convert = _CONVERT[self.row] if not postgres else _AS_IS[self.row]
        return [convert(row) for row in rows]

    async def exists(self, petition_id: int, bounds: tuple[tuple[str, int], ...]) -> bool:
        """Whether any row lies within `bounds`."""
        client = require_context().db()
        where, _ = self._where(bounds, client.capabilities.dialect == "postgres")
        sql = f'SELECT 1 FROM "{self.table}" WHERE {where} LIMIT 1'
        values = [petition_id, self.status, *(value for _, value in bounds)]
        return bool(await _query(client, sql, values))


_readers: weakref.WeakKeyDictionary[BaseDBAsyncClient, sqlite3.Connection] = (
    weakref.WeakKeyDictionary()
)


async def _query(client: BaseDBAsyncClient, sql: str, values: list[Any]) -> list[Any]:
    if client.capabilities.dialect == "sqlite":
        filename = getattr(client, "filename", ":memory:")
        if filename != ":memory:":  # a database in memory is that one connection's alone
            reader = _readers.get(client)
            if reader is None:
                reader = _readers[client] = _reader(filename)
            return reader.execute(sql, values).fetchall()
    _, rows = await client.execute_query(sql, values)
    return list(rows)


def _reader(filename: str) -> sqlite3.Connection:
    """A connection that reads only, each statement a snapshot of what is committed."""
    address = f"file:{quote(os.path.abspath(filename))}?mode=ro"
    reader = sqlite3.connect(address, uri=True, check_same_thread=False, isolation_level=None)
    reader.execute("PRAGMA query_only = 1")
    return reader


def _sqlite_signature(row: Any) -> SignatureRow:
    """SQLite keeps booleans as integers and times as ISO text (Tortoise's format)."""
    return SignatureRow(
        row[0],
        row[1],
        row[2],
        row[3],
        bool(row[4]),
        row[5],
        row[6],
        datetime.fromisoformat(row[7]),
        SignatureStatus(row[8]),
    )


def _sqlite_comment(row: Any) -> CommentRow:
    return CommentRow(row[0], row[1], row[2], datetime.fromisoformat(row[3]), CommentStatus(row[4]))


def _postgres_signature(row: Any) -> SignatureRow:
    return SignatureRow(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], SignatureStatus(row[8])
    )


def _postgres_comment(row: Any) -> CommentRow:
    return CommentRow(row[0], row[1], row[2], row[3], CommentStatus(row[4]))


_CONVERT: dict[type[Any], Any] = {SignatureRow: _sqlite_signature, CommentRow: _sqlite_comment}
_AS_IS: dict[type[Any], Any] = {SignatureRow: _postgres_signature, CommentRow: _postgres_comment}

VALID_SIGNATURES = Listing("signature", SignatureRow, "number", SignatureStatus.VALID.value)
PUBLISHED_COMMENTS = Listing("comment", CommentRow, "id", CommentStatus.PUBLISHED.value)
