"""Signing: the rules that keep counts exact and one signature per email.

Numbers and statuses. A signature's `number` is its place among the petition's valid
signatures: the keyset of every page and the order `signatureAdded` delivers in. It is given
once, under the petition's row lock, when the signature first becomes `VALID` (at once when
signed outside confirmation mode; when confirmed; when an admin releases a held one), taken
from the petition's signature clock (`last_signature_number`), and never changed or reused. A
signature struck off or erased leaves its number behind, and released again it returns to its
place, unannounced (`signatureAdded` told of it once). Every other change of the count takes a
tick of the same clock that no signature holds (`statuses.tick`), so the clock orders every
count a subscriber may be sent, up or down. Readers therefore meet gaps: they list `VALID`
signatures only, page by number (a cursor's signature may be gone), and the gap-filling reader
(`signatures_after`) takes whatever valid ones the gap holds. Pending and held signatures have
no number.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from subscriptions import SignatureAdded

from .errors import RefusalCode, Refused
from .petitions import find_petition
from .tables import Petition, PetitionStatus, Signature, SignatureStatus
from .text import Cleaner, canonical_email, email_domain, public_name

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class NewSignature:
    """A signature the writer stores: its columns, and its id once inserted. Plain data, not
    a Tortoise model: building and filling one of those per signature cost the writer's batch
    more than anything else it does in Python."""

    petition_id: int
    number: int | None
    status: SignatureStatus
    first_name: str
    last_name: str
    email: str
    email_canonical: str
    email_domain: str
    show_name: bool
    country: str | None
    comment: str | None
    address: str | None
    token_hash: str | None
    created_at: datetime
    id: int = 0  # 0 until stored


@dataclass(frozen=True)
class Signed:
    """A signature taken. `status` is what it was stored as; the caller answers every status
    alike (a held one looks counted, a repeated one in confirmation mode looks new)."""

    signature: Signature | NewSignature
    petition: Petition
    needs_confirmation: bool = False


@dataclass(frozen=True)
class Confirmation:
    """Confirmation mode: signatures wait for their signer's emailed token."""

    public_url: str  # the site's base URL, for the link in the mail
    ttl: timedelta = timedelta(days=7)
    mail_queued: Callable[[], None] = lambda: None  # wakes the mailer after a commit


@dataclass(frozen=True)
class Intake:
    """How new signatures are taken, from the settings: confirmed by email or counted at once,
    and which are held silently (`QUARANTINED`) whatever their answer says."""

    confirmation: Confirmation | None = None
    blocked_networks: tuple[Network, ...] = ()
    blocked_domains: frozenset[str] = field(default_factory=frozenset)  # canonical_domain()s

    def blocked(self, fields: SignatureFields, address: str | None) -> bool:
        if email_domain(fields.email_canonical) in self.blocked_domains:
            return True
        if address is None or not self.blocked_networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.blocked_networks)

    def status(self, *, held: bool) -> SignatureStatus:
        """What a new signature is stored as."""
        if held:
            return SignatureStatus.QUARANTINED
        if self.confirmation is not None:
            return SignatureStatus.PENDING
        return SignatureStatus.VALID


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

    @cached_property  # asked for by the batch, the row and the block list
    def email_canonical(self) -> str:
        return canonical_email(self.email)

    def row(
        self,
        petition_id: int,
        number: int | None,
        *,
        status: SignatureStatus,
        created_at: datetime,
        address: str | None = None,
        token_hash: str | None = None,
    ) -> NewSignature:
        canonical = self.email_canonical
        return NewSignature(
            petition_id,
            number,
            status,
            self.first_name,
            self.last_name,
            self.email,
            canonical,
            email_domain(canonical),
            self.show_name,
            self.country,
            self.comment,
            address,
            token_hash,
            created_at,
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


def signature_added(signature: Signature | NewSignature, petition: Petition) -> SignatureAdded:
    """The event of a signature that became valid, with `petition`'s counts as they were
    after it."""
    assert signature.number is not None, "only a valid signature is announced"
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


async def signatures_after(petition_id: int, number: int, *, up_to: int) -> list[Signature]:
    """Valid signatures numbered (number, up_to], oldest first: to fill a gap in a live stream
    (numbers of the petition's clock that no valid signature holds are simply not there)."""
    return await Signature.filter(
        petition_id=petition_id,
        status=SignatureStatus.VALID,
        number__gt=number,
        number__lte=up_to,
    ).order_by("number")
