"""Mutation inputs, named and shaped as the contract says."""

from __future__ import annotations

from datetime import datetime

import strawberry

from .types import CommentStatus, PetitionStatus, SignatureStatus


@strawberry.input(description="Who signs which petition.")
class SignPetitionInput:
    petition_id: strawberry.ID = strawberry.field(description="The petition's global ID.")
    first_name: str = strawberry.field(description="Up to 100 characters.")
    last_name: str = strawberry.field(description="Up to 100 characters.")
    email: str = strawberry.field(description="One signature per email; never shown.")
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2.")
    comment: str | None = strawberry.field(default=None, description="Up to 2,000 characters.")
    show_name: bool | None = strawberry.field(
        default=True, description='False lists the signer as "Anonymous" (null means true).'
    )


@strawberry.input(description="A comment on a petition.")
class AddCommentInput:
    petition_id: strawberry.ID = strawberry.field(description="The petition's global ID.")
    author_name: str = strawberry.field(description="Shown with the comment.")
    email: str = strawberry.field(description="Never shown.")
    body: str = strawberry.field(description="Up to 5,000 characters.")


@strawberry.input(description="A new petition (admins only).")
class CreatePetitionInput:
    title: str = strawberry.field(description="Up to 200 characters.")
    target: str = strawberry.field(description="Who the petition asks.")
    goal: str = strawberry.field(description="What it asks for, in a sentence.")
    body: str = strawberry.field(description="The case; line breaks kept.")
    letter: str | None = strawberry.field(default=None, description="The letter.")
    image_url: str | None = strawberry.field(default=None, description="http(s) URL.")
    image_credit: str | None = strawberry.field(default=None, description="Image credit.")
    slug: str | None = strawberry.field(
        default=None, description="URL-safe and unique; derived from the title when not given."
    )
    signature_goal: int | None = strawberry.field(default=None, description="A positive count.")
    status: PetitionStatus | None = strawberry.field(
        default=PetitionStatus.OPEN, description="Null means OPEN."
    )
    closes_at: datetime | None = strawberry.field(default=None, description="With an offset.")


@strawberry.input(
    description="Changes to a petition (admins only). Omitted fields stay; null clears the "
    "nullable ones and leaves the others as they are."
)
class UpdatePetitionInput:
    id: strawberry.ID = strawberry.field(description="The petition's global ID.")
    title: str | None = strawberry.UNSET
    target: str | None = strawberry.UNSET
    goal: str | None = strawberry.UNSET
    body: str | None = strawberry.UNSET
    letter: str | None = strawberry.UNSET
    image_url: str | None = strawberry.UNSET
    image_credit: str | None = strawberry.UNSET
    signature_goal: int | None = strawberry.UNSET
    status: PetitionStatus | None = strawberry.UNSET
    closes_at: datetime | None = strawberry.UNSET


@strawberry.input(description="A moderator's decision on a comment.")
class ModerateCommentInput:
    id: strawberry.ID = strawberry.field(description="The comment's global ID.")
    status: CommentStatus = strawberry.field(
        description="PUBLISHED lists it; HELD, SPAM or HIDDEN take it down."
    )


@strawberry.input(description="A reader's report of a published comment.")
class ReportCommentInput:
    id: strawberry.ID = strawberry.field(description="The comment's global ID.")
    reason: str | None = strawberry.field(
        default=None, description="Why, in a line (optional, up to 500 characters)."
    )


@strawberry.input(description="The token from a signer's confirmation email.")
class ConfirmSignatureInput:
    token: str = strawberry.field(description="As mailed (the link ends with it).")


@strawberry.input(
    description="Which of a petition's signatures to strike off or release (admins only): "
    "those matching every filter given (at least one)."
)
class StrikeSignaturesInput:
    petition_id: strawberry.ID = strawberry.field(description="The petition's global ID.")
    ip: str | None = strawberry.field(default=None, description="An address or a CIDR network.")
    email_domain: str | None = strawberry.field(default=None, description="Like example.org.")
    signed_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    signed_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    status: SignatureStatus = strawberry.field(
        description="VALID (release) or INVALID (strike off)."
    )
    dry_run: bool | None = strawberry.field(
        default=False, description="Count the matches, change nothing."
    )


@strawberry.input(description="Whose signatures and comments to erase (admins only).")
class EraseSignerInput:
    email: str = strawberry.field(description="Any spelling of the mailbox.")
