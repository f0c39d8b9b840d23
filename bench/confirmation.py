"""Confirmation mode's side of the signing phase: an SMTP sink in the benchmark's own process,
the settings that turn the mode on, the stored rows and outbox mails it is checked against,
and its accounting (each signature waits, uncounted, with exactly one mail: delivered or
waiting in the outbox).

The sink is `aiosmtpd`'s `Controller`, a thread with an event loop of its own, whose handler
only counts (messages, and each recipient): it must not be what limits the mailer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench import seed
from bench.procs import BenchError, free_port

MAIL_FROM = "Petitions bench <petitions@bench.example.org>"
PUBLIC_URL = "https://petitions.bench.example.org"


def confirmation_env(smtp_port: int) -> dict[str, str]:
    """The four settings of confirmation mode, mailing to 127.0.0.1:`smtp_port`."""
    return {
        "PETITIONS_CONFIRM_EMAILS": "true",
        "PETITIONS_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PETITIONS_MAIL_FROM": MAIL_FROM,
        "PETITIONS_PUBLIC_URL": PUBLIC_URL,
    }


@dataclass
class _Counting:
    """aiosmtpd handler: counts what the mail server took. Runs in the controller's thread."""

    messages: int = 0
    recipients: Counter[str] = field(default_factory=Counter)
    first_at: float | None = None  # time.monotonic() of the first and the latest message
    last_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        now = time.monotonic()
        with self.lock:
            self.messages += 1
            self.recipients.update(str(address).lower() for address in envelope.rcpt_tos)
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
        return "250 OK"


class SmtpSink:
    """An SMTP server on a free port of 127.0.0.1 that accepts every mail and counts it."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.handler = _Counting()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="bench-sink"
        )

    @classmethod
    def available(cls) -> bool:
        try:
            import aiosmtpd.controller  # noqa: F401
        except ImportError:
            return False
        return True

    def start(self) -> None:
        try:
            self._controller.start()
        except Exception as error:
            raise BenchError(f"the SMTP sink did not start: {error!r}") from None

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> int:
        with self.handler.lock:
            return self.handler.messages

    def snapshot(self) -> tuple[int, Counter[str], float | None, float | None]:
        """(messages, recipients, first and latest delivery time)."""
        handler = self.handler
        with handler.lock:
            return (
                handler.messages,
                Counter(handler.recipients),
                handler.first_at,
                handler.last_at,
            )


@dataclass(frozen=True)
class StoredSignature:
    id: int
    status: str
    number: int | None
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class QueuedMail:
    signature_id: int
    attempts: int
    failed: bool  # given up on (`failed_at` set): still in the outbox, never to go


_SIGNATURES_SQL = (
    "SELECT id, status, number, first_name, last_name, email FROM signature "
    "WHERE petition_id = {param}"
)
_OUTBOX_SQL = (
    'SELECT m.signature_id, m.attempts, m.failed_at IS NOT NULL FROM "outbox_mail" m '
    "JOIN signature s ON s.id = m.signature_id WHERE s.petition_id = {param}"
)
_OUTBOX_COUNT_SQL = (
    'SELECT COUNT(*) FROM "outbox_mail" m JOIN signature s ON s.id = m.signature_id '
    "WHERE s.petition_id = {param} AND m.failed_at IS NULL"
)


async def _rows(url: str, sql: str, petition_id: int) -> list[tuple[Any, ...]]:
    if seed.is_sqlite(url):

        def read() -> list[tuple[Any, ...]]:
            connection = seed._sqlite(url)
            try:
                return [
                    tuple(row) for row in connection.execute(sql.format(param="?"), (petition_id,))
                ]
            finally:
                connection.close()

        return await asyncio.to_thread(read)
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(sql.format(param="$1"), petition_id)]
    finally:
        await connection.close()


async def stored_signatures(url: str, petition_id: int) -> list[StoredSignature]:
    rows = await _rows(url, _SIGNATURES_SQL, petition_id)
    return [
        StoredSignature(
            int(a), str(b), None if c is None else int(c), str(d), str(e), str(f).lower()
        )
        for a, b, c, d, e, f in rows
    ]


async def queued_mails(url: str, petition_id: int) -> list[QueuedMail]:
    """The outbox's mails about the petition's signatures."""
    rows = await _rows(url, _OUTBOX_SQL, petition_id)
    return [QueuedMail(int(a), int(b), bool(c)) for a, b, c in rows]


async def waiting_mails(url: str, petition_id: int) -> int:
    """How many of the petition's mails the outbox still has to send."""
    rows = await _rows(url, _OUTBOX_COUNT_SQL, petition_id)
    return int(rows[0][0]) if rows else 0


