"""Events, channel names and the broadcaster bridge that carries them between processes."""

from .channels import petition_channel
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
from .hub import FellBehind, Hub, Listener

__all__ = [
    "CommentAdded",
    "CountChanged",
    "Event",
    "FellBehind",
    "Hub",
    "Listener",
    "NoPublisher",
    "Publisher",
    "Resync",
    "SignatureAdded",
    "decode",
    "encode",
    "petition_channel",
]
