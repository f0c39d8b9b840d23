"""Moving signatures between statuses after they were signed: a signer's confirmation, an
admin's strike (or release), and the fraud tools' view of where signatures come from.

Every move happens under the petition's row lock, moves `signature_count` and the figures by
country and by bucket (see `figures`) by the valid signatures it adds or takes away, and
numbers the signatures that become valid for the first time (see `signing` on numbers and
statuses). A move that changes the count other than by announcing new signatures takes one
`tick` of the petition's signature clock and is pushed as a `CountChanged` carrying it, so that
every process orders counts up and down alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from subscriptions import CountChanged, Event, Publisher

from . import figures
from .database import marks
from .errors import RefusalCode, Refused
from .signing import Signed, refusal_to_sign, signature_added
from .tables import Petition, Signature, SignatureStatus
from .text import canonical_domain
from .tokens import token_hash

_NOT_COUNTED = (SignatureStatus.QUARANTINED, SignatureStatus.INVALID)


async def lock_petition(connection: BaseDBAsyncClient, petition_id: int) -> Petition | None:
    """The petition's row, locked for the rest of the transaction (every count change takes
    this lock first, as the writer does)."""
    return await Petition.filter(id=petition_id).select_for_update().using_db(connection).first()


async def tick(
    connection: BaseDBAsyncClient, petition: Petition, tally: figures.Tally
) -> list[Event]:
    """Move the locked petition's count and figures by `tally` (the signatures it gains, or
    loses: negative), and take a tick of its signature clock: the event that tells every
    process, with the count as it now stands, then any milestone the count passed for the
    first time."""
    counted = tally.total
    await connection.execute_query(
        'UPDATE "petition" SET "signature_count" = "signature_count" + {}, '
        '"last_signature_number" = "last_signature_number" + 1 WHERE "id" = {}'.format(
            *marks(connection, 2)
        ),
        [counted, petition.id],
    )
    await figures.move(connection, petition.id, tally)
    before = petition.signature_count
    petition.signature_count += counted
    petition.last_signature_number += 1
    changed = CountChanged(
        petition.id,
        petition.signature_count,
        petition.signature_goal,
        petition.last_signature_number,
    )
    now = datetime.now(UTC)
    return [
        changed,
        *await figures.reach(connection, petition, before, petition.signature_count, now),
    ]


async def number_as_valid(
    connection: BaseDBAsyncClient,
    petition: Petition,
    signatures: Sequence[Signature],
) -> list[Event]:
    """Make `signatures` (none valid yet, none numbered) valid, numbered in the order given
    after the locked petition's last number; their `SignatureAdded` events, in order."""
    if not signatures:
        return []
    first = petition.last_signature_number + 1
    one, two = marks(connection, 2)
    await connection.execute_many(
        f'UPDATE "signature" SET "status" = \'VALID\', "number" = {one} WHERE "id" = {two}',
        [[first + offset, row.id] for offset, row in enumerate(signatures)],
    )
    await connection.execute_query(
        'UPDATE "petition" SET "signature_count" = "signature_count" + {}, '
        '"last_signature_number" = "last_signature_number" + {} WHERE "id" = {}'.format(
            *marks(connection, 3)
        ),
        [len(signatures), len(signatures), petition.id],
    )
    await figures.move(connection, petition.id, figures.Tally.of(signatures))
    before = petition.signature_count
    events: list[Event] = []
    for offset, row in enumerate(signatures):
        row.status, row.number = SignatureStatus.VALID, first + offset
        petition.signature_count += 1
        petition.last_signature_number = row.number
        events.append(signature_added(row, petition))
    now = datetime.now(UTC)
    return events + await figures.reach(connection, petition, before, petition.signature_count, now)


# Confirmation ---------------------------------------------------------------------------------


def _not_found() -> Refused:
    return Refused.one(
        RefusalCode.NOT_FOUND, "That confirmation link is unknown or has expired.", "token"
    )


async def confirm_signature(token: str, *, ttl: timedelta, publisher: Publisher) -> Signed:
    """Confirm the signature mailed `token`: a pending one becomes valid (numbered, counted,
    pushed). Confirming again answers the same; a held one is noted as confirmed and stays held,
    answered as any other. An unknown or expired token is `NOT_FOUND`."""
    now = datetime.now(UTC)
    found = await Signature.get_or_none(token_hash=token_hash(token.strip()))
    if found is None or found.created_at + ttl < now:
        raise _not_found()
    events: list[Event] = []
    async with in_transaction() as connection:
        petition = await lock_petition(connection, found.petition_id)
        refusal = refusal_to_sign(petition)
        if refusal is not None:
            raise refusal
        assert petition is not None
        row = await Signature.filter(id=found.id).using_db(connection).first()
        if row is None:  # erased meanwhile
            raise _not_found()
        if row.confirmed_at is None:
            row.confirmed_at = now
            await row.save(using_db=connection, update_fields=["confirmed_at"])
        if row.status is SignatureStatus.PENDING:
            events = await number_as_valid(connection, petition, [row])
    await publisher.publish(*events)
    return Signed(row, petition)


# Strikes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrikeFilters:
    """Which of a petition's signatures a strike matches: every filter given must hold."""

    ip: str | None = None  # an address or a CIDR network
    email_domain: str | None = None
    signed_after: datetime | None = None
    signed_before: datetime | None = None


