"""The comment spam filter: held-out figures, the seed page, plain cases, weights vs corpus."""

from __future__ import annotations

import json
from pathlib import Path

from models.spam import Judgement, judge, petition_text
from models.spam.corpus import checksum
from models.spam.evaluate import held_out, rates
from models.spam.judge import model

# Held-out split of models/spam/corpus (python -m models.spam.evaluate prints them all).
SPAM_PRECISION = 0.95
SPAM_RECALL = 0.95
UNPUBLISHED_RECALL = 0.97  # spam that is stored SPAM or held for a moderator

DEMO = json.loads((Path(__file__).parents[1] / "models" / "demo_petition.json").read_text())
PETITION = petition_text(
    *(DEMO["petition"][k] for k in ("title", "target", "goal", "body", "letter"))
)
COMMENTS = {c["author_name"]: c["body"] for c in DEMO["comments"]}


def on_demo(body: str) -> Judgement:
    return judge(body, petition_text=PETITION)


def test_held_out_precision_and_recall():
    judged = [(e, judge(e.text, petition_text=e.petition_text)) for e in held_out()]
    spam = rates((j.spam, e.spam) for e, j in judged)
    unpublished = rates((j.spam or j.doubtful, e.spam) for e, j in judged)
    assert spam.spam >= 40, spam
    assert spam.precision >= SPAM_PRECISION, spam
    assert spam.recall >= SPAM_RECALL, spam
    assert unpublished.recall >= UNPUBLISHED_RECALL, unpublished


def test_seed_page():
    oliver = on_demo(COMMENTS["Oliver out"])
    clark = on_demo(COMMENTS["Clark Kent"])
    assert oliver.spam, oliver
    assert "advert" in oliver.reasons, oliver
    assert not clark.spam, clark
    assert not clark.doubtful, clark
    assert clark.reasons == ()


def test_genuine_comments_in_plain_words_are_published():
    for body in (
        "Signed. Police should not be using facial recognition on protesters.",
        "My nephew was misidentified by one of these systems. Please stop selling it, Amazon.",
        "I agree with IBM's decision and hope Amazon does the same.",
        "Done, and shared with my family.",
        "I'm not sure a ban is right, but the technology clearly needs rules.",
    ):
        verdict = on_demo(body)
        assert not verdict.spam, (body, verdict)
        assert not verdict.doubtful, (body, verdict)


def test_link_stuffed_advert_is_spam():
    verdict = on_demo(
        "Cheap essays at https://essays.example.com, loans at www.quickcash.example.net and "
        "free spins at http://casino.example.org/bonus, write to sales@example.com"
    )
    assert verdict.spam, verdict
    assert {"links", "contact"} <= set(verdict.reasons), verdict


def test_score_is_a_probability_and_reasons_are_stable_words():
    for body in ("", "!!!!", "a" * 5000, COMMENTS["Oliver out"] * 10):
        verdict = on_demo(body)
        assert 0 <= verdict.score <= 1
        assert set(verdict.reasons) <= {"links", "contact", "repetition", "off-topic", "advert"}


def test_weights_match_the_corpus():
    assert model().corpus_sha256 == checksum(), "run python -m models.spam.train"
