"""The one function that names a broadcast channel."""

from __future__ import annotations

DEFAULT_PREFIX = "petitions"


def petition_channel(petition_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    """Every event of one petition travels on this channel, in the order it was published.

    The prefix keeps deployments (or test runs) that share one broker apart."""
    return f"{prefix}.petition.{petition_id}"
