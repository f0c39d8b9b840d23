"""The public GraphQL schema: types, queries, mutations and subscriptions."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)

from .context import Context, Info, is_admin
from .errors import PublicError, should_mask
from .mutations import Mutation
from .queries import Query
from .subscription import Subscription
from .types import Comment, Node, Petition, Signature


def make_schema(*, introspection: bool = True) -> strawberry.Schema:
    """The schema, with errors masked and parsing and validation cached."""
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaskErrors(should_mask_error=should_mask, error_message="Internal server error."),
        lambda: ParserCache(maxsize=1000),
        lambda: ValidationCache(maxsize=1000),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Petition, Signature, Comment],
        extensions=extensions,
    )


schema = make_schema()

__all__ = ["Context", "Info", "Node", "PublicError", "is_admin", "make_schema", "schema"]
