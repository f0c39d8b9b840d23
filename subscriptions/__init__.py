"""Events, channel names and the broadcaster bridge that carries them between processes."""

from .channels import events_channel
from .events import (
    CommentAdded,
    CommentRemoved,
    CountChanged,
    Event,
    MilestoneReached,
    PetitionChanged,
    Publisher,
    Resync,
    SignatureAdded,
    decode,
    encode,
)
from .hub import FellBehind, Hub, Listener, Observer

__all__ = [
    "CommentAdded",
    "CommentRemoved",
    "CountChanged",
    "PetitionChanged",
    "Event",
    "FellBehind",
    "Hub",
    "Listener",
    "MilestoneReached",
    "Observer",
    "Publisher",
    "Resync",
    "SignatureAdded",
    "decode",
    "encode",
    "events_channel",
]
