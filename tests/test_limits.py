"""The query limits (the contract's part "safety"): each default is the largest accepted, and a
document past a limit is refused having run nothing, on Strawberry's path as on the compiled one.

Most cases sign a petition: the count moves by one at the limit and not at all past it. A
document runs compiled when it is one of the hot shapes (schema/compiled.py); the same document
with `@include(if: true)` on its root field goes through Strawberry (a directive always does)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import get_introspection_query
from graphql.language import Lexer, Source, TokenKind
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from models.migrations import migrate
from schema import make_schema
from schema.compiled import Plans
from schema.deadlines import Deadlines
from server import Settings, create_app
from serving import GoingAwayWebSocketProtocol, GraphQLApp
from tests.conftest import (
    ADMIN_TOKEN,
    REDIS_URL,
    GraphQLClient,
    fresh_postgres_database,
    needs_postgres,
    running_server,
)
from tests.factories import comment, create_petition, sign, signer
from tests.processes import server_process, service_env
from tests.wsclient import (
    PROTOCOLS,
    TIMEOUT,
    TRANSPORT_WS,
    SubscriptionEnded,
    subscription,
    ws_url,
)

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input)DIRECTIVE {
    signature { id name }
    petition { id signatureCount SELECTION }
    errors { code }
  }
}
"""

COUNT = """
query Count($id: ID!) { petition(id: $id) { signatureCount } }
"""

# The seed page: the petition by slug with every field, ten signatures, ten comments.
SEED_PAGE = """
query Page($slug: String!) {
  petition(slug: $slug) {
    id slug title target goal body letter imageUrl imageCredit status
    signatureGoal signatureCount commentCount createdAt closesAt
    signatures(first: 10) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id name country comment createdAt } }
    }
    comments(first: 10) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id authorName body createdAt status } }
    }
  }
}
"""

# Each connection's `first` multiplies what it selects: 1 + 100 × (2 + (1 + 100 × 3)).
EVERY_SIGNATURE_OF_EVERY_PETITION = """
{ petitions(first: 100) { edges { node { signatures(first: 100) { edges { node { name } } } } } } }
"""

COUNT_SUBSCRIPTION = """
subscription Count($id: ID!) { signatureCount(petitionId: $id) { SELECTION } }
"""

STRAWBERRY = "strawberry"
COMPILED = "compiled"
PATHS = [COMPILED, STRAWBERRY]
ABORTED = "Too many validation errors, error limit reached. Validation aborted."


def sign_document(path: str, selection: str = "", payload: str = "") -> str:
    """SIGN for `path`, with more fields in its `petition` (`selection`) and its payload."""
    directive = " @include(if: true)" if path == STRAWBERRY else ""
    document = SIGN.replace("DIRECTIVE", directive).replace("SELECTION", selection)
    return document.replace("    errors { code }", f"    errors {{ code }} {payload}")


def aliases(n: int, field: str = "id") -> str:
    return " ".join(f"a{i}: {field}" for i in range(n))


def tokens(document: str) -> int:
    """The tokens graphql-core's parser counts against `max_tokens`."""
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def endpoint(app: Starlette) -> GraphQLApp:
    for route in app.routes:
        if isinstance(found := getattr(route, "endpoint", None), GraphQLApp):
            return found
    raise AssertionError("no GraphQL endpoint")


def assert_runs_on(settings: Settings, document: str, path: str) -> None:
    """The document (fit to run) takes `path` under `settings`: a compiled plan, or none."""
    limits = settings.limits
    plan = Plans(make_schema(introspection=settings.introspection, limits=limits).documents).get(
        document, None
    )
    assert (plan is not None) == (path == COMPILED), path


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Any, GraphQLClient]]:
    """The real app on `settings`, lifespan running, with a client posting to it."""
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield manager.app, GraphQLClient(http)


async def signature_count(gql: GraphQLClient, petition_id: str) -> int:
    answer = await gql(COUNT, {"id": petition_id}, admin=True)  # admins' reads are never cached
    count: int = answer["data"]["petition"]["signatureCount"]
    return count


