"""The labelled corpus (corpus/): reading it, its deterministic held-out split and checksum.

Standard library only, so the tests can check the shipped weights without scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
FILES = (HERE / "corpus" / "petitions.json", HERE / "corpus" / "comments.txt")
HELD_OUT_SHARE = 5  # one comment in five is held out


@dataclass(frozen=True)
class Example:
    text: str
    spam: bool
    petition: str  # the slug
    petition_text: str
    generic: bool  # written without a petition in mind, posted to one by hash

    @property
    def held_out(self) -> bool:
        """By a hash of the text alone, so adding comments never moves the others."""
        return _number("split:" + self.text) % HELD_OUT_SHARE == 0


def petition_text(*parts: str | None) -> str:
    """What a comment is compared with: title, target, goal, body, letter, in any order."""
    return "\n".join(part for part in parts if part)


def checksum() -> str:
    digest = hashlib.sha256()
    for path in FILES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _number(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def examples() -> list[Example]:
    petitions_file, comments_file = FILES
    texts = {
        p["slug"]: petition_text(p["title"], p["target"], p["goal"], p["body"], p["letter"])
        for p in json.loads(petitions_file.read_text(encoding="utf-8"))["petitions"]
    }
    slugs = sorted(texts)
    found: list[Example] = []
    section = ""
    for number, line in enumerate(comments_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        label, sep, text = line.partition(": ")
        if not sep or label not in ("ham", "spam") or not section:
            raise ValueError(f"{comments_file.name}:{number}: not a labelled comment: {line!r}")
        slug = slugs[_number(text) % len(slugs)] if section == "*" else section
        found.append(Example(text, label == "spam", slug, texts[slug], section == "*"))
    return found
