"""Signing: one signature per email per petition, exact counts, private emails."""

from __future__ import annotations

import asyncio
import base64

import httpx
from asgi_lifespan import LifespanManager

import models
from server import create_app
from tests.conftest import GraphQLClient
from tests.factories import SIGN, create_petition, sign, signer

SIGNATURE_IDS = """
query Ids($id: ID!) {
  petition(id: $id) { signatureCount signatures(first: 100) { edges { node { id } } } }
}
"""

EVERY_PUBLIC_SIGNATURE_FIELD = """
query All($id: ID!) {
  node(id: $id) {
    ... on Petition { signatures { edges { node { id name country comment createdAt } } } }
  }
}
"""

PETITION_COUNT = """
query Count($id: ID!) { petition(id: $id) { signatureCount signatures(first: 100) { totalCount } } }
"""


async def test_signing_returns_the_signature_and_the_new_count(gql):
    petition = await create_petition(gql)

    payload = await sign(gql, petition["id"], 1, country="gb", comment="Yes!")

    assert payload["errors"] == []
    assert payload["signature"]["name"] == "Signer1 Example"
    assert payload["signature"]["country"] == "GB"
    assert payload["signature"]["comment"] == "Yes!"
    assert payload["petition"]["signatureCount"] == 1


async def test_a_second_signature_with_the_same_email_is_refused(gql):
    petition = await create_petition(gql)
    await sign(gql, petition["id"], 1, email="Ada@Example.org")

    again = await sign(gql, petition["id"], 2, email="  ada@example.ORG ")

    assert again["signature"] is None
    assert again["errors"] == [
        {
            "field": "email",
            "message": "This email has already signed this petition.",
            "code": "ALREADY_SIGNED",
        }
    ]
    assert again["petition"]["signatureCount"] == 1


async def test_twenty_simultaneous_signs_with_one_email_make_one_signature(gql):
    petition = await create_petition(gql)

    payloads = await asyncio.gather(
        *(sign(gql, petition["id"], n, email="same@example.org") for n in range(20))
    )

    accepted = [p for p in payloads if not p["errors"]]
    refused = [p for p in payloads if p["errors"]]
    assert len(accepted) == 1
    assert {p["errors"][0]["code"] for p in refused} == {"ALREADY_SIGNED"}
    counts = await gql(PETITION_COUNT, {"id": petition["id"]})
    assert counts["data"]["petition"] == {"signatureCount": 1, "signatures": {"totalCount": 1}}


async def test_emails_that_signed_before_leave_no_gap_in_the_numbers_of_the_rest(gql, settings):
    petition = await create_petition(gql)
    await sign(gql, petition["id"], 1)
    await sign(gql, petition["id"], 2)

    # one batch, most likely: the writer takes every signature waiting at that moment
    payloads = await asyncio.gather(*(sign(gql, petition["id"], n) for n in [1, 3, 2, 4, 5]))

    assert [p["errors"][0]["code"] if p["errors"] else "OK" for p in payloads] == [
        "ALREADY_SIGNED",
        "OK",
        "ALREADY_SIGNED",
        "OK",
        "OK",
    ]
    async with models.open_database(settings.database_url, create_schema=False):
        rows = models.Signature.filter(petition__slug=petition["slug"])
        numbers = sorted(await rows.values_list("number", flat=True))
        differences = await models.count_differences()
    assert numbers == [1, 2, 3, 4, 5]
    assert differences == []


async def test_counts_are_exact_after_many_concurrent_signs(gql):
    petition = await create_petition(gql)

    payloads = await asyncio.gather(*(sign(gql, petition["id"], n % 40) for n in range(80)))

    assert sum(1 for p in payloads if not p["errors"]) == 40
    result = await gql(SIGNATURE_IDS, {"id": petition["id"]})
    data = result["data"]["petition"]
    assert data["signatureCount"] == 40
    assert len(data["signatures"]["edges"]) == 40


async def test_a_hidden_name_reads_anonymous(gql):
    petition = await create_petition(gql)

    payload = await sign(gql, petition["id"], 1, showName=False)

    assert payload["signature"]["name"] == "Anonymous"


async def test_no_response_holds_an_email(gql, http):
    petition = await create_petition(gql)
    await sign(gql, petition["id"], 1, email="secret.person@example.org")
    again = await http.post(
        "/graphql",
        json={
            "query": SIGN,
            "variables": {"input": signer(petition["id"], 1, email="SECRET.person@example.org")},
        },
    )
    listing = await http.post(
        "/graphql",
        json={"query": EVERY_PUBLIC_SIGNATURE_FIELD, "variables": {"id": petition["id"]}},
    )
    for response in (again, listing):
        assert "secret" not in response.text.lower()


PAGE = """
query Page($slug: String!) { petition(slug: $slug) {
  signatureCount signatures(first: 10) { edges { cursor node { name } } } } }
"""


def number_of(cursor: str) -> int:
    """A signature's number, from its cursor ("signature@<number>", base64)."""
    kind, _, number = base64.urlsafe_b64decode(cursor + "==").decode().partition("@")
    assert kind == "signature"
    return int(number)


async def test_reads_give_way_to_signing_and_every_one_is_answered(settings):
    """While signatures stream in, uncached reads wait their turn (two at once): every one is
    still answered, its page listing exactly the newest signers its count counts (never one
    the count beside it lags behind), and each reader's counts never go backwards."""
    manager = LifespanManager(create_app(settings))
    async with manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            gql = GraphQLClient(http)
            writer: models.SignatureWriter = manager._state["writer"]
            petition = await create_petition(gql)
            assert not writer.signing
            seen: list[list[int]] = [[] for _ in range(8)]

            async def read(n: int) -> int:
                variables = {"slug": petition["slug"], "nonce": n}  # never from the cache
                found = (await gql(PAGE, variables))["data"]["petition"]
                count: int = found["signatureCount"]
                numbers = [number_of(edge["cursor"]) for edge in found["signatures"]["edges"]]
                assert numbers == list(range(count, max(count - 10, 0), -1))  # the newest
                return count

            async def sign_one(n: int) -> None:
                assert (await sign(gql, petition["id"], n))["errors"] == []

            async def reader(k: int) -> None:
                for n in range(15):
                    seen[k].append(await read(k * 100 + n))

            await asyncio.gather(*(sign_one(n) for n in range(60)), *map(reader, range(8)))
            final = await read(999)
    assert all(counts == sorted(counts) for counts in seen)
    assert sum(map(len, seen)) == 8 * 15
    assert final == 60
