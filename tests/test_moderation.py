"""Comment moderation: the spam filter's first judgement, pre-moderation, moderators' decisions,
readers' reports and the roles that may decide, checked through the public API, over real
websockets in both subprotocols (and in a cohort), and through the result cache."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

import models
from models.migrations import migrate
from schema.ids import global_id, parse_global_id
from server import Settings, create_app
from subscriptions import CommentAdded, CommentRemoved, Hub
from tests.conftest import (
    ADMIN_TOKEN,
    REDIS_URL,
    GraphQLClient,
    fresh_postgres_database,
    needs_postgres,
    running_server,
)
from tests.factories import create_petition
from tests.wsclient import (
    LEGACY_WS,
    TIMEOUT,
    TRANSPORT_WS,
    Subscriber,
    SubscriptionEnded,
    subscription,
)

MODERATOR_TOKEN = "test-moderator-token"

DEMO = json.loads((Path(__file__).parents[1] / "models" / "demo_petition.json").read_text())
DEMO_TEXT = {k: DEMO["petition"][k] for k in ("title", "target", "goal", "body", "letter")}
SEED_COMMENTS = {c["author_name"]: c["body"] for c in DEMO["comments"]}

ADD_COMMENT = """
mutation Comment($input: AddCommentInput!) {
  addComment(input: $input) {
    status
    comment { id authorName body status }
    petition { id commentCount }
    errors { field code }
  }
}
"""

MODERATE = """
mutation Moderate($input: ModerateCommentInput!) {
  moderateComment(input: $input) {
    comment { id body status }
    errors { field code }
  }
}
"""

REPORT = """
mutation Report($input: ReportCommentInput!) {
  reportComment(input: $input) { errors { field code } }
}
"""

QUEUE = """
query Queue($status: CommentStatus!, $petitionId: ID, $first: Int, $after: String) {
  moderationQueue(status: $status, petitionId: $petitionId, first: $first, after: $after) {
    totalCount
    edges { cursor node { id body status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

HELD_QUEUE = """
query Held($petitionId: ID, $first: Int, $after: String, $last: Int, $before: String) {
  moderationQueue(
    petitionId: $petitionId, first: $first, after: $after, last: $last, before: $before
  ) {
    totalCount
    edges { node { id body status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

PUBLIC = """
query Public($slug: String!) {
  petition(slug: $slug) {
    commentCount
    comments(first: 100) { totalCount edges { node { body } } }
  }
}
"""

NODE = """
query Node($id: ID!) { node(id: $id) { id ... on Comment { status } } }
"""

CREATE = """
mutation Create($input: CreatePetitionInput!) {
  createPetition(input: $input) { petition { id } errors { code } }
}
"""

UPDATE = """
mutation Update($input: UpdatePetitionInput!) {
  updatePetition(input: $input) { petition { title } errors { code } }
}
"""

PETITION_BY_ID = """
query Petition($id: ID!) { petition(id: $id) { title status } }
"""

COMMENT_ADDED = """
subscription Added($id: ID!) { commentAdded(petitionId: $id) { id authorName body status } }
"""

COMMENT_REMOVED = """
subscription Removed($id: ID!) { commentRemoved(petitionId: $id) { id petitionId } }
"""

# The same subscriptions with a fragment: not hot, so Strawberry runs each one on its own.
COMMENT_ADDED_ALONE = """
subscription Added($id: ID!) { commentAdded(petitionId: $id) { ...Shown } }
fragment Shown on Comment { id authorName body status }
"""

COMMENT_REMOVED_ALONE = """
subscription Removed($id: ID!) { commentRemoved(petitionId: $id) { ...Gone } }
fragment Gone on CommentRemoved { id petitionId }
"""

GENUINE = "I signed because the library matters to my kids and our whole neighbourhood."


# Helpers


class Client:
    """GraphQL over one HTTP client, with the bearer token given (or none)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, admin: bool = False
    ) -> dict[str, Any]:
        token = ADMIN_TOKEN if admin else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Any]:
    """The app for these settings, its lifespan running."""
    async with LifespanManager(create_app(settings)) as manager:
        yield manager.app


@asynccontextmanager
async def client_at(app: Any, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client whose socket peer is `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def add(gql: Any, petition_id: str, body: str = GENUINE, **overrides: Any) -> dict[str, Any]:
    """`addComment`; returns its payload, checked for errors."""
    result = await gql(
        ADD_COMMENT,
        {
            "input": {
                "petitionId": petition_id,
                "authorName": "Grace Hopper",
                "email": "grace@example.org",
                "body": body,
                **overrides,
            }
        },
    )
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["addComment"]
    assert payload["errors"] == [], payload
    return payload


async def moderate(gql: Any, comment_id: str, status: str) -> dict[str, Any]:
    """`moderateComment` as admin; returns its payload, checked for errors."""
    result = await gql(MODERATE, {"input": {"id": comment_id, "status": status}}, admin=True)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["moderateComment"]
    assert payload["errors"] == [], payload
    assert payload["comment"]["status"] == status
    return payload


async def report(gql: Any, comment_id: str, reason: str | None = None) -> list[dict[str, Any]]:
    result = await gql(REPORT, {"input": {"id": comment_id, "reason": reason}})
    assert "errors" not in result, result
    errors: list[dict[str, Any]] = result["data"]["reportComment"]["errors"]
    return errors


async def queue(gql: Any, status: str, petition_id: str | None = None) -> list[str]:
    """The bodies in the moderation queue of one status, as an admin reads it."""
    result = await gql(QUEUE, {"status": status, "petitionId": petition_id}, admin=True)
    assert "errors" not in result, result
    connection = result["data"]["moderationQueue"]
    assert connection["totalCount"] == len(connection["edges"])
    assert {e["node"]["status"] for e in connection["edges"]} <= {status}
    return [e["node"]["body"] for e in connection["edges"]]


async def public_view(http: httpx.AsyncClient, slug: str) -> list[str]:
    """The published comments' bodies as a public reader sees them, read four times (GET and
    POST, each twice, so that the second of each is the result cache's answer); every read
    agrees, and `commentCount` and `totalCount` are the number listed."""
    variables = {"slug": slug}
    answers = []
    for method in ("GET", "GET", "POST", "POST"):
        if method == "GET":
            params = {"query": PUBLIC, "variables": json.dumps(variables)}
            response = await http.get("/graphql", params=params)
        else:
            response = await http.post("/graphql", json={"query": PUBLIC, "variables": variables})
        assert response.status_code == 200, response.text
        answers.append((response.headers.get("x-cache"), response.json()))
    assert [cache for cache, _ in answers][1::2] == ["hit", "hit"], answers
    first = answers[0][1]
    assert all(body == first for _, body in answers), answers
    petition = first["data"]["petition"]
    bodies = [e["node"]["body"] for e in petition["comments"]["edges"]]
    assert petition["commentCount"] == petition["comments"]["totalCount"] == len(bodies), petition
    return bodies


async def count_differences(settings: Settings) -> list[models.CountDifference]:
    """What `petitions check-counts` would find."""
    async with models.open_database(settings.database_url, create_schema=False):
        return await models.count_differences()


def pk_of(global_id_: str) -> int:
    parsed = parse_global_id(global_id_)
    assert parsed is not None
    return parsed[1]


# The spam filter's first judgement


async def test_a_genuine_comment_is_published_and_the_seed_spam_is_held_unseen(
    settings, server_url, server_gql
):
    # given a petition with the demo petition's text, and a live subscriber
    petition = await create_petition(server_gql, **DEMO_TEXT)
    async with (
        httpx.AsyncClient(base_url=server_url) as http,
        subscription(server_url, LEGACY_WS, COMMENT_ADDED, {"id": petition["id"]}) as added,
    ):
        probe = await until_added(added, server_gql, petition["id"])

        # when
        spam = await add(server_gql, petition["id"], SEED_COMMENTS["Oliver out"], authorName="O")
        clark = await add(server_gql, petition["id"], SEED_COMMENTS["Clark Kent"])

        # then the spam: its author is told HELD; not listed, counted or pushed
        assert spam["status"] == "HELD"
        assert spam["comment"]["status"] == "HELD"
        assert spam["petition"]["commentCount"] == 1  # the probe only
        # the genuine comment: published, counted, pushed next (nothing came before it)
        assert clark["status"] == "PUBLISHED"
        assert clark["comment"]["status"] == "PUBLISHED"
        assert clark["petition"]["commentCount"] == 2
        pushed = (await added.next())["commentAdded"]
        assert pushed == clark["comment"]
        with pytest.raises(TimeoutError):
            await added.next(within=0.3)
        assert await public_view(http, petition["slug"]) == [probe, SEED_COMMENTS["Clark Kent"]]

    # the spam is stored SPAM: moderators find it there, not among the held ones
    assert await queue(server_gql, "SPAM", petition["id"]) == [SEED_COMMENTS["Oliver out"]]
    assert await queue(server_gql, "HELD", petition["id"]) == []
    assert (await server_gql(NODE, {"id": spam["comment"]["id"]}))["data"]["node"] is None
    assert await count_differences(settings) == []


async def until_added(subscriber: Subscriber, gql: Any, petition_id: str) -> str:
    """Publish probe comments until one reaches `subscriber`; returns the body of the last."""
    async with asyncio.timeout(TIMEOUT):
        for n in range(1, 100):
            posted = await add(gql, petition_id, f"Done, and shared with my family ({n}).")
            assert posted["status"] == "PUBLISHED", posted
            try:
                while (await subscriber.next(within=0.3))["commentAdded"]["body"] != posted[
                    "comment"
                ]["body"]:
                    pass
            except TimeoutError:
                continue
            body: str = posted["comment"]["body"]
            return body
    raise AssertionError("never live")


async def test_the_demo_petition_keeps_its_spam_comment_apart(settings, app, gql, http):
    # given
    async with models.open_database(settings.database_url):
        demo = await models.load_demo()

    # when
    bodies = await public_view(http, demo.slug)

    # then
    assert bodies == [SEED_COMMENTS["Clark Kent"]]
    assert SEED_COMMENTS["Oliver out"] in await queue(gql, "SPAM")
    assert await count_differences(settings) == []


# Pre-moderation


async def test_pre_moderation_holds_every_comment_for_the_queue_oldest_first(settings):
    async with (
        serving(replace(settings, comment_moderation="pre")) as app,
        client_at(app, "10.0.0.1") as http,
    ):
        gql = Client(http)
        # given
        one = await create_petition(gql)
        other = await create_petition(gql)

        # when
        told = []
        for n in range(5):
            petition = (one, other)[n % 2]
            posted = await add(gql, petition["id"], f"{GENUINE} Number {n}.")
            told.append(posted)

        # then every author is told HELD; nothing is public
        assert [p["status"] for p in told] == ["HELD"] * 5
        assert [p["petition"]["commentCount"] for p in told] == [0] * 5
        assert await public_view(http, one["slug"]) == []
        assert await public_view(http, other["slug"]) == []
        # the queue (HELD by default), oldest first, over all petitions or one, with paging
        everything = await gql(HELD_QUEUE, {}, admin=True)
        connection = everything["data"]["moderationQueue"]
        assert [e["node"]["id"] for e in connection["edges"]] == [p["comment"]["id"] for p in told]
        assert connection["totalCount"] == 5
        assert {e["node"]["status"] for e in connection["edges"]} == {"HELD"}
        of_one = await gql(HELD_QUEUE, {"petitionId": one["id"]}, admin=True)
        assert [e["node"]["body"] for e in of_one["data"]["moderationQueue"]["edges"]] == [
            f"{GENUINE} Number {n}." for n in (0, 2, 4)
        ]
        pages: list[list[str]] = []
        after = None
        while True:
            page = (await gql(HELD_QUEUE, {"first": 2, "after": after}, admin=True))["data"][
                "moderationQueue"
            ]
            assert page["totalCount"] == 5
            pages.append([e["node"]["id"] for e in page["edges"]])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert pages == [
            [p["comment"]["id"] for p in told[0:2]],
            [p["comment"]["id"] for p in told[2:4]],
            [told[4]["comment"]["id"]],
        ]
        last = (await gql(HELD_QUEUE, {"last": 2}, admin=True))["data"]["moderationQueue"]
        assert [e["node"]["id"] for e in last["edges"]] == [p["comment"]["id"] for p in told[3:]]
        assert last["pageInfo"]["hasPreviousPage"] is True

        # when a moderator publishes one, it leaves the queue and is public
        await moderate(gql, told[2]["comment"]["id"], "PUBLISHED")
        assert await public_view(http, one["slug"]) == [f"{GENUINE} Number 2."]
        assert len(await queue(gql, "HELD")) == 4
    assert await count_differences(settings) == []


async def test_pre_moderation_still_sets_spam_apart(settings):
    async with (
        serving(replace(settings, comment_moderation="pre")) as app,
        client_at(app, "10.0.0.1") as http,
    ):
        gql = Client(http)
        petition = await create_petition(gql, **DEMO_TEXT)

        spam = await add(gql, petition["id"], SEED_COMMENTS["Oliver out"])

        assert spam["status"] == "HELD"
        assert await queue(gql, "SPAM") == [SEED_COMMENTS["Oliver out"]]
        assert await queue(gql, "HELD") == []


async def test_moderation_off_publishes_even_the_seed_spam(settings):
    async with (
        serving(replace(settings, comment_moderation="off")) as app,
        client_at(app, "10.0.0.1") as http,
    ):
        gql = Client(http)
        petition = await create_petition(gql, **DEMO_TEXT)

        spam = await add(gql, petition["id"], SEED_COMMENTS["Oliver out"])

        assert spam["status"] == "PUBLISHED"
        assert await public_view(http, petition["slug"]) == [SEED_COMMENTS["Oliver out"]]


# moderateComment, with live subscribers


class Watchers:
    """commentAdded and commentRemoved subscribers of one petition: each in the legacy
    protocol, in graphql-transport-ws alone (a document that is not hot), and two in one
    graphql-transport-ws cohort."""

    def __init__(self, added: list[Subscriber], removed: list[Subscriber]) -> None:
        self.added = added
        self.removed = removed

    @property
    def all(self) -> list[Subscriber]:
        return [*self.added, *self.removed]


KINDS = [
    (LEGACY_WS, "commentAdded", COMMENT_ADDED),
    (TRANSPORT_WS, "commentAdded", COMMENT_ADDED_ALONE),
    (TRANSPORT_WS, "commentAdded", COMMENT_ADDED),
    (TRANSPORT_WS, "commentAdded", COMMENT_ADDED),
    (LEGACY_WS, "commentRemoved", COMMENT_REMOVED),
    (TRANSPORT_WS, "commentRemoved", COMMENT_REMOVED_ALONE),
    (TRANSPORT_WS, "commentRemoved", COMMENT_REMOVED),
    (TRANSPORT_WS, "commentRemoved", COMMENT_REMOVED),
]


def field_of(subscriber: Subscriber, watchers: Watchers) -> str:
    return "commentAdded" if subscriber in watchers.added else "commentRemoved"


@asynccontextmanager
async def watching(url: str, gql: Any, petition_id: str) -> AsyncIterator[Watchers]:
    """Subscribers of every kind, all live (each has received a probe comment's publication or
    removal, and nothing after it is pending)."""
    async with AsyncExitStack() as stack:
        added: list[Subscriber] = []
        removed: list[Subscriber] = []
        for protocol, field, query in KINDS:
            subscriber = await stack.enter_async_context(
                subscription(url, protocol, query, {"id": petition_id})
            )
            (added if field == "commentAdded" else removed).append(subscriber)
        watchers = Watchers(added, removed)
        await until_live(watchers, gql, petition_id)
        yield watchers


async def saw(subscriber: Subscriber, field: str, comment_id: str, within: float) -> bool:
    """Read `subscriber` until it delivers `comment_id`; False if it does not within `within`."""
    try:
        async with asyncio.timeout(within):
            while (await subscriber.next())[field]["id"] != comment_id:
                pass
    except TimeoutError:
        return False
    return True


async def until_live(watchers: Watchers, gql: Any, petition_id: str) -> None:
    """Publish and take down probe comments until every subscriber received one; then read
    each up to the last probe."""
    waiting = watchers.all
    async with asyncio.timeout(TIMEOUT * 2):
        for n in range(1, 100):
            probe = (await add(gql, petition_id, f"Done, and shared with my family ({n})."))[
                "comment"
            ]["id"]
            await moderate(gql, probe, "PUBLISHED")
            await moderate(gql, probe, "HIDDEN")
            seen = await asyncio.gather(
                *(saw(s, field_of(s, watchers), probe, 0.3) for s in waiting)
            )
            live_before = [s for s in watchers.all if s not in waiting]
            waiting = [s for s, ok in zip(waiting, seen, strict=True) if not ok]
            for subscriber in live_before:  # it had this probe too
                assert await saw(subscriber, field_of(subscriber, watchers), probe, TIMEOUT)
            if not waiting:
                return
    raise AssertionError("never live")


async def test_each_moderation_transition_lists_counts_and_pushes_exactly(settings):
    settings = replace(settings, comment_moderation="pre")
    async with (
        running_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        slug, petition_id = petition["slug"], petition["id"]
        async with watching(url, gql, petition_id) as watchers:
            assert await public_view(http, slug) == []
            ids = {}
            for name in ("one", "two", "three"):
                posted = await add(gql, petition_id, f"{GENUINE} Comment {name}.")
                assert posted["status"] == "HELD"
                ids[name] = posted["comment"]["id"]
            one, two, three = ids["one"], ids["two"], ids["three"]
            body = {i: f"{GENUINE} Comment {name}." for name, i in ids.items()}
            added: list[str] = []  # what commentAdded subscribers must receive, in order
            removed: list[str] = []  # and commentRemoved subscribers

            async def step(comment_id: str, status: str, public: list[str]) -> None:
                await moderate(gql, comment_id, status)
                assert await public_view(http, slug) == [body[i] for i in public]
                assert await count_differences(settings) == []

            # when published out of id order: two, then one
            await step(two, "PUBLISHED", [two])
            added.append(two)
            await step(one, "PUBLISHED", [one, two])
            added.append(one)
            # publishing again changes nothing
            await step(two, "PUBLISHED", [one, two])
            # each way down: HIDDEN, SPAM, HELD
            await step(two, "HIDDEN", [one])
            removed.append(two)
            await step(one, "SPAM", [])
            removed.append(one)
            await step(one, "PUBLISHED", [one])
            added.append(one)
            await step(one, "HELD", [])
            removed.append(one)
            await step(two, "PUBLISHED", [two])
            added.append(two)
            # between statuses that are not public: nothing moves
            await step(three, "SPAM", [two])
            await step(three, "HIDDEN", [two])
            await step(one, "SPAM", [two])

            # then each subscriber received exactly its own events, in order
            expected = {
                "commentAdded": [
                    {"id": i, "authorName": "Grace Hopper", "body": body[i], "status": "PUBLISHED"}
                    for i in added
                ],
                "commentRemoved": [{"id": i, "petitionId": petition_id} for i in removed],
            }

            async def received(subscriber: Subscriber) -> list[dict[str, Any]]:
                field = field_of(subscriber, watchers)
                events = [(await subscriber.next())[field] for _ in expected[field]]
                with pytest.raises(TimeoutError):
                    await subscriber.next(within=0.3)
                return events

            seen = await asyncio.gather(*(received(s) for s in watchers.all))
            for subscriber, events in zip(watchers.all, seen, strict=True):
                assert events == expected[field_of(subscriber, watchers)], subscriber.protocol

        assert await queue(gql, "SPAM", petition_id) == [body[one]]
        assert (await queue(gql, "HIDDEN", petition_id))[-1:] == [body[three]]


async def test_simultaneous_decisions_move_the_count_and_push_each_change_once(settings):
    settings = replace(settings, comment_moderation="pre")
    async with (
        running_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        async with watching(url, gql, petition["id"]) as watchers:
            held = [
                (await add(gql, petition["id"], f"{GENUINE} Comment {n}."))["comment"]["id"]
                for n in range(5)
            ]

            # when each is published three times at once, in no particular order
            await asyncio.gather(
                *(moderate(gql, i, "PUBLISHED") for i in reversed(held) for _ in range(3))
            )

            # then each is counted and pushed once
            assert len(await public_view(http, petition["slug"])) == 5
            for subscriber in watchers.added:
                pushed = [(await subscriber.next())["commentAdded"]["id"] for _ in held]
                assert sorted(pushed) == sorted(held), subscriber.protocol

            # when each is taken down twice at once, in two ways
            await asyncio.gather(
                *(moderate(gql, i, status) for i in held for status in ("HIDDEN", "SPAM"))
            )

            # then each leaves once
            assert await public_view(http, petition["slug"]) == []
            for subscriber in watchers.removed:
                pushed = [(await subscriber.next())["commentRemoved"]["id"] for _ in held]
                assert sorted(pushed) == sorted(held), subscriber.protocol
            for subscriber in watchers.all:
                with pytest.raises(TimeoutError):
                    await subscriber.next(within=0.2)
        assert await count_differences(settings) == []


@needs_postgres
async def test_decisions_taken_in_two_processes_reach_every_subscriber_once():
    async with fresh_postgres_database() as database_url:
        await migrate(database_url)
        settings = Settings(
            database_url=database_url,
            broadcast_url=REDIS_URL or "",
            admin_token=ADMIN_TOKEN,
            channel_prefix=f"test-{uuid.uuid4().hex[:12]}",
            comment_moderation="pre",
        )
        async with (
            running_server(create_app(settings)) as one_url,
            running_server(create_app(settings)) as other_url,
            httpx.AsyncClient(base_url=one_url) as one_http,
            httpx.AsyncClient(base_url=other_url) as other_http,
        ):
            one, other = GraphQLClient(one_http), GraphQLClient(other_http)
            petition = await create_petition(one)
            async with watching(other_url, one, petition["id"]) as watchers:
                held = [
                    (await add(one, petition["id"], f"{GENUINE} Comment {n}."))["comment"]["id"]
                    for n in range(12)
                ]

                # when both processes publish them at once, then take them down at once
                await asyncio.gather(
                    *(moderate((one, other)[n % 2], i, "PUBLISHED") for n, i in enumerate(held))
                )
                await asyncio.gather(
                    *(moderate((other, one)[n % 2], i, "HIDDEN") for n, i in enumerate(held))
                )

                # then every subscriber of the other process had each change once
                async def received(subscriber: Subscriber) -> list[str]:
                    field = field_of(subscriber, watchers)
                    ids = [(await subscriber.next())[field]["id"] for _ in held]
                    with pytest.raises(TimeoutError):
                        await subscriber.next(within=0.3)
                    return ids

                for ids in await asyncio.gather(*(received(s) for s in watchers.all)):
                    assert sorted(ids) == sorted(held)
            async with asyncio.timeout(5):  # the last events cross Redis
                while await public_view(other_http, petition["slug"]) != []:
                    await asyncio.sleep(0.05)
        assert await count_differences(settings) == []


class HoldBack:
    """Wraps `Hub.publish`: when armed, the next comment event is held back and published just
    after the one that follows it, as events can cross between processes."""

    def __init__(self, publish: Any) -> None:
        self.publish = publish
        self.armed = False
        self.held: tuple[Any, tuple[Any, ...]] | None = None

    async def __call__(self, hub: Any, *events: Any) -> None:
        commented = any(isinstance(e, CommentAdded | CommentRemoved) for e in events)
        if commented and self.armed:
            self.armed = False
            self.held = (hub, events)
            return
        await self.publish(hub, *events)
        if commented and self.held is not None:
            held, self.held = self.held, None
            await self.publish(held[0], *held[1])


async def test_events_arriving_out_of_order_still_deliver_each_change_once_in_order(
    settings, monkeypatch
):
    hold_back = HoldBack(Hub.publish)

    async def publish(hub: Any, *events: Any) -> None:
        await hold_back(hub, *events)

    monkeypatch.setattr(Hub, "publish", publish)
    settings = replace(settings, comment_moderation="pre")
    async with (
        running_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        async with watching(url, gql, petition["id"]) as watchers:
            one, two, three = [
                (await add(gql, petition["id"], f"{GENUINE} {n}."))["comment"]["id"]
                for n in range(3)
            ]

            # when the event of one's publication comes after two's
            hold_back.armed = True
            await moderate(gql, one, "PUBLISHED")
            await moderate(gql, two, "PUBLISHED")
            # and two's removal after one's
            hold_back.armed = True
            await moderate(gql, two, "SPAM")
            await moderate(gql, one, "HIDDEN")
            # and, in order, three's publication and removal
            await moderate(gql, three, "PUBLISHED")
            await moderate(gql, three, "HELD")

            # then every subscriber had each change once, in the order they were made
            expected = {"commentAdded": [one, two, three], "commentRemoved": [two, one, three]}

            async def received(subscriber: Subscriber) -> list[str]:
                field = field_of(subscriber, watchers)
                ids = [(await subscriber.next())[field]["id"] for _ in expected[field]]
                with pytest.raises(TimeoutError):
                    await subscriber.next(within=0.3)
                return ids

            seen = await asyncio.gather(*(received(s) for s in watchers.all))
            for subscriber, ids in zip(watchers.all, seen, strict=True):
                assert ids == expected[field_of(subscriber, watchers)], subscriber.protocol
        assert (hold_back.armed, hold_back.held) == (False, None)
        assert await public_view(http, petition["slug"]) == []


async def test_a_take_down_and_republication_arriving_out_of_order_push_both(settings, monkeypatch):
    hold_back = HoldBack(Hub.publish)

    async def publish(hub: Any, *events: Any) -> None:
        await hold_back(hub, *events)

    monkeypatch.setattr(Hub, "publish", publish)
    async with (
        running_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        async with watching(url, gql, petition["id"]) as watchers:
            posted = (await add(gql, petition["id"]))["comment"]["id"]

            # when its take-down's event comes after its republication's
            hold_back.armed = True
            await moderate(gql, posted, "HIDDEN")
            await moderate(gql, posted, "PUBLISHED")

            # then commentRemoved subscribers are told it left, as commentAdded ones that it
            # came back
            for subscriber in watchers.added:
                assert (await subscriber.next())["commentAdded"]["id"] == posted
                assert (await subscriber.next())["commentAdded"]["id"] == posted
            for subscriber in watchers.removed:
                assert (await subscriber.next(within=1.0))["commentRemoved"]["id"] == posted


async def test_a_moderator_answer_shows_the_comment_as_it_now_stands(settings, app, gql, http):
    # given
    petition = await create_petition(gql)
    posted = await add(gql, petition["id"])

    # when
    hidden = await moderate(gql, posted["comment"]["id"], "HIDDEN")

    # then
    assert hidden["comment"] == {
        "id": posted["comment"]["id"],
        "body": GENUINE,
        "status": "HIDDEN",
    }
    assert (await gql(NODE, {"id": posted["comment"]["id"]}))["data"]["node"] is None
    assert await public_view(http, petition["slug"]) == []
    assert await queue(gql, "HIDDEN") == [GENUINE]


async def test_moderating_a_missing_comment_or_another_kind_of_id_is_refused(settings, app, gql):
    petition = await create_petition(gql)
    posted = await add(gql, petition["id"])
    comment_pk = pk_of(posted["comment"]["id"])
    cases = {
        global_id("Comment", comment_pk + 1000): "NOT_FOUND",
        global_id("Comment", 10**18 - 1): "NOT_FOUND",
        global_id("Petition", pk_of(petition["id"])): "NOT_FOUND",
        "not an id!": "INVALID_INPUT",
    }
    for comment_id, code in cases.items():
        result = await gql(MODERATE, {"input": {"id": comment_id, "status": "HIDDEN"}}, admin=True)
        payload = result["data"]["moderateComment"]
        assert payload["comment"] is None
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [("id", code)], comment_id


# The result cache and kept petition rows


async def test_cached_reads_follow_every_publication_and_take_down_at_once(
    settings, app, gql, http
):
    # given a petition read often enough that its answer and its row are kept
    petition = await create_petition(gql, **DEMO_TEXT)
    slug = petition["slug"]
    assert await public_view(http, slug) == []

    # when: a comment published, spam held, a take-down, a publication, a hiding by reports
    first = await add(gql, petition["id"], "Signed. Police should not be using this on protesters.")
    assert await public_view(http, slug) == [first["comment"]["body"]]

    await add(gql, petition["id"], SEED_COMMENTS["Oliver out"])
    assert await public_view(http, slug) == [first["comment"]["body"]]

    second = await add(gql, petition["id"], "Done, and shared with my family.")
    bodies = [first["comment"]["body"], second["comment"]["body"]]
    assert await public_view(http, slug) == bodies

    await moderate(gql, first["comment"]["id"], "HELD")
    assert await public_view(http, slug) == bodies[1:]

    await moderate(gql, first["comment"]["id"], "PUBLISHED")
    assert await public_view(http, slug) == bodies

    await moderate(gql, second["comment"]["id"], "SPAM")
    assert await public_view(http, slug) == bodies[:1]

    await moderate(gql, second["comment"]["id"], "PUBLISHED")
    assert await public_view(http, slug) == bodies

    # and a cached `node` read of one comment follows it too
    second_id = second["comment"]["id"]
    assert await node_status(http, second_id) == "PUBLISHED"
    await moderate(gql, second_id, "HIDDEN")
    assert await node_status(http, second_id) is None
    await moderate(gql, second_id, "PUBLISHED")
    assert await node_status(http, second_id) == "PUBLISHED"

    # then the figures agree with the rows
    assert await count_differences(settings) == []


async def node_status(http: httpx.AsyncClient, comment_id: str) -> str | None:
    """A public `node(id:)` read of a comment, twice (the second may be the cache's answer):
    its status, or None when it is not public."""
    answers = []
    for _ in range(2):
        response = await http.post(
            "/graphql", json={"query": NODE, "variables": {"id": comment_id}}
        )
        answers.append(response.json()["data"]["node"])
    assert answers[0] == answers[1], answers
    return None if answers[0] is None else str(answers[0]["status"])


# Roles


async def test_a_moderator_may_moderate_and_nothing_else_an_admin_may_do(settings):
    async with (
        serving(
            replace(settings, moderator_token=MODERATOR_TOKEN, comment_moderation="pre")
        ) as app,
        client_at(app, "10.0.0.1") as http,
    ):
        anyone = Client(http)
        moderator = Client(http, MODERATOR_TOKEN)
        admin = Client(http, ADMIN_TOKEN)
        petition = await create_petition(anyone)
        draft = await create_petition(anyone, status="DRAFT")
        held = [(await add(anyone, petition["id"], f"{GENUINE} {n}"))["comment"] for n in range(3)]

        # a moderator reads the queue and decides
        result = await moderator(HELD_QUEUE)
        assert "errors" not in result, result
        assert [e["node"]["id"] for e in result["data"]["moderationQueue"]["edges"]] == [
            c["id"] for c in held
        ]
        result = await moderator(MODERATE, {"input": {"id": held[0]["id"], "status": "PUBLISHED"}})
        assert result["data"]["moderateComment"]["errors"] == []
        assert result["data"]["moderateComment"]["comment"]["status"] == "PUBLISHED"

        # but may not create or change petitions, nor see drafts
        result = await moderator(
            CREATE, {"input": {"title": "Mine", "target": "T", "goal": "G", "body": "B"}}
        )
        assert result["data"]["createPetition"] == {
            "petition": None,
            "errors": [{"code": "UNAUTHORIZED"}],
        }
        result = await moderator(UPDATE, {"input": {"id": petition["id"], "title": "Taken over"}})
        assert result["data"]["updatePetition"] == {
            "petition": None,
            "errors": [{"code": "UNAUTHORIZED"}],
        }
        result = await moderator(PETITION_BY_ID, {"id": draft["id"]})
        assert result["data"]["petition"] is None
        result = await moderator(PETITION_BY_ID, {"id": petition["id"]})
        assert result["data"]["petition"]["title"] != "Taken over"

        # no token, or a wrong one: refused, and nothing changes
        for stranger in (anyone, Client(http, "wrong-token"), Client(http, MODERATOR_TOKEN + "x")):
            result = await stranger(
                MODERATE, {"input": {"id": held[1]["id"], "status": "PUBLISHED"}}
            )
            assert result["data"]["moderateComment"] == {
                "comment": None,
                "errors": [{"field": None, "code": "UNAUTHORIZED"}],
            }
            result = await stranger(HELD_QUEUE)
            assert result["data"] is None
            assert result["errors"], result
            result = await stranger(QUEUE, {"status": "SPAM"})
            assert result["data"] is None

        # an admin may do both
        result = await admin(MODERATE, {"input": {"id": held[1]["id"], "status": "PUBLISHED"}})
        assert result["data"]["moderateComment"]["errors"] == []
        result = await admin(HELD_QUEUE)
        assert [e["node"]["id"] for e in result["data"]["moderationQueue"]["edges"]] == [
            held[2]["id"]
        ]
        assert await public_view(http, petition["slug"]) == [f"{GENUINE} 0", f"{GENUINE} 1"]


async def test_without_a_moderator_token_no_bearer_moderates(settings):
    async with serving(settings) as app, client_at(app, "10.0.0.1") as http:
        petition = await create_petition(Client(http))
        posted = await add(Client(http), petition["id"])
        for token in ("", " ", "None", "null"):
            headers = {"Authorization": f"Bearer {token}"}
            response = await http.post(
                "/graphql",
                json={
                    "query": MODERATE,
                    "variables": {"input": {"id": posted["comment"]["id"], "status": "HIDDEN"}},
                },
                headers=headers,
            )
            payload = response.json()["data"]["moderateComment"]
            assert payload["errors"] == [{"field": None, "code": "UNAUTHORIZED"}], token
        assert await public_view(http, petition["slug"]) == [GENUINE]


# reportComment


async def test_reports_from_enough_addresses_hide_a_comment_until_a_moderator_decides(settings):
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serving(replace(settings, reports_to_hide=3)))
        readers = [
            Client(await stack.enter_async_context(client_at(app, f"10.0.0.{n}")))
            for n in range(1, 8)
        ]
        gql = readers[0]
        http = readers[0].http
        petition = await create_petition(gql)
        other = (await add(gql, petition["id"], "Done, and shared with my family."))["comment"]
        posted = (await add(gql, petition["id"]))["comment"]
        bodies = ["Done, and shared with my family.", GENUINE]

        # when one address reports many times, and a second once
        for _ in range(4):
            assert await report(readers[0], posted["id"], "Rude") == []
        assert await report(readers[1], posted["id"]) == []

        # then it stays published: two addresses are not three
        assert await public_view(http, petition["slug"]) == bodies

        # when a third address reports it
        assert await report(readers[2], posted["id"], "Off topic") == []

        # then it is hidden: unlisted, uncounted, for moderators to decide
        assert await public_view(http, petition["slug"]) == bodies[:1]
        assert await queue(gql, "HIDDEN") == [GENUINE]
        assert await count_differences(settings) == []
        # a hidden comment cannot be reported
        assert await report(readers[3], posted["id"]) == [{"field": "id", "code": "NOT_FOUND"}]

        # when a moderator publishes it again, more reports do not hide it
        await moderate(gql, posted["id"], "PUBLISHED")
        for reader in readers:
            assert await report(reader, posted["id"]) == []
        assert await public_view(http, petition["slug"]) == bodies

        # and the other comment is hidden by its own three reports, not by those of the first
        assert await report(readers[4], other["id"]) == []
        assert await report(readers[5], other["id"]) == []
        assert await public_view(http, petition["slug"]) == bodies
        assert await report(readers[6], other["id"]) == []
        assert await public_view(http, petition["slug"]) == bodies[1:]
        assert await count_differences(settings) == []


async def test_a_moderator_taking_a_comment_down_and_up_again_keeps_it_safe_from_reports(
    settings,
):
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serving(replace(settings, reports_to_hide=2)))
        readers = [
            Client(await stack.enter_async_context(client_at(app, f"10.0.1.{n}")))
            for n in range(1, 5)
        ]
        gql, http = readers[0], readers[0].http
        petition = await create_petition(gql)
        posted = (await add(gql, petition["id"]))["comment"]

        # given reports hid it, a moderator held it, then published it
        assert await report(readers[0], posted["id"]) == []
        assert await report(readers[1], posted["id"]) == []
        assert await public_view(http, petition["slug"]) == []
        await moderate(gql, posted["id"], "HELD")
        await moderate(gql, posted["id"], "PUBLISHED")

        # when new addresses report it
        assert await report(readers[2], posted["id"]) == []
        assert await report(readers[3], posted["id"]) == []

        # then it stays published
        assert await public_view(http, petition["slug"]) == [GENUINE]


async def test_reporting_what_is_not_a_published_comment_is_not_found(settings):
    async with (
        serving(replace(settings, comment_moderation="pre")) as app,
        client_at(app, "10.0.2.1") as http,
    ):
        gql = Client(http)
        petition = await create_petition(gql)
        draft = await create_petition(gql)  # a draft once commented on
        held = (await add(gql, petition["id"]))["comment"]
        published = (await add(gql, petition["id"], "Done, and shared with my family."))["comment"]
        await moderate(gql, published["id"], "PUBLISHED")
        spam = (await add(gql, petition["id"], "Another one."))["comment"]
        await moderate(gql, spam["id"], "SPAM")
        on_draft = (await add(gql, draft["id"], "On a draft."))["comment"]
        await moderate(gql, on_draft["id"], "PUBLISHED")
        result = await gql(UPDATE, {"input": {"id": draft["id"], "status": "DRAFT"}}, admin=True)
        assert result["data"]["updatePetition"]["errors"] == []
        cases = {
            "held": (held["id"], "NOT_FOUND"),
            "spam": (spam["id"], "NOT_FOUND"),
            "unknown": (global_id("Comment", pk_of(published["id"]) + 1000), "NOT_FOUND"),
            "too large": (global_id("Comment", 10**18 - 1), "NOT_FOUND"),
            "zero": (global_id("Comment", 0), "NOT_FOUND"),
            "on a draft": (on_draft["id"], "NOT_FOUND"),
            "a petition": (global_id("Petition", pk_of(petition["id"])), "NOT_FOUND"),
            "a signature": (global_id("Signature", pk_of(published["id"])), "NOT_FOUND"),
            "undecodable": ("not an id!", "INVALID_INPUT"),
        }
        for case, (comment_id, code) in cases.items():
            assert await report(gql, comment_id) == [{"field": "id", "code": code}], case
        assert await report(gql, published["id"], "Fine") == []


async def test_simultaneous_reports_hide_a_comment_once(settings):
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serving(replace(settings, reports_to_hide=3)))
        readers = [
            Client(await stack.enter_async_context(client_at(app, f"10.0.4.{n}")))
            for n in range(1, 9)
        ]
        gql, http = readers[0], readers[0].http
        petition = await create_petition(gql)
        kept = (await add(gql, petition["id"], "Done, and shared with my family."))["comment"]
        posted = (await add(gql, petition["id"]))["comment"]

        # when eight addresses report it at once, twice each
        answers = await asyncio.gather(*(report(r, posted["id"]) for r in readers * 2))

        # then it was hidden once: the reports after that find no published comment
        assert {tuple(e["code"] for e in errors) for errors in answers} <= {(), ("NOT_FOUND",)}
        assert sum(errors == [] for errors in answers) >= 3
        assert await public_view(http, petition["slug"]) == [kept["body"]]
        assert await count_differences(settings) == []


async def test_a_report_names_the_socket_peer_unless_a_trusted_proxy_names_another(settings):
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serving(replace(settings, reports_to_hide=2)))
        http = await stack.enter_async_context(client_at(app, "10.0.5.1"))
        gql = Client(http)
        petition = await create_petition(gql)
        posted = (await add(gql, petition["id"]))["comment"]

        # when one peer claims other addresses in X-Forwarded-For, with no trusted proxy
        for n in range(2, 6):
            response = await http.post(
                "/graphql",
                json={"query": REPORT, "variables": {"input": {"id": posted["id"]}}},
                headers={"X-Forwarded-For": f"10.0.5.{n}"},
            )
            assert response.json()["data"]["reportComment"]["errors"] == []

        # then that is one address's report
        assert await public_view(http, petition["slug"]) == [GENUINE]


async def test_a_report_with_too_long_a_reason_is_refused(settings, app, gql, http):
    petition = await create_petition(gql)
    posted = (await add(gql, petition["id"]))["comment"]

    errors = await report(gql, posted["id"], "x" * 10_000)

    assert [(e["field"], e["code"]) for e in errors] == [("reason", "INVALID_INPUT")]


async def test_a_report_hiding_a_comment_pushes_its_removal_on_both_protocols(settings):
    # the server sees every client at 127.0.0.1: as a trusted proxy, it names them
    settings = replace(settings, reports_to_hide=2, trusted_proxies=("127.0.0.1",))
    async with (
        running_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        async with watching(url, gql, petition["id"]) as watchers:
            posted = (await add(gql, petition["id"]))["comment"]
            for n in (1, 1, 2):  # the second from 10.0.3.1 changes nothing
                response = await http.post(
                    "/graphql",
                    json={"query": REPORT, "variables": {"input": {"id": posted["id"]}}},
                    headers={"X-Forwarded-For": f"10.0.3.{n}"},
                )
                assert response.json()["data"]["reportComment"]["errors"] == []

            for subscriber in watchers.added:
                assert (await subscriber.next())["commentAdded"]["id"] == posted["id"]
            for subscriber in watchers.removed:
                assert (await subscriber.next())["commentRemoved"] == {
                    "id": posted["id"],
                    "petitionId": petition["id"],
                }
            for subscriber in watchers.all:
                with pytest.raises(TimeoutError):
                    await subscriber.next(within=0.2)
        assert await public_view(http, petition["slug"]) == []


async def test_comment_removed_of_a_draft_or_unknown_petition_ends_with_an_error(
    server_url, server_gql
):
    draft = await create_petition(server_gql, status="DRAFT")
    unknown = global_id("Petition", pk_of(draft["id"]) + 1000)
    for protocol in (LEGACY_WS, TRANSPORT_WS):
        for petition_id in (draft["id"], unknown, "not an id!"):
            async with subscription(
                server_url, protocol, COMMENT_REMOVED, {"id": petition_id}
            ) as subscriber:
                with pytest.raises(SubscriptionEnded) as ended:
                    await subscriber.next()
            assert ended.value.errors, ended.value.frame


# Comments on petitions that take none


async def test_a_comment_on_a_draft_or_unknown_petition_is_not_found(settings, app, gql):
    draft = await create_petition(gql, status="DRAFT")
    unknown = global_id("Petition", pk_of(draft["id"]) + 1000)
    for petition_id in (draft["id"], unknown):
        result = await gql(
            ADD_COMMENT,
            {
                "input": {
                    "petitionId": petition_id,
                    "authorName": "Grace Hopper",
                    "email": "grace@example.org",
                    "body": GENUINE,
                }
            },
        )
        payload = result["data"]["addComment"]
        assert payload["status"] is None
        assert payload["comment"] is None
        assert payload["errors"] == [{"field": "petitionId", "code": "NOT_FOUND"}]
    assert await queue(gql, "HELD") == []
    assert await queue(gql, "SPAM") == []
