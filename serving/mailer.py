"""The mailer: sends the outbox (`models.outbox`), retries with back-off, deletes what went.

Mails are written to `outbox_mail` in the transaction of what they tell. A `Mailer` runs in
each server process (and may run beside them in a CLI) with `connections` senders, each of
which claims a batch of due mails, sends them over one SMTP connection and deletes them once
the mail server has taken them (`DELETE_EVERY` at a time), so sent mails (and the addresses
they hold) are not kept. A claim is a lease (`claimed_until`) taken by one
statement that only takes rows nobody holds: on PostgreSQL under `FOR UPDATE SKIP LOCKED`, on
SQLite under the database's single write lock. So several mailers on one database never send a
mail twice, short of a process dying between a mail's delivery and its deletion (then the mails
not yet deleted go again once the lease ends).

A failed mail is tried again after a back-off doubling from `first_delay` to `max_delay`, and
given up on (`failed_at`) after `max_attempts`: by default over three days. When the mail server
cannot be reached the whole batch waits, and the mailer itself backs off: a server away for an
hour loses nothing, and what waited goes within `max_delay` of its return.

No address is ever written to a log line or to `last_error`: errors are told by their class
name and SMTP code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import aiosmtplib
from tortoise.context import require_context
from tortoise.transactions import in_transaction

from models.tables import OutboxMail

log = logging.getLogger("petitions.mailer")

FIRST_DELAY = 2.0
MAX_DELAY = 600.0
# 2 s doubling to 10 min: after the 441st attempt a mail has been tried for three days and a
# few minutes (`tests/test_mail.py` checks the sum).
MAX_ATTEMPTS = 441
BATCH_SIZE = 50
# Senders at once, each with its own batch and SMTP connection: a mail costs a few round trips
# to the mail server, which one connection would wait through one mail after another.
CONNECTIONS = 4
# Delivered mails are deleted this many at a time (and at the end of a batch): a process that
# dies between a delivery and its deletion sends at most these again once the lease ends.
DELETE_EVERY = 10

_UTF8 = Charset("utf-8")
_UTF8.header_encoding = _UTF8.body_encoding = QP

_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
# Failures of the connection: the rest of the batch waits too.
_UNREACHABLE = (OSError, TimeoutError, aiosmtplib.SMTPException)
# Failures of one mail: the connection goes on with the next.
_REFUSED = (
    aiosmtplib.SMTPResponseException,
    aiosmtplib.SMTPRecipientsRefused,
    aiosmtplib.SMTPNotSupported,
    ValueError,  # an address or header the mail cannot carry
)


@dataclass(frozen=True)
class SmtpServer:
    """Where mails go, from `PETITIONS_SMTP_URL` (see `parse_smtp_url`)."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def start_tls(self) -> bool | None:
        """STARTTLS over smtp://: required before a login (a password never goes in clear),
        otherwise used when the server offers it (aiosmtplib's default)."""
        if self.implicit_tls:
            return None
        return True if self.username else None


