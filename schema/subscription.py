"""Live updates: each subscription listens to its petition's channel through the hub."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

import models
from subscriptions import CommentAdded, FellBehind, PetitionChanged, Resync, SignatureAdded

from .context import Info
from .errors import PublicError
from .ids import global_id, parse_global_id
from .types import Comment, Signature, SignatureCountUpdate


async def _live_petition(info: Info, petition_id: str) -> models.Petition:
    parsed = parse_global_id(petition_id)
    petition = None
    if parsed is not None and parsed[0] == "Petition":
        petition = await models.find_petition(admin=info.context.admin, petition_id=parsed[1])
    if petition is None:
        raise PublicError("No petition has that id.")
    return petition


def _count_update(petition_id: int, count: int, goal: int | None) -> SignatureCountUpdate:
    return SignatureCountUpdate(
        petition_id=global_id("Petition", petition_id), signature_count=count, signature_goal=goal
    )


@strawberry.type
class Subscription:
    # Each resolver checks the petition before its stream starts, so that a refusal is
    # the protocol's `error` message rather than a result carrying errors.
    @strawberry.subscription(
        description="The petition's count now, then on every change (bursts may coalesce; the "
        "latest count arrives within a second)."
    )
    async def signature_count(
        self, info: Info, petition_id: strawberry.ID
    ) -> AsyncGenerator[SignatureCountUpdate, None]:
        petition = await _live_petition(info, petition_id)
        return _signature_counts(info, petition)

    @strawberry.subscription(
        description="Every new signature of the petition, once each, in the order they were made."
    )
    async def signature_added(
        self, info: Info, petition_id: strawberry.ID
    ) -> AsyncGenerator[Signature, None]:
        petition = await _live_petition(info, petition_id)
        return _signatures_added(info, petition)

    @strawberry.subscription(description="Every comment published on the petition from now on.")
    async def comment_added(
        self, info: Info, petition_id: strawberry.ID
    ) -> AsyncGenerator[Comment, None]:
        petition = await _live_petition(info, petition_id)
        return _comments_added(info, petition)


async def _signature_counts(
    info: Info, petition: models.Petition
) -> AsyncGenerator[SignatureCountUpdate, None]:
    async with info.context.hub.listen(
        petition.id, {"count", "signature"}, latest_only=True
    ) as listener:
        await petition.refresh_from_db(fields=["signature_count", "signature_goal"])
        count, goal = petition.signature_count, petition.signature_goal
        yield _count_update(petition.id, count, goal)
        async for event in listener:
            if isinstance(event, Resync):
                await petition.refresh_from_db(fields=["signature_count", "signature_goal"])
                count, goal = petition.signature_count, petition.signature_goal
                yield _count_update(petition.id, count, goal)
                continue
            assert isinstance(event, PetitionChanged | SignatureAdded)
            # Signature counts only grow, so an older event arriving late is dropped;
            # a goal change comes with the count as it then was.
            if event.signature_count > count or (
                isinstance(event, PetitionChanged) and event.signature_goal != goal
            ):
                count = max(count, event.signature_count)
                goal = event.signature_goal
                yield _count_update(petition.id, count, goal)


async def _signatures_added(
    info: Info, petition: models.Petition
) -> AsyncGenerator[Signature, None]:
    async with info.context.hub.listen(petition.id, {"signature"}) as listener:
        await petition.refresh_from_db(fields=["last_signature_number"])
        delivered = petition.last_signature_number
        try:
            async for event in listener:
                if isinstance(event, Resync):
                    await petition.refresh_from_db(fields=["last_signature_number"])
                    newest = petition.last_signature_number
                else:
                    assert isinstance(event, SignatureAdded)
                    newest = event.number
                if newest <= delivered:
                    continue  # already sent (or older than this subscription)
                if newest > delivered + 1 or isinstance(event, Resync):
                    # Events were missed, or arrived out of order between processes:
                    # the database holds every signature up to this one, numbered.
                    for row in await models.signatures_after(petition.id, delivered, up_to=newest):
                        yield Signature.from_row(row)
                else:
                    yield Signature.from_event(event)
                delivered = newest
        except FellBehind as error:
            raise PublicError(str(error)) from None


async def _comments_added(info: Info, petition: models.Petition) -> AsyncGenerator[Comment, None]:
    async with info.context.hub.listen(petition.id, {"comment"}) as listener:
        delivered = await models.newest_comment_id(petition.id)
        try:
            async for event in listener:
                if isinstance(event, Resync):
                    for row in await models.comments_after(petition.id, delivered):
                        yield Comment.from_row(row)
                        delivered = row.id
                    continue
                assert isinstance(event, CommentAdded)
                if event.comment_id > delivered:
                    yield Comment.from_event(event)
                    delivered = event.comment_id
        except FellBehind as error:
            raise PublicError(str(error)) from None
