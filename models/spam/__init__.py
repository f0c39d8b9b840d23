"""The comment spam filter: a score and reasons for one comment against its petition's text."""

from __future__ import annotations

from .corpus import petition_text
from .judge import HOLD_THRESHOLD, SPAM_THRESHOLD, Judgement, judge

__all__ = ["HOLD_THRESHOLD", "SPAM_THRESHOLD", "Judgement", "judge", "petition_text"]
