"""Counts that can be audited: every stored counter against the rows behind it (valid
signatures, published comments), and the signature clock against the numbers given."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.expressions import F, Q
from tortoise.functions import Count, Max
from tortoise.transactions import in_transaction

from .tables import Comment, CommentStatus, Petition, Signature, SignatureStatus


@dataclass(frozen=True)
class CountDifference:
    petition_id: int
    slug: str
    counter: str
    stored: int
    actual: int

    def __str__(self) -> str:
        where = f"{self.slug} (#{self.petition_id})"
        return f"{where}: {self.counter} is {self.stored}, rows say {self.actual}"


async def count_differences() -> list[CountDifference]:
    """Every petition counter that differs from a count of its rows (there should be none)."""
    rows = (
        await Petition.annotate(
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


async def repair_counts(differences: list[CountDifference]) -> None:
    """Set each differing counter to a fresh count of its rows.

    The count is taken after locking the petition's row, which every sign and comment takes
    before it inserts, so a repair racing live writes is still exact."""
    for difference in differences:
        async with in_transaction() as connection:
            petition = Petition.filter(id=difference.petition_id).using_db(connection)
            await petition.update(signature_count=F("signature_count"))  # the row lock
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
