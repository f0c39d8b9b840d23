"""Hot documents run from compiled plans, and answer exactly as Strawberry does.

Each case sends a compilable document, and the same document with `@include(if: true)` on its
root field, which no plan takes, so Strawberry answers it: the two answers must agree."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import parse
from graphql.execution.values import get_variable_values

from schema import make_schema
from schema.compiled import Plans, compile_plan
from server import create_app
from tests.conftest import GraphQLClient
from tests.factories import comment, create_petition, sign, signer

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input)DIRECTIVE {
    __typename
    signature { id name country comment createdAt }
    petition { id slug status signatureCount signatureGoal closesAt }
    errors { field message code }
  }
}
"""

# Aliases, __typename, named and inline fragments, a literal input, no operation name.
SHAPED = """
fragment Count on Petition { count: signatureCount __typename }
mutation {
  signed: signPetition(input: {
    petitionId: "PETITION", firstName: "Ada", lastName: "Lovelace", email: "EMAIL",
    country: "gb", comment: "Yes", showName: false
  })DIRECTIVE {
    ... on SignPetitionPayload { who: signature { name country comment } }
    petition { ...Count title }
    ... { problems: errors { code } }
  }
}
"""


def through_strawberry(document: str) -> str:
    return document.replace("DIRECTIVE", " @include(if: true)")


def compiled(document: str) -> str:
    return document.replace("DIRECTIVE", "")


