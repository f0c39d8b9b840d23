"""What the pages show, read through the public GraphQL schema: the same visibility, cursors
and cache bookkeeping (`Reads`) as any API client gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from schema import Context, PetitionSchema
from schema.cache import Reads

SIGNERS_PER_PAGE = 10
EMBED_SIGNERS = 5

PAGE = """
query PetitionPage($slug: String!, $first: Int, $after: String, $last: Int, $before: String) {
  petition(slug: $slug) {
    id slug title target goal body letter imageUrl imageCredit status
    signatureGoal signatureCount commentCount closesAt
    signatures(first: $first, after: $after, last: $last, before: $before) {
      edges { node { id name } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
    comments(first: 100) { edges { node { id authorName body createdAt } } }
  }
}
"""

EMBED = """
query Embed($slug: String!) {
  petition(slug: $slug) {
    id slug title signatureGoal signatureCount
    signatures(first: 5) { edges { node { id name } } }
  }
}
"""

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input) { needsConfirmation errors { field message code } }
}
"""

COMMENT = """
mutation Comment($input: AddCommentInput!) {
  addComment(input: $input) { status errors { field message code } }
}
"""


@dataclass
class Answer:
    """A document's data, whether it ran into errors, and what it read."""

    data: dict[str, Any]
    failed: bool
    reads: Reads = field(default_factory=Reads)


async def run(
    schema: PetitionSchema, request: Request, document: str, variables: dict[str, Any]
) -> Answer:
    """Run `document` as an anonymous reader would (the page never shows what a bearer
    token would let its sender see: pages are cached and shared)."""
    context = Context.of(request, role=None)
    result = await schema.execute(document, variable_values=variables, context_value=context)
    return Answer(result.data or {}, bool(result.errors), context.reads)
