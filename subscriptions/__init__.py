"""Events, channel names and the broadcaster bridge that carries them between processes."""

from .channels import events_channel
from .events import (
    CommentAdded,
    CountChanged,
    Event,
    NoPublisher,
    Publisher,
    Resync,
    SignatureAdded,
    decode,
    encode,
)
from .hub import FellBehind, Hub, Listener, Observer

__all__ = [
    "CommentAdded",
    "CountChanged",
    "Event",
    "FellBehind",
    "Hub",
    "Listener",
    "NoPublisher",
    "Observer",
    "Publisher",
    "Resync",
    "SignatureAdded",
    "decode",
    "encode",
    "events_channel",
]
