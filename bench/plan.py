"""How long and how big each phase is: the full run, and the quick one CI uses (about 75 s)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    quick: bool
    connections: int  # closed-loop connections for every HTTP figure
    http_seconds: float  # each baseline, count-read and page run
    http_warmup: float
    sign_seconds: float  # the sustained signing run
    sign_sweep: tuple[int, ...]  # extra signing runs at these connection counts (for the plot)
    sweep_seconds: float
    seed_depth: int  # the deepest page measured; the petition is seeded with this + 10 rows
    page_depths: tuple[int, ...]  # depths for the page-time-vs-depth panel
    panel_seconds: float
    fanout_sizes: tuple[int, ...]  # idle `signatureCount` subscribers
    fanout_rate: float  # signatures/s while they listen
    fanout_seconds: float
    fanout_drain: float  # the longest wait for the last count to reach everyone
    names_subscribers: int
    names_rate: float
    names_seconds: float
    names_drain: float
    spike_rate: float  # signatures/s asked of the mixed spike's open-loop writer
    spike_in_flight: int  # its most signatures in flight at once (its connections)
    spike_readers: int  # connections reading the first page and the count in turn
    spike_reader_processes: int  # reader processes the connections are split across
    spike_seconds: float  # readers alone, then readers and the writer, this long each
    bare_again: bool  # measure the bare route again at the end (noise check)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan(
    quick=False,
    connections=32,
    http_seconds=10,
    http_warmup=2,
    sign_seconds=30,
    sign_sweep=(8, 128),
    sweep_seconds=6,
    seed_depth=1_000_000,
    page_depths=(0, 1_000, 10_000, 100_000, 1_000_000),
    panel_seconds=3,
    fanout_sizes=(1_000, 10_000, 19_000),
    fanout_rate=500,
    fanout_seconds=10,
    fanout_drain=20,
    names_subscribers=1_000,
    names_rate=200,
    names_seconds=10,
    names_drain=30,
    spike_rate=1_000,
    spike_in_flight=256,
    spike_readers=32,
    spike_reader_processes=1,
    spike_seconds=10,
    bare_again=True,
)

QUICK = Plan(
    quick=True,
    connections=32,
    http_seconds=1,
    http_warmup=0.3,
    sign_seconds=5,
    sign_sweep=(8, 128),
    sweep_seconds=1,
    seed_depth=20_000,
    page_depths=(0, 1_000, 10_000, 20_000),
    panel_seconds=1,
    fanout_sizes=(500,),
    fanout_rate=500,
    fanout_seconds=3,
    fanout_drain=5,
    names_subscribers=50,
    names_rate=200,
    names_seconds=3,
    names_drain=5,
    spike_rate=1_000,
    spike_in_flight=256,
    spike_readers=32,
    spike_reader_processes=1,
    spike_seconds=2,
    bare_again=False,
)
