"""Subscribers of the same count share one execution (a cohort), and each still gets the
current count at once and every change after."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx

from schema.cohorts import is_hot
from server import GraphQLApp, create_app
from tests.conftest import GraphQLClient, running_server
from tests.factories import create_petition, sign
from tests.wsclient import TRANSPORT_WS, subscription

COUNT = """
subscription Count($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }
"""


def graphql_app(app) -> GraphQLApp:
    return next(route.app for route in app.routes if isinstance(route.app, GraphQLApp))


async def counts_until(subscriber, target):
    seen = []
    async with asyncio.timeout(10):
        while not seen or seen[-1] < target:
            seen.append((await subscriber.next())["signatureCount"]["signatureCount"])
    return seen


async def test_subscribers_of_one_count_share_one_cohort(settings):
    app = create_app(settings)
    graphql = graphql_app(app)
    async with (
        running_server(app) as url,
        httpx.AsyncClient(base_url=url) as http,
        AsyncExitStack() as stack,
    ):
        gql = GraphQLClient(http)
        first, second = await create_petition(gql), await create_petition(gql)
        await sign(gql, first["id"], 1)
        on_first = [
            await stack.enter_async_context(
                subscription(url, TRANSPORT_WS, COUNT, {"id": first["id"]})
            )
            for _ in range(5)
        ]
        on_second = await stack.enter_async_context(
            subscription(url, TRANSPORT_WS, COUNT, {"id": second["id"]})
        )
        initial = [await s.next() for s in on_first]
        assert (await on_second.next())["signatureCount"]["signatureCount"] == 0
        cohorts_while_watching = len(graphql.cohorts)

        await sign(gql, first["id"], 2)
        await sign(gql, first["id"], 3)
        finals = [(await counts_until(s, 3))[-1] for s in on_first]
        late = await stack.enter_async_context(
            subscription(url, TRANSPORT_WS, COUNT, {"id": first["id"]})
        )
        late_first = (await late.next())["signatureCount"]["signatureCount"]

    assert [i["signatureCount"]["signatureCount"] for i in initial] == [1] * 5
    assert cohorts_while_watching == 2
    assert finals == [3] * 5
    assert late_first == 3  # a late joiner gets the current count at once
    assert len(graphql.cohorts) == 0  # every member gone: the cohort is gone


def test_only_single_field_count_subscriptions_are_hot():
    assert is_hot(COUNT, None)
    assert is_hot(COUNT, "Count")
    assert not is_hot(COUNT, "Other")
    assert not is_hot("subscription { signatureAdded(petitionId: 1) { name } }", None)
    assert not is_hot(
        "subscription { signatureCount(petitionId: 1) { signatureCount } "
        "commentAdded(petitionId: 1) { body } }",
        None,
    )
    assert not is_hot("{ petition(slug: 1) { id } }", None)
    assert not is_hot("subscription {", None)
