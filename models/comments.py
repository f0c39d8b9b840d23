"""Comments and their moderation: the spam filter's first judgement, moderators' decisions and
readers' reports, each moving the petition's published count exactly.

A comment is public only while `PUBLISHED`. Every change into or out of that status happens
under the petition's row lock (as signing does), moves `comment_count` by one, is logged as a
`CommentChange` with the petition's next `sequence` number and, after the commit, pushed as
`CommentAdded` or `CommentRemoved` with that number: subscribers deliver the changes in that
order and replay what they missed from the log (`comment_changes`). Changes between two statuses
that are not public (HELD to SPAM, say) move nothing and push nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

import metrics
from subscriptions import CommentAdded, CommentRemoved, Event, Publisher

from . import spam
from .errors import RefusalCode, Refused
from .signing import open_petition
from .tables import (
    Comment,
    CommentChange,
    CommentReport,
    CommentStatus,
    Petition,
    PetitionStatus,
)
from .text import Cleaner, canonical_email

MAX_COMMENT_ID = 2**63 - 1


class Moderation(StrEnum):
    """What becomes of a new comment (`PETITIONS_COMMENT_MODERATION`)."""

    FILTER = "filter"  # the spam filter decides: published, held when doubtful, or spam
    PRE = "pre"  # every comment held for a moderator (the filter still sets spam apart)
    OFF = "off"  # every comment published at once


@dataclass(frozen=True)
class Commented:
    comment: Comment
    petition: Petition

    @property
    def told(self) -> CommentStatus:
        """What its author is told: published, or held (held for review or judged spam
        alike: a spammer learns nothing)."""
        published = self.comment.status is CommentStatus.PUBLISHED
        return CommentStatus.PUBLISHED if published else CommentStatus.HELD


def first_status(
    body: str, petition: Petition, moderation: Moderation
) -> tuple[CommentStatus, float | None]:
    """A new comment's status, and the spam filter's score of it (None when it did not run)."""
    if moderation is Moderation.OFF:
        return CommentStatus.PUBLISHED, None
    about = spam.petition_text(
        petition.title, petition.target, petition.goal, petition.body, petition.letter
    )
    judgement = spam.judge(body, petition_text=about)
    if judgement.spam:
        return CommentStatus.SPAM, judgement.score
    if judgement.doubtful or moderation is Moderation.PRE:
        return CommentStatus.HELD, judgement.score
    return CommentStatus.PUBLISHED, judgement.score


async def add_comment(
    petition_id: int,
    *,
    author_name: str,
    email: str,
    body: str,
    publisher: Publisher,
    moderation: Moderation = Moderation.FILTER,
) -> Commented:
    """Add a comment to an open petition: published (and counted in the same transaction),
    held for a moderator, or set apart as spam."""
    clean = Cleaner()
    author_name = clean.line("author_name", author_name)
    email = clean.email("email", email)
    body = clean.text("body", body, limit="comment_body")
    clean.done()
    petition = await open_petition(petition_id)
    async with in_transaction() as connection:
        comment, event = await store_comment(
            connection, petition, author_name, email, body, moderation
        )
    await petition.refresh_from_db(fields=["comment_count", "signature_count"])
    metrics.comment(str(comment.status.value).lower())
    if event is not None:
        await publisher.publish(event)
    return Commented(comment, petition)


async def store_comment(
    connection: BaseDBAsyncClient,
    petition: Petition,
    author_name: str,
    email: str,
    body: str,
    moderation: Moderation,
    **extra: Any,
) -> tuple[Comment, Event | None]:
    """Store a clean comment with the status the filter (or `moderation`) gives it, in the
    caller's transaction; the event to push after the commit, if it was published."""
    status, score = first_status(body, petition, moderation)
    comment = await Comment.create(
        petition_id=petition.id,
        author_name=author_name,
        email=email,
        email_canonical=canonical_email(email),
        body=body,
        status=CommentStatus.HELD,
        spam_score=score,
        using_db=connection,
        **extra,
    )
    return comment, await set_comment_status(connection, comment, status)


async def moderate_comment(
    comment_id: int, status: CommentStatus, *, publisher: Publisher
) -> Comment:
    """A moderator's decision: any status. Publishing lists, counts and pushes the comment once
    (publishing it again changes nothing); taking a published one down unlists, uncounts and
    pushes its removal. A comment a moderator published is no longer hidden by reports."""
    async with in_transaction() as connection:
        comment = await _locked_comment(connection, comment_id, admin=True)
        if comment is None:
            raise Refused.one(RefusalCode.NOT_FOUND, "No comment has that id.", "id")
        comment.approved = status is CommentStatus.PUBLISHED
        await comment.save(using_db=connection, update_fields=["approved"])
        event = await set_comment_status(connection, comment, status)
    if event is not None:
        await publisher.publish(event)
    return comment


