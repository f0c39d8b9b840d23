"""User errors (expected failures, returned as data) and the errors a client may read."""

from __future__ import annotations

import re

import strawberry
from graphql import GraphQLError
from strawberry.utils.str_converters import to_camel_case

from models import Problem, RefusalCode

UserErrorCode = RefusalCode
strawberry.enum(UserErrorCode, name="UserErrorCode", description="Why an operation was refused.")


@strawberry.type(description="An expected failure: what to fix, where, and a code to branch on.")
class UserError:
    field: str | None = strawberry.field(
        description="The input field to blame, by its GraphQL name, or null."
    )
    message: str = strawberry.field(description="A sentence to show a person.")
    code: UserErrorCode = strawberry.field(description="A stable code for programs.")

    @classmethod
    def from_problem(cls, problem: Problem) -> UserError:
        field = to_camel_case(problem.field) if problem.field else None
        return cls(field=field, message=problem.message, code=problem.code)


def user_error(code: RefusalCode, message: str, field: str | None = None) -> UserError:
    return UserError(field=field, message=message, code=code)


MASKED = "Internal server error."  # what a client reads of any fault of ours


class PublicError(Exception):
    """A GraphQL error whose message is meant for the client (all others are masked)."""


def should_mask(error: GraphQLError) -> bool:
    """Mask every error raised by our code except `PublicError`; keep syntax and validation
    errors (they have no original error, or wrap graphql-core's own error, as a variable of
    the wrong shape does) so that clients can fix their documents."""
    original = error.original_error
    return original is not None and not isinstance(original, (PublicError, GraphQLError))


# graphql-core quotes the values it refuses: a variable's whole input object (email and all)
# after "found:", a scalar after "cannot represent ... value:".
_FOUND = re.compile(r"(,)? found: .*", re.IGNORECASE | re.DOTALL)
_SCALAR = re.compile(r"(cannot represent [^:]*value): .*", re.DOTALL)


def without_input_values(error: GraphQLError) -> None:
    """Drop the client's values from a refused variable's message (and its cause's), so that
    neither the answer nor the log line repeats them: emails are private."""
    for each in (error, error.original_error):
        if isinstance(each, GraphQLError):
            message = _FOUND.sub(lambda found: "." if found[1] else "", each.message)
            each.message = _SCALAR.sub(r"\1.", message)
