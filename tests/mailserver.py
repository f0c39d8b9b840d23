"""A real SMTP server for the tests (aiosmtpd), keeping what it is sent."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class Inbox:
    """An aiosmtpd handler: keeps every message it is given; refuses the `refused` recipients."""

    def __init__(self, refused: set[str] | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.connections: Counter[tuple[str, int]] = Counter()  # messages each carried
        self.refused = refused or set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.connections[session.peer] += 1
        return "250 Message accepted"

    def recipients(self) -> Counter[str]:
        return Counter(str(message["To"]) for message in self.messages)


@asynccontextmanager
async def mail_server(inbox: Inbox, port: int) -> AsyncIterator[None]:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield
    finally:
        await asyncio.to_thread(controller.stop)
