"""Hot public reads kept in memory and dropped (or brought up to date) by the events that change
them: whole answers per exact request (`ResultCache`), so that a widget's count read or a page
of signers skips GraphQL work until the next write, and petitions' rows (`PetitionRows`), so
that a read the first cannot answer still costs no query.

What answer may be kept: a query (never a mutation) from a caller without credentials, whose root
fields are `petition` or `node` and each found something, answered without errors. It depends
on the petitions it read; any event of one of them, from any process, drops it, and so does a
`Resync` (the broker was lost: events may have been missed) and the petition's `closesAt`.
An answer computed while one of its petitions changed is not kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import models
from subscriptions import CountChanged, Event, Resync, SignatureAdded


@dataclass
class Reads:
    """What one request read, noted by the resolvers; decides whether its answer is kept."""

    petitions: set[int] = field(default_factory=set)
    cacheable: bool = True
    expires: float = float("inf")  # time.time() after which the answer may be wrong

    def petition(self, petition_id: int, closes_at: datetime | None = None) -> None:
        self.petitions.add(petition_id)
        if closes_at is not None:
            self.expires = min(self.expires, closes_at.timestamp())

    def expire(self, moment: datetime) -> None:
        """The answer may be wrong from `moment` on, whatever happens (a figure of now)."""
        self.expires = min(self.expires, moment.timestamp())

    def forbid(self) -> None:
        self.cacheable = False

    @property
    def keepable(self) -> bool:
        """Read some petition, and nothing that forbids keeping the answer."""
        return self.cacheable and bool(self.petitions)


class Changes:
    """A clock that ticks on every event, and when each petition last changed on it: a cache
    that notes the time before it reads can tell whether what it read may have changed
    meanwhile, and so must not be kept. The hub's observer, like the caches."""

    def __init__(self) -> None:
        self.now = 0
        self._changed_at: dict[int, int] = {}
        self._cleared_at = 0  # a Resync: anything may have changed

    def observe(self, event: Event) -> None:
        self.now += 1
        if isinstance(event, Resync):
            self._cleared_at = self.now
        else:
            self._changed_at[event.petition_id] = self.now

    def since(self, moment: int, petition_ids: Iterable[int]) -> bool:
        """Whether any of these petitions may have changed after `moment`."""
        return self._cleared_at > moment or any(
            self._changed_at.get(pk, 0) > moment for pk in petition_ids
        )


Kept = TypeVar("Kept")


@dataclass
class _Entry(Generic[Kept]):
    body: Kept
    petitions: frozenset[int]
    expires: float


class ResultCache(Generic[Kept]):
    """Answers (`bytes` of JSON for /graphql; rendered pages for web/) by exact request."""

    def __init__(
        self, changes: Changes, enabled: Callable[[], bool], max_entries: int = 10_000
    ) -> None:
        self.changes = changes
        self.enabled = enabled
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, _Entry[Kept]] = OrderedDict()
        self._keys_of: dict[int, set[bytes]] = {}

    def get(self, key: bytes) -> Kept | None:
        entry = self._entries.get(key) if self.enabled() else None
        if entry is None or entry.expires <= time.time():
            return None
        self._entries.move_to_end(key)
        return entry.body

    def put(self, key: bytes, body: Kept, reads: Reads, since: int) -> None:
        """Keep `body` unless `reads` forbid it or a petition read changed after `since`."""
        if not (reads.keepable and self.enabled()):
            return
        if self.changes.since(since, reads.petitions):
            return
        self._entries[key] = _Entry(body, frozenset(reads.petitions), reads.expires)
        for pk in reads.petitions:
            self._keys_of.setdefault(pk, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def observe(self, event: Event) -> None:
        """The hub's observer: every event from every process."""
        if isinstance(event, Resync):
            self._entries.clear()
            self._keys_of.clear()
            return
        for key in self._keys_of.pop(event.petition_id, set()):
            self._drop(key)

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for pk in entry.petitions:
            keys = self._keys_of.get(pk)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_of[pk]


class PetitionRows:
    """Public petitions' rows, kept in memory and brought up to date by events, so that the
    count a widget reads costs no query even while signatures stream in (each of which drops
    the `ResultCache`'s answers about that petition).

    A `SignatureAdded` or `CountChanged` newer than a kept row (by the petition's signature
    clock, which orders every count, up or down) sets its count and clock, as the commit left
    them; any other event of the petition drops the
    row (an admin changed it, a comment was counted), and a `Resync` drops them all. A row read
    while its petition changed answers that one request and is not kept. Admins read drafts
    from the database, always."""

    def __init__(
        self, changes: Changes, enabled: Callable[[], bool], max_entries: int = 10_000
    ) -> None:
        self.changes = changes
        self.enabled = enabled
        self.max_entries = max_entries
        self._rows: OrderedDict[int, models.Petition] = OrderedDict()
        self._ids_by_slug: dict[str, int] = {}

    async def find(
        self, *, admin: bool, petition_id: int | None = None, slug: str | None = None
    ) -> models.Petition | None:
        """The petition with this id or slug, as `models.find_petition` finds it."""
        if admin or not self.enabled():  # admins see drafts too: from the database
            return await models.find_petition(admin=admin, petition_id=petition_id, slug=slug)
        pk = petition_id if petition_id is not None else self._ids_by_slug.get(slug or "")
        row = self._rows.get(pk) if pk is not None else None
        if row is not None:
            self._rows.move_to_end(row.id)
            return row
        since = self.changes.now
        row = await models.find_petition(admin=False, petition_id=petition_id, slug=slug)
        if row is not None and self.enabled() and not self.changes.since(since, [row.id]):
            self._rows[row.id] = row
            self._ids_by_slug[row.slug] = row.id
            while len(self._rows) > self.max_entries:
                self._drop(next(iter(self._rows)))
        return row

    def observe(self, event: Event) -> None:
        """The hub's observer: every event from every process."""
        if isinstance(event, Resync):
            self._rows.clear()
            self._ids_by_slug.clear()
            return
        row = self._rows.get(event.petition_id)
        if row is None:
            return
        if isinstance(event, SignatureAdded | CountChanged):
            if event.number > row.last_signature_number:  # the clock orders counts
                row.signature_count = event.signature_count
                row.last_signature_number = event.number
        else:
            self._drop(event.petition_id)

    def _drop(self, petition_id: int) -> None:
        row = self._rows.pop(petition_id, None)
        if row is not None and self._ids_by_slug.get(row.slug) == petition_id:
            del self._ids_by_slug[row.slug]
