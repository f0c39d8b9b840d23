"""The mailer: every queued mail reaches a real SMTP server once, through outages and rivals."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from models import OutboxMail, Petition, Signature, SignatureStatus, open_database
from models.migrations import migrate
from models.outbox import Mail, confirmation_mail, queue_mails
from serving.mailer import MAX_ATTEMPTS, Mailer, SmtpServer, backoff, parse_smtp_url
from tests.conftest import POSTGRES_URL, database_url_named, free_port, needs_postgres
from tests.mailserver import Inbox, mail_server

MAIL_FROM = "Petitions <petitions@example.net>"
PUBLIC_URL = "https://petitions.example.net/"


@asynccontextmanager
async def running(mailer: Mailer) -> AsyncIterator[Mailer]:
    mailer.start()
    try:
        yield mailer
    finally:
        await mailer.stop()


def quick_mailer(port: int, **overrides: Any) -> Mailer:
    """A mailer that polls, backs off and gives up in fractions of a second."""
    options: dict[str, Any] = {"poll_interval": 0.05, "first_delay": 0.05, "max_delay": 0.2}
    return Mailer(f"smtp://127.0.0.1:{port}", MAIL_FROM, **(options | overrides))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database of the backend under test, made once: migrating takes
    seconds, so each test takes a copy (`database_url`)."""
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path_factory.mktemp('mail') / 'migrated.sqlite3'}"
        asyncio.run(migrate(url))
        yield url
        return
    assert POSTGRES_URL
    name = f"petitions_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(on_postgres(f'CREATE DATABASE "{name}"'))
    try:
        url = database_url_named(POSTGRES_URL, name)
        asyncio.run(migrate(url))
        yield url
    finally:
        asyncio.run(on_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(migrated_database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A copy of the migrated database, for one test (which opens it)."""
    if migrated_database.startswith("sqlite://"):
        copy = tmp_path / "mail.sqlite3"
        await asyncio.to_thread(shutil.copyfile, migrated_database[len("sqlite://") :], copy)
        yield f"sqlite://{copy}"
        return
    template = urlsplit(migrated_database).path.lstrip("/")
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    await on_postgres(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield database_url_named(migrated_database, name)
    finally:
        await on_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def on_postgres(statement: str) -> None:
    assert POSTGRES_URL
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
def port() -> int:
    """A port nothing listens on, until a test starts a mail server there."""
    return free_port()


async def queue(*mails: Mail) -> None:
    async with in_transaction() as connection:
        await queue_mails(connection, list(mails), datetime.now(UTC))


def plain_mails(count: int) -> list[Mail]:
    return [Mail(f"signer{n}@example.org", f"Mail {n}", f"Body {n}\n") for n in range(count)]


async def a_pending_signature(email: str) -> tuple[Petition, Signature]:
    petition = await Petition.create(
        slug="save-the-library",
        title="Save the “library”",
        target="The council",
        goal="Open on Sundays",
        body="Our library closes on Sundays.",
    )
    signature = await Signature.create(
        petition_id=petition.id,
        number=None,
        status=SignatureStatus.PENDING,
        first_name="Ada",
        last_name="Lovelace",
        email=email,
        email_canonical=email,
    )
    return petition, signature


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def outbox_is_empty() -> bool:
    return not await OutboxMail.exists()


async def test_a_queued_confirmation_mail_arrives_and_leaves_the_outbox(database_url, port):
    inbox = Inbox()
    async with open_database(database_url, create_schema=False), mail_server(inbox, port):
        petition, signature = await a_pending_signature("ada@example.org")
        # given a mailer that polls once a minute, past its first look at an empty outbox
        async with running(quick_mailer(port, poll_interval=60)) as mailer:
            await asyncio.sleep(0.1)
            # when a confirmation mail is queued and the mailer woken
            await queue(
                confirmation_mail(
                    "ada@example.org",
                    petition_title=petition.title,
                    public_url=PUBLIC_URL,
                    token="tK3n_-Qz",
                    signature_id=signature.id,
                )
            )
            mailer.wake()
            await eventually(outbox_is_empty, timeout=5)
        assert mailer.sent == 1

    [message] = inbox.messages
    assert message["From"] == MAIL_FROM
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Confirm your signature: Save the “library”"
    assert message["Date"]
    assert message["Message-ID"].endswith("@example.net>")
    text = message.get_content()
    link = "https://petitions.example.net/confirm/tK3n_-Qz"
    assert link in text
    assert "tK3n_-Qz" in text.replace(link, "")  # the bare token too, for the petition's page
    assert "Save the “library”" in text


async def test_mails_queued_while_the_mail_server_is_down_all_arrive_once_it_is_back(
    database_url, port, caplog
):
    caplog.set_level(logging.INFO, logger="petitions.mailer")
    inbox = Inbox()
    mails = plain_mails(12)
    async with open_database(database_url, create_schema=False):
        await queue(*mails)
        async with running(quick_mailer(port, batch_size=5)):
            # given a mail server that is down: every mail is tried, and waits
            async def all_tried_twice() -> bool:
                return await OutboxMail.filter(attempts__lt=2).count() == 0

            await eventually(all_tried_twice)
            errors = await OutboxMail.all().values_list("last_error", flat=True)
            assert set(errors) == {"SMTPConnectError (ConnectionRefusedError)"}
            assert not await OutboxMail.filter(failed_at__isnull=False).exists()
            # when it comes back on its port
            async with mail_server(inbox, port):
                await eventually(outbox_is_empty)

    # then every mail arrived, once
    assert inbox.recipients() == Counter(mail.recipient for mail in mails)
    told = [record for record in caplog.records if record.name == "petitions.mailer"]
    assert [record.levelname for record in told] == ["WARNING", "INFO"]
    ours = [record for record in caplog.records if not record.name.startswith("mail.log")]
    assert not any("@" in record.getMessage() for record in ours)


async def test_two_mailers_on_one_database_send_each_mail_once(database_url, port):
    inbox = Inbox()
    mails = plain_mails(100)
    async with mail_server(inbox, port), open_database(database_url, create_schema=False):
        async with running(quick_mailer(port, batch_size=10, poll_interval=60)) as first:
            # the second as another process would: connections of its own
            async with (
                open_database(database_url, create_schema=False),
                running(quick_mailer(port, batch_size=10, poll_interval=60)) as second,
            ):
                await asyncio.sleep(0.1)  # both past their first look at an empty outbox
                await queue(*mails)
                first.wake()
                second.wake()
                await eventually(outbox_is_empty)

    assert inbox.recipients() == Counter(mail.recipient for mail in mails)
    assert first.sent + second.sent == 100
    assert first.sent > 0  # both took their share
    assert second.sent > 0
    assert len(inbox.connections) >= 10  # a connection a batch, of 10 mails at most
    assert max(inbox.connections.values()) <= 10


async def test_a_refused_recipient_is_given_up_after_its_attempts_and_the_others_arrive(
    database_url, port
):
    inbox = Inbox(refused={"nobody@example.org"})
    mails = [*plain_mails(3), Mail("nobody@example.org", "Mail", "Body\n")]
    async with open_database(database_url, create_schema=False), mail_server(inbox, port):
        await queue(*mails)
        async with running(quick_mailer(port, max_attempts=3)) as mailer:

            async def given_up() -> bool:
                return await OutboxMail.filter(failed_at__isnull=False).exists()

            await eventually(given_up)
            await asyncio.sleep(0.3)  # a few more rounds: it is not tried again
        refused = await OutboxMail.get()

    assert inbox.recipients() == Counter(mail.recipient for mail in mails[:3])
    assert mailer.sent == 3
    assert refused.recipient == "nobody@example.org"
    assert refused.attempts == 3
    assert refused.last_error == "SMTPRecipientsRefused 550"
    assert refused.claimed_until is None


async def test_stop_returns_promptly_while_the_mail_server_is_down(database_url, port):
    async with open_database(database_url, create_schema=False):
        await queue(*plain_mails(3))
        mailer = quick_mailer(port, first_delay=30, max_delay=60, poll_interval=30)
        mailer.start()

        async def tried() -> bool:
            return await OutboxMail.filter(attempts=1).count() == 3

        await eventually(tried)
        async with asyncio.timeout(1):
            await mailer.stop()


async def test_stop_gives_the_batch_back_when_the_mail_server_does_not_answer(database_url):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # no greeting, ever
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, open_database(database_url, create_schema=False):
        await queue(*plain_mails(3))
        mailer = quick_mailer(port)  # its SMTP timeout is 20 s
        mailer.start()

        async def claimed() -> bool:
            return await OutboxMail.filter(claimed_until__isnull=False).count() == 3

        await eventually(claimed)
        async with asyncio.timeout(1):
            await mailer.stop()
        rows = await OutboxMail.all().values("attempts", "claimed_until")

    assert rows == [{"attempts": 0, "claimed_until": None}] * 3  # untried, free for the next


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://h:25", SmtpServer("h", 25, implicit_tls=False)),
        ("smtp://mail.example.org", SmtpServer("mail.example.org", 25, implicit_tls=False)),
        ("smtps://u:p@h:465", SmtpServer("h", 465, implicit_tls=True, username="u", password="p")),
        ("smtps://u:p@h", SmtpServer("h", 465, implicit_tls=True, username="u", password="p")),
        (
            "smtp://apikey:s%40cret%2F@relay.example.org:587/",
            SmtpServer("relay.example.org", 587, False, username="apikey", password="s@cret/"),
        ),
    ],
)
def test_parse_smtp_url_reads_the_server(url: str, server: SmtpServer):
    parsed = parse_smtp_url(url)

    assert parsed == server
    assert parsed.password == server.password  # compared, though kept out of repr
    assert parsed.start_tls is (True if server.username and not server.implicit_tls else None)


@pytest.mark.parametrize(
    "url",
    [
        "http://x",
        "mail.example.org:25",
        "smtp://",
        "smtp://h:0",
        "smtp://h:99999",
        "smtp://h:twenty-five",
        "smtps://u@h:465",
        "smtps://:hunter2@h:465",
        "smtp://h:25/inbox",
        "smtp://h:25?starttls=no",
    ],
)
def test_parse_smtp_url_refuses_anything_else_without_repeating_it(url: str):
    with pytest.raises(ValueError, match="SMTP URL") as refused:
        parse_smtp_url(url)

    assert "hunter2" not in str(refused.value)


def test_a_mailer_refuses_a_sender_that_is_no_address():
    with pytest.raises(ValueError, match="sender"):
        Mailer("smtp://h:25", "Petitions")


def test_the_default_back_off_doubles_from_two_seconds_to_ten_minutes_for_three_days():
    assert [backoff(n) for n in (1, 2, 3, 9, 10, 400)] == [2, 4, 8, 512, 600, 600]
    tried_for = sum(backoff(n) for n in range(1, MAX_ATTEMPTS))
    assert 3 * 86400 <= tried_for < 3 * 86400 + 600