async def refused(gql: GraphQLClient, document: str, petition_id: str, n: int) -> list[str]:
    """Sign with `document`, expecting a refusal that ran nothing; the error messages."""
    before = await signature_count(gql, petition_id)
    answer = await gql(document, {"input": signer(petition_id, n)})
    assert answer.get("data") is None, answer
    assert answer["errors"], answer
    assert await signature_count(gql, petition_id) == before
    return [error["message"] for error in answer["errors"]]


async def signed(gql: GraphQLClient, document: str, petition_id: str, n: int) -> dict[str, Any]:
    """Sign with `document`, expecting the signature taken; the payload."""
    before = await signature_count(gql, petition_id)
    answer = await gql(document, {"input": signer(petition_id, n)})
    assert "errors" not in answer, answer
    payload: dict[str, Any] = answer["data"]["signPetition"]
    assert payload["errors"] == [], payload
    assert await signature_count(gql, petition_id) == before + 1
    return payload


# Aliases, depth, directives, tokens, cost, validation errors.


@pytest.mark.parametrize("path", PATHS)
async def test_thirty_aliases_are_taken_and_thirty_one_refused(settings, gql, path):
    # given
    petition = await create_petition(gql)
    at_limit = sign_document(path, aliases(30))
    assert_runs_on(settings, at_limit, path)
    # when / then
    payload = await signed(gql, at_limit, petition["id"], 1)
    assert payload["petition"]["a29"] == petition["id"]
    messages = await refused(gql, sign_document(path, aliases(31)), petition["id"], 2)
    assert messages == ["31 aliases found. Allowed: 30"]


@pytest.mark.parametrize("path", PATHS)
async def test_a_document_as_deep_as_the_depth_limit_is_taken_and_one_deeper_refused(
    settings, path
):
    # given SIGN, two levels deep (signPetition { petition { … } }), compiled or not
    document = sign_document(path)
    assert_runs_on(replace(settings, max_depth=2), document, path)
    async with serving(replace(settings, max_depth=2)) as (_, gql):
        petition = await create_petition(gql)
        await signed(gql, document, petition["id"], 1)
    async with serving(replace(settings, max_depth=1)) as (_, gql):
        messages = await refused(gql, document, petition["id"], 2)
    # Strawberry's QueryDepthLimiter names the operation once for each field too deep
    assert set(messages) == {"'Sign' exceeds maximum operation depth of 1"}


async def test_the_default_depth_is_twelve(gql):
    def nested(levels: int) -> str:
        return "query Deep " + "{ a " * levels + "{ b }" + " }" * levels

    # twelve fields one inside the other hold a selection set: refused, but not for depth
    messages = [error["message"] for error in (await gql(nested(12)))["errors"]]
    assert not any("depth" in message for message in messages), messages
    assert [error["message"] for error in (await gql(nested(13)))["errors"]] == [
        "'Deep' exceeds maximum operation depth of 12"
    ]


async def test_many_fields_too_deep_answer_no_more_than_six_errors(gql):
    too_deep = (
        "{ a " * 13 + "{ " + " ".join(f"b{n}: c {{ d }}" for n in range(20)) + " }" + " }" * 13
    )
    # when
    errors = (await gql(too_deep))["errors"]
    # then
    assert len(errors) == 6
    assert errors[-1]["message"] == ABORTED


async def test_fifty_directives_are_taken_and_fifty_one_refused(gql):
    # Any directive sends a document through Strawberry: no compiled plan takes one. SIGN
    # through Strawberry has one already, on its root field.
    petition = await create_petition(gql)

    def with_directives(n: int) -> str:
        return sign_document(STRAWBERRY, payload="... @include(if: true) { __typename }" * (n - 1))

    await signed(gql, with_directives(50), petition["id"], 1)
    messages = await refused(gql, with_directives(51), petition["id"], 2)
    assert messages == ["This document has more than the 50 directives allowed."]


@pytest.mark.parametrize("path", PATHS)
async def test_a_document_of_max_tokens_is_taken_and_one_token_more_refused(settings, path):
    # given a limit set to the tokens of SIGN itself
    document = sign_document(path)
    one_more = sign_document(path, payload="__typename")
    assert tokens(one_more) == tokens(document) + 1
    settings = replace(settings, max_tokens=tokens(document))
    assert_runs_on(settings, document, path)
    async with serving(settings) as (_, gql):
        petition = await create_petition(gql)
        # when / then
        await signed(gql, document, petition["id"], 1)
        messages = await refused(gql, one_more, petition["id"], 2)
    assert messages == [
        f"Syntax Error: Document contains more than {tokens(document)} tokens. Parsing aborted."
    ]


