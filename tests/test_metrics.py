"""`GET /metrics`: what an operator watches, behind a bearer token, per process and across
`--workers`. The figures of one test process accumulate over its apps (prometheus-client keeps
one registry a process), so each test compares a figure before and after what it does."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from server import Settings, create_app
from tests.conftest import (
    REDIS_URL,
    GraphQLClient,
    fresh_postgres_database,
    needs_postgres,
    running_server,
)
from tests.factories import comment, create_petition, sign
from tests.processes import run_command, server_process, service_env
from tests.wsclient import TRANSPORT_WS, subscription

TOKEN = "metrics-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
COUNT = "subscription($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }"
READ = "query Read($id: ID!) { node(id: $id) { ... on Petition { signatureCount } } }"


def figures(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    seen: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return seen.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await http.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return figures(response.text)


@pytest.fixture
async def metered(settings: Settings) -> Settings:
    return replace(settings, metrics_token=TOKEN)


async def test_metrics_are_404_unset_and_401_without_the_bearer_token(settings):
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/metrics", headers=BEARER)).status_code == 404
    async with LifespanManager(create_app(replace(settings, metrics_token=TOKEN))) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = {"Authorization": "Bearer not-it"}
            assert (await http.get("/metrics", headers=wrong)).status_code == 401
            assert (await http.get("/metrics", headers={"Authorization": TOKEN})).status_code == 401
            response = await http.get("/metrics", headers=BEARER)
            assert response.status_code == 200
            assert "petitions_refused_total" in response.text


async def test_signatures_comments_requests_and_refusals_are_counted(metered):
    async with LifespanManager(create_app(replace(metered, sign_limit="3/60s"))) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            gql = GraphQLClient(http)
            petition = await create_petition(gql)
            before = await scrape(http)

            for n in range(3):
                assert (await sign(gql, petition["id"], n))["errors"] == []
            assert (await sign(gql, petition["id"], 0))["errors"][0]["code"] == "RATE_LIMITED"
            await comment(gql, petition["id"])
            variables = {"id": petition["id"]}
            for _ in range(2):  # the first computed, the second from the result cache
                assert (await gql(READ, variables))["data"]["node"]["signatureCount"] == 3
            aliased = "{ " + " ".join(f"a{n}: __typename" for n in range(40)) + " }"
            refused = await http.post("/graphql", json={"query": aliased})
            assert refused.json()["data"] is None
            too_big = await http.post("/graphql", content=b"x" * 70_000)
            assert too_big.status_code == 413

            after = await scrape(http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("petitions_signatures_total", status="valid") == 3
    assert grew("petitions_comments_total", status="published") == 1
    assert grew("petitions_refused_total", reason="rate") == 1
    assert grew("petitions_refused_total", reason="limit") == 1
    assert grew("petitions_refused_total", reason="body") == 1
    signing = {"operation": "signPetition", "path": "compiled"}
    assert grew("petitions_graphql_requests_total", **signing) == 4
    assert grew("petitions_graphql_request_seconds_count", **signing) == 4
    assert grew("petitions_graphql_request_seconds_bucket", le="+Inf", **signing) == 4
    assert grew("petitions_graphql_requests_total", operation="node", path="cached") == 1
    assert grew("petitions_graphql_requests_total", operation="addComment", path="strawberry") == 1
    read = grew("petitions_graphql_requests_total", operation="node", path="strawberry")
    read += grew("petitions_graphql_requests_total", operation="node", path="compiled")
    assert read == 1
    batches = grew("petitions_writer_batch_size_count")
    assert 1 <= batches <= 4  # the refused one may or may not have reached the writer
    assert grew("petitions_writer_batch_size_sum") >= 3
    assert value(after, "petitions_broadcast_up") == 1


async def test_open_websockets_and_subscriptions_are_gauged(metered):
    async with (
        running_server(create_app(metered)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        petition = await create_petition(GraphQLClient(http))
        before = await scrape(http)
        async with AsyncExitStack() as stack:
            for _ in range(3):
                subscriber = await stack.enter_async_context(
                    subscription(url, TRANSPORT_WS, COUNT, {"id": petition["id"]})
                )
                await subscriber.next()
            during = await scrape(http)
        async with asyncio.timeout(10):
            while True:  # the server lets go of the sockets a moment after they close
                after = await scrape(http)
                if value(after, "petitions_websockets_open") == value(
                    before, "petitions_websockets_open"
                ):
                    break
                await asyncio.sleep(0.05)

    field = {"field": "signatureCount"}
    opened = value(during, "petitions_subscriptions_open", **field)
    assert opened - value(before, "petitions_subscriptions_open", **field) == 3
    assert (
        value(during, "petitions_websockets_open") - value(before, "petitions_websockets_open") == 3
    )
    assert value(after, "petitions_subscriptions_open", **field) == value(
        before, "petitions_subscriptions_open", **field
    )


@needs_postgres
async def test_every_worker_s_figures_are_served_together():
    """`--workers 3` on PostgreSQL + Redis: signatures and sockets spread over the workers,
    and every scrape, whichever worker answers it, sums them all."""
    async with fresh_postgres_database() as database_url:
        assert REDIS_URL is not None
        env = {
            **service_env(database_url, REDIS_URL, f"test-{uuid.uuid4().hex[:12]}"),
            "PETITIONS_METRICS_TOKEN": TOKEN,
        }
        code, output = await run_command("migrate", env=env)
        assert code == 0, output
        async with server_process(env, "--workers", "3") as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                petition = await create_petition(GraphQLClient(http))

            async def sign_alone(n: int) -> dict[str, Any]:  # a connection of its own
                async with httpx.AsyncClient(base_url=server.url) as http:
                    return await sign(GraphQLClient(http), petition["id"], n)

            signed = await asyncio.gather(*(sign_alone(n) for n in range(30)))
            assert all(payload["errors"] == [] for payload in signed)
            async with AsyncExitStack() as stack:
                for _ in range(12):
                    subscriber = await stack.enter_async_context(
                        subscription(server.url, TRANSPORT_WS, COUNT, {"id": petition["id"]})
                    )
                    await subscriber.next()
                scrapes = []
                for _ in range(6):  # each on a new connection: any worker may answer
                    async with httpx.AsyncClient(base_url=server.url) as http:
                        scrapes.append(await scrape(http))
            await server.stop()

    for seen in scrapes:
        assert value(seen, "petitions_signatures_total", status="valid") == 30
        assert value(seen, "petitions_websockets_open") == 12
        assert value(seen, "petitions_subscriptions_open", field="signatureCount") == 12
        assert value(seen, "petitions_broadcast_up") == 1
