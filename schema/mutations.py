"""Writing: each resolver turns GraphQL input into one domain call and its result back."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import strawberry

import models
from models import RefusalCode, Refused

from .context import Context, Info
from .errors import UserError, user_error
from .ids import parse_global_id
from .inputs import (
    AddCommentInput,
    ConfirmSignatureInput,
    CreatePetitionInput,
    EraseSignerInput,
    ModerateCommentInput,
    ReportCommentInput,
    SignPetitionInput,
    StrikeSignaturesInput,
    UpdatePetitionInput,
)
from .types import Comment, CommentStatus, Petition, Signature

T = TypeVar("T")


@strawberry.type(description="The signature made, or why not.")
class SignPetitionPayload:
    signature: Signature | None = strawberry.field(
        description="The new signature (null while it waits for its confirmation)."
    )
    petition: Petition | None = strawberry.field(description="The petition, with its count.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")
    needs_confirmation: bool = strawberry.field(
        default=False,
        description="True when the signature waits for the signer to confirm by email "
        "(confirmation mode). A repeated email, and a signature held silently, answer exactly "
        "as a new one would: nobody learns from the answer whether an email has signed.",
    )


@strawberry.type(description="The signature confirmed, or why not.")
class ConfirmSignaturePayload:
    signature: Signature | None = strawberry.field(description="The signature, now counted.")
    petition: Petition | None = strawberry.field(description="The petition, with its count.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="What a strike matched and changed, or why not.")
class StrikeSignaturesPayload:
    matched: int = strawberry.field(description="Signatures matching every filter.")
    changed: int = strawberry.field(description="Those whose status changed (0 on a dry run).")
    petition: Petition | None = strawberry.field(description="The petition, with its count.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="What was erased, or why not.")
class EraseSignerPayload:
    signatures: int = strawberry.field(description="Signatures erased, over all petitions.")
    comments: int = strawberry.field(description="Comments erased, over all petitions.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="The comment made, or why not.")
class AddCommentPayload:
    comment: Comment | None = strawberry.field(description="The new comment.")
    petition: Petition | None = strawberry.field(description="The petition.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")
    status: CommentStatus | None = strawberry.field(
        default=None,
        description="PUBLISHED, or HELD when it is not public yet (held for a moderator, or "
        "judged spam: its author is told HELD either way); null when refused.",
    )


@strawberry.type(description="The comment as it now stands, or why not.")
class CommentPayload:
    comment: Comment | None = strawberry.field(description="The comment.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="Whether the report was taken.")
class ReportCommentPayload:
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="The petition created or changed, or why not.")
class PetitionPayload:
    petition: Petition | None = strawberry.field(description="The petition.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


class _BadId(Exception):
    def __init__(self, error: UserError) -> None:
        self.error = error


def petition_pk(value: str, field: str) -> int:
    """The primary key in a petition's global ID, or `_BadId` with the contract's error."""
    return _pk(value, "Petition", field)


def _pk(value: str, type_name: str, field: str) -> int:
    parsed = parse_global_id(value)
    if parsed is None:
        raise _BadId(user_error(RefusalCode.INVALID_INPUT, "That is not a valid ID.", field))
    found, pk = parsed
    if found != type_name:
        message = f"No {type_name.lower()} has that id."
        raise _BadId(user_error(RefusalCode.NOT_FOUND, message, field))
    return pk


def rate_limited(what: str) -> Refused:
    return Refused.one(
        RefusalCode.RATE_LIMITED, f"Too many {what} from your address: try again later."
    )


async def attempt(call: Awaitable[T]) -> tuple[T | None, list[UserError]]:
    try:
        return await call, []
    except Refused as refused:
        return None, [UserError.from_problem(problem) for problem in refused.problems]


def unauthorized(who: str = "admins") -> list[UserError]:
    return [user_error(RefusalCode.UNAUTHORIZED, f"Only {who} may do this.")]


def given(value: Any) -> Any:
    return models.KEEP if value is strawberry.UNSET else value


async def resolve_sign_petition(context: Context, input: SignPetitionInput) -> SignPetitionPayload:
    """`signPetition`, for Strawberry's resolver and for the compiled plan of hot documents."""
    try:
        pk = petition_pk(input.petition_id, "petitionId")
    except _BadId as bad:
        return SignPetitionPayload(signature=None, petition=None, errors=[bad.error])
    signed, errors = await attempt(_sign(context, pk, input))
    if signed is None:
        petition = await context.petitions.find(admin=context.admin, petition_id=pk)
        return SignPetitionPayload(
            signature=None,
            petition=Petition.from_row(petition) if petition else None,
            errors=errors,
        )
    if signed.needs_confirmation:  # first or repeated, held or not: one answer
        return SignPetitionPayload(
            signature=None,
            petition=Petition.from_row(signed.petition),
            errors=[],
            needs_confirmation=True,
        )
    return SignPetitionPayload(
        signature=Signature.from_row(signed.signature, as_valid=True),
        petition=Petition.from_row(signed.petition),
        errors=[],
    )


