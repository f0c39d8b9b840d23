"""Reading: a petition by slug or id, any node by global ID, and the list of petitions."""

from __future__ import annotations

from functools import partial

import strawberry

import models

from .context import Context, Info
from .errors import PublicError
from .ids import parse_global_id
from .pagination import Queried, paginate
from .types import (
    Comment,
    CommentConnection,
    CommentStatus,
    Node,
    Petition,
    PetitionConnection,
    PetitionEdge,
    PetitionStatus,
    Signature,
    comment_page,
)


async def resolve_node(info: Info, id: str) -> Node | None:
    """The visible object behind a global ID, or None for an ID that does not decode."""
    parsed = parse_global_id(id)
    if parsed is None:
        return None
    type_name, pk = parsed
    admin = info.context.admin
    reads = info.context.reads
    if type_name == "Petition":
        petition = await info.context.petitions.find(admin=admin, petition_id=pk)
        if petition is not None:
            reads.petition(petition.id, petition.closes_at)
            return Petition.from_row(petition)
    elif type_name == "Signature":
        signature = (
            await models.visible_signatures(admin=admin)
            .get_or_none(id=pk)
            .select_related("petition")
        )
        if signature is not None:
            reads.petition(signature.petition.id, signature.petition.closes_at)
            return Signature.from_row(signature)
    elif type_name == "Comment":
        comment = (
            await models.visible_comments(admin=admin).get_or_none(id=pk).select_related("petition")
        )
        if comment is not None:
            reads.petition(comment.petition.id, comment.petition.closes_at)
            return Comment.from_row(comment)
    reads.forbid()  # nothing found: no event would tell when something is
    return None


async def resolve_petition(
    context: Context, id: str | None = None, slug: str | None = None
) -> Petition | None:
    """`petition`, for Strawberry's resolver and for the compiled plan of hot documents."""
    if (id is None) == (slug is None):
        raise PublicError("Give the petition's `id` or its `slug`, exactly one of them.")
    find = partial(context.petitions.find, admin=context.admin)
    reads = context.reads
    row = None
    if id is not None:
        parsed = parse_global_id(id)
        if parsed is not None and parsed[0] == "Petition":
            row = await find(petition_id=parsed[1])
    else:
        row = await find(slug=slug)
    if row is None:
        reads.forbid()  # nothing found: no event would tell when something is
        return None
    reads.petition(row.id, row.closes_at)
    return Petition.from_row(row)


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global ID; null if nothing visible has it.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(description="One petition, by `slug` or by `id` (give exactly one).")
    async def petition(
        self, info: Info, id: strawberry.ID | None = None, slug: str | None = None
    ) -> Petition | None:
        return await resolve_petition(info.context, id, slug)

    @strawberry.field(description="Petitions the caller may see, newest first.")
    async def petitions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: PetitionStatus | None = None,
    ) -> PetitionConnection:
        info.context.reads.forbid()  # any petition's change or closing time changes lists
        rows = models.visible_petitions(admin=info.context.admin)
        if status is not None:
            rows = models.with_status(rows, status)
        edges, page_info = await paginate(
            "petition",
            Queried[models.Petition](rows, "id"),
            descending=True,
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return PetitionConnection(
            edges=[PetitionEdge(cursor=c, node=Petition.from_row(row)) for c, row in edges],
            page_info=page_info,
            total_count=await rows.count(),
        )

    @strawberry.field(
        description="Comments of one status, oldest first, of one petition or all "
        "(moderators and admins only)."
    )
    async def moderation_queue(
        self,
        info: Info,
        status: CommentStatus | None = CommentStatus.HELD,
        petition_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> CommentConnection:
        info.context.reads.forbid()
        if not info.context.may_moderate:
            raise PublicError("Only moderators and admins may read the moderation queue.")
        pk = None
        if petition_id is not None:
            parsed = parse_global_id(petition_id)
            if parsed is None or parsed[0] != "Petition":
                raise PublicError("`petitionId` is not a petition's ID.")
            pk = parsed[1]
        rows = models.moderation_queue(status or CommentStatus.HELD, pk)
        queried = Queried[models.Comment](rows, "id")
        return await comment_page(queried, await rows.count(), first, after, last, before)
