"""What a committed change tells every process: small, absolute, JSON on the wire."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class CountChanged:
    """A petition's signature count or goal, as absolute values (a resync is one of these)."""

    kind: ClassVar[str] = "count"
    petition_id: int
    signature_count: int
    signature_goal: int | None


@dataclass(frozen=True)
class SignatureAdded:
    """A committed signature, with only its public fields (never an email)."""

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
    """A committed, published comment, with only its public fields."""

    kind: ClassVar[str] = "comment"
    petition_id: int
    comment_id: int
    author_name: str
    body: str
    created_at: str


@dataclass(frozen=True)
class Resync:
    """Local only: the broker was away, events may be lost; read the truth from the database."""

    kind: ClassVar[str] = "resync"
    petition_id: int


Event = CountChanged | SignatureAdded | CommentAdded | Resync
_KINDS: dict[str, type[CountChanged] | type[SignatureAdded] | type[CommentAdded]] = {
    cls.kind: cls for cls in (CountChanged, SignatureAdded, CommentAdded)
}


def encode(event: Event) -> str:
    return json.dumps({"kind": event.kind, **asdict(event)}, separators=(",", ":"))


def decode(message: str) -> Event:
    data: dict[str, Any] = json.loads(message)
    return _KINDS[data.pop("kind")](**data)


class Publisher(Protocol):
    """Where the domain sends its committed changes (the hub, in a running server)."""

    async def publish(self, event: Event) -> None: ...


class NoPublisher:
    """For work nobody watches live, such as loading the demo before the server starts."""

    async def publish(self, event: Event) -> None:
        return None