@dataclass(frozen=True)
class Struck:
    matched: int
    changed: int
    petition: Petition


def _network(ip: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(ip.strip(), strict=False)
    except ValueError:
        raise Refused.one(
            RefusalCode.INVALID_INPUT,
            "Give an IP address or a CIDR network, like 10.0.0.0/8.",
            "ip",
        ) from None


async def _matching(petition_id: int, filters: StrikeFilters) -> QuerySet[Signature]:
    if not any(
        value is not None
        for value in (filters.ip, filters.email_domain, filters.signed_after, filters.signed_before)
    ):
        raise Refused.one(
            RefusalCode.INVALID_INPUT,
            "Give at least one filter: ip, emailDomain, signedAfter or signedBefore.",
            None,
        )
    rows = Signature.filter(petition_id=petition_id)
    if filters.signed_after is not None:
        rows = rows.filter(created_at__gte=filters.signed_after.astimezone(UTC))
    if filters.signed_before is not None:
        rows = rows.filter(created_at__lt=filters.signed_before.astimezone(UTC))
    if filters.email_domain is not None:
        rows = rows.filter(email_domain=canonical_domain(filters.email_domain))
    if filters.ip is not None:
        network = _network(filters.ip)
        if network.num_addresses == 1:
            rows = rows.filter(address=str(network.network_address))
        else:  # the petition's distinct addresses, few beside its signatures, tested here
            seen = (
                await rows.filter(address__isnull=False)
                .distinct()
                .values_list("address", flat=True)
            )
            inside = [address for address in seen if _within(str(address), network)]
            rows = rows.filter(address__in=inside)
    return rows


def _within(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


async def strike_signatures(
    petition_id: int,
    filters: StrikeFilters,
    status: SignatureStatus,
    *,
    dry_run: bool,
    publisher: Publisher,
) -> Struck:
    """Move the valid, held and struck signatures matching every filter to `status`
    (`INVALID`: struck off; `VALID`: released); pending ones wait for their confirmation."""
    if status not in (SignatureStatus.VALID, SignatureStatus.INVALID):
        raise Refused.one(
            RefusalCode.INVALID_INPUT, "A strike sets VALID (release) or INVALID.", "status"
        )
    petition = await Petition.get_or_none(id=petition_id)
    if petition is None:
        raise Refused.one(RefusalCode.NOT_FOUND, "No petition has that id.", "petition_id")
    rows = await _matching(petition_id, filters)
    if dry_run:
        return Struck(await rows.count(), 0, petition)
    events: list[Event] = []
    async with in_transaction() as connection:
        locked = await lock_petition(connection, petition_id)
        assert locked is not None
        petition = locked
        matched = await rows.using_db(connection).count()
        if status is SignatureStatus.INVALID:
            valid = rows.filter(status=SignatureStatus.VALID)
            tally = await figures.tally_rows(connection, valid, -1)
            struck = await valid.using_db(connection).update(status=SignatureStatus.INVALID)
            held = (
                await rows.filter(status=SignatureStatus.QUARANTINED)
                .using_db(connection)
                .update(status=SignatureStatus.INVALID)
            )
            changed, counted = struck + held, -struck
        else:
            returning = rows.filter(status__in=_NOT_COUNTED, number__isnull=False)
            tally = await figures.tally_rows(connection, returning)
            counted = await returning.using_db(connection).update(status=SignatureStatus.VALID)
            fresh = (
                await rows.filter(status__in=_NOT_COUNTED, number__isnull=True)
                .using_db(connection)
                .order_by("created_at", "id")
            )
            events = await number_as_valid(connection, petition, fresh)
            changed = counted + len(fresh)
        if counted:  # back at their places, or struck off: the count moves, unannounced
            events += await tick(connection, petition, tally)
    await publisher.publish(*events)
    return Struck(matched, changed, petition)


# Sources --------------------------------------------------------------------------------------


class SourceKind(StrEnum):
    IP = "IP"
    EMAIL_DOMAIN = "EMAIL_DOMAIN"
    COUNTRY = "COUNTRY"


_SOURCE_COLUMN = {
    SourceKind.IP: "address",
    SourceKind.EMAIL_DOMAIN: "email_domain",
    SourceKind.COUNTRY: "country",
}


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    value: str
    count: int
    share: float


async def signature_sources(
    petition_id: int, kind: SourceKind, *, hours: int, first: int
) -> list[Source]:
    """Where the petition's signatures of the last `hours` hours came from (every status), the
    largest sources first (ties by value): counted by the indexed column of `kind`."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    window = Signature.filter(petition_id=petition_id, created_at__gte=since)
    total = await window.count()
    if not total:
        return []
    column = _SOURCE_COLUMN[kind]
    grouped = (
        await window.filter(**{f"{column}__isnull": False})
        .exclude(**{column: ""})
        .annotate(signatures=Count("id"))
        .group_by(column)
        .order_by("-signatures", column)
        .limit(first)
        .values(column, "signatures")
    )
    return [
        Source(kind, str(row[column]), int(row["signatures"]), int(row["signatures"]) / total)
        for row in grouped
    ]
