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


class SignatureStatus(StrEnum):
    """Only valid signatures are public: counted, listed, paged, pushed, exported."""

    PENDING = "PENDING"  # waiting for its email confirmation (confirmation mode)
    VALID = "VALID"
    QUARANTINED = "QUARANTINED"  # held silently: a limit or a block list caught it
    INVALID = "INVALID"  # struck off by an admin


class Interval(StrEnum):
    """The width of a bucket of signatures over time; buckets start at whole UTC units."""

    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"


class TokenRole(StrEnum):
    ADMIN = "admin"
    MODERATOR = "moderator"


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
    # Stored counters, changed in the transaction that changes the rows they count: valid
    # signatures and published comments.
    signature_count = fields.IntField(default=0)
    comment_count = fields.IntField(default=0)
    # The petition's signature clock: the newest number given, 1, 2, 3 … in commit order,
    # never reused. A signature takes one when it becomes valid; any other change of the
    # count (a strike, an erasure) takes one too, that no signature holds (see `numbering`).
    last_signature_number = fields.IntField(default=0)
    # The number given to the newest change of a comment's visibility (published, or taken
    # down): the order `commentAdded` and `commentRemoved` follow, and fill gaps by.
    last_comment_sequence = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    closes_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)  # when an admin set it CLOSED

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
    # Position in the petition's valid signatures, given when the signature first becomes
    # valid (null until then): the keyset for paging and the order of `signatureAdded`. A
    # signature struck off keeps its number, so readers (who see valid ones only) meet gaps
    # (see `numbering`).
    number = fields.IntField(null=True)
    status = fields.CharEnumField(
        SignatureStatus, max_length=11, default=SignatureStatus.VALID, db_default="VALID"
    )
    first_name = fields.CharField(max_length=100)
    last_name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254)  # "" once anonymised
    email_canonical = fields.CharField(max_length=254)  # unique per petition, even anonymised
    email_domain = fields.CharField(max_length=254, default="", db_default="")
    show_name = fields.BooleanField(default=True)
    country = fields.CharField(max_length=2, null=True)
    comment = fields.TextField(null=True)
    address = fields.CharField(max_length=45, null=True)  # the client's, for admins' fraud tools
    created_at = fields.DatetimeField(auto_now_add=True)
    # Confirmation mode: the SHA-256 of the emailed token, when it was confirmed, and when the
    # signer was last told they had signed already (at most once a day).
    token_hash = fields.CharField(max_length=64, null=True, unique=True)
    confirmed_at = fields.DatetimeField(null=True)
    reminded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "signature"
        unique_together = (("petition", "email_canonical"), ("petition", "number"))
        indexes = (
            ("petition", "created_at"),
            ("petition", "address"),
            ("petition", "email_domain"),
            ("email_canonical",),
        )


class CountryCount(Model):
    """A petition's valid signatures from one country (none kept for signatures without
    one): moved with `signature_count`, in the same transaction, so figures never count rows."""

    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="country_counts", on_delete=fields.CASCADE
    )
    petition_id: int
    country = fields.CharField(max_length=2)
    count = fields.IntField(default=0)

    class Meta:
        table = "country_count"
        unique_together = (("petition", "country"),)


class BucketCount(Model):
    """A petition's valid signatures signed in one minute, hour or day (UTC, by `created_at`):
    moved with `signature_count`, in the same transaction. The unique index serves the reads,
    a range of one interval's starts."""

    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="bucket_counts", on_delete=fields.CASCADE
    )
    petition_id: int
    interval = fields.CharEnumField(Interval, max_length=6)
    start = fields.DatetimeField()  # a whole UTC minute, hour or day
    count = fields.IntField(default=0)

    class Meta:
        table = "bucket_count"
        unique_together = (("petition", "interval", "start"),)


class Milestone(Model):
    """When a petition's count first reached a milestone (or its goal): written once, in the
    transaction that moved the count there, and kept if the count drops again."""

    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="milestones", on_delete=fields.CASCADE
    )
    petition_id: int
    count = fields.IntField()
    reached_at = fields.DatetimeField()

    class Meta:
        table = "milestone"
        unique_together = (("petition", "count"),)


class Comment(Model):
    id = fields.BigIntField(primary_key=True)
    petition: fields.ForeignKeyRelation[Petition] = fields.ForeignKeyField(
        "models.Petition", related_name="comments", on_delete=fields.CASCADE
    )
    petition_id: int
    author_name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=254)
    email_canonical = fields.CharField(max_length=254, default="", db_default="", db_index=True)
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


class OutboxMail(Model):
    """A mail to send, written in the transaction of what it tells: the mailer sends it (with
    retries and back-off) and deletes it once the mail server has taken it."""

    id = fields.BigIntField(primary_key=True)
    signature: fields.ForeignKeyNullableRelation[Signature] = fields.ForeignKeyField(
        "models.Signature", related_name="mails", on_delete=fields.CASCADE, null=True
    )
    signature_id: int | None
    recipient = fields.CharField(max_length=254)
    subject = fields.CharField(max_length=300)
    body = fields.TextField()
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(db_index=True)
    claimed_until = fields.DatetimeField(null=True)  # a mailer is sending it (any process)
    last_error = fields.CharField(max_length=500, null=True)
    failed_at = fields.DatetimeField(null=True)  # given up on after the last retry
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "outbox_mail"


class ApiToken(Model):
    """A bearer token made by `petitions token create`: its SHA-256 only, never the token."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    role = fields.CharEnumField(TokenRole, max_length=10)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_token"