def _identity(first: str, last: str) -> tuple[int, int, int] | None:
    """(run, thread, k) of a signature named "R<run>T<thread> N<k>"."""
    try:
        run_part, thread_part = first[1:].split("T")
        return int(run_part), int(thread_part), int(last[1:])
    except ValueError:
        return None


def account(
    runs: list[dict[str, Any]], stored: list[StoredSignature]
) -> tuple[dict[str, Any], list[str]]:
    """Compare what the load sent and had acknowledged with the stored rows.

    The answers name nobody, so wrk only counts acknowledgements: stored rows must be at least
    the acknowledged ones, and the rest at most the requests left unanswered. pyload knows
    which request each answer is for, and lists them: then none of those may be missing."""
    sent: dict[tuple[int, int], int] = {}
    acked: set[tuple[int, int, int]] = set()
    listed = True  # every thread listed each acknowledged request (pyload)
    unknown = refused = ok = 0
    for run in runs:
        for thread in run["threads"]:
            key = (run["run"], int(thread["id"]))
            sent[key] = sent.get(key, 0) + int(thread["sent"])
            unknown += int(thread["sent"]) - int(thread["answered"])
            refused += int(thread["refused"])
            ok += int(thread["ok"])
            listed = listed and len(thread["acked"]) == int(thread["ok"])
            acked.update((key[0], key[1], int(k)) for k in thread["acked"])
    identities: list[tuple[int, int, int]] = []
    foreign = 0
    for signature in stored:
        identity = _identity(signature.first_name, signature.last_name)
        if identity is None:
            foreign += 1
        else:
            identities.append(identity)
    distinct = set(identities)
    phantom = sum(1 for r, t, k in distinct if k >= sent.get((r, t), 0)) + foreign
    report: dict[str, Any] = {
        "sent": sum(sent.values()),
        "acknowledged": ok,
        "acknowledged_listed": listed,
        "refused": refused,
        "unanswered": unknown,
        "stored": len(stored),
        "phantom": phantom,
        "duplicates": len(identities) - len(distinct),
        "stored_unacknowledged": len(stored) - ok,
    }
    problems = []
    if phantom:
        problems.append(f"{phantom} stored signature(s) were never sent")
    if len(identities) != len(distinct):
        problems.append(f"{len(identities) - len(distinct)} request(s) stored twice")
    if len(stored) < ok:
        problems.append(f"{ok} acknowledged, but only {len(stored)} stored")
    if len(stored) - ok > unknown:
        problems.append(
            f"{len(stored) - ok} stored signature(s) were not acknowledged, but only "
            f"{unknown} request(s) went unanswered"
        )
    if listed:
        lost = len(acked - distinct)
        report["lost"] = lost
        if lost:
            problems.append(f"{lost} acknowledged signature(s) are not stored")
        if len(acked) != ok:
            problems.append(f"{ok - len(acked)} signature(s) acknowledged twice")
    if refused:
        problems.append(f"{refused} sign request(s) were not answered needsConfirmation")
    return report, problems


def check_mails(
    stored: list[StoredSignature], queued: list[QueuedMail], delivered: Counter[str]
) -> tuple[dict[str, Any], list[str]]:
    """Each stored signature has exactly one mail: taken by the sink, or in the outbox."""
    in_outbox = Counter(mail.signature_id for mail in queued)
    emails = {signature.email for signature in stored}
    missing = duplicated = 0
    for signature in stored:
        mails = delivered[signature.email] + in_outbox[signature.id]
        if mails == 0:
            missing += 1
        elif mails > 1:
            duplicated += 1
    stray = sum(count for email, count in delivered.items() if email not in emails)
    report = {
        "delivered": sum(delivered[email] for email in emails),
        "waiting": sum(1 for mail in queued if not mail.failed),
        "given_up": sum(1 for mail in queued if mail.failed),
        "retried": sum(1 for mail in queued if mail.attempts),
        "without_mail": missing,
        "more_than_one_mail": duplicated,
        "stray_delivered": stray,
    }
    problems = []
    if missing:
        problems.append(f"{missing} stored signature(s) have no mail, delivered or waiting")
    if duplicated:
        problems.append(f"{duplicated} stored signature(s) have more than one mail")
    if stray:
        problems.append(f"{stray} mail(s) delivered to addresses no stored signature has")
    return report, problems
