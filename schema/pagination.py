"""Keyset pagination for Relay connections: cursors hold a sort key, never an offset, so
paging from a cursor neither repeats nor skips an item while new ones arrive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import strawberry
from tortoise.models import Model
from tortoise.queryset import QuerySet

from .errors import PublicError
from .ids import cursor, parse_cursor

DEFAULT_PAGE = 10
MAX_PAGE = 100

M = TypeVar("M", bound=Model)


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


async def keyset_page(items: QuerySet[M], key: str, window: Window, *, descending: bool) -> Page[M]:
    """One page of `items` ordered by the unique integer `key`, in one query: it reads from
    the cursor's own item (present: something precedes the page) to one past the page (present:
    something follows it)."""
    later, earlier = ("lt", "gt") if descending else ("gt", "lt")
    start, end = (window.after, window.before) if window.forward else (window.before, window.after)
    toward, away = (later, earlier) if window.forward else (earlier, later)
    bounded = items
    if start is not None:
        bounded = bounded.filter(**{f"{key}__{toward}e": start})
    if end is not None:
        bounded = bounded.filter(**{f"{key}__{away}": end})
    order = f"-{key}" if descending == window.forward else key
    rows = list(await bounded.order_by(order).limit(window.size + 2))
    beyond = False
    if start is not None:
        if rows and getattr(rows[0], key) == start:
            rows, beyond = rows[1:], True
        else:  # the cursor's own item is gone: ask whether anything precedes the page
            beyond = await items.filter(**{f"{key}__{away}e": start}).exists()
    more = len(rows) > window.size
    rows = rows[: window.size]
    if window.forward:
        return Page(rows, has_next=more, has_previous=beyond)
    return Page(rows[::-1], has_next=beyond, has_previous=more)


async def paginate(
    kind: str,
    items: QuerySet[M],
    key: str,
    *,
    descending: bool,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> tuple[list[tuple[str, M]], PageInfo]:
    """One page of a connection: its (cursor, row) pairs and its `PageInfo`."""
    window = Window.parse(kind, first, after, last, before)
    page = await keyset_page(items, key, window, descending=descending)
    cursors = [cursor(kind, getattr(row, key)) for row in page.items]
    info = PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
    return list(zip(cursors, page.items, strict=True)), info
