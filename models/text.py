"""Input rules shared by every text the service stores: trim, NFC, limits, no control characters."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import pycountry
from email_validator import EmailNotValidError, validate_email

from .errors import Problem, RefusalCode, Refused

# Every text the service stores has a limit; these are the public ones, in characters.
LIMITS = {
    "title": 200,
    "target": 200,
    "goal": 500,
    "body": 20_000,
    "letter": 20_000,
    "image_url": 2_000,
    "image_credit": 200,
    "slug": 100,
    "first_name": 100,
    "last_name": 100,
    "author_name": 100,
    "email": 254,
    "comment": 2_000,
    "comment_body": 5_000,
    "country": 16,
    "reason": 500,
}

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The assigned ISO 3166-1 alpha-2 codes, from Debian's iso-codes as pycountry ships them:
# reserved and user-assigned codes (UK, EU, XK, ZZ…) are not countries here.
_COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)


# An address of plain ASCII: a dot-atom local part of common characters, a host name. For
# these, email-validator's verdict is its verdict on the domain (kept below) and the lengths.
_PLAIN_EMAIL = re.compile(r"([A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)@([A-Za-z0-9.-]+)")


def normalized_email(text: str) -> str:
    """email-validator's normalized form of an address (no deliverability check), or its
    `EmailNotValidError`. Its checks of the domain (IDNA, special-use names) cost more than
    anything else in a signature; a signer's domain is nearly always one seen before, so a
    plain address is checked against the verdict kept for its domain."""
    plain = _PLAIN_EMAIL.fullmatch(text)
    if plain is not None and len(plain[1]) <= 64:
        domain = _normalized_domain(plain[2])
        if domain is not None and len(address := f"{plain[1]}@{domain}") <= 254:
            return address
    return validate_email(text, check_deliverability=False).normalized


@lru_cache(maxsize=10_000)
def _normalized_domain(domain: str) -> str | None:
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None  # the whole address is checked, and refused with email-validator's words


class Cleaner:
    """Collects every problem of one input instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def refuse(self, field: str, message: str) -> None:
        self.problems.append(Problem(RefusalCode.INVALID_INPUT, message, field))

    def line(self, field: str, value: str, *, limit: str | None = None) -> str:
        """A single-line text: no line breaks, tabs or other control characters."""
        return self._text(field, value, multiline=False, limit=limit)

    def text(self, field: str, value: str, *, limit: str | None = None) -> str:
        """A multi-line text: line breaks and tabs kept, `\\r\\n` folded to `\\n`."""
        return self._text(field, value, multiline=True, limit=limit)

    def optional(
        self, clean: Callable[[str, str], str], field: str, value: str | None
    ) -> str | None:
        """Apply `clean` to a nullable value; an empty text reads as null."""
        if value is None or not value.strip():
            return None
        return clean(field, value)

    def _text(self, field: str, value: str, *, multiline: bool, limit: str | None) -> str:
        text = unicodedata.normalize("NFC", value.replace("\r\n", "\n")).strip()
        allowed = "\n\t" if multiline else ""
        maximum = LIMITS[limit or field]
        if not text:
            self.refuse(field, f"{_label(field)} must not be empty.")
        elif any(_is_control(ch) and ch not in allowed for ch in text):
            kind = "control characters" if multiline else "line breaks or control characters"
            self.refuse(field, f"{_label(field)} must not contain {kind}.")
        elif len(text) > maximum:
            self.refuse(field, f"{_label(field)} must be at most {maximum} characters.")
        return text

    def email(self, field: str, value: str) -> str:
        text = self.line(field, value)
        if self.problems and self.problems[-1].field == field:
            return text
        try:
            return normalized_email(text)
        except EmailNotValidError:
            self.refuse(field, "Enter a valid email address, like name@example.org.")
            return text

    def country(self, field: str, value: str) -> str:
        text = self.line(field, value).upper()
        if text not in _COUNTRIES:
            self.refuse(field, "Country must be an ISO 3166-1 alpha-2 code, like GB or US.")
        return text

    def slug(self, field: str, value: str) -> str:
        text = self.line(field, value)
        if text and not _SLUG.match(text):
            self.refuse(field, "Slug may hold only lower-case letters, digits and single dashes.")
        return text

    def url(self, field: str, value: str) -> str:
        text = self.line(field, value, limit=field)
        if text and not re.match(r"^https?://[^\s/$.?#][^\s]*$", text, re.IGNORECASE):
            self.refuse(field, "Image URL must be an http or https address.")
        return text

    def positive(self, field: str, value: int | None) -> int | None:
        if value is not None and not 0 < value <= 2_000_000_000:
            self.refuse(field, f"{_label(field)} must be a positive whole number.")
        return value

    def done(self) -> None:
        """Raise `Refused` with every problem found, if any."""
        if self.problems:
            raise Refused(*self.problems)


# Google's mail ignores dots and anything after a "+" in the local part, and delivers
# googlemail.com to the same mailboxes as gmail.com.
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def canonical_email(email: str) -> str:
    """The one spelling of a mailbox, in which two emails are compared: trimmed and lower-case;
    for Gmail, without dots or a `+tag` in the local part, and `googlemail.com` as `gmail.com`.
    Every stored `email_canonical` comes from here (and the migrations recompute them with it)."""
    email = email.strip().lower()
    local, at, domain = email.rpartition("@")
    if at and local and domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        return f"{local}@gmail.com"
    return email


def canonical_domain(domain: str) -> str:
    """A domain as canonical emails spell it (`googlemail.com` is `gmail.com`)."""
    return email_domain(canonical_email(f"x@{domain.strip().lstrip('@')}"))


def email_domain(canonical: str) -> str:
    """The domain of a canonical email: what `signatureSources` and block lists look at."""
    return canonical.rpartition("@")[2]


def slugify(title: str, limit: int = 80) -> str:
    """A URL-safe slug from a title: ASCII letters and digits joined by single dashes."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    slug = "-".join(words)[:limit].rstrip("-")
    return slug or "petition"


def public_name(first_name: str, last_name: str, show_name: bool) -> str:
    return f"{first_name} {last_name}" if show_name else "Anonymous"


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_control(ch: str) -> bool:
    """C0/C1 controls, line and paragraph separators, and bidi overrides (spoofing)."""
    return unicodedata.category(ch) in {"Cc", "Zl", "Zp"} or ch in _BIDI_CONTROLS


def _label(field: str) -> str:
    words = field.replace("_", " ")
    return words[:1].upper() + words[1:]


def changed(values: dict[str, Any]) -> dict[str, Any]:
    """Drop the entries whose value is the `KEEP` marker."""
    return {k: v for k, v in values.items() if v is not KEEP}


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()
"""Marks an update field that the caller did not give: the stored value stays."""
