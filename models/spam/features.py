"""Comment features shared by judging and training, so both always see the same numbers.

A comment becomes a sparse map of named values: a bag of its words and word pairs (the text
model), plus signals that need no training (links, contact details, repetition, relevance to
the petition). Words of the comment that also occur in the petition's text are all counted as
one placeholder word, so the text model learns how comments relate to *a* petition rather
than the vocabulary of the petitions in the corpus.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")
# Each on lower-cased text, and each starting with a literal, so a long comment is read fast.
URL = re.compile(r"https?://|www\.|\[url|<a\s+href|t\.me/")
DOMAIN = re.compile(
    r"(?<=[a-z0-9])\.(?:com|net|org|info|biz|io|co|uk|ru|de|fr|es|xyz|live|tv|me|ly|online"
    r"|site|shop|top|club|app)\b"
)
EMAIL = re.compile(r"(?<=[\w.+-])@[\w-]+(?:\.[\w-]+)+")
HANDLE = re.compile(r"(?<![\w.])@\w{3,}")
PHONE = re.compile(r"(?<![\w])\+?\d[\d ().-]{7,}\d(?![\w])")
EMOJI = re.compile(r"[^\w\s\x00-\u20ff]")
CHAR_RUN = re.compile(r"(.)\1{3,}")
SYMBOLS = {"$": "sym:money", "€": "sym:money", "£": "sym:money", "%": "sym:percent"}
TOPIC = "<p>"
RELEVANCE = 0.5
NUMBER = "<n>"
STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing don't down during
    each even every few for from further get got had has have having he her here hers him his
    how i i'm if in into is it it's its itself just let's me more most my myself no nor not
    now of off on once one only or other our ours out over own please really same she should
    so some such than that that's the their theirs them then there these they this those
    through to too under until up us very was we were what when where which while who whom
    why will with would you your yours yourself""".split()
)

Features = dict[str, float]


def stem(word: str) -> str:
    """A crude stem (the first five letters): enough to match "libraries" with "library"."""
    return word[:5]


def content_stems(words: list[str]) -> list[str]:
    return [stem(w) for w in words if len(w) >= 4 and w not in STOP and not w.isdigit()]


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("’", "'"))


@lru_cache(maxsize=32)
def petition_stems(text: str) -> frozenset[str]:
    """Cached by the text (a str keeps its hash): a 20,000-character petition is read once."""
    return frozenset(content_stems(list(set(words_of(text)))))


def features(body: str, petition_text: str) -> Features:
    topic = petition_stems(petition_text)
    low = body.lower()
    words = words_of(body)
    tokens = [
        NUMBER if w.isdigit() else TOPIC if w not in STOP and stem(w) in topic else w for w in words
    ]
    bag = {"w:" + t for t in tokens}
    bag.update(f"b:{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))
    bag.update(name for char, name in SYMBOLS.items() if char in body)
    if EMOJI.search(body):
        bag.add("sym:emoji")
    found: Features = dict.fromkeys(bag, 1 / math.sqrt(len(bag))) if bag else {}

    links = max(len(URL.findall(low)), len(DOMAIN.findall(low)))
    contacts = len(EMAIL.findall(low)) + len(HANDLE.findall(low)) + len(PHONE.findall(low))
    stems = content_stems(words)
    distinct = set(stems)
    on = len(distinct & topic)
    on_topic = on / len(distinct) if distinct else 0.0
    off_topic_words = Counter(s for s in stems if s not in topic)
    most = max(off_topic_words.values(), default=0)
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    shouted = sum(1 for w in WORD.findall(body) if len(w) > 1 and w.isupper())
    signals: Features = {
        "links": float(links > 0),
        "many_links": float(links > 1),
        "contact": float(contacts > 0),
        "on_topic": on_topic * RELEVANCE,
        "topic_words": min(on, 4) / 4 * RELEVANCE,
        "off_topic": (1 - on_topic) * min(len(distinct), 12) / 12 * RELEVANCE,
        "rep_word": min(max(most - 2, 0), 4) / 4,
        "rep_phrase": min(sum(1 for n in trigrams.values() if n > 1), 3) / 3,
        "rep_chars": min(len(CHAR_RUN.findall(body)), 3) / 3,
        "caps": shouted / len(words) if len(words) >= 4 else 0.0,
        "length": min(math.log1p(len(words)) / math.log(200), 1.0),
    }
    found.update((name, value) for name, value in signals.items() if value)
    return found
