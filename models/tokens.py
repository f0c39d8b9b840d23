"""Bearer tokens and the roles they carry: the one place a request's role is decided.

Tokens made by `petitions token create` are stored as their SHA-256 only, so a copy of the
database gives no one a working token. `PETITIONS_ADMIN_TOKEN` and `PETITIONS_MODERATOR_TOKEN`
keep working beside them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError

from .tables import ApiToken, TokenRole


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """An unguessable URL-safe token (256 bits) and its hash."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


class TokenNameTaken(ValueError):
    pass


async def create_token(name: str, role: TokenRole) -> str:
    """Store a new token's hash under `name` and return the token (shown once, never stored)."""
    token, hashed = new_token()
    try:
        await ApiToken.create(name=name, role=role, token_hash=hashed)
    except IntegrityError:
        raise TokenNameTaken(f"a token named {name!r} exists already") from None
    return token


async def list_tokens() -> list[ApiToken]:
    return await ApiToken.all().order_by("name")


async def revoke_token(name: str) -> bool:
    """Delete the token named `name`; False if there is none."""
    return await ApiToken.filter(name=name).delete() > 0


@dataclass(frozen=True)
class Roles:
    """Who a bearer token is: the settings' tokens first, then the stored ones."""

    admin_token: str | None = None
    moderator_token: str | None = None

    async def role_of(self, authorization: str | None) -> TokenRole | None:
        """The role of an `Authorization` header's bearer token, or None for anyone else."""
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return None
        for token, role in (
            (self.admin_token, TokenRole.ADMIN),
            (self.moderator_token, TokenRole.MODERATOR),
        ):
            if token and hmac.compare_digest(given.encode(), token.encode()):
                return role
        stored = await ApiToken.get_or_none(token_hash=token_hash(given))
        return stored.role if stored is not None else None
