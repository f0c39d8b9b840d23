"""Figures: where a petition's valid signatures come from, when they were signed, and the
milestones its count reached, answered from counters and never from a count of signatures.

The counters are a petition's signatures by country and by minute, hour and day (UTC, by when
each was signed). They move exactly as `signature_count` does, in the same transaction and
under the petition's row lock: whatever makes signatures valid or takes them away hands a
`Tally` of those signatures to `move`, one statement per table. A milestone is written once,
where the count rises past it (`reach`) or where a goal is set below the count (`reach_goal`),
and is kept if the count falls again; its event goes out after the commit, as every event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from subscriptions import MilestoneReached

from .database import marks
from .tables import BucketCount, CountryCount, Interval, Milestone, Petition, Signature
from .tables import SignatureStatus as Status

MILESTONES = (100, 1_000, 10_000, 100_000, 1_000_000)
MAX_COUNTRIES = 250
DEFAULT_BUCKETS = 60  # `since` defaults to this many intervals before `until`
MAX_BUCKETS = 1000

WIDTH = {
    Interval.MINUTE: timedelta(minutes=1),
    Interval.HOUR: timedelta(hours=1),
    Interval.DAY: timedelta(days=1),
}


class OutOfRange(ValueError):
    """A figure asked for with bounds it does not take; the message says which."""


def bucket_start(moment: datetime, interval: Interval) -> datetime:
    """The start of the UTC minute, hour or day `moment` falls in (a naive one is UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    moment = moment.replace(second=0, microsecond=0)
    if interval is Interval.MINUTE:
        return moment
    if interval is Interval.HOUR:
        return moment.replace(minute=0)
    return moment.replace(hour=0, minute=0)


def next_bucket(moment: datetime, interval: Interval) -> datetime:
    """The start of the bucket after the one `moment` falls in."""
    return bucket_start(moment, interval) + WIDTH[interval]


# Counting -------------------------------------------------------------------------------------


class Dated(Protocol):
    """A signature as a tally sees it: a Tortoise row or the writer's `NewSignature`."""

    @property
    def country(self) -> str | None: ...

    @property
    def created_at(self) -> datetime: ...


@dataclass
class Tally:
    """A change of one petition's figures: signatures by country and by bucket."""

    countries: Counter[str] = field(default_factory=Counter)
    buckets: Counter[tuple[Interval, datetime]] = field(default_factory=Counter)

    def add(self, country: str | None, signed_at: datetime, count: int = 1) -> None:
        if country:
            self.countries[country] += count
        minute = bucket_start(signed_at, Interval.MINUTE)
        for interval in Interval:
            self.buckets[(interval, bucket_start(minute, interval))] += count

    @property
    def total(self) -> int:
        """The signatures counted, whatever their country (negative: taken away)."""
        return sum(n for (interval, _), n in self.buckets.items() if interval is Interval.DAY)

    @classmethod
    def of(cls, signatures: Iterable[Dated], sign: int = 1) -> Tally:
        """The tally of `signatures` (a batch's share one moment: each bucket is found once)."""
        tally = cls()
        alike = Counter((row.country, row.created_at) for row in signatures)
        for (country, signed_at), count in alike.items():
            tally.add(country, signed_at, sign * count)
        return tally


async def tally_rows(
    connection: BaseDBAsyncClient, rows: QuerySet[Signature], sign: int = 1
) -> Tally:
    """The tally of `rows` (read before they change status or go), times `sign`."""
    tally = Tally()
    for country, signed_at in await rows.using_db(connection).values_list("country", "created_at"):
        tally.add(country, signed_at, sign)
    return tally


async def move(connection: BaseDBAsyncClient, petition_id: int, tally: Tally) -> None:
    """Add `tally` to the petition's counters (whose row the caller has locked): one statement
    per table, inserting the counters not there yet."""
    countries = [(country, n) for country, n in sorted(tally.countries.items()) if n]
    buckets = [(interval, start, n) for (interval, start), n in tally.buckets.items() if n]
    if countries:
        await _upsert(
            connection,
            "country_count",
            ("petition_id", "country", "count"),
            [(petition_id, country, n) for country, n in countries],
        )
    if buckets:
        await _upsert(
            connection,
            "bucket_count",
            ("petition_id", "interval", "start", "count"),
            [(petition_id, interval.value, start, n) for interval, start, n in buckets],
        )


async def _upsert(
    connection: BaseDBAsyncClient,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    *,
    replace: bool = False,
) -> None:
    """Insert `rows`, adding each one's count to the counter already there (or, `replace`,
    setting it); every column but the last is the counter's key."""
    width = len(columns)
    places = marks(connection, width * len(rows))
    values = ",".join(
        "(" + ",".join(places[i : i + width]) + ")" for i in range(0, len(places), width)
    )
    names = ",".join(f'"{column}"' for column in columns)
    key = ",".join(f'"{column}"' for column in columns[:-1])
    added = "" if replace else f'"{table}"."count" + '
    await connection.execute_query(
        f'INSERT INTO "{table}" ({names}) VALUES {values} '
        f'ON CONFLICT ({key}) DO UPDATE SET "count" = {added}excluded."count"',
        [value for row in rows for value in row],
    )


# Milestones -----------------------------------------------------------------------------------


def thresholds(goal: int | None) -> list[int]:
    """A petition's milestones, ascending: the fixed ones and its goal, once each."""
    return sorted({*MILESTONES, goal} if goal else set(MILESTONES))


async def reach(
    connection: BaseDBAsyncClient, petition: Petition, before: int, after: int, now: datetime
) -> list[MilestoneReached]:
    """The locked petition's count rose from `before` to `after`: write the milestones it
    passed for the first time, and return their events."""
    passed = [t for t in thresholds(petition.signature_goal) if before < t <= after]
    return await _reached(connection, petition.id, passed, now) if passed else []


async def reach_goal(
    connection: BaseDBAsyncClient, petition: Petition, now: datetime
) -> list[MilestoneReached]:
    """A goal set at or below the locked petition's count is reached when it is set."""
    goal = petition.signature_goal
    if goal is None or goal > petition.signature_count:
        return []
    return await _reached(connection, petition.id, [goal], now)


async def reach_as_signed(
    connection: BaseDBAsyncClient, petition: Petition, signed_at: list[datetime]
) -> None:
    """Write the milestones of a locked petition whose valid signatures, in order, were signed
    at `signed_at` (a petition loaded whole): each reached when the signature in its place was
    signed. Nobody is told: nobody watched it happen."""
    for count in thresholds(petition.signature_goal):
        if count <= len(signed_at):
            await _reached(connection, petition.id, [count], signed_at[count - 1])


async def _reached(
    connection: BaseDBAsyncClient, petition_id: int, counts: list[int], now: datetime
) -> list[MilestoneReached]:
    places = marks(connection, 3 * len(counts))
    values = ",".join(f"({a},{b},{c})" for a, b, c in zip(*[iter(places)] * 3, strict=True))
    written = await connection.execute_query_dict(
        f'INSERT INTO "milestone" ("petition_id","count","reached_at") VALUES {values} '
        'ON CONFLICT ("petition_id","count") DO NOTHING RETURNING "count"',
        [value for count in counts for value in (petition_id, count, now)],
    )
    return [
        MilestoneReached(petition_id, count, now.isoformat())
        for count in sorted(int(row["count"]) for row in written)
    ]


# Reading --------------------------------------------------------------------------------------


async def country_counts(petition_id: int, first: int) -> list[tuple[str, int]]:
    """The petition's valid signatures by country, largest first, ties by code."""
    if not 1 <= first <= MAX_COUNTRIES:
        raise OutOfRange(f"`first` must be between 1 and {MAX_COUNTRIES}.")
    rows = (
        await CountryCount.filter(petition_id=petition_id, count__gt=0)
        .order_by("-count", "country")
        .limit(first)
        .values_list("country", "count")
    )
    return [(str(country), int(count)) for country, count in rows]


def bucket_starts(
    interval: Interval, since: datetime | None, until: datetime | None, now: datetime
) -> list[datetime]:
    """The whole UTC intervals that start in [since, until): `until` defaults to `now`, `since`
    to `DEFAULT_BUCKETS` intervals before `until`."""
    width = WIDTH[interval]
    until = _utc(until or now)
    try:
        since = _utc(since) if since is not None else until - DEFAULT_BUCKETS * width
    except OverflowError:
        raise OutOfRange("`until` is too early for the default `since`.") from None
    if since > until:
        raise OutOfRange("`since` must not be after `until`.")
    first = bucket_start(since, interval)
    if first < since:
        first += width
    count = max(0, -((first - until) // width))  # ceil((until - first) / width)
    if count > MAX_BUCKETS:
        raise OutOfRange(f"Ask for at most {MAX_BUCKETS:,} buckets: a shorter range or interval.")
    return [first + step * width for step in range(count)]


async def signatures_over_time(
    petition_id: int,
    interval: Interval,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    now: datetime | None = None,
) -> list[tuple[datetime, int]]:
    """The petition's valid signatures per bucket, oldest first, empty buckets included."""
    starts = bucket_starts(interval, since, until, now or datetime.now(UTC))
    if not starts:
        return []
    stored = await BucketCount.filter(
        petition_id=petition_id,
        interval=interval,
        start__gte=starts[0],
        start__lte=starts[-1],
    ).values_list("start", "count")
    counts = {_utc(start): int(count) for start, count in stored}
    return [(start, counts.get(start, 0)) for start in starts]


async def milestones(petition_id: int, goal: int | None) -> list[tuple[int, datetime | None]]:
    """The petition's milestones, ascending, each with when the count first reached it."""
    wanted = thresholds(goal)
    reached = dict(
        await Milestone.filter(petition_id=petition_id, count__in=wanted).values_list(
            "count", "reached_at"
        )
    )
    return [(count, reached.get(count)) for count in wanted]


async def milestones_reached(petition_id: int) -> list[tuple[int, datetime]]:
    """Every milestone the petition reached, ascending (a subscription catching up)."""
    rows = (
        await Milestone.filter(petition_id=petition_id)
        .order_by("count")
        .values_list("count", "reached_at")
    )
    return [(int(count), reached_at) for count, reached_at in rows]


# Auditing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """A petition's counters, keyed as stored: countries, and (interval, start) buckets."""

    countries: dict[str, int]
    buckets: dict[tuple[Interval, datetime], int]


async def stored_figures(connection: BaseDBAsyncClient, petition_id: int) -> Figures:
    countries = await (
        CountryCount.filter(petition_id=petition_id)
        .using_db(connection)
        .values_list("country", "count")
    )
    buckets = await (
        BucketCount.filter(petition_id=petition_id)
        .using_db(connection)
        .values_list("interval", "start", "count")
    )
    return Figures(
        {str(country): int(n) for country, n in countries if n},
        {(Interval(interval), _utc(start)): int(n) for interval, start, n in buckets if n},
    )


def _minute_sql(connection: BaseDBAsyncClient) -> str:
    if connection.capabilities.dialect == "postgres":
        return "date_trunc('minute', \"created_at\" AT TIME ZONE 'UTC')"
    return "strftime('%Y-%m-%d %H:%M:00', \"created_at\")"


async def counted_figures(connection: BaseDBAsyncClient, petition_id: int) -> Figures:
    """What the counters should hold, counted from the petition's valid signatures (for
    audits: this reads every one of them)."""
    valid = Signature.filter(petition_id=petition_id, status=Status.VALID).using_db(connection)
    by_country = (
        await valid.filter(country__isnull=False)
        .annotate(signatures=Count("id"))
        .group_by("country")
        .values_list("country", "signatures")
    )
    one, two = marks(connection, 2)
    by_minute = await connection.execute_query_dict(
        f'SELECT {_minute_sql(connection)} AS "minute", COUNT(*) AS "signatures" '
        f'FROM "signature" WHERE "petition_id" = {one} AND "status" = {two} GROUP BY 1',
        [petition_id, Status.VALID.value],
    )
    tally = Tally()
    for row in by_minute:
        tally.add(None, _utc(row["minute"]), int(row["signatures"]))
    return Figures(
        {str(country): int(n) for country, n in by_country if country},
        {key: n for key, n in tally.buckets.items() if n},
    )


async def set_country(connection: BaseDBAsyncClient, petition_id: int, country: str) -> int:
    """Set one country's counter to a count of its rows (the caller holds the lock)."""
    count = await (
        Signature.filter(petition_id=petition_id, status=Status.VALID, country=country)
        .using_db(connection)
        .count()
    )
    await _upsert(
        connection,
        "country_count",
        ("petition_id", "country", "count"),
        [(petition_id, country, count)],
        replace=True,
    )
    return count


async def set_bucket(
    connection: BaseDBAsyncClient, petition_id: int, interval: Interval, start: datetime
) -> int:
    """Set one bucket's counter to a count of its rows (the caller holds the lock)."""
    count = await (
        Signature.filter(
            petition_id=petition_id,
            status=Status.VALID,
            created_at__gte=start,
            created_at__lt=start + WIDTH[interval],
        )
        .using_db(connection)
        .count()
    )
    await _upsert(
        connection,
        "bucket_count",
        ("petition_id", "interval", "start", "count"),
        [(petition_id, interval.value, start, count)],
        replace=True,
    )
    return count


async def missing_milestones(connection: BaseDBAsyncClient, petition: Petition) -> list[int]:
    """Milestones at or below the count with no row: none, unless something went wrong."""
    due = [t for t in thresholds(petition.signature_goal) if t <= petition.signature_count]
    if not due:
        return []
    there = await (
        Milestone.filter(petition_id=petition.id, count__in=due)
        .using_db(connection)
        .values("count")
    )
    return sorted(set(due) - {int(row["count"]) for row in there})


async def restore_milestone(connection: BaseDBAsyncClient, petition_id: int, count: int) -> None:
    """Write a lost milestone, reached when the valid signature in its place was signed (the
    best guess there is: signatures struck off since may have moved it)."""
    signed = await (
        Signature.filter(petition_id=petition_id, status=Status.VALID, number__isnull=False)
        .using_db(connection)
        .order_by("number")
        .offset(count - 1)
        .first()
    )
    reached_at = signed.created_at if signed is not None else datetime.now(UTC)
    await _reached(connection, petition_id, [count], reached_at)


def _utc(moment: Any) -> datetime:
    """A stored or given instant as an aware UTC datetime (SQLite hands back text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
