"""Forgetting people: a signer's erasure on request, and the anonymisation of closed petitions.

`erase_signer` deletes every signature and comment of one mailbox (its canonical email), over
all petitions: each petition's count and figures drop by the valid signatures it loses, under
its row lock, with a tick of its signature clock that every process is told of (`CountChanged`); a
published comment is first taken down as a moderator would (`commentRemoved`), then deleted
with its log entries. `anonymise` strips the emails and client addresses of the signatures of
petitions closed for some days, keeping names, countries and counts.

Erased and stripped data leaves the database files too: SQLite overwrites what it frees
(`secure_delete`) and its write-ahead log is checkpointed and truncated afterwards; PostgreSQL
is vacuumed, so that the dead row versions' space is marked free (their bytes stay on disk until
overwritten: an operator who needs more runs `VACUUM FULL` in a quiet hour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import require_context
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from subscriptions import Event, Publisher

from . import figures
from .comments import set_comment_status
from .database import marks
from .statuses import lock_petition, tick
from .tables import (
    Comment,
    CommentStatus,
    OutboxMail,
    Petition,
    PetitionStatus,
    Signature,
    SignatureStatus,
)
from .text import Cleaner, canonical_email

Progress = Callable[[int], object]
BATCH = 5000  # signatures stripped per transaction


@dataclass(frozen=True)
class Erased:
    signatures: int
    comments: int


async def erase_signer(
    email: str, *, publisher: Publisher, progress: Progress | None = None
) -> Erased:
    """Delete every signature and comment of `email`'s mailbox, over all petitions
    (`INVALID_INPUT` on `email` when it does not read as one)."""
    clean = Cleaner()
    email = clean.email("email", email)
    clean.done()
    canonical = canonical_email(email)
    events: list[Event] = []
    signatures = comments = 0
    await _overwrite_freed_space()
    petition_ids = await _ids(Signature.filter(email_canonical=canonical), "petition_id")
    for petition_id in sorted(set(petition_ids)):
        async with in_transaction() as connection:
            petition = await lock_petition(connection, petition_id)
            rows = Signature.filter(petition_id=petition_id, email_canonical=canonical)
            valid = rows.filter(status=SignatureStatus.VALID)
            tally = await figures.tally_rows(connection, valid, -1)
            deleted = await rows.using_db(connection).delete()  # its outbox mails go with it
            if petition is not None and tally.total:
                events += await tick(connection, petition, tally)
        signatures += deleted
        if progress is not None:
            progress(deleted)
    for comment in await Comment.filter(email_canonical=canonical).order_by("id"):
        async with in_transaction() as connection:
            await lock_petition(connection, comment.petition_id)
            if comment.status is CommentStatus.PUBLISHED:
                event = await set_comment_status(connection, comment, CommentStatus.HIDDEN)
                if event is not None:
                    events.append(event)
            await Comment.filter(id=comment.id).using_db(connection).delete()
        comments += 1
        if progress is not None:
            progress(1)
    await OutboxMail.filter(recipient__iexact=email.strip()).delete()
    await _checkpoint()
    await publisher.publish(*events)
    return Erased(signatures, comments)


def _closed_for(days: int, now: datetime) -> Q:
    before = now - timedelta(days=days)
    by_status = Q(status=PetitionStatus.CLOSED) & Q(closed_at__lte=before)
    by_time = Q(closes_at__isnull=False) & Q(closes_at__lte=before)
    return (by_status | by_time) & ~Q(status=PetitionStatus.DRAFT)


async def anonymise(
    closed_for_days: int,
    *,
    progress: Progress | None = None,
    total: Callable[[int], object] | None = None,
) -> int:
    """Strip the emails and client addresses of the signatures (and the emails of the comments)
    of petitions closed for `closed_for_days` days or more: since `closesAt`, or since an admin
    set them `CLOSED`. Names, countries and counts stay. The number of signatures stripped."""
    if closed_for_days < 0:
        raise ValueError("closed_for_days must be 0 or more")
    now = datetime.now(UTC)
    petition_ids = await _ids(Petition.filter(_closed_for(closed_for_days, now)), "id")
    todo = Signature.filter(petition_id__in=petition_ids).exclude(email="")
    if total is not None:
        total(await todo.count() if petition_ids else 0)
    if not petition_ids:
        return 0
    await _overwrite_freed_space()
    stripped = 0
    while True:
        async with in_transaction() as connection:
            ids = await _ids(todo.using_db(connection).order_by("id").limit(BATCH), "id")
            if not ids:
                break
            await _strip(connection, ids)
        stripped += len(ids)
        if progress is not None:
            progress(len(ids))
    await (
        Comment.filter(petition_id__in=petition_ids)
        .exclude(email="")
        .update(email="", email_canonical="")
    )
    await _checkpoint()
    return stripped


async def _strip(connection: BaseDBAsyncClient, ids: list[int]) -> None:
    """Forget these signatures' emails and addresses. The canonical email must stay unique per
    petition, so it becomes a token of the row's own id; no mail of theirs is sent any more."""
    places = marks(connection, len(ids))
    inside = ",".join(places)
    anonymous = "'anonymised-' || CAST(\"id\" AS TEXT)"
    await connection.execute_query(
        f'UPDATE "signature" SET "email" = \'\', "email_canonical" = {anonymous}, '
        f'"email_domain" = \'\', "address" = NULL, "token_hash" = NULL WHERE "id" IN ({inside})',
        ids,
    )
    await connection.execute_query(
        f'DELETE FROM "outbox_mail" WHERE "signature_id" IN ({inside})', ids
    )


async def _ids(rows: QuerySet[Any], column: str) -> list[int]:
    return [int(row[column]) for row in await rows.values(column)]


def _database() -> BaseDBAsyncClient:
    database: BaseDBAsyncClient = require_context().db()
    return database


async def _overwrite_freed_space() -> None:
    """SQLite: overwrite deleted content with zeros from now on (this connection)."""
    database = _database()
    if database.capabilities.dialect == "sqlite":
        await database.execute_script("PRAGMA secure_delete = ON")


async def _checkpoint() -> None:
    """Push the changes out of SQLite's write-ahead log into the (overwritten) database file and
    truncate the log; on PostgreSQL, vacuum the tables that held the data."""
    database = _database()
    if database.capabilities.dialect == "sqlite":
        await database.execute_script("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        for table in ("signature", "comment", "outbox_mail"):
            await database.execute_script(f'VACUUM "{table}"')
