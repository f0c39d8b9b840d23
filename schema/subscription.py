"""Live updates: each subscription listens to its petition's channel through the hub."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

import models
from subscriptions import (
    CommentAdded,
    CountChanged,
    FellBehind,
    PetitionChanged,
    Resync,
    SignatureAdded,
)
from subscriptions import CommentRemoved as CommentRemovedEvent
from subscriptions import MilestoneReached as MilestoneReachedEvent

from .context import Info
from .errors import PublicError
from .ids import global_id, parse_global_id
from .types import Comment, CommentRemoved, Milestone, Signature, SignatureCountUpdate


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

    @strawberry.subscription(
        description="Every comment published on the petition from now on, once each, in order."
    )
    async def comment_added(
        self, info: Info, petition_id: strawberry.ID
    ) -> AsyncGenerator[Comment, None]:
        petition = await _live_petition(info, petition_id)
        return _comments_added(info, petition)

    @strawberry.subscription(
        description="Every published comment taken down (hidden, held, spam) from now on."
    )
    async def comment_removed(
        self, info: Info, petition_id: strawberry.ID
    ) -> AsyncGenerator[CommentRemoved, None]:
        petition = await _live_petition(info, petition_id)
        return _comments_removed(info, petition)

    @strawberry.subscription(
        description="Each milestone of the petition (see `Petition.milestones`) once, when its "
        "count first reaches it, from whichever process counted it."
    )
    async def milestone_reached(
        self, info: Info, petition_id: strawberry.ID
    ) -> AsyncGenerator[Milestone, None]:
        petition = await _live_petition(info, petition_id)
        return _milestones_reached(info, petition)


async def _signature_counts(
    info: Info, petition: models.Petition
) -> AsyncGenerator[SignatureCountUpdate, None]:
    fields = ["signature_count", "signature_goal", "last_signature_number"]
    async with info.context.hub.listen(
        petition.id, {"count", "signature", "recount"}, latest_only=True
    ) as listener:
        await petition.refresh_from_db(fields=fields)
        count, goal = petition.signature_count, petition.signature_goal
        clock = petition.last_signature_number
        yield _count_update(petition.id, count, goal)
        async for event in listener:
            if isinstance(event, Resync):
                await petition.refresh_from_db(fields=fields)
                newer = (
                    petition.signature_count,
                    petition.signature_goal,
                    petition.last_signature_number,
                )
            else:
                assert isinstance(event, PetitionChanged | SignatureAdded | CountChanged)
                # Counts go up and down: the petition's signature clock says which is latest,
                # so an older event arriving late (from another process) is dropped. An
                # admin's change takes no tick: it comes with the clock as it then stood.
                late = event.number < clock or (
                    event.number == clock and not isinstance(event, PetitionChanged)
                )
                if late:
                    continue
                newer = (event.signature_count, event.signature_goal, event.number)
            if newer[:2] != (count, goal):
                yield _count_update(petition.id, newer[0], newer[1])
            count, goal, clock = newer


async def _signatures_added(
    info: Info, petition: models.Petition
) -> AsyncGenerator[Signature, None]:
    async with info.context.hub.listen(petition.id, {"signature", "recount"}) as listener:
        await petition.refresh_from_db(fields=["last_signature_number"])
        delivered = petition.last_signature_number
        try:
            async for event in listener:
                if isinstance(event, Resync):
                    await petition.refresh_from_db(fields=["last_signature_number"])
                    newest = petition.last_signature_number
                else:
                    assert isinstance(event, SignatureAdded | CountChanged)
                    newest = event.number  # a tick of the clock: a signature's, or a recount's
                if newest <= delivered:
                    continue  # already sent (or older than this subscription)
                if newest > delivered + 1 or isinstance(event, Resync):
                    # Events were missed, or arrived out of order between processes: the
                    # database holds every valid signature up to this tick, numbered.
                    for row in await models.signatures_after(petition.id, delivered, up_to=newest):
                        yield Signature.from_row(row)
                elif isinstance(event, SignatureAdded):
                    yield Signature.from_event(event)
                delivered = newest
        except FellBehind as error:
            raise PublicError(str(error)) from None


async def _comments_added(info: Info, petition: models.Petition) -> AsyncGenerator[Comment, None]:
    async for change in _comment_changes(info, petition, published=True):
        if isinstance(change, models.Comment):
            yield Comment.from_row(change)
        elif isinstance(change, CommentAdded):
            yield Comment.from_event(change)


async def _comments_removed(
    info: Info, petition: models.Petition
) -> AsyncGenerator[CommentRemoved, None]:
    async for change in _comment_changes(info, petition, published=False):
        if isinstance(change, models.Comment):
            yield CommentRemoved.of(change.petition_id, change.id)
        elif isinstance(change, CommentRemovedEvent):
            yield CommentRemoved.of(change.petition_id, change.comment_id)


async def _comment_changes(
    info: Info, petition: models.Petition, *, published: bool
) -> AsyncGenerator[models.Comment | CommentAdded | CommentRemovedEvent, None]:
    """The petition's comments published (or taken down) from now on, each change once, in the
    order of their `sequence`: the events as they come, or replayed from the petition's log of
    changes when some were missed or arrived out of order (both kinds share one sequence, so
    each subscription follows both)."""
    wanted = CommentAdded if published else CommentRemovedEvent
    async with info.context.hub.listen(petition.id, {"comment", "comment_removed"}) as listener:
        delivered = await models.last_comment_sequence(petition.id)
        try:
            async for event in listener:
                if isinstance(event, Resync):
                    newest = await models.last_comment_sequence(petition.id)
                else:
                    assert isinstance(event, CommentAdded | CommentRemovedEvent)
                    newest = event.sequence
                if newest <= delivered:
                    continue
                if newest > delivered + 1 or isinstance(event, Resync):
                    for change in await models.comment_changes(
                        petition.id, delivered, up_to=newest
                    ):
                        if change.public == published:
                            yield change.comment
                elif isinstance(event, wanted):
                    yield event
                delivered = newest
        except FellBehind as error:
            raise PublicError(str(error)) from None


async def _milestones_reached(
    info: Info, petition: models.Petition
) -> AsyncGenerator[Milestone, None]:
    """Milestones reached from now on, each once: a milestone's row is written once, and its
    event told once; after a lost broker, the rows tell what the events may not have."""
    async with info.context.hub.listen(petition.id, {"milestone"}) as listener:
        delivered = {count for count, _ in await models.milestones_reached(petition.id)}
        async for event in listener:
            if isinstance(event, Resync):
                missed = [
                    Milestone(count=count, reached_at=reached_at)
                    for count, reached_at in await models.milestones_reached(petition.id)
                    if count not in delivered
                ]
            else:
                assert isinstance(event, MilestoneReachedEvent)
                reached_at = datetime.fromisoformat(event.reached_at)
                missed = [Milestone(count=event.count, reached_at=reached_at)]
            for milestone in missed:
                if milestone.count not in delivered:
                    delivered.add(milestone.count)
                    yield milestone
