"""Group commit: one writer per process stores every signature waiting at that moment in one
transaction, so that throughput grows with load instead of collapsing on the petition's row.

A batch locks its petitions' rows (in id order, so two processes never deadlock), refuses what
must be refused (closed, not found, an email twice in the batch), numbers the rest after the
petition's last number and inserts them in one statement that skips any email already there
(`ON CONFLICT DO NOTHING`: the unique constraint decides, so no read of earlier signatures can
go stale or slow), moves each counter once (the count, and the figures by country and by
bucket: a statement each, and one more when a milestone is passed), commits, and only then
publishes the events, in number order, and answers the callers. When an email had signed
before (rare), the batch's rows of that petition are inserted again without it, so the numbers
given stay in line. Should a constraint fire all the same, the batch is rolled back and each
signature is tried alone.

Only `VALID` signatures take a number and move the count (see `signing` on numbers). In
confirmation mode the batch stores its signatures `PENDING`, each with the hash of a new token,
and writes their confirmation mails to the outbox in the same transaction; a repeated email is
answered as a new one would be, and its signer is mailed that they had signed already (at most
once a day). Confirmation mode costs each batch two more statements, not a transaction per
signature.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

import metrics
from subscriptions import Event, Publisher

from . import figures
from .database import marks
from .errors import Refused
from .outbox import Mail, already_signed_mail, confirmation_mail, queue_mails
from .petitions import MAX_PETITION_ID
from .signing import (
    Confirmation,
    Intake,
    NewSignature,
    SignatureFields,
    Signed,
    already_signed,
    refusal_to_sign,
    signature_added,
)
from .tables import Petition, Signature, SignatureStatus
from .tokens import new_token

REMIND_EVERY = timedelta(days=1)  # "you had signed already": at most once a day per signature

log = logging.getLogger("petitions.writer")


@dataclass(eq=False)  # each one is itself: a key by identity
class _Waiting:
    petition_id: int
    fields: SignatureFields
    address: str | None
    status: SignatureStatus
    token: str | None = None  # confirmation mode: the token mailed (its hash is stored)
    answer: asyncio.Future[Signed] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: Signed | BaseException) -> None:
        if self.answer.done():
            return
        if metrics.enabled():  # naming the outcome is work too: only when someone looks
            metrics.signature(_status_of(outcome))
        if isinstance(outcome, BaseException):
            self.answer.set_exception(outcome)
        else:
            self.answer.set_result(outcome)


def _status_of(outcome: Signed | BaseException) -> str:
    """What the metrics call a signature's outcome: the status stored (valid, pending,
    quarantined), the refusal (already_signed, petition_closed, …), or failed."""
    if isinstance(outcome, Refused):
        return outcome.problems[0].code.value.lower()
    if isinstance(outcome, BaseException):
        return "failed"
    if not outcome.signature.id:  # confirmation mode answers a repeat as a first
        return "already_signed"
    return str(outcome.signature.status.value).lower()


class Stopped(RuntimeError):
    """The writer is shutting down and takes no new signature."""


class SignatureWriter:
    SIGNING_LINGERS = 0.1  # seconds after the latest signature that signing counts as going on

    def __init__(
        self, publisher: Publisher, *, intake: Intake | None = None, max_batch: int = 500
    ) -> None:
        self.publisher = publisher
        self.intake = intake or Intake()
        self.max_batch = max_batch
        self._waiting: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        self.signed = 0
        self._last_taken = -1e9  # loop time of the latest signature handed over

    @property
    def signing(self) -> bool:
        """Signatures are waiting, or came in the last `SIGNING_LINGERS` seconds: the moment
        for reads to give way (see serving/endpoint.py)."""
        now = asyncio.get_running_loop().time()
        return bool(self._waiting) or now - self._last_taken < self.SIGNING_LINGERS

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Write everything already accepted, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def sign(
        self,
        petition_id: int,
        fields: SignatureFields,
        *,
        address: str | None = None,
        held: bool = False,
    ) -> Signed:
        """Queue one signature for the next batch and wait for its commit (or refusal). `held`
        (a limit caught it), or an address or email domain on a block list, stores it
        `QUARANTINED`, answered as any other."""
        if self._stopping:
            raise Stopped("the server is shutting down")
        held = held or self.intake.blocked(fields, address)
        waiting = _Waiting(petition_id, fields, address, self.intake.status(held=held))
        self._waiting.append(waiting)
        self._last_taken = asyncio.get_running_loop().time()
        self._wake.set()
        # Shielded: a caller that goes away does not take its signature out of a batch.
        return await asyncio.shield(waiting.answer)

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [
                self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))
            ]
            metrics.writer_batch(len(batch))
            try:
                # A task of its own per batch: Tortoise keeps the current transaction in a
                # context variable, and a transaction broken by a lost connection would
                # otherwise stay current in this long-lived task, failing every later batch.
                await asyncio.create_task(self._write(batch))
            except IntegrityError:
                log.warning("a batch of %d hit a unique constraint; signing one by one", len(batch))
                await self._write_one_by_one(batch)
            except Exception as error:  # the database failed: nothing of this batch is stored
                log.warning("a batch of %d failed: %s", len(batch), type(error).__name__)
                for waiting in batch:
                    waiting.settle(error)

    async def _write(self, batch: list[_Waiting]) -> None:
        refusals: list[tuple[_Waiting, Refused]] = []
        by_petition: dict[int, list[_Waiting]] = {}
        for waiting in batch:
            by_petition.setdefault(waiting.petition_id, []).append(waiting)
        now = datetime.now(UTC)
        confirmation = self.intake.confirmation
        written: list[tuple[_Waiting, NewSignature, Petition]] = []
        answered: list[tuple[_Waiting, Signed]] = []  # taken, but nothing to publish
        mails: list[Mail] = []
        reached: list[Event] = []  # milestones, told after the signatures that reached them
        async with in_transaction() as connection:
            ids = sorted(pk for pk in by_petition if 0 < pk <= MAX_PETITION_ID)
            locked = await (
                Petition.filter(id__in=ids).select_for_update().order_by("id").using_db(connection)
            )
            petitions = {petition.id: petition for petition in locked}
            for petition_id, waitings in by_petition.items():
                petition = petitions.get(petition_id)
                refusal = refusal_to_sign(petition)
                if refusal is not None:
                    refusals += [(waiting, refusal) for waiting in waitings]
                    continue
                assert petition is not None
                rows, signed_before = await _store(
                    connection, petition, waitings, now, tokens=confirmation is not None
                )
                if confirmation is None:
                    refusals += [(waiting, already_signed()) for waiting in signed_before]
                else:  # answered as a first signature; the mailbox's owner is told
                    mails += await _remind(connection, petition, signed_before, now, confirmation)
                    for waiting in signed_before:
                        unsaved = waiting.fields.row(
                            petition_id, None, status=waiting.status, created_at=now
                        )
                        answered.append((waiting, Signed(unsaved, petition, True)))
                valid = [(w, row) for w, row in rows.items() if row.number is not None]
                for waiting, row in rows.items():
                    if waiting.token is not None and confirmation is not None:
                        mails.append(
                            confirmation_mail(
                                waiting.fields.email,
                                petition_title=petition.title,
                                public_url=confirmation.public_url,
                                token=waiting.token,
                                signature_id=row.id,
                            )
                        )
                    if row.number is None:
                        answered.append((waiting, Signed(row, petition, confirmation is not None)))
                if valid:
                    await connection.execute_query(
                        'UPDATE "petition" SET "signature_count" = "signature_count" + {}, '
                        '"last_signature_number" = "last_signature_number" + {} '
                        'WHERE "id" = {}'.format(*marks(connection, 3)),
                        [len(valid), len(valid), petition_id],
                    )
                    await figures.move(
                        connection, petition_id, figures.Tally.of(row for _, row in valid)
                    )
                    count = petition.signature_count
                    reached += await figures.reach(
                        connection, petition, count, count + len(valid), now
                    )
                for offset, (waiting, row) in enumerate(valid, start=1):
                    snapshot = copy.copy(petition)
                    snapshot.signature_count = petition.signature_count + offset
                    snapshot.last_signature_number = row.number or 0
                    written.append((waiting, row, snapshot))
            await queue_mails(connection, mails, now)
        self.batches += 1
        self.signed += len(written) + len(answered)
        events: list[Event] = [signature_added(row, snapshot) for _, row, snapshot in written]
        events += reached
        await self.publisher.publish(*events)
        if mails and confirmation is not None:
            confirmation.mail_queued()
        for waiting, row, snapshot in written:
            waiting.settle(Signed(row, snapshot))
        for waiting, signed in answered:
            waiting.settle(signed)
        for waiting, refusal in refusals:
            waiting.settle(refusal)

    async def _write_one_by_one(self, batch: list[_Waiting]) -> None:
        for waiting in batch:
            try:
                await asyncio.create_task(self._write([waiting]))
            except IntegrityError:
                waiting.settle(already_signed())
            except Exception as error:
                waiting.settle(error)


async def _store(
    connection: BaseDBAsyncClient,
    petition: Petition,
    waitings: list[_Waiting],
    now: datetime,
    *,
    tokens: bool,
) -> tuple[dict[_Waiting, NewSignature], list[_Waiting]]:
    """Insert one locked petition's signatures, the valid ones numbered after its last number:
    the rows stored, by whom, and who had signed already (before, or earlier in line)."""
    firsts: dict[str, _Waiting] = {}  # one signature per email, the first in line
    signed_before: list[_Waiting] = []
    for waiting in waitings:
        if firsts.setdefault(waiting.fields.email_canonical, waiting) is not waiting:
            signed_before.append(waiting)
    start = petition.last_signature_number + 1
    rows = await _insert(connection, petition.id, start, list(firsts.values()), now, tokens)
    taken = [waiting for waiting in firsts.values() if waiting not in rows]
    if taken:  # signed before: rare; number the others again, in line
        signed_before += taken
        await _delete(connection, [row.id for row in rows.values()])
        fresh = list(rows)
        rows = await _insert(connection, petition.id, start, fresh, now, tokens)
        if len(rows) != len(fresh):
            raise IntegrityError("a signature appeared under the petition's lock")
    return rows, signed_before


async def _remind(
    connection: BaseDBAsyncClient,
    petition: Petition,
    signed_before: list[_Waiting],
    now: datetime,
    confirmation: Confirmation,
) -> list[Mail]:
    """The "you had signed already" mails for emails that signed (pending or valid), at most
    one per signature per day, noted on the signature in the same statement."""
    emails = {waiting.fields.email_canonical: waiting.fields.email for waiting in signed_before}
    if not emails:
        return []
    places = marks(connection, 6 + len(emails))
    found = await connection.execute_query_dict(
        f'UPDATE "signature" SET "reminded_at" = {places[0]} WHERE "petition_id" = {places[1]} '
        f'AND "status" IN ({places[2]}, {places[3]}) '
        f'AND ("reminded_at" IS NULL OR "reminded_at" < {places[4]}) '
        f'AND "created_at" < {places[5]} '  # not one this batch stored (a double submit)
        f'AND "email_canonical" IN ({",".join(places[6:])}) RETURNING "id", "email_canonical"',
        [
            now,
            petition.id,
            SignatureStatus.PENDING.value,
            SignatureStatus.VALID.value,
            now - REMIND_EVERY,
            now,
            *emails,
        ],
    )
    return [
        already_signed_mail(
            emails[str(row["email_canonical"])],
            petition_title=petition.title,
            public_url=confirmation.public_url,
            signature_id=int(row["id"]),
        )
        for row in found
    ]


_COLUMNS = (
    "petition_id",
    "number",
    "status",
    "first_name",
    "last_name",
    "email",
    "email_canonical",
    "email_domain",
    "show_name",
    "country",
    "comment",
    "address",
    "token_hash",
    "created_at",
)


async def _insert(
    connection: BaseDBAsyncClient,
    petition_id: int,
    start: int,
    waitings: list[_Waiting],
    now: datetime,
    tokens: bool,
) -> dict[_Waiting, NewSignature]:
    """Insert the signatures, the valid ones numbered from `start`, in one statement, skipping
    any whose email already signed (the unique constraint decides, not an earlier read); the
    rows inserted, with their ids, by whom they are."""
    if not waitings:
        return {}
    rows = []
    number = start
    for waiting in waitings:
        valid = waiting.status is SignatureStatus.VALID
        token_hash = None
        if tokens and not valid:  # confirmation mode: held ones are mailed a token too
            waiting.token, token_hash = new_token()
        rows.append(
            waiting.fields.row(
                petition_id,
                number if valid else None,
                status=waiting.status,
                address=waiting.address,
                token_hash=token_hash,
                created_at=now,
            )
        )
        number += valid
    # the values as they are: strings, integers, a boolean and an aware datetime, which both
    # drivers take (Tortoise's to_db_value returns each unchanged, for ~5% of a sign's time)
    values = [getattr(row, column) for row in rows for column in _COLUMNS]
    width = len(_COLUMNS)
    places = marks(connection, len(values))
    tuples = ",".join(
        "(" + ",".join(places[i : i + width]) + ")" for i in range(0, len(places), width)
    )
    columns = ",".join(f'"{column}"' for column in _COLUMNS)
    inserted = await connection.execute_query_dict(
        f'INSERT INTO "signature" ({columns}) VALUES {tuples} '
        'ON CONFLICT ("petition_id", "email_canonical") DO NOTHING '
        'RETURNING "id", "email_canonical"',
        values,
    )
    ids = {str(found["email_canonical"]): int(found["id"]) for found in inserted}
    stored: dict[_Waiting, NewSignature] = {}
    for waiting, row in zip(waitings, rows, strict=True):
        if (pk := ids.get(row.email_canonical)) is not None:
            row.id = pk
            stored[waiting] = row
    return stored


async def _delete(connection: BaseDBAsyncClient, ids: list[int]) -> None:
    if ids:
        await Signature.filter(id__in=ids).using_db(connection).delete()
