"""What every resolver may use, injected per request (and per websocket connection)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import strawberry
from starlette.requests import HTTPConnection

from models import SignatureWriter
from subscriptions import Hub

from .cache import PetitionRows, Reads


@dataclass
class Context:
    hub: Hub
    writer: SignatureWriter
    petitions: PetitionRows
    admin: bool
    connection: HTTPConnection
    reads: Reads = field(default_factory=Reads)


Info = strawberry.Info[Context, None]


def is_admin(connection: HTTPConnection, admin_token: str | None) -> bool:
    """True when the request carries `Authorization: Bearer <admin token>` (constant time)."""
    if not admin_token:
        return False
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), admin_token.encode())
