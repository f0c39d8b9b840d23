"""The one function that names a broadcast channel."""

from __future__ import annotations

PREFIX = "petitions"


def petition_channel(petition_id: int) -> str:
    """Every event of one petition travels on this channel, in the order it was published."""
    return f"{PREFIX}.petition.{petition_id}"
