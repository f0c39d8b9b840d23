"""Signing: one signature per email per petition, exact counts, private emails."""

from __future__ import annotations

import asyncio

import models
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