async def report_comment(
    comment_id: int,
    *,
    address: str,
    reason: str | None,
    reports_to_hide: int,
    publisher: Publisher,
) -> None:
    """One report per client address per comment (a second one changes nothing); a published
    comment that `reports_to_hide` addresses reported is hidden until a moderator decides."""
    clean = Cleaner()
    reason = clean.optional(clean.line, "reason", reason)
    clean.done()
    async with in_transaction() as connection:
        comment = await _locked_comment(connection, comment_id, admin=False)
        if comment is None or comment.status is not CommentStatus.PUBLISHED:
            raise Refused.one(RefusalCode.NOT_FOUND, "No published comment has that id.", "id")
        reports = CommentReport.filter(comment_id=comment.id).using_db(connection)
        if await reports.filter(address=address).exists():  # under the lock: no race
            return
        await CommentReport.create(
            comment_id=comment.id, address=address, reason=reason, using_db=connection
        )
        event = None
        if not comment.approved:
            if await reports.count() >= reports_to_hide:
                event = await set_comment_status(connection, comment, CommentStatus.HIDDEN)
    if event is not None:
        await publisher.publish(event)


async def _locked_comment(
    connection: BaseDBAsyncClient, comment_id: int, *, admin: bool
) -> Comment | None:
    """The comment, with its petition's row locked (the lock every count change takes); a
    draft's comments are for admins only."""
    if not 0 < comment_id <= MAX_COMMENT_ID:
        return None
    found = await Comment.filter(id=comment_id).using_db(connection).first()
    if found is None:
        return None
    petition = await (
        Petition.filter(id=found.petition_id).select_for_update().using_db(connection).first()
    )
    if petition is None or (petition.status is PetitionStatus.DRAFT and not admin):
        return None
    return await Comment.filter(id=comment_id).using_db(connection).first()  # under the lock


async def set_comment_status(
    connection: BaseDBAsyncClient, comment: Comment, status: CommentStatus
) -> Event | None:
    """Set a comment's status under its petition's row lock; the event to push after the
    commit when its visibility changed."""
    was_public = comment.status is CommentStatus.PUBLISHED
    public = status is CommentStatus.PUBLISHED
    comment.status = status
    if was_public == public:
        await comment.save(using_db=connection, update_fields=["status"])
        return None
    petition = Petition.filter(id=comment.petition_id).using_db(connection)
    await petition.update(
        comment_count=F("comment_count") + (1 if public else -1),
        last_comment_sequence=F("last_comment_sequence") + 1,
    )
    [counters] = await petition.values("last_comment_sequence")
    sequence = int(counters["last_comment_sequence"])
    await comment.save(using_db=connection, update_fields=["status"])
    await CommentChange.create(
        petition_id=comment.petition_id,
        sequence=sequence,
        comment_id=comment.id,
        public=public,
        using_db=connection,
    )
    if public:
        return CommentAdded(
            petition_id=comment.petition_id,
            comment_id=comment.id,
            sequence=sequence,
            author_name=comment.author_name,
            body=comment.body,
            created_at=comment.created_at.isoformat(),
        )
    return CommentRemoved(petition_id=comment.petition_id, comment_id=comment.id, sequence=sequence)


async def last_comment_sequence(petition_id: int) -> int:
    petition = await Petition.get_or_none(id=petition_id).only("id", "last_comment_sequence")
    return petition.last_comment_sequence if petition is not None else 0


async def comment_changes(petition_id: int, sequence: int, *, up_to: int) -> list[CommentChange]:
    """The petition's comment changes numbered (sequence, up_to], in order, each with its
    comment: to replay what a live stream missed."""
    return (
        await CommentChange.filter(
            petition_id=petition_id, sequence__gt=sequence, sequence__lte=up_to
        )
        .select_related("comment")
        .order_by("sequence")
    )


def moderation_queue(status: CommentStatus, petition_id: int | None = None) -> QuerySet[Comment]:
    """Comments of one status, for moderators: of one petition, or of all."""
    comments = Comment.filter(status=status)
    return comments if petition_id is None else comments.filter(petition_id=petition_id)
