"""The GraphQL object types, built from stored rows (or from events, for subscriptions)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry

import models
from subscriptions import CommentAdded, SignatureAdded

from .context import Info
from .errors import PublicError
from .ids import global_id
from .pagination import Listed, PageInfo, Source, paginate

PetitionStatus = models.PetitionStatus
strawberry.enum(
    PetitionStatus,
    description="DRAFT: seen by admins only. OPEN: takes signatures. CLOSED: read only.",
)


CommentStatus = models.CommentStatus
strawberry.enum(
    CommentStatus,
    description="PUBLISHED: public (listed, counted, pushed). HELD: waiting for a moderator. "
    "SPAM: judged spam. HIDDEN: taken down, by a moderator or by readers' reports.",
)


SignatureStatus = models.SignatureStatus
strawberry.enum(
    SignatureStatus,
    description="PENDING: waiting for its email confirmation. VALID: counted and public. "
    "QUARANTINED: held silently for review. INVALID: struck off by an admin.",
)

SignatureSourceKind = models.SourceKind
strawberry.enum(
    SignatureSourceKind,
    name="SignatureSourceKind",
    description="IP: the client address. EMAIL_DOMAIN: the email's domain. COUNTRY: the "
    "country given.",
)


Interval = models.Interval
strawberry.enum(
    Interval,
    description="The width of a bucket of signatures over time: a whole UTC minute, hour or day.",
)


@strawberry.type(description="A petition's valid signatures from one country.")
class CountryCount:
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 code, upper-case.")
    count: int = strawberry.field(description="Valid signatures from that country.")


@strawberry.type(description="A petition's valid signatures signed in one minute, hour or day.")
class CountBucket:
    start: datetime = strawberry.field(description="The bucket's first instant, UTC.")
    count: int = strawberry.field(
        description="Valid signatures signed in [start, start + interval)."
    )


@strawberry.type(description="A count a petition aims past: 100, 1,000 … and its goal.")
class Milestone:
    count: int = strawberry.field(description="The threshold.")
    reached_at: datetime | None = strawberry.field(
        description="When the count first reached it (kept if the count drops); null until then."
    )


@strawberry.type(description="Where some of a petition's signatures came from (admins only).")
class SignatureSource:
    kind: SignatureSourceKind = strawberry.field(description="What `value` is.")
    value: str = strawberry.field(description="An IP address, an email domain, or a country code.")
    count: int = strawberry.field(description="Signatures from it in the window asked.")
    share: float = strawberry.field(
        description="`count` over all the petition's signatures in that window."
    )

    @classmethod
    def of(cls, source: models.Source) -> SignatureSource:
        return cls(kind=source.kind, value=source.value, count=source.count, share=source.share)


@strawberry.interface(description="An object with a global ID that `node(id:)` resolves.")
class Node:
    id: strawberry.ID = strawberry.field(description="The object's opaque global ID.")


@strawberry.type(description="One person's signature, showing only public fields.")
class Signature(Node):
    name: str = strawberry.field(description='"First Last", or "Anonymous" if hidden.')
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 code, upper-case.")
    comment: str | None = strawberry.field(description="Why they signed, if they said.")
    created_at: datetime = strawberry.field(description="When it was signed.")
    status: SignatureStatus = strawberry.field(
        description="VALID for every signature public readers see; admins see the others."
    )

    @classmethod
    def from_row(
        cls,
        row: models.Signature | models.SignatureRow | models.NewSignature,
        *,
        as_valid: bool = False,
    ) -> Signature:
        """`as_valid`: answer a held signature as a counted one (its signer learns nothing)."""
        return cls(
            id=global_id("Signature", row.id),
            name=models.public_name(row.first_name, row.last_name, row.show_name),
            country=row.country,
            comment=row.comment,
            created_at=row.created_at,
            status=SignatureStatus.VALID if as_valid else row.status,
        )

    @classmethod
    def from_event(cls, event: SignatureAdded) -> Signature:
        return cls(
            id=global_id("Signature", event.signature_id),
            name=event.name,
            country=event.country,
            comment=event.comment,
            created_at=datetime.fromisoformat(event.created_at),
            status=SignatureStatus.VALID,
        )


@strawberry.type(description="A comment on a petition (public readers see published ones).")
class Comment(Node):
    author_name: str = strawberry.field(description="The name the author gave.")
    body: str = strawberry.field(description="The comment; line breaks kept.")
    created_at: datetime = strawberry.field(description="When it was posted.")
    status: CommentStatus = strawberry.field(
        description="PUBLISHED for every comment public readers see; moderators see the others."
    )

    @classmethod
    def from_row(
        cls, row: models.Comment | models.CommentRow, status: CommentStatus | None = None
    ) -> Comment:
        return cls(
            id=global_id("Comment", row.id),
            author_name=row.author_name,
            body=row.body,
            created_at=row.created_at,
            status=status or row.status,
        )

    @classmethod
    def from_event(cls, event: CommentAdded) -> Comment:
        return cls(
            id=global_id("Comment", event.comment_id),
            author_name=event.author_name,
            body=event.body,
            created_at=datetime.fromisoformat(event.created_at),
            status=CommentStatus.PUBLISHED,
        )


@strawberry.type(description="A published comment left the petition's public list.")
class CommentRemoved:
    id: strawberry.ID = strawberry.field(description="The comment's global ID.")
    petition_id: strawberry.ID = strawberry.field(description="The petition's global ID.")

    @classmethod
    def of(cls, petition_id: int, comment_id: int) -> CommentRemoved:
        return cls(
            id=global_id("Comment", comment_id), petition_id=global_id("Petition", petition_id)
        )


@strawberry.type(description="A signature and its cursor.")
class SignatureEdge:
    cursor: str = strawberry.field(description="Where this signature sits in the list.")
    node: Signature = strawberry.field(description="The signature.")


@strawberry.type(description="Signatures, newest first.")
class SignatureConnection:
    edges: list[SignatureEdge] = strawberry.field(description="This page of signatures.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(description="All signatures: the `signatureCount`.")


@strawberry.type(description="A comment and its cursor.")
class CommentEdge:
    cursor: str = strawberry.field(description="Where this comment sits in the list.")
    node: Comment = strawberry.field(description="The comment.")


@strawberry.type(description="Published comments, oldest first, as a conversation reads.")
class CommentConnection:
    edges: list[CommentEdge] = strawberry.field(description="This page of comments.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(description="All published comments.")


async def comment_page(
    rows: Source[Any],
    total_count: int,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> CommentConnection:
    """One page of comments, oldest first, by their ids."""
    edges, info = await paginate(
        "comment", rows, descending=False, first=first, after=after, last=last, before=before
    )
    return CommentConnection(
        edges=[CommentEdge(cursor=c, node=Comment.from_row(row)) for c, row in edges],
        page_info=info,
        total_count=total_count,
    )


@strawberry.type(description="A petition: what it asks, of whom, and how many have signed.")
class Petition(Node):
    slug: str = strawberry.field(description="Unique, URL-safe name, derived from the title.")
    title: str = strawberry.field(description="The headline.")
    target: str = strawberry.field(description="Who the petition asks.")
    goal: str = strawberry.field(description="What it asks for, in a sentence.")
    body: str = strawberry.field(description="The case, in paragraphs.")
    letter: str | None = strawberry.field(description="The letter sent to the target.")
    image_url: str | None = strawberry.field(description="An http(s) URL of its image.")
    image_credit: str | None = strawberry.field(description="Who to credit for the image.")
    status: PetitionStatus = strawberry.field(
        description="OPEN until closed or past `closesAt`; DRAFT only for admins."
    )
    signature_goal: int | None = strawberry.field(description="The count it aims for.")
    signature_count: int = strawberry.field(description="Exact number of signatures.")
    comment_count: int = strawberry.field(description="Number of published comments.")
    created_at: datetime = strawberry.field(description="When it was created.")
    closes_at: datetime | None = strawberry.field(description="When it stops taking signatures.")
    pk: strawberry.Private[int]
    # The petition's signature clock as this row was read: its pages list no signer the
    # count beside them has not counted yet (the count a reader sees may be kept in memory,
    # and lag the rows by the moment between a commit and its event).
    clock: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Petition) -> Petition:
        return cls(
            id=global_id("Petition", row.id),
            slug=row.slug,
            title=row.title,
            target=row.target,
            goal=row.goal,
            body=row.body,
            letter=row.letter,
            image_url=row.image_url,
            image_credit=row.image_credit,
            status=row.effective_status,
            signature_goal=row.signature_goal,
            signature_count=row.signature_count,
            comment_count=row.comment_count,
            created_at=row.created_at,
            closes_at=row.closes_at,
            pk=row.id,
            clock=row.last_signature_number,
        )

    @strawberry.field(description="Its signatures, newest first.")
    async def signatures(
        self,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> SignatureConnection:
        rows = Listed[models.SignatureRow](models.VALID_SIGNATURES, self.pk, ceiling=self.clock)
        edges, info = await paginate(
            "signature",
            rows,
            descending=True,
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return SignatureConnection(
            edges=[SignatureEdge(cursor=c, node=Signature.from_row(row)) for c, row in edges],
            page_info=info,
            total_count=self.signature_count,
        )

    @strawberry.field(
        description="Admins only (null for anyone else): where this petition's signatures come "
        "from, the largest sources first, over the last `hours` hours (every status)."
    )
    async def signature_sources(
        self,
        info: Info,
        kind: SignatureSourceKind,
        hours: int | None = 24,
        first: int | None = 20,
    ) -> list[SignatureSource] | None:
        if not info.context.admin:
            return None
        hours = 24 if hours is None else hours
        first = 20 if first is None else first
        if not 1 <= hours <= 24 * 366:
            raise PublicError("`hours` must be between 1 and 8784 (a year).")
        if not 1 <= first <= 100:
            raise PublicError("`first` must be between 1 and 100.")
        sources = await models.signature_sources(self.pk, kind, hours=hours, first=first)
        return [SignatureSource.of(source) for source in sources]

    @strawberry.field(
        description="Its valid signatures by country, largest first (ties by code), `first` "
        "(1 to 250) countries; signatures without a country are left out."
    )
    async def countries(self, info: Info, first: int | None = 10) -> list[CountryCount]:
        info.context.reads.petition(self.pk, self.closes_at)
        try:
            found = await models.country_counts(self.pk, 10 if first is None else first)
        except models.OutOfRange as error:
            raise PublicError(str(error)) from None
        return [CountryCount(country=country, count=count) for country, count in found]

    @strawberry.field(
        description="Its valid signatures per minute, hour or day, by when they were signed, "
        "oldest first, empty buckets included: the buckets starting in [since, until) (`until` "
        "defaults to now, `since` to 60 intervals before `until`), at most 1,000."
    )
    async def signatures_over_time(
        self,
        info: Info,
        interval: Interval,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[CountBucket]:
        reads = info.context.reads
        reads.petition(self.pk, self.closes_at)
        now = datetime.now(UTC)
        try:
            buckets = await models.signatures_over_time(self.pk, interval, since, until, now=now)
        except models.OutOfRange as error:
            raise PublicError(str(error)) from None
        if until is None:  # the answer moves on when a new bucket begins
            reads.expire(models.next_bucket(now, interval))
        return [CountBucket(start=start, count=count) for start, count in buckets]

    @strawberry.field(
        description="Its milestones, ascending: 100, 1,000, 10,000, 100,000 and 1,000,000, and "
        "its `signatureGoal` when set (once, if it is one of them)."
    )
    async def milestones(self, info: Info) -> list[Milestone]:
        info.context.reads.petition(self.pk, self.closes_at)
        found = await models.milestones(self.pk, self.signature_goal)
        return [Milestone(count=count, reached_at=at) for count, at in found]

    @strawberry.field(description="Its published comments, oldest first.")
    async def comments(
        self,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> CommentConnection:
        rows = Listed[models.CommentRow](models.PUBLISHED_COMMENTS, self.pk)
        return await comment_page(rows, self.comment_count, first, after, last, before)


@strawberry.type(description="A petition and its cursor.")
class PetitionEdge:
    cursor: str = strawberry.field(description="Where this petition sits in the list.")
    node: Petition = strawberry.field(description="The petition.")


@strawberry.type(description="Petitions, newest first.")
class PetitionConnection:
    edges: list[PetitionEdge] = strawberry.field(description="This page of petitions.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(description="All petitions the caller may see.")


@strawberry.type(description="A petition's live count, sent on subscribe and on every change.")
class SignatureCountUpdate:
    petition_id: strawberry.ID = strawberry.field(description="The petition's global ID.")
    signature_count: int = strawberry.field(description="Exact number of signatures.")
    signature_goal: int | None = strawberry.field(description="The count it aims for.")
