"""User errors (expected failures, returned as data) and the errors a client may read."""

from __future__ import annotations

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


class PublicError(Exception):
    """A GraphQL error whose message is meant for the client (all others are masked)."""


def should_mask(error: GraphQLError) -> bool:
    """Mask every error raised by our code except `PublicError`; keep syntax and validation
    errors (they have no original error) so that clients can fix their documents."""
    original = error.original_error
    return original is not None and not isinstance(original, PublicError)