async def _sign(context: Context, petition_pk: int, input: SignPetitionInput) -> models.Signed:
    fields = models.SignatureFields.clean(
        first_name=input.first_name,
        last_name=input.last_name,
        email=input.email,
        country=input.country,
        comment=input.comment,
        show_name=input.show_name is not False,
    )
    held = False
    if not await context.policy.rates.allow("sign", context.client, str(petition_pk)):
        if not context.policy.quarantine_over_limit:
            raise rate_limited("signatures")
        held = True  # stored and answered as any other, counted by nobody
    return await context.writer.sign(petition_pk, fields, address=context.client, held=held)


async def _comment(context: Context, petition_pk: int, input: AddCommentInput) -> models.Commented:
    if not await context.policy.rates.allow("comment", context.client):
        raise rate_limited("comments")
    return await models.add_comment(
        petition_pk,
        author_name=input.author_name,
        email=input.email,
        body=input.body,
        publisher=context.hub,
        moderation=context.policy.moderation,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Sign a petition: one signature per email per petition.")
    async def sign_petition(self, info: Info, input: SignPetitionInput) -> SignPetitionPayload:
        return await resolve_sign_petition(info.context, input)

    @strawberry.mutation(
        description="Comment on an open petition: published at once, or held for a moderator."
    )
    async def add_comment(self, info: Info, input: AddCommentInput) -> AddCommentPayload:
        context = info.context
        try:
            pk = petition_pk(input.petition_id, "petitionId")
        except _BadId as bad:
            return AddCommentPayload(comment=None, petition=None, errors=[bad.error])
        commented, errors = await attempt(_comment(context, pk, input))
        if commented is None:
            return AddCommentPayload(comment=None, petition=None, errors=errors)
        return AddCommentPayload(
            comment=Comment.from_row(commented.comment, status=commented.told),
            petition=Petition.from_row(commented.petition),
            errors=[],
            status=commented.told,
        )

    @strawberry.mutation(description="Set a comment's status (moderators and admins).")
    async def moderate_comment(self, info: Info, input: ModerateCommentInput) -> CommentPayload:
        context = info.context
        if not context.may_moderate:
            return CommentPayload(comment=None, errors=unauthorized("moderators and admins"))
        try:
            pk = _pk(input.id, "Comment", "id")
        except _BadId as bad:
            return CommentPayload(comment=None, errors=[bad.error])
        comment, errors = await attempt(
            models.moderate_comment(pk, input.status, publisher=context.hub)
        )
        return CommentPayload(comment=Comment.from_row(comment) if comment else None, errors=errors)

    @strawberry.mutation(
        description="Report a published comment; one report per address per comment."
    )
    async def report_comment(self, info: Info, input: ReportCommentInput) -> ReportCommentPayload:
        context = info.context
        try:
            pk = _pk(input.id, "Comment", "id")
        except _BadId as bad:
            return ReportCommentPayload(errors=[bad.error])
        _, errors = await attempt(
            models.report_comment(
                pk,
                address=context.client,
                reason=input.reason,
                reports_to_hide=context.policy.reports_to_hide,
                publisher=context.hub,
            )
        )
        return ReportCommentPayload(errors=errors)

    @strawberry.mutation(description="Create a petition (admins only).")
    async def create_petition(self, info: Info, input: CreatePetitionInput) -> PetitionPayload:
        if not info.context.admin:
            return PetitionPayload(petition=None, errors=unauthorized())
        petition, errors = await attempt(
            models.create_petition(
                title=input.title,
                target=input.target,
                goal=input.goal,
                body=input.body,
                letter=input.letter,
                image_url=input.image_url,
                image_credit=input.image_credit,
                slug=input.slug,
                signature_goal=input.signature_goal,
                status=input.status or models.PetitionStatus.OPEN,
                closes_at=input.closes_at,
            )
        )
        return PetitionPayload(
            petition=Petition.from_row(petition) if petition else None, errors=errors
        )

    @strawberry.mutation(description="Change a petition (admins only).")
    async def update_petition(self, info: Info, input: UpdatePetitionInput) -> PetitionPayload:
        if not info.context.admin:
            return PetitionPayload(petition=None, errors=unauthorized())
        try:
            pk = petition_pk(input.id, "id")
        except _BadId as bad:
            return PetitionPayload(petition=None, errors=[bad.error])
        petition, errors = await attempt(
            models.update_petition(
                pk,
                publisher=info.context.hub,
                title=given(input.title),
                target=given(input.target),
                goal=given(input.goal),
                body=given(input.body),
                letter=given(input.letter),
                image_url=given(input.image_url),
                image_credit=given(input.image_credit),
                signature_goal=given(input.signature_goal),
                status=given(input.status),
                closes_at=given(input.closes_at),
            )
        )
        return PetitionPayload(
            petition=Petition.from_row(petition) if petition else None, errors=errors
        )

    @strawberry.mutation(
        description="Confirm a signature with the token its signer was emailed: it is counted."
    )
    async def confirm_signature(
        self, info: Info, input: ConfirmSignatureInput
    ) -> ConfirmSignaturePayload:
        context = info.context
        signed, errors = await attempt(
            models.confirm_signature(
                input.token, ttl=context.policy.confirm_ttl, publisher=context.hub
            )
        )
        if signed is None:
            return ConfirmSignaturePayload(signature=None, petition=None, errors=errors)
        return ConfirmSignaturePayload(
            signature=Signature.from_row(signed.signature, as_valid=True),
            petition=Petition.from_row(signed.petition),
            errors=[],
        )

    @strawberry.mutation(
        description="Strike off (INVALID) or release (VALID) the signatures matching every "
        "filter given (admins only); pending ones wait for their confirmation."
    )
    async def strike_signatures(
        self, info: Info, input: StrikeSignaturesInput
    ) -> StrikeSignaturesPayload:
        context = info.context
        if not context.admin:
            return StrikeSignaturesPayload(
                matched=0, changed=0, petition=None, errors=unauthorized()
            )
        try:
            pk = petition_pk(input.petition_id, "petitionId")
        except _BadId as bad:
            return StrikeSignaturesPayload(matched=0, changed=0, petition=None, errors=[bad.error])
        filters = models.StrikeFilters(
            ip=input.ip,
            email_domain=input.email_domain,
            signed_after=input.signed_after,
            signed_before=input.signed_before,
        )
        struck, errors = await attempt(
            models.strike_signatures(
                pk, filters, input.status, dry_run=bool(input.dry_run), publisher=context.hub
            )
        )
        if struck is None:
            return StrikeSignaturesPayload(matched=0, changed=0, petition=None, errors=errors)
        return StrikeSignaturesPayload(
            matched=struck.matched,
            changed=struck.changed,
            petition=Petition.from_row(struck.petition),
            errors=[],
        )

    @strawberry.mutation(
        description="Erase every signature and comment of one mailbox, over all petitions "
        "(admins only); counts drop exactly and subscribers are told."
    )
    async def erase_signer(self, info: Info, input: EraseSignerInput) -> EraseSignerPayload:
        context = info.context
        if not context.admin:
            return EraseSignerPayload(signatures=0, comments=0, errors=unauthorized())
        erased, errors = await attempt(models.erase_signer(input.email, publisher=context.hub))
        if erased is None:
            return EraseSignerPayload(signatures=0, comments=0, errors=errors)
        return EraseSignerPayload(signatures=erased.signatures, comments=erased.comments, errors=[])
