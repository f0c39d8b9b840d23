"""Keyset pagination for Relay connections: cursors hold a sort key, never an offset, so
paging from a cursor neither repeats nor skips an item while new ones arrive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from tortoise.queryset import QuerySet

import models

from .errors import PublicError
from .ids import cursor, parse_cursor

DEFAULT_PAGE = 10
MAX_PAGE = 100

M = TypeVar("M")
Bounds = tuple[tuple[str, int], ...]  # (lt, lte, gt or gte, a key's value) pairs


class Source(Protocol[M]):
    """A list ordered by a unique integer key, read a page at a time."""

    @property
    def key(self) -> str: ...

    async def page(self, bounds: Bounds, *, descending: bool, limit: int) -> list[M]: ...

    async def exists(self, bound: tuple[str, int]) -> bool: ...


@dataclass(frozen=True)
class Queried(Generic[M]):
    """A list as a Tortoise query set (petitions, the moderation queue)."""

    items: QuerySet[Any]
    key: str

    async def page(self, bounds: Bounds, *, descending: bool, limit: int) -> list[M]:
        bounded = self.items.filter(**{f"{self.key}__{op}": value for op, value in bounds})
        order = f"-{self.key}" if descending else self.key
        return list(await bounded.order_by(order).limit(limit))

    async def exists(self, bound: tuple[str, int]) -> bool:
        op, value = bound
        return bool(await self.items.filter(**{f"{self.key}__{op}": value}).exists())


@dataclass(frozen=True)
class Listed(Generic[M]):
    """A petition's public list by its SQL of fixed shape (signatures, comments)."""

    listing: models.Listing[Any]
    petition_id: int
    ceiling: int | None = None  # no key above it: what the count beside the page has counted

    @property
    def key(self) -> str:
        return self.listing.key

    def _bounded(self, bounds: Bounds) -> Bounds:
        return bounds if self.ceiling is None else (*bounds, ("lte", self.ceiling))

    async def page(self, bounds: Bounds, *, descending: bool, limit: int) -> list[M]:
        bounded = self._bounded(bounds)
        return await self.listing.page(
            self.petition_id, bounded, descending=descending, limit=limit
        )

    async def exists(self, bound: tuple[str, int]) -> bool:
        return await self.listing.exists(self.petition_id, self._bounded((bound,)))


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="More items precede this page.")
    start_cursor: str | None = strawberry.field(description="The cursor of the first item.")
    end_cursor: str | None = strawberry.field(description="The cursor of the last item.")


@dataclass(frozen=True)
class Window:
    """The page a client asked for: `size` items after `after` (or before `before`)."""

    forward: bool
    size: int
    after: int | None
    before: int | None

    @classmethod
    def parse(
        cls,
        kind: str,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
    ) -> Window:
        if first is not None and last is not None:
            raise PublicError("Pass either `first` or `last`, not both.")
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= MAX_PAGE:
                raise PublicError(f"`{name}` must be between 0 and {MAX_PAGE}.")
        return cls(
            forward=last is None,
            size=last if last is not None else first if first is not None else DEFAULT_PAGE,
            after=_position(kind, "after", after),
            before=_position(kind, "before", before),
        )


def _position(kind: str, name: str, value: str | None) -> int | None:
    if value is None:
        return None
    position = parse_cursor(kind, value)
    if position is None:
        raise PublicError(f"`{name}` is not a cursor of this list.")
    return position


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    has_next: bool
    has_previous: bool


async def keyset_page(items: Source[M], window: Window, *, descending: bool) -> Page[M]:
    """One page of `items` ordered by their unique integer key, in one query: it reads from
    the cursor's own item (present: something precedes the page) to one past the page (present:
    something follows it)."""
    key = items.key
    later, earlier = ("lt", "gt") if descending else ("gt", "lt")
    start, end = (window.after, window.before) if window.forward else (window.before, window.after)
    toward, away = (later, earlier) if window.forward else (earlier, later)
    bounds: Bounds = ()
    if start is not None:
        bounds += ((f"{toward}e", start),)
    if end is not None:
        bounds += ((away, end),)
    order = descending == window.forward
    rows = await items.page(bounds, descending=order, limit=window.size + 2)
    beyond = False
    if start is not None:
        if rows and getattr(rows[0], key) == start:
            rows, beyond = rows[1:], True
        else:  # the cursor's own item is gone: ask whether anything precedes the page
            beyond = await items.exists((f"{away}e", start))
    more = len(rows) > window.size
    rows = rows[: window.size]
    if window.forward:
        return Page(rows, has_next=more, has_previous=beyond)
    return Page(rows[::-1], has_next=beyond, has_previous=more)


async def paginate(
    kind: str,
    items: Source[M],
    *,
    descending: bool,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> tuple[list[tuple[str, M]], PageInfo]:
    """One page of a connection: its (cursor, row) pairs and its `PageInfo`."""
    window = Window.parse(kind, first, after, last, before)
    page = await keyset_page(items, window, descending=descending)
    cursors = [cursor(kind, getattr(row, items.key)) for row in page.items]
    info = PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
    return list(zip(cursors, page.items, strict=True)), info