def without_fresh_values(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with what differs between two signatures (id, time) checked and set aside."""
    payload = answer["data"]["signPetition"]
    signature = payload["signature"]
    if signature is not None:
        kind, _, pk = base64.urlsafe_b64decode(signature.pop("id") + "==").decode().partition(":")
        assert kind == "Signature"
        assert pk.isdigit()
        assert datetime.fromisoformat(signature.pop("createdAt")).tzinfo is not None
    return answer


def test_every_hot_document_compiles_and_other_documents_do_not():
    plans = Plans(make_schema().documents)
    schema = plans.schema
    document = plans.documents.judge(compiled(SIGN)).document
    assert document is not None
    assert compile_plan(schema, document, None)
    assert compile_plan(schema, document, "Sign")
    assert compile_plan(schema, parse(compiled(SHAPED)), None)
    for not_hot in [
        through_strawberry(SIGN),
        compiled(SIGN).replace("signatureGoal", "signatures(first: 1) { totalCount }"),
        'mutation { addComment(input: {petitionId: "x", authorName: "a", email: "e", '
        'body: "b"}) { errors { code } } }',
        "{ petitions { edges { node { signatures { totalCount } } } } }",  # per item
        '{ petition(slug: "x") { countries { country } } }',  # its resolver wants `info`
        '{ node(id: "x") { id } }',  # an interface
        compiled(SIGN) + '\nquery Other { petition(slug: "x") { id } }',  # which one?
        "mutation { signPetition }",  # does not validate
        "mutation {",
        '{ petition(slug: "x") { ' + " ".join(f"a{n}: id" for n in range(31)) + " } }",  # limits
    ]:
        assert plans.get(not_hot, None) is None, not_hot
    assert plans.get(compiled(SIGN), None) is not None
    assert plans.get(COUNT, None) is not None
    assert plans.get(compiled(PAGES), None) is not None
    assert len(plans) == 3


async def test_a_signature_answers_as_strawberry_would(gql: GraphQLClient):
    petition = await create_petition(gql)
    same_person = {"firstName": "Grace", "lastName": "Hopper", "country": "us"}
    # when
    fast = await gql(compiled(SIGN), {"input": signer(petition["id"], 1, **same_person)})
    slow = await gql(through_strawberry(SIGN), {"input": signer(petition["id"], 2, **same_person)})
    # then
    assert fast["data"]["signPetition"]["petition"]["signatureCount"] == 1
    assert slow["data"]["signPetition"]["petition"]["signatureCount"] == 2
    slow["data"]["signPetition"]["petition"]["signatureCount"] = 1
    assert without_fresh_values(fast) == without_fresh_values(slow)
    assert fast["data"]["signPetition"]["signature"] == {
        "name": "Grace Hopper",
        "country": "US",
        "comment": None,
    }


async def test_a_shaped_document_answers_as_strawberry_would(gql: GraphQLClient):
    petition = await create_petition(gql)
    shaped = SHAPED.replace("PETITION", petition["id"])
    fast = await gql(compiled(shaped).replace("EMAIL", "ada1@example.org"))
    slow = await gql(through_strawberry(shaped).replace("EMAIL", "ada2@example.org"))
    assert fast == {
        "data": {
            "signed": {
                "who": {"name": "Anonymous", "country": "GB", "comment": "Yes"},
                "petition": {"count": 1, "__typename": "Petition", "title": petition_title(slow)},
                "problems": [],
            }
        }
    }
    slow["data"]["signed"]["petition"]["count"] = 1
    assert fast == slow


def petition_title(answer: dict[str, Any]) -> str:
    title: str = answer["data"]["signed"]["petition"]["title"]
    return title


REFUSALS = [
    pytest.param(lambda p: {"email": "already@example.org"}, id="already-signed"),
    pytest.param(lambda p: {"email": "not an email"}, id="invalid-email"),
    pytest.param(lambda p: {"firstName": " ", "country": "Britain"}, id="two-problems"),
    pytest.param(lambda p: {"petitionId": "not-an-id"}, id="bad-id"),
    pytest.param(
        lambda p: {"petitionId": base64.b64encode(b"Petition:999999").decode()}, id="unknown"
    ),
    pytest.param(lambda p: {"petitionId": p["closed"]}, id="closed"),
]


@pytest.mark.parametrize("refusing", REFUSALS)
async def test_a_refusal_answers_as_strawberry_would_and_stores_nothing(gql, refusing):
    petition = await create_petition(gql)
    closed = await create_petition(gql, status="CLOSED")
    await sign(gql, petition["id"], 1, email="already@example.org")
    overrides = refusing({"closed": closed["id"]})
    variables = {"input": signer(petition["id"], 7, **overrides)}
    # when
    fast = await gql(compiled(SIGN), variables)
    slow = await gql(through_strawberry(SIGN), variables)
    # then
    assert fast == slow
    assert fast["data"]["signPetition"]["signature"] is None
    assert fast["data"]["signPetition"]["errors"]
    count = await gql(
        "query ($id: ID!) { node(id: $id) { ... on Petition { signatureCount } } }",
        {"id": petition["id"]},
    )
    assert count["data"]["node"]["signatureCount"] == 1


async def test_variables_that_do_not_coerce_are_refused_as_strawberry_refuses(gql, http):
    petition = await create_petition(gql)
    no_email = signer(petition["id"], 1)
    del no_email["email"]
    for variables in [{"input": no_email}, {"input": {**no_email, "email": 42}}, {}]:
        fast = await gql(compiled(SIGN), variables)
        slow = await gql(through_strawberry(SIGN), variables)
        assert fast == slow
        assert fast["data"] is None
        assert fast["errors"]
    response = await http.post("/graphql", json={"query": compiled(SIGN), "variables": [1]})
    assert response.status_code == 400  # Strawberry's answer to variables that are no object
    count = await gql("query ($id: ID!) { petition(id: $id) { signatureCount } }", petition)
    assert count["data"]["petition"]["signatureCount"] == 0


async def test_a_server_fault_is_masked_as_strawberry_masks_it(settings):
    manager = LifespanManager(create_app(settings))
    async with manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            gql = GraphQLClient(http)
            petition = await create_petition(gql)
            await manager._state["writer"].stop()  # shutting down: no signature is taken
            fast = await gql(compiled(SIGN), {"input": signer(petition["id"], 1)})
            slow = await gql(through_strawberry(SIGN), {"input": signer(petition["id"], 2)})
    assert fast == {
        "data": None,
        "errors": [
            {
                "message": "Internal server error.",
                "locations": [{"line": 3, "column": 3}],
                "path": ["signPetition"],
            }
        ],
    }
    slow["errors"][0]["locations"] = fast["errors"][0]["locations"]  # the directive moves nothing
    assert fast == slow


COUNT = """
query Count($slug: String!) { petition(slug: $slug)DIRECTIVE { signatureCount } }
""".replace("DIRECTIVE", "")

PETITION = """
query Petition($slug: String, $id: ID) {
  petition(slug: $slug, id: $id)DIRECTIVE {
    __typename id slug title target goal body letter imageUrl imageCredit status
    signatureGoal signatureCount commentCount createdAt closesAt
  }
}
"""


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_petition_read_answers_as_strawberry_would(gql, http, method):
    petition = await create_petition(gql, closesAt="2100-01-01T00:00:00+02:00")
    draft = await create_petition(gql, status="DRAFT")
    await sign(gql, petition["id"], 1)

    async def read(document: str, variables: dict[str, Any]) -> httpx.Response:
        variables = {"nonce": len(document), **variables}  # an undeclared variable: ignored
        if method == "GET":
            params = {"query": document, "variables": json.dumps(variables)}
            return await http.get("/graphql", params=params)
        return await http.post("/graphql", json={"query": document, "variables": variables})

    for variables in [
        {"slug": petition["slug"]},
        {"id": petition["id"]},
        {"slug": "no-such-petition"},
        {"slug": draft["slug"]},  # drafts are for admins only
        {"id": "not-an-id"},
        {"slug": petition["slug"], "id": petition["id"]},  # refused: exactly one
        {},
    ]:
        fast = await read(compiled(PETITION), variables)
        slow = await read(through_strawberry(PETITION), variables)
        assert fast.status_code == slow.status_code == 200
        assert fast.json() == slow.json(), variables
        assert fast.headers["cache-control"] == slow.headers["cache-control"]
    # a compiled answer is kept, as Strawberry's are
    kept = await read(COUNT, {"slug": petition["slug"]})
    again = await read(COUNT, {"slug": petition["slug"]})
    assert (kept.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert kept.json() == again.json() == {"data": {"petition": {"signatureCount": 1}}}


async def test_a_mutation_sent_by_get_is_refused_as_strawberry_refuses_it(gql, http):
    petition = await create_petition(gql)
    params = {
        "query": compiled(SIGN),
        "variables": json.dumps({"input": signer(petition["id"], 1)}),
    }
    response = await http.get("/graphql", params=params)
    assert response.status_code == 400  # Strawberry: "mutations are not allowed when using GET"
    count = await gql(COUNT, {"slug": petition["slug"]})
    assert count["data"]["petition"]["signatureCount"] == 0


# The seed page's shape: a petition with a page of its signers and of its comments.
PAGES = """
query Pages($slug: String!, $first: Int, $after: String, $last: Int, $before: String) {
  petition(slug: $slug)DIRECTIVE {
    title signatureCount commentCount
    signatures(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      edges { cursor node { id name country comment createdAt status } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
    comments(first: 2) {
      edges { cursor node { id authorName body createdAt status } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def test_pages_of_signers_and_comments_answer_as_strawberry_would(gql, http):
    petition = await create_petition(gql)
    for n in range(1, 8):
        await sign(gql, petition["id"], n, country="fr" if n % 2 else None, showName=n != 3)
    for n in range(3):
        await comment(gql, petition["id"], body=f"Comment number {n}.")

    async def both(variables: dict[str, Any]) -> dict[str, Any]:
        variables = {"slug": petition["slug"], **variables}
        fast = await gql(compiled(PAGES), variables)
        slow = await gql(through_strawberry(PAGES), variables)
        assert fast == slow, variables
        return fast

    first = await both({"first": 3})
    signers = first["data"]["petition"]["signatures"]
    assert [edge["node"]["name"] for edge in signers["edges"]] == [
        "Signer7 Example",
        "Signer6 Example",
        "Signer5 Example",
    ]
    assert len(first["data"]["petition"]["comments"]["edges"]) == 2
    after = await both({"first": 3, "after": signers["pageInfo"]["endCursor"]})
    names = [e["node"]["name"] for e in after["data"]["petition"]["signatures"]["edges"]]
    assert names == ["Signer4 Example", "Anonymous", "Signer2 Example"]
    await both({"last": 2, "before": signers["pageInfo"]["endCursor"]})
    await both({})  # ten by default
    for refused in [{"first": 1000}, {"after": "not-a-cursor"}, {"first": 1, "last": 1}]:
        answer = await both(refused)
        assert answer["errors"]
        assert answer["data"] == {"petition": None}
    nobody = await gql(compiled(PAGES), {"slug": "no-such-petition"})
    assert nobody == {"data": {"petition": None}}


def sources(values: Any) -> dict[str, tuple[str, str, Any]]:
    return {
        name: (source.signature.name, str(source.signature.type), source.value)
        for name, source in values.sources.items()
    }


def test_the_plans_own_coercion_of_variables_agrees_with_graphql_core():
    """Plans coerce common variables themselves; whatever they accept, graphql-core accepts
    as the very same values, and what they leave alone, graphql-core coerces (or refuses)."""
    plans = Plans(make_schema().documents)
    person = {"petitionId": "UGV0aXRpb246MQ", "firstName": "A", "lastName": "B", "email": "e"}
    cases: list[tuple[str, list[Any]]] = [
        (
            compiled(SIGN),
            [
                {"input": person},
                {"input": {**person, "country": None, "comment": "Yes", "showName": False}},
                {"input": {**person, "petitionId": 7}},  # an ID may be given as a number
                {"input": {**person, "showName": 1}},
                {"input": {**person, "email": None}},
                {"input": {**person, "extra": 1}},
                {"input": {k: v for k, v in person.items() if k != "email"}},
                {"input": [person]},
                {"input": None},
                {},
            ],
        ),
        (
            compiled(PAGES),
            [
                {"slug": "s"},
                {"slug": "s", "first": 3, "after": None},
                {"slug": "s", "first": True},
                {"slug": "s", "first": 2**31},
                {"slug": "s", "first": 3.0},
                {"slug": "s", "last": "3"},
                {"slug": 1},
                {"nonce": 1, "slug": "s"},
            ],
        ),
        (COUNT, [{"slug": "s"}, {}, {"slug": None}]),
    ]
    fast_ones = 0
    for document, variables in cases:
        plan = plans.get(document, None)
        assert plan is not None
        for given in variables:
            slow = get_variable_values(
                plan.schema, plan.operation.variable_definitions or (), given
            )
            fast = plan.coerce(given)
            if fast is not None:
                fast_ones += 1
                assert not isinstance(slow, list), given
                assert fast.coerced == slow.coerced, given
                assert sources(fast) == sources(slow), given
    assert fast_ones == 7
