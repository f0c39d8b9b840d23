"""Relay global IDs and connection cursors: opaque to clients, checked on the way back in."""

from __future__ import annotations

import base64
import binascii

import strawberry


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def global_id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(_encode(f"{type_name}:{pk}"))


def parse_global_id(value: str) -> tuple[str, int] | None:
    """`(type name, primary key)` of a global ID, or None when it does not decode."""
    text = _decode(value)
    if text is None or ":" not in text:
        return None
    type_name, _, pk = text.partition(":")
    if not type_name or not pk.isdigit() or len(pk) > 18:
        return None
    return type_name, int(pk)


def cursor(kind: str, key: int) -> str:
    return _encode(f"{kind}@{key}")


def parse_cursor(kind: str, value: str) -> int | None:
    """The keyset position a cursor of this kind of list encodes, or None."""
    text = _decode(value)
    if text is None:
        return None
    found_kind, _, key = text.partition("@")
    if found_kind != kind or not key.isdigit() or len(key) > 18:
        return None
    return int(key)
