"""Hot public reads are answered from a cache that every change empties in time."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from asgi_lifespan import LifespanManager

from models.migrations import migrate
from server import Settings, create_app
from tests.conftest import (
    ADMIN_TOKEN,
    REDIS_URL,
    GraphQLClient,
    fresh_postgres_database,
    needs_postgres,
)
from tests.factories import comment, create_petition, sign

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

    await comment(gql, petition["id"])
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


async def test_polling_get_revalidates_with_its_etag(gql, http):
    # given a poller holding the count's answer
    petition = await create_petition(gql)
    params = {"query": COUNT, "variables": f'{{"slug": "{petition["slug"]}"}}'}
    first = await http.get("/graphql", params=params)
    etag = first.headers["etag"]

    # when it asks again, before and after a signature
    unchanged = await http.get("/graphql", params=params, headers={"If-None-Match": etag})
    await sign(gql, petition["id"], 1)
    changed = await http.get("/graphql", params=params, headers={"If-None-Match": etag})

    # then nothing is sent while nothing changed, and the new count once it has
    assert (first.status_code, unchanged.status_code, changed.status_code) == (200, 304, 200)
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    assert changed.headers["etag"] != etag
    assert changed.json()["data"]["petition"]["signatureCount"] == 1
    posted = await http.post(
        "/graphql",
        json={"query": COUNT, "variables": {"slug": petition["slug"]}},
        headers={"If-None-Match": etag},
    )
    assert posted.status_code == 200
    assert "etag" not in posted.headers


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


async def distinct_read(http, slug, nonce):
    """A read the result cache cannot answer (an undeclared variable makes each one new)."""
    response = await http.post(
        "/graphql", json={"query": COUNT, "variables": {"slug": slug, "nonce": nonce}}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-cache"] == "miss"
    return response.json()["data"]["petition"]


async def test_reads_the_result_cache_cannot_answer_see_every_write_at_once(gql, http):
    petition = await create_petition(gql, title="Before")
    nonces = itertools.count()
    for n in range(1, 6):
        assert (await distinct_read(http, petition["slug"], next(nonces)))[
            "signatureCount"
        ] == n - 1
        await sign(gql, petition["id"], n)
    await gql(UPDATE_TITLE, {"input": {"id": petition["id"], "title": "After"}}, admin=True)
    await comment(gql, petition["id"])

    seen = await distinct_read(http, petition["slug"], next(nonces))

    assert seen == {"signatureCount": 5, "commentCount": 1, "status": "OPEN", "title": "After"}


@needs_postgres
async def test_a_process_reads_at_once_the_signatures_another_process_took():
    async with fresh_postgres_database() as url:
        await migrate(url)
        settings = Settings(
            database_url=url,
            broadcast_url=REDIS_URL or "",
            admin_token=ADMIN_TOKEN,
            channel_prefix=f"test-{uuid.uuid4().hex[:12]}",
        )
        async with (
            LifespanManager(create_app(settings)) as one,
            LifespanManager(create_app(settings)) as other,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=one.app), base_url="http://a") as a,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=other.app), base_url="http://b"
            ) as b,
        ):
            petition = await create_petition(GraphQLClient(a))
            nonces = itertools.count()
            assert (await distinct_read(b, petition["slug"], next(nonces)))["signatureCount"] == 0
            for n in range(1, 21):
                await sign(GraphQLClient(a), petition["id"], n)
            seen = []
            async with asyncio.timeout(5):  # the event crosses Redis
                while not seen or seen[-1] < 20:
                    seen.append(
                        (await distinct_read(b, petition["slug"], next(nonces)))["signatureCount"]
                    )
            assert seen == sorted(seen)
            assert seen[-1] == 20
