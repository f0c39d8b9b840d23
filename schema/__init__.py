"""The public GraphQL schema: types, queries, mutations and subscriptions."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from .cache import PetitionRows, ResultCache
from .context import Context, Info, is_admin
from .errors import MASKED, PublicError, should_mask, without_input_values
from .mutations import Mutation
from .queries import Query
from .subscription import Subscription
from .types import Comment, Node, Petition, Signature


class PetitionSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log errors, as strawberry does, but never with the client's input values."""
        for error in errors:
            without_input_values(error)
        super().process_errors(errors, execution_context)


def make_schema(*, introspection: bool = True) -> strawberry.Schema:
    """The schema, with errors masked and parsing and validation cached."""
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaskErrors(should_mask_error=should_mask, error_message=MASKED),
        lambda: ParserCache(maxsize=1000),
        lambda: ValidationCache(maxsize=1000),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return PetitionSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Petition, Signature, Comment],
        extensions=extensions,
    )


schema = make_schema()

__all__ = [
    "Context",
    "Info",
    "Node",
    "PetitionRows",
    "PublicError",
    "ResultCache",
    "is_admin",
    "make_schema",
    "schema",
]
