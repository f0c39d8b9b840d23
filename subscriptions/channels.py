"""The one function that names the broadcast channel."""

from __future__ import annotations

DEFAULT_PREFIX = "petitions"


def events_channel(prefix: str = DEFAULT_PREFIX) -> str:
    """Every process publishes every event on this one channel, and hears all of them: the
    hub routes them to its listeners by petition, and the result cache learns what changed.

    The prefix keeps deployments (or test runs) that share one broker apart."""
    return f"{prefix}.events"
