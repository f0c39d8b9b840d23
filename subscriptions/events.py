"""What a committed change tells every process: small, absolute, JSON on the wire."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class PetitionChanged:
    """An admin changed a petition (its goal, status, text…); its counts, as absolute values,
    as they were at the petition's signature clock `number` (see `SignatureAdded`)."""

    kind: ClassVar[str] = "count"
    petition_id: int
    signature_count: int
    signature_goal: int | None
    number: int = 0


@dataclass(frozen=True)
class CountChanged:
    """The count moved other than by a new signature (a signature struck off or released,
    erased, confirmed as already counted...): a count can go down. `number` is the tick of the
    petition's signature clock this change took, so that events arriving out of order between
    processes are put back in order: the count of the highest number is the latest."""

    kind: ClassVar[str] = "recount"
    petition_id: int
    signature_count: int
    signature_goal: int | None
    number: int


@dataclass(frozen=True)
class SignatureAdded:
    """A signature became valid (committed), with only its public fields (never an email).
    `number` is its place in the petition and the tick of the petition's signature clock."""

    kind: ClassVar[str] = "signature"
    petition_id: int
    signature_count: int
    signature_goal: int | None
    signature_id: int
    number: int
    name: str
    country: str | None
    comment: str | None
    created_at: str


@dataclass(frozen=True)
class CommentAdded:
    """A comment was published (committed), with only its public fields. `sequence` orders the
    petition's comment events: a gap means one was missed."""

    kind: ClassVar[str] = "comment"
    petition_id: int
    comment_id: int
    sequence: int
    author_name: str
    body: str
    created_at: str


@dataclass(frozen=True)
class CommentRemoved:
    """A published comment was taken down (committed); `sequence` as in `CommentAdded`."""

    kind: ClassVar[str] = "comment_removed"
    petition_id: int
    comment_id: int
    sequence: int


@dataclass(frozen=True)
class MilestoneReached:
    """The petition's count reached a milestone (or its goal) for the first time (committed):
    told once, whatever the count does next."""

    kind: ClassVar[str] = "milestone"
    petition_id: int
    count: int
    reached_at: str


@dataclass(frozen=True)
class Resync:
    """Local only: the broker was away, events may be lost; read the truth from the database."""

    kind: ClassVar[str] = "resync"
    petition_id: int


Event = (
    PetitionChanged
    | CountChanged
    | SignatureAdded
    | CommentAdded
    | CommentRemoved
    | MilestoneReached
    | Resync
)
_KINDS: dict[
    str,
    type[PetitionChanged]
    | type[CountChanged]
    | type[SignatureAdded]
    | type[CommentAdded]
    | type[CommentRemoved]
    | type[MilestoneReached],
] = {
    cls.kind: cls
    for cls in (
        PetitionChanged,
        CountChanged,
        SignatureAdded,
        CommentAdded,
        CommentRemoved,
        MilestoneReached,
    )
}


# PostgreSQL's NOTIFY takes at most 8,000 bytes: one message holds what fits well below that.
MESSAGE_BYTES = 7000


def encode(events: Sequence[Event]) -> list[str]:
    """Wire messages for `events`, in order: JSON lists, each within `MESSAGE_BYTES`."""
    messages: list[str] = []
    batch: list[str] = []
    size = 0
    for event in events:
        # vars(), not asdict(): the fields are flat, and asdict() deep-copies every value
        item = json.dumps({"kind": event.kind, **vars(event)}, separators=(",", ":"))
        if batch and size + len(item) + 1 > MESSAGE_BYTES:
            messages.append(f"[{','.join(batch)}]")
            batch, size = [], 0
        batch.append(item)
        size += len(item) + 1
    if batch:
        messages.append(f"[{','.join(batch)}]")
    return messages


def decode(message: str) -> list[Event]:
    """The events of one wire message, in order."""
    events: list[Event] = []
    for data in json.loads(message):
        kind = data.pop("kind")
        events.append(_KINDS[kind](**data))
    return events


class Publisher(Protocol):
    """Where the domain sends its committed changes (the hub, in a running server)."""

    async def publish(self, *events: Event) -> None: ...
