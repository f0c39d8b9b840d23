"""Plain `/graphql` requests take a lane of their own (serving/lane.py); everything else takes
the full middleware stack. Either way the answers are the same, and CORS, the body limit and
chunked bodies behave as the full stack says."""

from __future__ import annotations

from dataclasses import replace

import httpx
from asgi_lifespan import LifespanManager

from server import create_app
from tests.conftest import GraphQLClient
from tests.factories import create_petition

COUNT = "query ($slug: String!) { petition(slug: $slug) { signatureCount } }"


async def test_plain_and_cross_origin_requests_answer_alike_with_cors_only_for_the_latter(
    settings,
):
    settings = replace(settings, allowed_origins=("https://campaign.example",))
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            petition = await create_petition(GraphQLClient(http))
            body = {"query": COUNT, "variables": {"slug": petition["slug"]}}
            plain = await http.post("/graphql", json=body)
            allowed = await http.post(
                "/graphql", json=body, headers={"Origin": "https://campaign.example"}
            )
            other = await http.post(
                "/graphql", json=body, headers={"Origin": "https://elsewhere.example"}
            )
            preflight = await http.options(
                "/graphql",
                headers={
                    "Origin": "https://campaign.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                },
            )

    expected = {"data": {"petition": {"signatureCount": 0}}}
    assert plain.json() == allowed.json() == other.json() == expected
    assert "access-control-allow-origin" not in plain.headers
    assert allowed.headers["access-control-allow-origin"] == "https://campaign.example"
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://campaign.example"


async def test_a_body_over_the_limit_and_a_chunked_body_take_the_full_stack(settings):
    settings = replace(settings, max_body_bytes=2_000)
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            petition = await create_petition(GraphQLClient(http))
            body = httpx.Request(
                "POST", "http://t", json={"query": COUNT, "variables": {"slug": petition["slug"]}}
            ).content
            too_big = await http.post(
                "/graphql",
                content=body + b" " * 2_000,
                headers={"content-type": "application/json"},
            )

            async def chunks():  # no Content-Length: the body limit counts as it reads
                yield body[:10]
                yield body[10:]

            chunked = await http.post(
                "/graphql", content=chunks(), headers={"content-type": "application/json"}
            )
    assert too_big.status_code == 413
    assert chunked.status_code == 200
    assert chunked.json() == {"data": {"petition": {"signatureCount": 0}}}
