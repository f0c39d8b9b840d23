"""Counts that can be audited: every stored counter against the rows behind it (valid
signatures, published comments; the figures by country and by bucket, and the milestones the
count has passed), and the signature clock against the numbers given."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q
from tortoise.functions import Count, Max
from tortoise.transactions import in_transaction

from . import figures
from .tables import Comment, CommentStatus, Interval, Petition, Signature, SignatureStatus


@dataclass(frozen=True)
class CountDifference:
    petition_id: int
    slug: str
    counter: str
    stored: int
    actual: int
    entry: str | None = None  # which country, bucket or milestone, for the figures' counters

    def __str__(self) -> str:
        where = f"{self.slug} (#{self.petition_id})"
        if self.counter == _MILESTONE:
            return f"{where}: milestone {self.entry} is reached, but no row says when"
        counter = self.counter if self.entry is None else f"{self.counter} {self.entry}"
        return f"{where}: {counter} is {self.stored}, rows say {self.actual}"


_COUNTRY, _BUCKET, _MILESTONE = "country_count", "bucket_count", "milestone"


SCAN_STEP = 50_000  # signature ids counted by one query of the scan


async def count_differences(
    progress: Callable[[int], object] | None = None,
    total: Callable[[int], object] | None = None,
) -> list[CountDifference]:
    """Every petition counter that differs from a count of its rows (there should be none).

    The signatures are counted in ranges of their ids (`SCAN_STEP` a query; `progress` is
    called with the ids each covered, `total` first with all of them, so that a bar can follow
    a table of millions), which is
    fast but no snapshot: the petitions that seem to differ are then counted again, each in one
    statement with its counters, and only what that finds is reported."""
    newest_id = await Signature.all().order_by("-id").first().values_list("id", flat=True)
    valid: Counter[int] = Counter()
    numbered: dict[int, int] = {}
    end = int(cast(int, newest_id or 0))
    if total is not None:
        total(end)
    for start in range(1, end + 1, SCAN_STEP):
        stop = min(start + SCAN_STEP, end + 1)
        counted = (
            await Signature.filter(id__gte=start, id__lt=stop)
            .annotate(valid=Count("id", _filter=Q(status=SignatureStatus.VALID)), top=Max("number"))
            .group_by("petition_id")
            .values("petition_id", "valid", "top")
        )
        for row in counted:
            pk = int(row["petition_id"])
            valid[pk] += int(row["valid"])
            numbered[pk] = max(numbered.get(pk, 0), int(row["top"] or 0))
        if progress is not None:
            progress(stop - start)
    published = dict(
        await Comment.filter(status=CommentStatus.PUBLISHED)
        .annotate(published=Count("id"))
        .group_by("petition_id")
        .values_list("petition_id", "published")
    )
    suspects = [
        int(row["id"])
        for row in await Petition.all().values(
            "id", "signature_count", "comment_count", "last_signature_number"
        )
        if row["signature_count"] != valid[row["id"]]
        or row["comment_count"] != published.get(row["id"], 0)
        or row["last_signature_number"] < numbered.get(row["id"], 0)
    ]
    counters = await _differences(suspects) if suspects else []
    return counters + await _figure_differences()


async def _differences(petition_ids: list[int]) -> list[CountDifference]:
    """The differences of these petitions, each counter and the count of its rows read in one
    statement (a consistent snapshot, whatever writes go on)."""
    rows = (
        await Petition.filter(id__in=petition_ids)
        .annotate(
            signatures_counted=Count(
                "signatures",
                distinct=True,
                _filter=Q(signatures__status=SignatureStatus.VALID),
            ),
            comments_counted=Count(
                "comments", distinct=True, _filter=Q(comments__status=CommentStatus.PUBLISHED)
            ),
            newest_number=Max("signatures__number"),
        )
        .order_by("id")
        .values(
            "id",
            "slug",
            "signature_count",
            "comment_count",
            "last_signature_number",
            "signatures_counted",
            "comments_counted",
            "newest_number",
        )
    )
    found = []
    for row in rows:
        checks = [
            ("signature_count", row["signature_count"], row["signatures_counted"]),
            ("comment_count", row["comment_count"], row["comments_counted"]),
        ]
        newest = row["newest_number"] or 0
        if row["last_signature_number"] < newest:  # a number would be given twice
            checks.append(("last_signature_number", row["last_signature_number"], newest))
        found += [
            CountDifference(row["id"], row["slug"], counter, stored, actual)
            for counter, stored, actual in checks
            if stored != actual
        ]
    return found


async def _figure_differences() -> list[CountDifference]:
    """Every petition's figures (by country, by bucket, milestones) against its valid
    signatures: counted without a lock first, then, where they seem to differ, again under the
    petition's row lock, which every change of them takes (a consistent count)."""
    found: list[CountDifference] = []
    for petition_id in await Petition.all().order_by("id").values_list("id", flat=True):
        if await _figures_of(int(cast(int, petition_id)), lock=False):
            found += await _figures_of(int(cast(int, petition_id)), lock=True)
    return found


