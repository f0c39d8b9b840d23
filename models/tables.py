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
    """Only published comments are public; the others wait for (future) moderation."""

    PUBLISHED = "PUBLISHED"
    HELD = "HELD"


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
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "comment"
        indexes = (("petition", "status", "id"),)
