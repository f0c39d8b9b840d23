"""Held-out figures and judging time: `python -m models.spam.evaluate` (standard library only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .corpus import Example, examples
from .features import DOMAIN, URL
from .judge import judge, load


@dataclass(frozen=True)
class Rates:
    comments: int
    spam: int
    precision: float  # of the comments the decision flags, the share that are spam
    recall: float  # of the spam, the share the decision flags

    def __str__(self) -> str:
        return (
            f"{self.comments:4} comments {self.spam:4} spam: "
            f"precision {self.precision:.3f} recall {self.recall:.3f}"
        )


def rates(pairs: Iterable[tuple[bool, bool]]) -> Rates:
    """From (flagged, is spam) pairs; precision is 1 when nothing is flagged."""
    pairs = list(pairs)
    flagged = sum(f for f, _ in pairs)
    spam = sum(s for _, s in pairs)
    hits = sum(f and s for f, s in pairs)
    return Rates(len(pairs), spam, hits / flagged if flagged else 1.0, hits / spam if spam else 1.0)


def linked(text: str) -> bool:
    return bool(URL.search(text.lower()) or DOMAIN.search(text.lower()))


def held_out() -> list[Example]:
    return [e for e in examples() if e.held_out]


def main() -> None:
    cases = held_out()
    judged = [(e, judge(e.text, petition_text=e.petition_text)) for e in cases]
    groups: dict[str, Callable[[Example], bool]] = {
        "all": lambda e: True,
        "posted for the petition": lambda e: not e.generic,
        "generic": lambda e: e.generic,
        "ham, and spam with links": lambda e: not e.spam or linked(e.text),
        "ham, and spam without links": lambda e: not e.spam or not linked(e.text),
    }
    for title, decision in (("spam", "spam"), ("not published (spam or doubtful)", "held")):
        print(f"held out, {title}:")
        for name, keep in groups.items():
            pairs = [
                (j.spam or (decision == "held" and j.doubtful), e.spam)
                for e, j in judged
                if keep(e)
            ]
            print(f"  {name:38} {rates(pairs)}")
    print("wrong:")
    for e, j in judged:
        if j.spam != e.spam:
            print(
                f"  {'spam' if e.spam else 'ham '} {j.score:.2f} {','.join(j.reasons):24} {e.text}"
            )
    petition = " ".join(e.petition_text for e in cases[:40])[:20_000]
    long = " ".join(e.text for e in cases)[:5_000]
    timings = []
    started = time.perf_counter()
    load()
    loading = time.perf_counter() - started
    for e in cases * 10:
        started = time.perf_counter()
        judge(e.text, petition_text=e.petition_text)
        timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    judge(long, petition_text=petition + " ")  # a new petition text: its words are read too
    cold = time.perf_counter() - started
    started = time.perf_counter()
    judge(long, petition_text=petition + " ")
    warm = time.perf_counter() - started
    print(f"weights loaded in {loading * 1000:.1f} ms")
    print(
        f"per comment: mean {sum(timings) / len(timings) * 1e6:.0f} µs, "
        f"max {max(timings) * 1e6:.0f} µs over {len(timings)}; 5,000 characters against a "
        f"{len(petition):,}-character petition: {cold * 1000:.2f} ms the first time, "
        f"{warm * 1000:.2f} ms once its words are cached"
    )


if __name__ == "__main__":
    main()
