"""What every resolver may use, injected per request (and per websocket connection)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import strawberry
from starlette.requests import HTTPConnection

from models import Moderation, SignatureWriter
from subscriptions import Hub

from .cache import PetitionRows, Reads
from .rates import RateLimits


@dataclass(frozen=True)
class Policy:
    """How the service treats what the public sends, from the settings."""

    rates: RateLimits
    moderation: Moderation = Moderation.FILTER
    reports_to_hide: int = 3


@dataclass
class Context:
    hub: Hub
    writer: SignatureWriter
    petitions: PetitionRows
    policy: Policy
    admin: bool
    connection: HTTPConnection
    moderator: bool = False  # a moderator's token (admins may moderate too)
    reads: Reads = field(default_factory=Reads)

    @property
    def may_moderate(self) -> bool:
        return self.admin or self.moderator

    @property
    def client(self) -> str:
        """The client's address: the socket's peer, or what a trusted proxy says it is (see
        `PETITIONS_TRUSTED_PROXIES`: uvicorn's proxy-headers middleware rewrote it)."""
        client = self.connection.client
        return client.host if client is not None else "unknown"


Info = strawberry.Info[Context, None]


def bearer_is(connection: HTTPConnection, token: str | None) -> bool:
    """True when the request carries `Authorization: Bearer <token>` (compared in constant
    time); never for an unset token."""
    if not token:
        return False
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