def parse_smtp_url(url: str) -> SmtpServer:
    """`smtp://host[:port]` (port 25; STARTTLS when offered) or `smtps://user:password@host[:port]`
    (port 465; TLS from the first byte, then a login). `smtp://user:password@host:587` logs in
    after a STARTTLS it requires. User and password are percent-decoded.

    Raises ValueError saying what is wrong, without repeating the URL (it may hold a password).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ValueError("an SMTP URL reads smtp://host:port or smtps://user:password@host:port")
    if not parts.hostname:
        raise ValueError("the SMTP URL names no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the SMTP URL's port is not a number from 1 to 65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the SMTP URL takes no path, query or fragment")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if (username is None) != (password is None):
        raise ValueError("the SMTP URL needs both a user and a password, or neither")
    return SmtpServer(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[parts.scheme],
        implicit_tls=parts.scheme == "smtps",
        username=username,
        password=password,
    )


def backoff(attempts: int, first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY) -> float:
    """Seconds to wait after the `attempts`-th failure: `first_delay`, doubling, capped."""
    return min(first_delay * 2.0 ** min(attempts - 1, 64), max_delay)


@dataclass(frozen=True)
class _Claimed:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int


class Mailer:
    """Sends the outbox in the background of a running process.

    `start()` within the open database (the task takes the Tortoise context current then),
    `wake()` after a transaction queued mails (else they go at the next poll), and
    `await stop()` before closing the database.
    """

    def __init__(
        self,
        smtp_url: str,
        mail_from: str,
        *,
        poll_interval: float = 5.0,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        max_attempts: int = MAX_ATTEMPTS,
        batch_size: int = BATCH_SIZE,
        timeout: float = 20.0,
        lease: float = 600.0,
        connections: int = CONNECTIONS,
    ) -> None:
        self.server = parse_smtp_url(smtp_url)
        sender = parseaddr(mail_from)[1]
        if "@" not in sender or any(char in mail_from for char in "\r\n"):
            raise ValueError("the sender of mails is not an email address")
        if lease <= 4 * timeout:
            raise ValueError("the lease on a batch must outlast a few SMTP timeouts")
        self.mail_from = mail_from
        self.poll_interval = poll_interval
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.timeout = timeout  # for each SMTP command
        self.lease = lease  # how long a claimed batch is ours; a batch stops well before
        self._domain = sender.rpartition("@")[2]
        self.connections = connections
        self._tasks: list[asyncio.Task[None]] = []
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._connecting: set[asyncio.Task[Any]] = set()  # senders opening a connection
        self._failures = 0  # rounds in a row that could not reach the mail server
        self._broken = False  # the last round raised something unexpected
        self.sent = 0  # mails the mail server has taken from this mailer

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the mailer has started already")
        self._tasks = [
            asyncio.create_task(self._run(), name=f"petitions-mailer-{n}")
            for n in range(self.connections)
        ]

    def wake(self) -> None:
        """Mails were queued: send them now rather than at the next poll. While the mail
        server is away, the mailer's back-off holds and this changes nothing."""
        self._wakeup.set()

    async def stop(self) -> None:
        """Finish the mails being sent, give the rest of the batches back, and stop. An attempt
        to connect is abandoned at once; a mail being sent gets at most `timeout` more seconds."""
        tasks = {task for task in self._tasks if not task.done()}
        if not tasks:
            return
        self._stopping.set()
        self._wakeup.set()
        for task in self._connecting:  # nothing sent yet: the claim is given back on the way out
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=self.timeout + 1.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                more = await self._send_batch()
            except Exception as error:  # the database away, or a bug: keep going, say so once
                more = False
                if not self._broken:
                    # Frames, not the message: a message might quote an address.
                    frames = "".join(traceback.format_tb(error.__traceback__))
                    log.error(
                        "The mailer failed (%s), trying again:\n%s", type(error).__name__, frames
                    )
                self._broken = True
            else:
                if self._broken:
                    log.info("The mailer works again")
                self._broken = False
            if not more:
                await self._pause()

    async def _pause(self) -> None:
        if self._failures:  # the mail server is away: only stop() cuts the back-off short
            delay = max(self.poll_interval, self._backoff(self._failures))
            event = self._stopping
        else:
            delay, event = self.poll_interval, self._wakeup
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await event.wait()

    async def _send_batch(self) -> bool:
        """Send a batch of due mails; True when it was full (more may be due)."""
        claimed = await self._claim()
        if not claimed:
            return False
        current = asyncio.current_task()
        assert current is not None
        waiting = deque(claimed)
        sent: list[int] = []  # delivered, to delete: a statement for several (see DELETE_EVERY)
        loop = asyncio.get_running_loop()
        # Stop while the lease still covers the slowest mail (a few commands' timeouts).
        deadline = loop.time() + self.lease - 4 * self.timeout
        smtp = aiosmtplib.SMTP(
            hostname=self.server.host,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.implicit_tls,
            start_tls=self.server.start_tls,
            timeout=self.timeout,
        )
        try:
            if self._stopping.is_set():
                return False
            try:
                self._connecting.add(current)
                await smtp.connect()
            except _UNREACHABLE as error:
                await self._failed(waiting, error)
                waiting.clear()
                self._unreachable(error, len(claimed))
                return False
            finally:
                self._connecting.discard(current)
            self._reachable()
            while waiting and not self._stopping.is_set() and loop.time() < deadline:
                mail = waiting.popleft()
                try:
                    await smtp.send_message(self._message(mail))
                except _REFUSED as error:
                    await self._failed([mail], error)
                    continue
                except _UNREACHABLE as error:
                    await self._failed([mail, *waiting], error)
                    waiting.clear()
                    self._unreachable(error, len(claimed))
                    return False
                sent.append(mail.id)
                self.sent += 1
                if len(sent) >= DELETE_EVERY:
                    await _delete(sent)
            with contextlib.suppress(*_UNREACHABLE):
                await smtp.quit()
            return len(claimed) == self.batch_size
        finally:
            smtp.close()
            await _delete(sent)
            if waiting:  # not tried: give them back as they were
                await OutboxMail.filter(id__in=[mail.id for mail in waiting]).update(
                    claimed_until=None
                )

    async def _claim(self) -> list[_Claimed]:
        """Take a lease on up to `batch_size` due mails, oldest first, that nobody holds."""
        connection = require_context().db()
        postgres = connection.capabilities.dialect == "postgres"
        mark = "$" if postgres else "?"  # numbered: `?1` is SQLite's `$1`
        due = (
            f'"failed_at" IS NULL AND "next_attempt_at" <= {mark}1 '
            f'AND ("claimed_until" IS NULL OR "claimed_until" < {mark}1)'
        )
        # The batch is chosen once (MATERIALIZED: PostgreSQL would otherwise run the subquery
        # again for each row and take them all), and `due` is checked again as each row is
        # taken: PostgreSQL does so on a row another mailer changed meanwhile.
        rows = await connection.execute_query_dict(
            f'WITH "batch" AS MATERIALIZED (SELECT "id" FROM "outbox_mail" WHERE {due} '
            f'ORDER BY "next_attempt_at", "id" LIMIT {mark}3'
            f"{' FOR UPDATE SKIP LOCKED' if postgres else ''}) "
            f'UPDATE "outbox_mail" SET "claimed_until" = {mark}2 '
            f'WHERE "id" IN (SELECT "id" FROM "batch") AND {due} '
            'RETURNING "id", "recipient", "subject", "body", "attempts"',
            [(now := _now()), now + timedelta(seconds=self.lease), self.batch_size],
        )
        return sorted(
            (
                _Claimed(
                    int(row["id"]),
                    str(row["recipient"]),
                    str(row["subject"]),
                    str(row["body"]),
                    int(row["attempts"]),
                )
                for row in rows
            ),
            key=lambda mail: mail.id,
        )

    async def _failed(self, mails: Iterable[_Claimed], error: BaseException) -> None:
        """Count an attempt of each of `mails`: due again after its back-off, or given up."""
        reason = _describe(error)
        now = _now()
        async with in_transaction() as connection:
            for mail in mails:
                attempts = mail.attempts + 1
                given_up = attempts >= self.max_attempts
                await (
                    OutboxMail.filter(id=mail.id)
                    .using_db(connection)
                    .update(
                        attempts=attempts,
                        last_error=reason,
                        next_attempt_at=now + timedelta(seconds=self._backoff(attempts)),
                        claimed_until=None,
                        failed_at=now if given_up else None,
                    )
                )
                if given_up:
                    log.warning(
                        "Mail %d given up after %d attempts (%s)", mail.id, attempts, reason
                    )

    def _unreachable(self, error: BaseException, waiting: int) -> None:
        if not self._failures:
            log.warning(
                "Cannot send mails (%s): %d wait, tried again with back-off up to %g s",
                _describe(error),
                waiting,
                self.max_delay,
            )
        self._failures += 1

    def _reachable(self) -> None:
        if self._failures:
            log.info(
                "Sending mails again, after %d failed attempts to reach the mail server",
                self._failures,
            )
        self._failures = 0

    def _backoff(self, attempts: int) -> float:
        return backoff(attempts, self.first_delay, self.max_delay)

    def _message(self, mail: _Claimed) -> MIMEText:
        # The email package's compat32 API: its modern `EmailMessage` parses every header
        # through the header registry, three times the cost of the whole mail here.
        message = MIMEText(mail.body, "plain", cast(str, _UTF8))  # quoted-printable: 7-bit
        message["From"] = self.mail_from
        message["To"] = mail.recipient
        message["Subject"] = cast(str, Header(mail.subject, _UTF8))  # encoded when sent
        message["Date"] = format_datetime(datetime.now(UTC), usegmt=True)
        message["Message-ID"] = make_msgid(idstring=f"outbox{mail.id}", domain=self._domain)
        return message


async def _delete(ids: list[int]) -> None:
    """Forget delivered mails (and empty `ids`)."""
    if ids:
        await OutboxMail.filter(id__in=ids).delete()
        ids.clear()


def _describe(error: BaseException) -> str:
    """The error's class and SMTP code, and the class of what caused it: never its message,
    which may quote an address."""
    code = getattr(error, "code", None)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        code = error.recipients[0].code
    described = f"{type(error).__name__} {code}" if code is not None else type(error).__name__
    if isinstance(error.__cause__, Exception):
        described += f" ({type(error.__cause__).__name__})"
    return described


def _now() -> datetime:
    return datetime.now(UTC)
