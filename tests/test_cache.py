"""Hot public reads are answered from a cache that every change empties in time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.conftest import ADMIN_TOKEN
from tests.factories import ADD_COMMENT, create_petition, sign

COUNT = """
query Count($slug: String!) { petition(slug: $slug) { signatureCount commentCount status title } }
"""

UPDATE_TITLE = """
mutation Rename($input: UpdatePetitionInput!) {
  updatePetition(input: $input) { errors { code } }
}
"""


async def read(http, slug, method="POST"):
    if method == "GET":
        response = await http.get(
            "/graphql", params={"query": COUNT, "variables": f'{{"slug": "{slug}"}}'}
        )
    else:
        response = await http.post("/graphql", json={"query": COUNT, "variables": {"slug": slug}})
    assert response.status_code == 200, response.text
    return response, response.json()["data"]["petition"]


async def test_a_reader_sees_every_write_at_once_though_reads_are_cached(gql, http):
    petition = await create_petition(gql)
    for n in range(1, 6):
        caching = []
        for method in ("POST", "GET", "POST", "GET"):
            response, seen = await read(http, petition["slug"], method)
            assert seen["signatureCount"] == n - 1
            caching.append(response.headers["x-cache"])
        assert caching == ["miss", "miss", "hit", "hit"]
        await sign(gql, petition["id"], n)

    await gql(
        ADD_COMMENT,
        {
            "input": {
                "petitionId": petition["id"],
                "authorName": "Ada",
                "email": "ada@example.org",
                "body": "Yes",
            }
        },
    )
    _, seen = await read(http, petition["slug"])
    assert seen["signatureCount"] == 5
    assert seen["commentCount"] == 1


async def test_an_admin_change_reaches_cached_readers(gql, http):
    petition = await create_petition(gql, title="Before")
    await read(http, petition["slug"])
    await read(http, petition["slug"])

    result = await gql(
        UPDATE_TITLE, {"input": {"id": petition["id"], "title": "After"}}, admin=True
    )

    assert result["data"]["updatePetition"]["errors"] == []
    _, seen = await read(http, petition["slug"])
    assert seen["title"] == "After"


async def test_a_cached_petition_closes_on_time(gql, http):
    closes_at = datetime.now(UTC) + timedelta(seconds=1.5)
    petition = await create_petition(gql, closesAt=closes_at.isoformat())
    _, before = await read(http, petition["slug"])
    _, again = await read(http, petition["slug"])

    await asyncio.sleep(max(0.0, (closes_at - datetime.now(UTC)).total_seconds()) + 0.1)
    _, after = await read(http, petition["slug"])

    assert before["status"] == again["status"] == "OPEN"
    assert after["status"] == "CLOSED"


async def test_get_answers_say_honestly_how_long_they_may_be_kept(gql, http):
    petition = await create_petition(gql)

    public, _ = await read(http, petition["slug"], "GET")
    hit, _ = await read(http, petition["slug"], "GET")
    missing = await http.get("/graphql", params={"query": '{ petition(slug: "nope") { id } }'})
    admin = await http.get(
        "/graphql",
        params={"query": COUNT, "variables": f'{{"slug": "{petition["slug"]}"}}'},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )

    assert public.headers["cache-control"] == hit.headers["cache-control"] == "public, max-age=1"
    assert (public.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert missing.headers["cache-control"] == "no-store"
    assert admin.headers["cache-control"] == "no-store"


async def test_drafts_never_leak_through_the_cache(gql, http):
    petition = await create_petition(gql, status="DRAFT")
    admin_view = await http.post(
        "/graphql",
        json={"query": COUNT, "variables": {"slug": petition["slug"]}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )

    _, public_view = await read(http, petition["slug"])

    assert admin_view.json()["data"]["petition"]["status"] == "DRAFT"
    assert public_view is None
