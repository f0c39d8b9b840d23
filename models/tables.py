"""The stored data: petitions, their signatures and their comments."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class PetitionStatus(StrEnum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class CommentStatus(StrEnum):
    """Only published comments are public: listed, counted, pushed."""

    PUBLISHED = "PUBLISHED"
    HELD = "HELD"  # waiting for a moderator
    SPAM = "SPAM"  # judged spam, by the filter or a moderator
    HIDDEN = "HIDDEN"  # taken down, by a moderator or by readers' reports


class Petition(Model):
    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=100, unique=True)
    title = fields.CharField(max_length=200)
    target = fields.CharField(max_length=200)
    goal = fields.CharField(max_length=500)
    body = fields.TextField()
    letter = fields.TextField(null=True)
    image_url = fields.CharField(max_length=2000, null=True)
    image_credit = fields.CharField(max_length=200, null=True)
    status = fields.CharEnumField(PetitionStatus, max_length=10, default=PetitionStatus.OPEN)
    signature_goal = fields.IntField(null=True)
    # Stored counters, changed in the transaction that adds the row they count.
    signature_count = fields.IntField(default=0)
    comment_count = fields.IntField(default=0)
    # The number given to the newest signature: 1, 2, 3 … in commit order, never reused,
    # even if a signature is ever erased (the count would drop; this would not).
    last_signature_number = fields.IntField(default=0)
    # The number given to the newest change of a comment's visibility (published, or taken
    # down): the order `commentAdded` and `commentRemoved` follow, and fill gaps by.
    last_comment_sequence = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    closes_at = fields.DatetimeField(null=True)

    class Meta:
        table = "petition"

    @property
    def effective_status(self) -> PetitionStatus:
        """The status callers see: an open petition past its `closes_at` reads as closed."""
        if self.status is PetitionStatus.OPEN and self.is_past_closing():
            return PetitionStatus.CLOSED
        return self.status

    def is_past_closing(self, now: datetime | None = None) -> bool:
        return self.closes_at is not None and self.closes_at <= (now or datetime.now(UTC))


class Signature(Model):
    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="signatures", on_delete=fields.CASCADE
    )
    petition_id: int
    # Position in the petition, 1, 2, 3 … without gaps: the keyset for paging and for
    # delivering `signatureAdded` in order, exactly once, across processes.
    number = fields.IntField()
    first_name = fields.CharField(max_length=100)
    last_name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254)
    email_canonical = fields.CharField(max_length=254)
    show_name = fields.BooleanField(default=True)
    country = fields.CharField(max_length=2, null=True)
    comment = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "signature"
        unique_together = (("petition", "email_canonical"), ("petition", "number"))


class Comment(Model):
    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="comments", on_delete=fields.CASCADE
    )
    petition_id: int
    author_name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254)
    body = fields.TextField()
    status = fields.CharEnumField(CommentStatus, max_length=10, default=CommentStatus.PUBLISHED)
    # A moderator published it: readers' reports no longer hide it.
    approved = fields.BooleanField(default=False, db_default=False)
    spam_score = fields.FloatField(null=True)  # the filter's judgement, for moderators
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "comment"
        indexes = (("petition", "status", "id"),)


class CommentChange(Model):
    """A comment published or taken down: the petition's log of what its public list went
    through, numbered 1, 2, 3 … in commit order (under the petition's row lock), which
    `commentAdded` and `commentRemoved` follow and replay what they missed from."""

    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="comment_changes", on_delete=fields.CASCADE
    )
    petition_id: int
    sequence = fields.IntField()
    comment: fields.ForeignKeyRelation[Comment] = fields.ForeignKeyField(
        "models.Comment", related_name="changes", on_delete=fields.CASCADE
    )
    comment_id: int
    public = fields.BooleanField()  # published (true) or taken down (false)

    class Meta:
        table = "comment_change"
        unique_together = (("petition", "sequence"),)


class CommentReport(Model):
    """One reader's report of a published comment: one per client address per comment."""

    id = fields.BigIntField(primary_key=True)
    comment: fields.ForeignKeyRelation[Comment] = fields.ForeignKeyField(
        "models.Comment", related_name="reports", on_delete=fields.CASCADE
    )
    comment_id: int
    address = fields.CharField(max_length=45)
    reason = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "comment_report"
        unique_together = (("comment", "address"),)
