"""Expected refusals of the domain: data for the caller, never a crash."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalCode(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_SIGNED = "ALREADY_SIGNED"
    PETITION_CLOSED = "PETITION_CLOSED"
    RATE_LIMITED = "RATE_LIMITED"
    UNAUTHORIZED = "UNAUTHORIZED"


@dataclass(frozen=True)
class Problem:
    """One reason for a refusal. `field` is the snake_case name of the input to blame."""

    code: RefusalCode
    message: str
    field: str | None = None


class Refused(Exception):
    """A domain operation refused its input; nothing was stored."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems: tuple[Problem, ...] = problems

    @classmethod
    def one(cls, code: RefusalCode, message: str, field: str | None = None) -> Refused:
        return cls(Problem(code, message, field))