async def test_five_thousand_tokens_are_taken_and_one_more_refused(http, gql):
    # given SIGN (through Strawberry) and other operations to make up 5,000 tokens
    petition = await create_petition(gql)
    document = sign_document(STRAWBERRY)
    filler = []
    left = 5_000 - tokens(document)
    for n in range(left // 5 - 1):
        filler.append(f"query Q{n} {{ __typename }}")  # 5 tokens
    filler.append("query Last {" + " __typename" * (left - 5 * len(filler) - 4) + " }")
    document += "\n".join(filler)
    assert tokens(document) == 5_000

    async def post(query: str, n: int) -> dict[str, Any]:
        variables = {"input": signer(petition["id"], n)}
        body = {"query": query, "operationName": "Sign", "variables": variables}
        response = await http.post("/graphql", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    # when / then
    taken = await post(document, 1)
    assert taken["data"]["signPetition"]["errors"] == [], taken
    assert await signature_count(gql, petition["id"]) == 1
    past = await post(document.replace("query Last {", "query Last { __typename"), 2)
    assert past == {
        "data": None,
        "errors": [
            {
                "message": "Syntax Error: Document contains more than 5000 tokens. "
                "Parsing aborted.",
                "locations": past["errors"][0]["locations"],
            }
        ],
    }
    assert await signature_count(gql, petition["id"]) == 1


@pytest.mark.parametrize("path", PATHS)
async def test_a_document_of_max_cost_is_taken_and_one_field_more_refused(settings, path):
    # given SIGN costs its fields: signPetition, signature, id, name, petition, id,
    # signatureCount, errors, code
    document = sign_document(path)
    one_more = sign_document(path, selection="slug")
    assert_runs_on(replace(settings, max_cost=9), document, path)
    async with serving(settings) as (_, gql):
        petition = await create_petition(gql)  # creating costs 11
    async with serving(replace(settings, max_cost=9)) as (_, gql):
        # when / then
        await signed(gql, document, petition["id"], 1)
        messages = await refused(gql, one_more, petition["id"], 2)
    assert messages == [
        "This document costs 10, more than the 9 allowed: ask for fewer items (`first`, "
        "`last`) or fewer fields."
    ]


async def test_a_cost_of_twenty_thousand_is_taken_and_one_more_refused(gql):
    # given SIGN (9 fields) asking for 28 pages of 100 signatures (701 each: the connection,
    # and 100 × edges, node and its 5 fields), one of 51 (358) and 5 more fields: 20,000
    petition = await create_petition(gql)
    page = "{ edges { node { id name country comment createdAt } } }"
    pages = " ".join(f"s{n}: signatures(first: 100) {page}" for n in range(28))
    selection = f"{pages} signatures(first: 51) {page} slug title target goal body"
    # when / then
    await signed(gql, sign_document(STRAWBERRY, selection), petition["id"], 1)
    past = sign_document(STRAWBERRY, selection + " letter")
    messages = await refused(gql, past, petition["id"], 2)
    assert messages == [
        "This document costs 20,001, more than the 20,000 allowed: ask for fewer items "
        "(`first`, `last`) or fewer fields."
    ]
    answer = await gql(EVERY_SIGNATURE_OF_EVERY_PETITION)
    assert answer["data"] is None
    assert answer["errors"][0]["message"].startswith("This document costs 30,301,")


@pytest.mark.parametrize("path", PATHS)
async def test_validation_stops_after_five_errors_and_says_so(gql, path):
    petition = await create_petition(gql)

    def unknown(n: int) -> str:
        return sign_document(path, payload=" ".join(f"unknown{i}" for i in range(n)))

    five = await refused(gql, unknown(5), petition["id"], 1)
    assert five == [
        f"Cannot query field 'unknown{i}' on type 'SignPetitionPayload'." for i in range(5)
    ]
    ten = await refused(gql, unknown(10), petition["id"], 2)
    assert ten == [*five, ABORTED]


def fragment_bomb(levels: int, on: str, operation: str) -> str:
    """Fragments each spreading the next one twice: 2 ** `levels` spreads of the last."""
    fragments = [f"fragment F{n} on {on} {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)]
    return "\n".join([operation, *fragments, f"fragment F{levels} on {on} {{ id }}"])


async def test_nasty_documents_are_refused_or_answered_at_once(gql):
    # given documents that cost the judging of them dearly when it is done naively
    petition = await create_petition(gql)
    nasty = {
        # over the cost: a million `id`
        "bomb": fragment_bomb(20, "Petition", '{ petition(slug: "x") { ...F0 } }'),
        # costs 1 (no items), but Strawberry's depth and alias rules expand every spread
        "bomb under first: 0": fragment_bomb(
            30, "Petition", "{ petitions(first: 0) { edges { node { ...F0 } } } }"
        ),
        # three million pairs of fields for graphql-core to compare
        "2,500 __typename": "{" + " __typename" * 2_500 + " }",
        "cycle": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
    }
    for name, document in nasty.items():
        # when
        started = asyncio.get_running_loop().time()
        answer = await gql(document)
        # then
        assert asyncio.get_running_loop().time() - started < 1, name
        assert answer.get("errors") or answer["data"] == {"petitions": {"edges": []}}, name
    assert (await gql(nasty["2,500 __typename"]))["errors"]  # refused, in a few milliseconds
    assert await signature_count(gql, petition["id"]) == 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param("...Unknown", "Unknown fragment 'Unknown'.", id="unknown-fragment"),
        pytest.param("petition { }", "Syntax Error: Expected Name, found '}'.", id="empty-set"),
    ],
)
async def test_a_document_the_specification_refuses_is_a_graphql_error(gql, path, payload, message):
    # Strawberry's depth rule raised on both (KeyError, ValueError): the request failed
    petition = await create_petition(gql)
    assert await refused(gql, sign_document(path, payload=payload), petition["id"], 1) == [message]


# Time per operation.


@pytest.fixture
async def postgres_settings() -> AsyncIterator[Settings]:
    async with fresh_postgres_database() as url:
        await migrate(url)
        assert REDIS_URL
        yield Settings(admin_token=ADMIN_TOKEN, database_url=url, broadcast_url=REDIS_URL)


@needs_postgres
@pytest.mark.parametrize("path", PATHS)
async def test_an_operation_past_its_time_is_a_masked_error_and_its_signature_is_kept(
    postgres_settings, path
):
    settings = replace(postgres_settings, operation_timeout=0.5)
    document = sign_document(path)
    assert_runs_on(settings, document, path)
    async with serving(settings) as (_, gql):
        petition = await create_petition(gql)
        _, _, pk = base64.urlsafe_b64decode(petition["id"] + "==").decode().partition(":")
        # given the petition's row locked by another connection
        holder = await asyncpg.connect(settings.database_url)
        try:
            locked = holder.transaction()
            await locked.start()
            await holder.execute("SELECT id FROM petition WHERE id = $1 FOR UPDATE", int(pk))
            # when
            started = asyncio.get_running_loop().time()
            answer = await gql(document, {"input": signer(petition["id"], 1)})
            waited = asyncio.get_running_loop().time() - started
            # then
            assert answer == {"data": None, "errors": [{"message": "Internal server error."}]}
            assert 0.45 <= waited < 3
            await locked.rollback()
        finally:
            await holder.close()
        # accepted signatures are never lost: the signature is stored all the same
        async with asyncio.timeout(TIMEOUT):
            while await signature_count(gql, petition["id"]) != 1:
                await asyncio.sleep(0.05)


# Request body.


def body_of(size: int, query: str, variables: dict[str, Any]) -> bytes:
    """A JSON request of exactly `size` bytes: the query padded with a comment."""
    unpadded = json.dumps({"query": query + "\n#", "variables": variables}).encode()
    padded = json.dumps({"query": query + "\n#" + "x" * (size - len(unpadded))})
    body = (padded[:-1] + ', "variables": ' + json.dumps(variables) + "}").encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("path", PATHS)
async def test_a_body_of_64_kib_is_taken_and_one_byte_more_refused_with_413(
    settings, http, gql, path
):
    petition = await create_petition(gql)
    document = sign_document(path)
    assert_runs_on(settings, document, path)
    headers = {"Content-Type": "application/json"}

    async def post(size: int, n: int) -> httpx.Response:
        body = body_of(size, document, {"input": signer(petition["id"], n)})
        return await http.post("/graphql", content=body, headers=headers)

    # when / then
    taken = await post(65_536, 1)
    assert taken.status_code == 200, taken.text
    assert taken.json()["data"]["signPetition"]["petition"]["signatureCount"] == 1
    past = await post(65_537, 2)
    assert past.status_code == 413
    assert past.json() == {
        "errors": [{"message": "The request body is larger than the 65,536 bytes allowed."}]
    }
    assert await signature_count(gql, petition["id"]) == 1


async def test_a_chunked_body_is_held_to_the_same_limit(settings):
    document = sign_document(STRAWBERRY)

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    async with running_server(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        for size, n, status, count in [(65_536, 1, 200, 1), (65_537, 2, 413, 1)]:
            body = body_of(size, document, {"input": signer(petition["id"], n)})
            response = await http.post(
                "/graphql", content=chunks(body), headers={"Content-Type": "application/json"}
            )
            assert "content-length" not in response.request.headers
            assert response.status_code == status, response.text
            assert await signature_count(gql, petition["id"]) == count


# Websockets.


async def closed_with(ws: Any) -> int:
    """Read until the server closes the socket; its close code."""
    async with asyncio.timeout(TIMEOUT):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            received = closed.rcvd
    assert received is not None, "closed without a close frame"
    code: int = received.code
    return code


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_without_connection_init_in_time_is_closed_with_4408(settings, protocol):
    app = create_app(replace(settings, ws_init_timeout=0.3))
    async with running_server(app) as url:
        async with connect(ws_url(url), subprotocols=[Subprotocol(protocol)]) as ws:
            started = asyncio.get_running_loop().time()
            assert await closed_with(ws) == 4408
            assert 0.3 <= asyncio.get_running_loop().time() - started < 3


def connection_init(size: int) -> str:
    """A `connection_init` message of exactly `size` bytes."""
    unpadded = json.dumps({"type": "connection_init", "payload": {"pad": ""}})
    message = json.dumps(
        {"type": "connection_init", "payload": {"pad": "x" * (size - len(unpadded))}}
    )
    assert len(message.encode()) == size
    return message


async def assert_message_size_limit(url: str, protocol: str) -> None:
    """A message of 64 KiB is read; one byte more closes the socket with 1009."""
    async with connect(ws_url(url), subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(connection_init(65_536))
        async with asyncio.timeout(TIMEOUT):
            while (answer := json.loads(await ws.recv()))["type"] == "ka":
                pass
        assert answer == {"type": "connection_ack"}
    async with connect(ws_url(url), subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(connection_init(65_537))
        assert await closed_with(ws) == 1009


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_websocket_message_over_64_kib_closes_the_socket_with_1009(settings, protocol):
    async with running_server(create_app(settings), ws=GoingAwayWebSocketProtocol) as url:
        await assert_message_size_limit(url, protocol)


async def test_petitions_serve_closes_a_socket_on_a_message_over_64_kib(tmp_path):
    env = service_env(f"sqlite://{tmp_path / 'serve.sqlite3'}", "memory://", "test-limits")
    async with server_process(env) as server:
        for protocol in PROTOCOLS:
            await assert_message_size_limit(server.url, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_operation_past_the_limit_of_one_socket_ends_with_an_error(settings, protocol):
    app = create_app(replace(settings, ws_max_operations=2))
    query = COUNT_SUBSCRIPTION.replace("SELECTION", "signatureCount")
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        petition = await create_petition(GraphQLClient(http))
        variables = {"id": petition["id"]}
        async with subscription(url, protocol, query, variables) as subscriber:
            assert await subscriber.next() == {"signatureCount": {"signatureCount": 0}}
            subscriber.operation_id = "2"
            await subscriber.subscribe(query, variables)
            assert await subscriber.next() == {"signatureCount": {"signatureCount": 0}}
            # when
            subscriber.operation_id = "3"
            await subscriber.subscribe(query, variables)
            # then
            with pytest.raises(SubscriptionEnded) as ended:
                await subscriber.next()
            assert ended.value.errors == [{"message": "Subscription limit reached"}]


async def test_a_cohort_subscription_over_the_alias_limit_is_refused_not_joined(settings):
    app = create_app(settings)
    cohorts = endpoint(app).cohorts
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        petition = await create_petition(GraphQLClient(http))
        variables = {"id": petition["id"]}
        at_limit = COUNT_SUBSCRIPTION.replace("SELECTION", aliases(30, "signatureCount"))
        async with subscription(url, TRANSPORT_WS, at_limit, variables) as subscriber:
            assert (await subscriber.next())["signatureCount"]["a29"] == 0
            assert len(cohorts) == 1
        async with asyncio.timeout(TIMEOUT):
            while len(cohorts):
                await asyncio.sleep(0.02)
        past = COUNT_SUBSCRIPTION.replace("SELECTION", aliases(31, "signatureCount"))
        async with subscription(url, TRANSPORT_WS, past, variables) as subscriber:
            with pytest.raises(SubscriptionEnded) as ended:
                await subscriber.next()
            assert [error["message"] for error in ended.value.errors] == [
                "31 aliases found. Allowed: 30"
            ]
            assert len(cohorts) == 0


# Introspection off: no schema, and no names given away in suggestions.

MISTAKES = [
    pytest.param('{ petition(slug: "x") { signatureCont } }', {}, id="field"),
    pytest.param('{ petition(slugg: "x") { id } }', {}, id="argument"),
    pytest.param("{ petitions(status: OPN) { totalCount } }", {}, id="enum-literal"),
    pytest.param(
        "query($s: PetitionStatus) { petitions(status: $s) { totalCount } }",
        {"s": "OPN"},
        id="enum-variable",
    ),
]


@pytest.mark.parametrize(("query", "variables"), MISTAKES)
async def test_with_introspection_off_no_error_suggests_a_name(settings, query, variables):
    async with serving(settings) as (_, gql):
        on = await gql(query, variables)
    assert "Did you mean" in json.dumps(on), on  # the mistake is one a suggestion would fix
    async with serving(replace(settings, introspection=False)) as (_, gql):
        off = await gql(query, variables)
    assert off["errors"], off
    assert "Did you mean" not in json.dumps(off), off


async def test_with_introspection_off_the_schema_is_not_told(settings):
    async with serving(replace(settings, introspection=False)) as (_, gql):
        answer = await gql("{ __schema { types { name } } }")
        typed = await gql('{ __type(name: "Petition") { name } }')
    assert answer["data"] is None
    assert "introspection" in answer["errors"][0]["message"].lower()
    assert typed["data"] is None


# The defaults never refuse what the service's own clients send.


async def test_the_defaults_take_every_document_of_the_services_own_clients(gql):
    introspection = await gql(get_introspection_query(descriptions=True))
    assert "errors" not in introspection
    assert introspection["data"]["__schema"]["queryType"]["name"] == "Query"
    petition = await create_petition(gql)
    await sign(gql, petition["id"], 1)
    await comment(gql, petition["id"])
    page = await gql(SEED_PAGE, {"slug": petition["slug"]})
    assert "errors" not in page, page
    assert page["data"]["petition"]["signatures"]["totalCount"] == 1
    assert page["data"]["petition"]["signatures"]["edges"][0]["cursor"]


async def test_deadlines_end_a_block_that_runs_too_long_and_only_that():
    deadlines = Deadlines(0.2)
    # a quick block runs to its end
    async with deadlines.within():
        await asyncio.sleep(0.01)
    # a slow one ends with TimeoutError, in about its time
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with deadlines.within():
            await asyncio.sleep(5)
    assert asyncio.get_running_loop().time() - started < 1

    # a block cancelled from outside stays cancelled
    async def blocked() -> None:
        async with deadlines.within():
            await asyncio.sleep(5)

    task = asyncio.create_task(blocked())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
