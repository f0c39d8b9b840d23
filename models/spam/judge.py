"""Judging one comment: a logistic model over features.py, its weights read once from JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .features import features

WEIGHTS = Path(__file__).with_name("weights.json")
# Chosen on the training split's out-of-fold scores (python -m models.spam.train prints them):
# a stored SPAM should almost never be a genuine comment; a moderator sees the doubtful band.
SPAM_THRESHOLD = 0.6
HOLD_THRESHOLD = 0.35
# A group of features is named to moderators when it adds at least this much to the log-odds.
REASON_LOGIT = 0.75
GROUPS = {
    "links": "links",
    "many_links": "links",
    "contact": "contact",
    "rep_word": "repetition",
    "rep_phrase": "repetition",
    "rep_chars": "repetition",
    "caps": "repetition",
    "on_topic": "off-topic",
    "topic_words": "off-topic",
    "off_topic": "off-topic",
}


@dataclass(frozen=True)
class Judgement:
    score: float
    reasons: tuple[str, ...]

    @property
    def spam(self) -> bool:
        return self.score >= SPAM_THRESHOLD

    @property
    def doubtful(self) -> bool:
        return HOLD_THRESHOLD <= self.score < SPAM_THRESHOLD


@dataclass(frozen=True)
class Model:
    bias: float
    weights: dict[str, float]
    corpus_sha256: str


def load() -> Model:
    data = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    return Model(float(data["bias"]), data["weights"], data["corpus_sha256"])


@cache
def model() -> Model:
    """Read on the first comment judged, not on import: most processes never judge one."""
    return load()


def judge(body: str, *, petition_text: str) -> Judgement:
    weights = model().weights
    by_group: dict[str, float] = {}
    for name, value in features(body, petition_text).items():
        if weight := weights.get(name):
            group = GROUPS.get(name, "advert")
            by_group[group] = by_group.get(group, 0.0) + weight * value
    logit = model().bias + sum(by_group.values())
    score = 1 / (1 + math.exp(-max(min(logit, 30.0), -30.0)))
    if score < HOLD_THRESHOLD:
        return Judgement(score, ())
    ranked = sorted(((c, g) for g, c in by_group.items() if c > 0), reverse=True)
    reasons = tuple(g for c, g in ranked if c >= REASON_LOGIT) or tuple(g for _, g in ranked[:1])
    return Judgement(score, reasons)
