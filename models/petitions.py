"""Petitions: who may see which, and how admins create and change them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from subscriptions import Event, PetitionChanged, Publisher

from . import figures
from .errors import RefusalCode, Refused
from .tables import (
    Comment,
    CommentStatus,
    Petition,
    PetitionStatus,
    Signature,
    SignatureStatus,
)
from .text import KEEP, Cleaner, changed, slugify


def visible_petitions(*, admin: bool) -> QuerySet[Petition]:
    """Drafts are for admins only."""
    petitions = Petition.all()
    return petitions if admin else petitions.exclude(status=PetitionStatus.DRAFT)


def visible_signatures(*, admin: bool) -> QuerySet[Signature]:
    """Valid signatures are public (but a draft's, which are for admins only, as the draft
    is); admins see every status."""
    if admin:
        return Signature.all()
    return Signature.filter(status=SignatureStatus.VALID).exclude(
        petition__status=PetitionStatus.DRAFT
    )


def valid_signatures(petition_id: int) -> QuerySet[Signature]:
    """One petition's public signatures: the valid ones."""
    return Signature.filter(petition_id=petition_id, status=SignatureStatus.VALID)


def visible_comments(*, admin: bool) -> QuerySet[Comment]:
    """Published comments; a draft's are for admins only, as the draft is."""
    comments = Comment.filter(status=CommentStatus.PUBLISHED)
    return comments if admin else comments.exclude(petition__status=PetitionStatus.DRAFT)


def published_comments(petition_id: int) -> QuerySet[Comment]:
    """One petition's public comments."""
    return Comment.filter(petition_id=petition_id, status=CommentStatus.PUBLISHED)


def with_status(petitions: QuerySet[Petition], status: PetitionStatus) -> QuerySet[Petition]:
    """Filter by the status callers see, in which a petition past `closes_at` is closed."""
    now = datetime.now(UTC)
    past_closing = Q(closes_at__isnull=False, closes_at__lte=now)
    if status is PetitionStatus.OPEN:
        return petitions.filter(Q(status=PetitionStatus.OPEN) & ~past_closing)
    if status is PetitionStatus.CLOSED:
        return petitions.filter(
            Q(status=PetitionStatus.CLOSED) | (Q(status=PetitionStatus.OPEN) & past_closing)
        )
    return petitions.filter(status=status)


def _utc(moment: datetime | None) -> datetime | None:
    """An instant in UTC: SQLite compares stored datetimes as text, so offsets must agree
    (a naive one, which the contract does not allow, is taken as UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


MAX_PETITION_ID = 2**31 - 1  # the id column is a 32-bit integer


async def find_petition(
    *, admin: bool, petition_id: int | None = None, slug: str | None = None
) -> Petition | None:
    petitions = visible_petitions(admin=admin)
    if petition_id is not None:
        if not 0 < petition_id <= MAX_PETITION_ID:
            return None
        return await petitions.get_or_none(id=petition_id)
    return await petitions.get_or_none(slug=slug)


async def create_petition(
    *,
    title: str,
    target: str,
    goal: str,
    body: str,
    letter: str | None = None,
    image_url: str | None = None,
    image_credit: str | None = None,
    slug: str | None = None,
    signature_goal: int | None = None,
    status: PetitionStatus = PetitionStatus.OPEN,
    closes_at: datetime | None = None,
) -> Petition:
    """A new petition (its count is 0: a goal, at least 1, is not reached yet)."""
    clean = Cleaner()
    values: dict[str, Any] = {
        "title": clean.line("title", title),
        "target": clean.line("target", target),
        "goal": clean.line("goal", goal),
        "body": clean.text("body", body),
        "letter": clean.optional(clean.text, "letter", letter),
        "image_url": clean.optional(clean.url, "image_url", image_url),
        "image_credit": clean.optional(clean.line, "image_credit", image_credit),
        "signature_goal": clean.positive("signature_goal", signature_goal),
        "status": status,
        "closes_at": _utc(closes_at),
    }
    given_slug = clean.optional(clean.slug, "slug", slug)
    clean.done()
    if given_slug is not None:
        try:
            return await Petition.create(slug=given_slug, **values)
        except IntegrityError:
            raise Refused.one(
                RefusalCode.INVALID_INPUT, "That slug is taken by another petition.", "slug"
            ) from None
    base = slugify(values["title"])
    for attempt in range(1, 1000):
        candidate = base if attempt == 1 else f"{base[:90]}-{attempt}"
        if await Petition.exists(slug=candidate):
            continue
        try:
            return await Petition.create(slug=candidate, **values)
        except IntegrityError:  # taken between the check and the insert: try the next one
            continue
    raise Refused.one(RefusalCode.INVALID_INPUT, "Give this petition a slug of its own.", "slug")


async def update_petition(
    petition_id: int,
    *,
    publisher: Publisher,
    title: str | None = KEEP,
    target: str | None = KEEP,
    goal: str | None = KEEP,
    body: str | None = KEEP,
    letter: str | None = KEEP,
    image_url: str | None = KEEP,
    image_credit: str | None = KEEP,
    signature_goal: int | None = KEEP,
    status: PetitionStatus | None = KEEP,
    closes_at: datetime | None = KEEP,
) -> Petition:
    """Change the given fields; `KEEP` (or null, for fields that cannot be empty) keeps one."""
    petition = await find_petition(admin=True, petition_id=petition_id)
    if petition is None:
        raise Refused.one(RefusalCode.NOT_FOUND, "No petition has that id.", "id")
    clean = Cleaner()
    required = {"title": title, "target": target, "goal": goal}
    values: dict[str, Any] = {
        name: clean.line(name, value)
        for name, value in changed(required).items()
        if value is not None
    }
    if body is not KEEP and body is not None:
        values["body"] = clean.text("body", body)
    if status is not KEEP and status is not None:
        values["status"] = status
    values |= changed(
        {
            "letter": letter if letter is KEEP else clean.optional(clean.text, "letter", letter),
            "image_url": image_url
            if image_url is KEEP
            else clean.optional(clean.url, "image_url", image_url),
            "image_credit": image_credit
            if image_credit is KEEP
            else clean.optional(clean.line, "image_credit", image_credit),
            "signature_goal": signature_goal
            if signature_goal is KEEP
            else clean.positive("signature_goal", signature_goal),
            "closes_at": closes_at if closes_at is KEEP else _utc(closes_at),
        }
    )
    clean.done()
    closing = petition.status is not PetitionStatus.CLOSED
    if closing and values.get("status") is PetitionStatus.CLOSED:
        values["closed_at"] = datetime.now(UTC)  # `petitions anonymise` counts from here
    if values:
        reached: list[Event] = []
        async with in_transaction() as connection:
            # Never write the counters from this (possibly stale) copy: update only what
            # changed, under the row lock, where a goal at or below the count is reached.
            rows = Petition.filter(id=petition_id).using_db(connection)
            await rows.select_for_update().first()
            await rows.update(**values)
            await petition.refresh_from_db(using_db=connection)
            if "signature_goal" in values:
                reached += await figures.reach_goal(connection, petition, datetime.now(UTC))
        event = PetitionChanged(
            petition.id,
            petition.signature_count,
            petition.signature_goal,
            petition.last_signature_number,
        )
        await publisher.publish(event, *reached)
    return petition
