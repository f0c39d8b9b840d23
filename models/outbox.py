"""The mail outbox: mails written in the transaction of what they tell (a signature waiting for
its confirmation, a second signature of one email), so that none is lost when the mail server
is away; the mailer (`serving/mailer.py`) sends them, retries with back-off, and deletes each
once the mail server has taken it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient


@dataclass(frozen=True)
class Mail:
    recipient: str
    subject: str
    body: str
    signature_id: int | None = None


def confirmation_mail(
    recipient: str, *, petition_title: str, public_url: str, token: str, signature_id: int
) -> Mail:
    link = f"{public_url.rstrip('/')}/confirm/{token}"
    body = (
        f"Thank you for signing the petition “{petition_title}”.\n\n"
        "Your signature counts once you confirm it. Open this link and press the button:\n\n"
        f"    {link}\n\n"
        f"Or give this code to the petition's page: {token}\n\n"
        "If you did not sign, ignore this mail: nothing is counted without your confirmation.\n"
    )
    return Mail(recipient, f"Confirm your signature: {petition_title}", body, signature_id)


def already_signed_mail(
    recipient: str, *, petition_title: str, public_url: str, signature_id: int
) -> Mail:
    body = (
        f"Someone, probably you, just signed the petition “{petition_title}” with this email.\n\n"
        "You had already signed it, so nothing has changed: each email counts once.\n\n"
        f"{public_url.rstrip('/')}\n"
    )
    return Mail(recipient, f"You have already signed: {petition_title}", body, signature_id)


async def queue_mails(connection: BaseDBAsyncClient, mails: list[Mail], now: datetime) -> None:
    """Write `mails` to the outbox on `connection` (inside the caller's transaction), due now."""
    if not mails:
        return
    columns = (
        "recipient",
        "subject",
        "body",
        "signature_id",
        "attempts",
        "next_attempt_at",
        "created_at",
    )
    postgres = connection.capabilities.dialect == "postgres"
    values: list[object] = []
    rows = []
    for mail in mails:
        start = len(values)
        values += [mail.recipient, mail.subject, mail.body, mail.signature_id, 0, now, now]
        marks = (f"${start + n}" if postgres else "?" for n in range(1, len(columns) + 1))
        rows.append("(" + ",".join(marks) + ")")
    names = ",".join(f'"{column}"' for column in columns)
    await connection.execute_query(
        f'INSERT INTO "outbox_mail" ({names}) VALUES {",".join(rows)}', values
    )
