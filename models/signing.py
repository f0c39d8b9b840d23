"""Signing: the rules that keep counts exact and one signature per email."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from subscriptions import Publisher, SignatureAdded

from .errors import RefusalCode, Refused
from .petitions import find_petition
from .tables import Petition, PetitionStatus, Signature
from .text import Cleaner, canonical_email, public_name


@dataclass(frozen=True)
class Signed:
    signature: Signature
    petition: Petition


@dataclass(frozen=True)
class SignatureFields:
    """A signature's input, cleaned: what `sign` and the `SignatureWriter` store."""

    first_name: str
    last_name: str
    email: str
    country: str | None
    comment: str | None
    show_name: bool

    @classmethod
    def clean(
        cls,
        *,
        first_name: str,
        last_name: str,
        email: str,
        country: str | None = None,
        comment: str | None = None,
        show_name: bool = True,
    ) -> SignatureFields:
        """Trim, normalise and check every field; `Refused` lists every problem."""
        clean = Cleaner()
        fields = cls(
            first_name=clean.line("first_name", first_name),
            last_name=clean.line("last_name", last_name),
            email=clean.email("email", email),
            country=clean.optional(clean.country, "country", country),
            comment=clean.optional(clean.text, "comment", comment),
            show_name=show_name,
        )
        clean.done()
        return fields

    @property
    def email_canonical(self) -> str:
        return canonical_email(self.email)

    def row(self, petition_id: int, number: int, **extra: Any) -> Signature:
        return Signature(
            petition_id=petition_id,
            number=number,
            first_name=self.first_name,
            last_name=self.last_name,
            email=self.email,
            email_canonical=self.email_canonical,
            show_name=self.show_name,
            country=self.country,
            comment=self.comment,
            **extra,
        )


def refusal_to_sign(petition: Petition | None) -> Refused | None:
    """Why `petition` takes no signature (or comment) now, if it does not."""
    if petition is None or petition.status is PetitionStatus.DRAFT:
        return Refused.one(RefusalCode.NOT_FOUND, "No petition has that id.", "petition_id")
    if petition.effective_status is not PetitionStatus.OPEN:
        return Refused.one(RefusalCode.PETITION_CLOSED, "This petition is closed.", "petition_id")
    return None


def already_signed() -> Refused:
    return Refused.one(
        RefusalCode.ALREADY_SIGNED, "This email has already signed this petition.", "email"
    )


def signature_added(signature: Signature, petition: Petition) -> SignatureAdded:
    """The event of a committed signature, with `petition`'s counts as they were after it."""
    return SignatureAdded(
        petition_id=petition.id,
        signature_count=petition.signature_count,
        signature_goal=petition.signature_goal,
        signature_id=signature.id,
        number=signature.number,
        name=public_name(signature.first_name, signature.last_name, signature.show_name),
        country=signature.country,
        comment=signature.comment,
        created_at=signature.created_at.isoformat(),
    )


async def open_petition(petition_id: int) -> Petition:
    petition = await find_petition(admin=False, petition_id=petition_id)
    refusal = refusal_to_sign(petition)
    if refusal is not None:
        raise refusal
    assert petition is not None
    return petition


async def sign(petition_id: int, fields: SignatureFields, *, publisher: Publisher) -> Signed:
    """Add one signature in a transaction of its own, or refuse and store nothing.

    The unique constraint on (petition, canonical email) is what stops a second signature,
    however many arrive at once; the counter moves in the same transaction as the insert.
    A running server signs through the `SignatureWriter`, which batches; this is its fallback.
    """
    petition = await open_petition(petition_id)
    try:
        async with in_transaction() as connection:
            # Taking the petition's row lock first numbers its signatures without gaps,
            # in commit order.
            await (
                Petition.filter(id=petition_id)
                .using_db(connection)
                .update(
                    signature_count=F("signature_count") + 1,
                    last_signature_number=F("last_signature_number") + 1,
                )
            )
            [(count, number)] = await (
                Petition.filter(id=petition_id)
                .using_db(connection)
                .values_list("signature_count", "last_signature_number")
            )
            signature = fields.row(petition_id, number)
            await signature.save(using_db=connection)
    except IntegrityError:
        raise already_signed() from None
    petition.signature_count = count
    petition.last_signature_number = number
    await publisher.publish(signature_added(signature, petition))
    return Signed(signature, petition)


async def signatures_after(petition_id: int, number: int, *, up_to: int) -> list[Signature]:
    """Signatures numbered (number, up_to], oldest first: to fill a gap in a live stream."""
    return await Signature.filter(
        petition_id=petition_id, number__gt=number, number__lte=up_to
    ).order_by("number")
