"""What every resolver may use, injected per request (and per websocket connection)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import strawberry
from starlette.requests import HTTPConnection

from models import Moderation, SignatureWriter, TokenRole
from subscriptions import Hub

from .cache import PetitionRows, Reads
from .rates import RateLimits


@dataclass(frozen=True)
class Policy:
    """How the service treats what the public sends, from the settings."""

    rates: RateLimits
    moderation: Moderation = Moderation.FILTER
    reports_to_hide: int = 3
    quarantine_over_limit: bool = False  # over the signing limit: held silently, not refused
    confirm_ttl: timedelta = timedelta(days=7)  # how long an emailed token confirms


@dataclass
class Context:
    hub: Hub
    writer: SignatureWriter
    petitions: PetitionRows
    policy: Policy
    role: TokenRole | None  # what the bearer token is (`models.tokens.Roles`), if anything
    connection: HTTPConnection
    reads: Reads = field(default_factory=Reads)

    @classmethod
    def of(cls, connection: HTTPConnection, role: TokenRole | None) -> Context:
        """The context of a request or websocket, from the process's state (the lifespan's)."""
        state = connection.state
        return cls(state.hub, state.writer, state.petitions, state.policy, role, connection)

    # Every permission the schema checks is one of these.
    @property
    def admin(self) -> bool:
        return self.role is TokenRole.ADMIN

    @property
    def may_moderate(self) -> bool:
        """Moderators, and admins."""
        return self.role in (TokenRole.ADMIN, TokenRole.MODERATOR)

    @property
    def client(self) -> str:
        """The client's address: the socket's peer, or what a trusted proxy says it is (see
        `PETITIONS_TRUSTED_PROXIES`: uvicorn's proxy-headers middleware rewrote it)."""
        client = self.connection.client
        return client.host if client is not None else "unknown"


Info = strawberry.Info[Context, None]
