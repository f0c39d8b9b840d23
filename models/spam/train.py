"""Rebuild weights.json from the corpus: `python -m models.spam.train` (needs scikit-learn).

Only the training split is used; the held-out split is for tests/test_spam.py. Everything is
deterministic (a fixed solver, no shuffling without a seed), so the same corpus gives the same
file.
"""

from __future__ import annotations

import json

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .corpus import checksum, examples
from .features import features
from .judge import HOLD_THRESHOLD, SPAM_THRESHOLD, WEIGHTS

C = 8.0  # inverse regularisation strength, chosen by the out-of-fold figures printed below
KEEP = 1e-3  # weights smaller than this are left out of the file


def _rates(labels: list[bool], flagged: list[bool]) -> str:
    hits = sum(f and y for f, y in zip(flagged, labels, strict=True))
    precision = hits / max(sum(flagged), 1)
    recall = hits / max(sum(labels), 1)
    return f"precision {precision:.3f} recall {recall:.3f}"


def main() -> None:
    train = [e for e in examples() if not e.held_out]
    labels = [e.spam for e in train]
    vectorizer = DictVectorizer()
    x = vectorizer.fit_transform([features(e.text, e.petition_text) for e in train])
    classifier = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_predict(classifier, x, labels, cv=folds, method="predict_proba")[:, 1]
    print(f"{len(train)} training comments, {sum(labels)} spam; out of fold:")
    print(f"  spam (>= {SPAM_THRESHOLD}): {_rates(labels, [s >= SPAM_THRESHOLD for s in scores])}")
    print(f"  held (>= {HOLD_THRESHOLD}): {_rates(labels, [s >= HOLD_THRESHOLD for s in scores])}")
    classifier.fit(x, labels)
    names = vectorizer.get_feature_names_out()
    weights = {
        str(name): round(float(w), 4)
        for name, w in zip(names, classifier.coef_[0], strict=True)
        if abs(w) >= KEEP
    }
    data = {
        "corpus_sha256": checksum(),
        "bias": round(float(classifier.intercept_[0]), 4),
        "weights": dict(sorted(weights.items())),
    }
    WEIGHTS.write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {WEIGHTS} ({len(weights)} weights)")


if __name__ == "__main__":
    main()