async def _figures_of(petition_id: int, *, lock: bool) -> list[CountDifference]:
    async with in_transaction() as connection:
        rows = Petition.filter(id=petition_id).using_db(connection)
        petition = await (rows.select_for_update() if lock else rows).first()
        if petition is None:
            return []
        counted = await figures.counted_figures(connection, petition_id)
        stored = await figures.stored_figures(connection, petition_id)
        missing = await figures.missing_milestones(connection, petition)

    def differences(
        counter: str, stored: dict[Any, int], counted: dict[Any, int], name: Callable[[Any], str]
    ) -> list[CountDifference]:
        return [
            CountDifference(
                petition_id,
                petition.slug,
                counter,
                stored.get(key, 0),
                counted.get(key, 0),
                name(key),
            )
            for key in sorted(stored.keys() | counted.keys())
            if stored.get(key, 0) != counted.get(key, 0)
        ]

    return [
        *differences(_COUNTRY, stored.countries, counted.countries, str),
        *differences(_BUCKET, stored.buckets, counted.buckets, _bucket_name),
        *(CountDifference(petition_id, petition.slug, _MILESTONE, 0, 1, str(t)) for t in missing),
    ]


def _bucket_name(key: tuple[Interval, datetime]) -> str:
    return f"{key[0].value} {key[1].isoformat()}"


async def _repair_figure(connection: BaseDBAsyncClient, difference: CountDifference) -> None:
    assert difference.entry is not None
    pk = difference.petition_id
    if difference.counter == _COUNTRY:
        await figures.set_country(connection, pk, difference.entry)
    elif difference.counter == _BUCKET:
        interval, start = difference.entry.split(" ", 1)
        await figures.set_bucket(connection, pk, Interval(interval), datetime.fromisoformat(start))
    else:
        await figures.restore_milestone(connection, pk, int(difference.entry))


async def repair_counts(differences: list[CountDifference]) -> None:
    """Set each differing counter to a fresh count of its rows.

    The count is taken after locking the petition's row, which every sign and comment takes
    before it inserts, so a repair racing live writes is still exact."""
    for difference in differences:
        async with in_transaction() as connection:
            petition = Petition.filter(id=difference.petition_id).using_db(connection)
            await petition.update(signature_count=F("signature_count"))  # the row lock
            if difference.entry is not None:
                await _repair_figure(connection, difference)
                continue
            signatures = Signature.filter(
                petition_id=difference.petition_id, status=SignatureStatus.VALID
            ).using_db(connection)
            fresh = {
                "signature_count": await signatures.count(),
                "comment_count": await Comment.filter(
                    petition_id=difference.petition_id, status=CommentStatus.PUBLISHED
                )
                .using_db(connection)
                .count(),
                "last_signature_number": max(difference.actual, difference.stored),
            }
            await petition.update(**{difference.counter: fresh[difference.counter]})
