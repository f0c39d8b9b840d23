"""Group commit: one writer per process stores every signature waiting at that moment in one
transaction, so that throughput grows with load instead of collapsing on the petition's row.

A batch locks its petitions' rows (in id order, so two processes never deadlock), refuses what
must be refused (closed, not found, an email twice in the batch), numbers the rest after the
petition's last number and inserts them in one statement that skips any email already there
(`ON CONFLICT DO NOTHING`: the unique constraint decides, so no read of earlier signatures can
go stale or slow), moves each counter once, commits, and only then publishes the events, in
number order, and answers the callers. When an email had signed before (rare), the batch's rows
of that petition are inserted again without it, so numbers stay gapless. Should a constraint
fire all the same, the batch is rolled back and each of its signatures is tried alone.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from subscriptions import Event, Publisher

from .errors import Refused
from .petitions import MAX_PETITION_ID
from .signing import (
    SignatureFields,
    Signed,
    already_signed,
    refusal_to_sign,
    sign,
    signature_added,
)
from .tables import Petition, Signature

log = logging.getLogger("petitions.writer")


@dataclass(eq=False)  # each one is itself: a key by identity
class _Waiting:
    petition_id: int
    fields: SignatureFields
    answer: asyncio.Future[Signed] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: Signed | BaseException) -> None:
        if self.answer.done():
            return
        if isinstance(outcome, BaseException):
            self.answer.set_exception(outcome)
        else:
            self.answer.set_result(outcome)


class Stopped(RuntimeError):
    """The writer is shutting down and takes no new signature."""


class SignatureWriter:
    def __init__(self, publisher: Publisher, *, max_batch: int = 500) -> None:
        self.publisher = publisher
        self.max_batch = max_batch
        self._waiting: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        self.signed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Write everything already accepted, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def sign(self, petition_id: int, fields: SignatureFields) -> Signed:
        """Queue one signature for the next batch and wait for its commit (or refusal)."""
        if self._stopping:
            raise Stopped("the server is shutting down")
        waiting = _Waiting(petition_id, fields)
        self._waiting.append(waiting)
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
        written: list[tuple[_Waiting, Signature, Petition]] = []
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
                rows, signed_before = await _store(connection, petition, waitings, now)
                refusals += [(waiting, already_signed()) for waiting in signed_before]
                if not rows:
                    continue
                await connection.execute_query(
                    'UPDATE "petition" SET "signature_count" = "signature_count" + {}, '
                    '"last_signature_number" = "last_signature_number" + {} '
                    'WHERE "id" = {}'.format(*_marks(connection, 3)),
                    [len(rows), len(rows), petition_id],
                )
                for offset, (waiting, row) in enumerate(rows.items(), start=1):
                    snapshot = copy.copy(petition)
                    snapshot.signature_count = petition.signature_count + offset
                    snapshot.last_signature_number = row.number
                    written.append((waiting, row, snapshot))
        self.batches += 1
        self.signed += len(written)
        events: list[Event] = [signature_added(row, snapshot) for _, row, snapshot in written]
        await self.publisher.publish(*events)
        for waiting, row, snapshot in written:
            waiting.settle(Signed(row, snapshot))
        for waiting, refusal in refusals:
            waiting.settle(refusal)

    async def _write_one_by_one(self, batch: list[_Waiting]) -> None:
        for waiting in batch:
            try:
                waiting.settle(
                    await sign(waiting.petition_id, waiting.fields, publisher=self.publisher)
                )
            except Exception as error:
                waiting.settle(error)


async def _store(
    connection: BaseDBAsyncClient, petition: Petition, waitings: list[_Waiting], now: datetime
) -> tuple[dict[_Waiting, Signature], list[_Waiting]]:
    """Insert one locked petition's signatures, numbered after its last one without a gap:
    the rows stored, by whom, and who had signed already (before, or earlier in line)."""
    firsts: dict[str, _Waiting] = {}  # one signature per email, the first in line
    signed_before: list[_Waiting] = []
    for waiting in waitings:
        if firsts.setdefault(waiting.fields.email_canonical, waiting) is not waiting:
            signed_before.append(waiting)
    start = petition.last_signature_number + 1
    rows = await _insert(connection, petition.id, start, list(firsts.values()), now)
    taken = [waiting for waiting in firsts.values() if waiting not in rows]
    if taken:  # signed before: rare; number the others again, without the gap
        signed_before += taken
        await _delete(connection, [row.id for row in rows.values()])
        fresh = list(rows)
        rows = await _insert(connection, petition.id, start, fresh, now)
        if len(rows) != len(fresh):
            raise IntegrityError("a signature appeared under the petition's lock")
    return rows, signed_before


_COLUMNS = (
    "petition_id",
    "number",
    "first_name",
    "last_name",
    "email",
    "email_canonical",
    "show_name",
    "country",
    "comment",
    "created_at",
)


async def _insert(
    connection: BaseDBAsyncClient,
    petition_id: int,
    start: int,
    waitings: list[_Waiting],
    now: datetime,
) -> dict[_Waiting, Signature]:
    """Insert the signatures numbered from `start`, in one statement, skipping any whose email
    already signed (the unique constraint decides, not an earlier read); the rows inserted,
    with their ids, by whom they are."""
    if not waitings:
        return {}
    rows = [
        waiting.fields.row(petition_id, number, created_at=now)
        for number, waiting in enumerate(waitings, start=start)
    ]
    # the values as they are: strings, integers, a boolean and an aware datetime, which both
    # drivers take (Tortoise's to_db_value returns each unchanged, for ~5% of a sign's time)
    values = [getattr(row, column) for row in rows for column in _COLUMNS]
    width = len(_COLUMNS)
    marks = _marks(connection, len(values))
    tuples = ",".join(
        "(" + ",".join(marks[i : i + width]) + ")" for i in range(0, len(marks), width)
    )
    columns = ",".join(f'"{column}"' for column in _COLUMNS)
    inserted = await connection.execute_query_dict(
        f'INSERT INTO "signature" ({columns}) VALUES {tuples} '
        'ON CONFLICT ("petition_id", "email_canonical") DO NOTHING '
        'RETURNING "id", "email_canonical"',
        values,
    )
    ids = {str(found["email_canonical"]): int(found["id"]) for found in inserted}
    stored: dict[_Waiting, Signature] = {}
    for waiting, row in zip(waitings, rows, strict=True):
        if (pk := ids.get(row.email_canonical)) is not None:
            row.id = pk
            stored[waiting] = row
    return stored


def _marks(connection: BaseDBAsyncClient, count: int) -> list[str]:
    """Parameter placeholders in the connection's dialect."""
    if connection.capabilities.dialect == "postgres":
        return [f"${n}" for n in range(1, count + 1)]
    return ["?"] * count


async def _delete(connection: BaseDBAsyncClient, ids: list[int]) -> None:
    if ids:
        await Signature.filter(id__in=ids).using_db(connection).delete()
