"""The public GraphQL schema: types, queries, mutations and subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types import ExecutionContext, ExecutionResult

import metrics

from .cache import PetitionRows, ResultCache
from .context import Context, Info, Policy
from .deadlines import Deadlines
from .documents import Documents, Judged, Limits, without_suggestion
from .errors import MASKED, PublicError, should_mask, without_input_values
from .mutations import Mutation
from .queries import Query
from .subscription import Subscription
from .types import Comment, Node, Petition, Signature

log = logging.getLogger("petitions.schema")


class PetitionSchema(strawberry.Schema):
    """Strawberry's schema, running only documents its `Documents` judged fit (see
    schema/documents.py) and each operation for at most `limits.seconds`."""

    def __init__(
        self, *args: Any, limits: Limits | None = None, introspection: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or Limits()
        self.documents = Documents(self._schema, self.limits, introspection=introspection)
        self.deadlines = Deadlines(self.limits.seconds)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            async with self.deadlines.within():
                return await super().execute(*args, **kwargs)
        except TimeoutError:
            log.warning("an operation ran out of its %s s", self.limits.seconds)
            return ExecutionResult(data=None, errors=[GraphQLError(MASKED)])

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Keep the client's input values (and, with introspection off, suggestions of the
        schema's names) out of every error, and log the faults, as Strawberry does. Refusals
        (a document that breaks the rules or the limits, a `PublicError`) are the client's
        business, not the operator's: logging each would turn a flood of refused documents
        into a flood of log lines."""
        for error in errors:
            without_input_values(error)
            if not self.documents.introspection:
                without_suggestion(error)
        if faults := [error for error in errors if should_mask(error)]:
            super().process_errors(faults, execution_context)


class JudgedDocuments(SchemaExtension):
    """Parsing and validation as the schema's `Documents` judged them: once per document text,
    with the query limits, for Strawberry's path as for the compiled plans and the cohorts."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        schema = context.schema
        assert isinstance(schema, PetitionSchema)
        assert context.query is not None
        self.judged: Judged = schema.documents.judge(context.query)
        if self.judged.document is None:
            raise self.judged.errors[0]  # answered as Strawberry answers a syntax error
        context.graphql_document = self.judged.document
        yield

    def on_validate(self) -> Iterator[None]:
        self.execution_context.pre_execution_errors = list(self.judged.errors)
        if self.judged.limited:  # over HTTP the endpoint answers these; here, websockets
            metrics.refused("limit")
        yield


def make_schema(*, introspection: bool = True, limits: Limits | None = None) -> PetitionSchema:
    """The schema, with documents judged once against the limits, and errors masked."""
    return PetitionSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Petition, Signature, Comment],
        extensions=[
            JudgedDocuments,
            lambda: MaskErrors(should_mask_error=should_mask, error_message=MASKED),
        ],
        limits=limits,
        introspection=introspection,
    )


schema = make_schema()

__all__ = [
    "Context",
    "Info",
    "Limits",
    "Node",
    "PetitionRows",
    "PetitionSchema",
    "Policy",
    "PublicError",
    "ResultCache",
    "make_schema",
    "schema",
]
