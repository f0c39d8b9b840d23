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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import models
from subscriptions import Event, Resync, SignatureAdded


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

    def forbid(self) -> None:
        self.cacheable = False

    @property
    def keepable(self) -> bool:
        """Read some petition, and nothing that forbids keeping the answer."""
        return self.cacheable and bool(self.petitions)


@dataclass
class _Entry:
    body: bytes
    petitions: frozenset[int]
    expires: float


class ResultCache:
    def __init__(self, enabled: Callable[[], bool], max_entries: int = 10_000) -> None:
        self.enabled = enabled
        self.max_entries = max_entries
        self.generation = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._keys_of: dict[int, set[bytes]] = {}
        self._changed_at: dict[int, int] = {}
        self._cleared_at = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> bytes | None:
        entry = self._entries.get(key) if self.enabled() else None
        if entry is None or entry.expires <= time.time():
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.body

    def put(self, key: bytes, body: bytes, reads: Reads, since: int) -> None:
        """Keep `body` unless `reads` forbid it or a petition read changed after `since`."""
        if not (reads.keepable and self.enabled()):
            return
        if self._cleared_at > since or any(
            self._changed_at.get(pk, 0) > since for pk in reads.petitions
        ):
            return
        self._entries[key] = _Entry(body, frozenset(reads.petitions), reads.expires)
        for pk in reads.petitions:
            self._keys_of.setdefault(pk, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def observe(self, event: Event) -> None:
        """The hub's observer: every event from every process."""
        if isinstance(event, Resync):
            self.clear()
        else:
            self.invalidate(event.petition_id)

    def invalidate(self, petition_id: int) -> None:
        self.generation += 1
        self._changed_at[petition_id] = self.generation
        for key in self._keys_of.pop(petition_id, set()):
            self._drop(key)

    def clear(self) -> None:
        self.generation += 1
        self._cleared_at = self.generation
        self._entries.clear()
        self._keys_of.clear()

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

    A `SignatureAdded` newer than a kept row (signatures are numbered in commit order) sets its
    count and last number, as the commit left them; any other event of the petition drops the
    row (an admin changed it, a comment was counted), and a `Resync` drops them all. A row read
    while its petition changed answers that one request and is not kept. Admins read drafts
    from the database, always."""

    def __init__(self, enabled: Callable[[], bool], max_entries: int = 10_000) -> None:
        self.enabled = enabled
        self.max_entries = max_entries
        self.generation = 0
        self._rows: OrderedDict[int, models.Petition] = OrderedDict()
        self._ids_by_slug: dict[str, int] = {}
        self._changed_at: dict[int, int] = {}
        self._cleared_at = 0
        self.hits = 0
        self.misses = 0

    async def find(
        self, *, petition_id: int | None = None, slug: str | None = None
    ) -> models.Petition | None:
        """The public petition with this id or slug, as `models.find_petition` finds it."""
        if not self.enabled():
            return await models.find_petition(admin=False, petition_id=petition_id, slug=slug)
        pk = petition_id if petition_id is not None else self._ids_by_slug.get(slug or "")
        row = self._rows.get(pk) if pk is not None else None
        if row is not None:
            self._rows.move_to_end(row.id)
            self.hits += 1
            return row
        self.misses += 1
        since = self.generation
        row = await models.find_petition(admin=False, petition_id=petition_id, slug=slug)
        if (
            row is not None
            and self.enabled()
            and self._cleared_at <= since
            and self._changed_at.get(row.id, 0) <= since
        ):
            self._rows[row.id] = row
            self._ids_by_slug[row.slug] = row.id
            while len(self._rows) > self.max_entries:
                self._drop(next(iter(self._rows)))
        return row

    def observe(self, event: Event) -> None:
        """The hub's observer: every event from every process."""
        self.generation += 1
        if isinstance(event, Resync):
            self._cleared_at = self.generation
            self._rows.clear()
            self._ids_by_slug.clear()
            return
        self._changed_at[event.petition_id] = self.generation
        row = self._rows.get(event.petition_id)
        if row is None:
            return
        if isinstance(event, SignatureAdded):
            if event.number > row.last_signature_number:
                row.signature_count = event.signature_count
                row.last_signature_number = event.number
        else:
            self._drop(event.petition_id)

    def _drop(self, petition_id: int) -> None:
        row = self._rows.pop(petition_id, None)
        if row is not None and self._ids_by_slug.get(row.slug) == petition_id:
            del self._ids_by_slug[row.slug]
