"""Subscribers of the same hot subscription share one execution (a cohort): each still gets the
current count at once and every change after, or every name once, in order, from the moment it
joined; a member that cannot keep up is cut off alone.

Every behaviour is checked under our uvicorn protocol, whose scope extension lets a wave write
frames straight to the sockets ("extension"), and under plain uvicorn ("fallback"), where each
member's task sends its own frames.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from schema import make_schema
from schema.cohorts import hot_field
from server import create_app
from serving import GoingAwayWebSocketProtocol, GraphQLApp
from tests.conftest import GraphQLClient, running_server
from tests.factories import create_petition, sign
from tests.wsclient import TIMEOUT, TRANSPORT_WS, subscription, ws_url

COUNT = """
subscription Count($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }
"""

NAMES = """
subscription Names($id: ID!) { signatureAdded(petitionId: $id) { name comment } }
"""

FELL_BEHIND = "the client fell too far behind the events; subscribe again"


@pytest.fixture(
    params=[
        pytest.param(GoingAwayWebSocketProtocol, id="extension"),
        pytest.param("websockets-sansio", id="fallback"),
    ]
)
def ws(request: pytest.FixtureRequest) -> Any:
    """uvicorn's websocket protocol: ours, offering the send extension, or uvicorn's own."""
    return request.param


def graphql_app(app) -> GraphQLApp:
    return next(route.app for route in app.routes if isinstance(route.app, GraphQLApp))


@dataclass
class Served:
    """An app under a real uvicorn, a GraphQL client for it, and a stack for subscribers."""

    url: str
    gql: GraphQLClient
    stack: AsyncExitStack

    async def subscribe(self, document: str, petition: dict[str, Any]) -> Any:
        return await self.stack.enter_async_context(
            subscription(self.url, TRANSPORT_WS, document, {"id": petition["id"]})
        )


@asynccontextmanager
async def served(app: Any, ws: Any) -> AsyncIterator[Served]:
    async with (
        running_server(app, ws) as url,
        httpx.AsyncClient(base_url=url) as http,
        AsyncExitStack() as stack,
    ):
        yield Served(url, GraphQLClient(http), stack)


def members(graphql: GraphQLApp) -> list[int]:
    return sorted(len(cohort.members) for cohort in graphql.cohorts)


async def until_members(graphql: GraphQLApp, expected: list[int]) -> None:
    """Wait until the server has put the subscribers into cohorts of these sizes."""
    async with asyncio.timeout(TIMEOUT):
        while members(graphql) != sorted(expected):
            await asyncio.sleep(0.01)


def sends_directly(graphql: GraphQLApp) -> set[bool]:
    """For each member: does a wave write its frames itself (the extension)?"""
    return {
        member.send_texts is not None for cohort in graphql.cohorts for member in cohort.members
    }


async def counts_until(subscriber, target):
    seen = []
    async with asyncio.timeout(10):
        while not seen or seen[-1] < target:
            seen.append((await subscriber.next())["signatureCount"]["signatureCount"])
    return seen


async def names(subscriber, count: int) -> list[str]:
    async with asyncio.timeout(TIMEOUT):
        return [(await subscriber.next())["signatureAdded"]["name"] for _ in range(count)]


async def names_until(subscriber, last: str) -> list[str]:
    seen: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while not seen or seen[-1] != last:
            seen.append((await subscriber.next())["signatureAdded"]["name"])
    return seen


async def go_live(gql: GraphQLClient, petition_id: str, subscribers: list[Any]) -> None:
    """Sign probes until the cohort's execution listens (a subscribe is not acknowledged), and
    read each member up to the probe that came through."""
    async with asyncio.timeout(TIMEOUT):
        for n in range(1, 1000):
            payload = await sign(gql, petition_id, 90_000 + n, firstName=f"Probe{n}")
            probe = payload["signature"]["name"]
            try:
                await names_until_within(subscribers[0], probe, 0.3)
                break
            except TimeoutError:
                continue
        for subscriber in subscribers[1:]:
            await names_until(subscriber, probe)


async def names_until_within(subscriber, last: str, within: float) -> None:
    while (await subscriber.next(within=within))["signatureAdded"]["name"] != last:
        pass


async def test_subscribers_of_one_count_share_one_cohort(settings, ws):
    app = create_app(settings)
    graphql = graphql_app(app)
    async with served(app, ws) as server:
        gql = server.gql
        first, second = await create_petition(gql), await create_petition(gql)
        await sign(gql, first["id"], 1)
        on_first = [await server.subscribe(COUNT, first) for _ in range(5)]
        on_second = await server.subscribe(COUNT, second)
        initial = [await s.next() for s in on_first]
        assert (await on_second.next())["signatureCount"]["signatureCount"] == 0
        cohorts_while_watching = len(graphql.cohorts)
        direct = sends_directly(graphql)

        await sign(gql, first["id"], 2)
        await sign(gql, first["id"], 3)
        finals = [(await counts_until(s, 3))[-1] for s in on_first]
        late = await server.subscribe(COUNT, first)
        late_first = (await late.next())["signatureCount"]["signatureCount"]

    assert [i["signatureCount"]["signatureCount"] for i in initial] == [1] * 5
    assert cohorts_while_watching == 2
    assert direct == {ws is GoingAwayWebSocketProtocol}
    assert finals == [3] * 5
    assert late_first == 3  # a late joiner gets the current count at once
    assert len(graphql.cohorts) == 0  # every member gone: the cohort is gone


async def test_name_cohort_members_each_get_every_name_once_in_order_from_when_they_joined(
    settings, ws
):
    # given: three subscribers of one petition's names, two of another's
    app = create_app(settings)
    graphql = graphql_app(app)
    async with served(app, ws) as server:
        gql = server.gql
        first, second = await create_petition(gql), await create_petition(gql)
        on_first = [await server.subscribe(NAMES, first) for _ in range(3)]
        on_second = [await server.subscribe(NAMES, second) for _ in range(2)]
        await until_members(graphql, [3, 2])
        direct = sends_directly(graphql)
        await go_live(gql, first["id"], on_first)
        await go_live(gql, second["id"], on_second)

        # when: names on both petitions, interleaved, then ten at once
        in_turn, on_second_petition = [], []
        for n in range(12):
            in_turn.append((await sign(gql, first["id"], n))["signature"]["name"])
            if n % 3 == 0:
                payload = await sign(gql, second["id"], n)
                on_second_petition.append(payload["signature"]["name"])
        together = await asyncio.gather(*(sign(gql, first["id"], n) for n in range(100, 110)))
        assert all(p["errors"] == [] for p in together)
        at_once = [p["signature"]["name"] for p in together]

        # then
        received_first = [await names(s, len(in_turn) + len(at_once)) for s in on_first]
        received_second = [await names(s, len(on_second_petition)) for s in on_second]

        # when: a fourth subscriber joins the first petition's cohort
        late = await server.subscribe(NAMES, first)
        await until_members(graphql, [4, 2])
        after = [(await sign(gql, first["id"], n))["signature"]["name"] for n in range(200, 205)]

        # then: it gets the names signed after it joined, and the others get them too
        late_received = await names(late, len(after))
        others_received = [await names(s, len(after)) for s in on_first]
        for subscriber in [*on_first, *on_second, late]:
            with pytest.raises(TimeoutError):
                await subscriber.next(within=0.3)  # and nothing more

    assert direct == {ws is GoingAwayWebSocketProtocol}
    # every member of a cohort got the very same names, once each, in the order signed (the
    # simultaneous ones in their commit order, the same for every member)
    assert received_first[0][: len(in_turn)] == in_turn
    assert sorted(received_first[0][len(in_turn) :]) == sorted(at_once)
    assert received_first == [received_first[0]] * 3
    assert received_second == [on_second_petition] * 2
    assert late_received == after
    assert others_received == [after] * 3
    assert len(graphql.cohorts) == 0


class RawSubscriber:
    """A websocket client on a bare socket with a tiny receive buffer, which reads only when
    told to: when it stops, its TCP buffers fill and the server's writes pile up."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()
        self.messages: deque[dict[str, Any]] = deque()

    async def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        await self.loop.sock_sendall(self.sock, b"".join(self.protocol.data_to_send()))

    async def subscribe(self, query: str, variables: dict[str, Any]) -> None:
        payload = {"query": query, "variables": variables}
        await self.send({"id": "1", "type": "subscribe", "payload": payload})

    async def receive(self) -> dict[str, Any]:
        """The next graphql-transport-ws message."""
        while True:
            for event in self.protocol.events_received():
                if getattr(event, "opcode", None) is Opcode.TEXT:
                    self.messages.append(json.loads(event.data))
            if self.messages:
                message: dict[str, Any] = self.messages.popleft()
                return message
            data = await self.loop.sock_recv(self.sock, 65536)
            assert data, "the server closed the connection"
            self.protocol.receive_data(data)

    async def handshake(self) -> None:
        self.protocol.send_request(self.protocol.connect())
        await self.loop.sock_sendall(self.sock, b"".join(self.protocol.data_to_send()))
        while not any(isinstance(event, Response) for event in self.protocol.events_received()):
            self.protocol.receive_data(await self.loop.sock_recv(self.sock, 65536))
        await self.send({"type": "connection_init"})
        assert (await self.receive())["type"] == "connection_ack"


@asynccontextmanager
async def raw_subscriber(url: str) -> AsyncIterator[RawSubscriber]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        host, port = url.removeprefix("http://").split(":")
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        protocol = ClientProtocol(parse_uri(ws_url(url)), subprotocols=[Subprotocol(TRANSPORT_WS)])
        subscriber = RawSubscriber(sock, protocol)
        async with asyncio.timeout(TIMEOUT):
            await subscriber.handshake()
        yield subscriber
    finally:
        sock.close()


async def test_a_member_that_stops_reading_is_cut_off_alone_and_may_subscribe_again(settings, ws):
    # given: a names cohort holding at most 20 results for a slow member, with one member that
    # reads and one that subscribes, then stops reading
    app = create_app(replace(settings, subscriber_buffer=20))
    graphql = graphql_app(app)
    async with (
        running_server(app, ws) as url,
        httpx.AsyncClient(base_url=url) as http,
        raw_subscriber(url) as slow,
    ):
        gql = GraphQLClient(http)
        petition = await create_petition(gql)
        variables = {"id": petition["id"]}
        async with subscription(url, TRANSPORT_WS, NAMES, variables) as reader:
            await until_members(graphql, [1])
            await go_live(gql, petition["id"], [reader])
            await slow.subscribe(NAMES, variables)
            await until_members(graphql, [2])

            # when: names with long comments pour in (2,000 two-byte characters each)
            signed: list[str] = []
            acked: list[float] = []
            read: list[str] = []
            arrived: list[float] = []

            async def read_all() -> None:
                while True:
                    read.append((await reader.next())["signatureAdded"]["name"])
                    arrived.append(time.monotonic())

            reading = asyncio.create_task(read_all())
            cut_at = None
            try:
                for n in range(500):
                    payload = await sign(gql, petition["id"], n, comment="é" * 2000)
                    assert payload["errors"] == [], payload
                    signed.append(payload["signature"]["name"])
                    acked.append(time.monotonic())
                    if cut_at is None and members(graphql) == [1]:
                        cut_at = n
                    if cut_at is not None and n >= cut_at + 10:
                        break  # ten more show that the cohort goes on without it
                async with asyncio.timeout(TIMEOUT):
                    while len(read) < len(signed):
                        await asyncio.wait([reading], timeout=0.01)
                        if reading.done():
                            reading.result()  # the reader's failure, as it was
            finally:
                reading.cancel()
            held = [cohort.held for cohort in graphql.cohorts]

            # then: the slow member, once it reads, finds the names it was sent, in order,
            # then the error; and it may subscribe again on the same connection
            slow_names: list[str] = []
            async with asyncio.timeout(TIMEOUT):
                while (message := await slow.receive())["type"] == "next":
                    slow_names.append(message["payload"]["data"]["signatureAdded"]["name"])
            await slow.subscribe(NAMES, variables)
            await until_members(graphql, [2])
            again = (await sign(gql, petition["id"], 1000))["signature"]["name"]
            async with asyncio.timeout(TIMEOUT):
                resumed = await slow.receive()

    assert cut_at is not None, f"the slow member was never cut off ({len(signed)} names)"
    assert message == {"id": "1", "type": "error", "payload": [{"message": FELL_BEHIND}]}
    assert 0 < len(slow_names) < len(signed)
    assert slow_names == signed[: len(slow_names)]  # in order, none skipped before the cut
    assert read == signed  # the reader got every name, once, in order
    delays = [max(0.0, at - ack) for at, ack in zip(arrived, acked, strict=True)]
    assert max(delays) < 2.0, max(delays)  # promptly, whatever the slow member did
    # nothing kept for the member cut off: less than its cap (30 results had it stayed)
    assert held[0] < 20, held
    assert resumed["type"] == "next"
    assert resumed["payload"]["data"]["signatureAdded"]["name"] == again


def hot(query: str, operation_name: str | None) -> str | None:
    return hot_field(make_schema().documents.judge(query), operation_name)


def test_only_single_field_subscriptions_to_a_hot_field_are_hot():
    assert hot(COUNT, None) == "signatureCount"
    assert hot(COUNT, "Count") == "signatureCount"
    assert hot(COUNT, "Other") is None
    assert hot(NAMES, None) == "signatureAdded"
    assert hot("subscription { commentAdded(petitionId: 1) { body } }", None) == ("commentAdded")
    assert (
        hot(
            "subscription { signatureCount(petitionId: 1) { signatureCount } "
            "commentAdded(petitionId: 1) { body } }",
            None,
        )
        is None
    )
    assert hot("subscription { ... on Subscription { signatureAdded { name } } }", None) is None
    assert hot("{ petition(slug: 1) { id } }", None) is None
    assert hot("subscription {", None) is None
    aliases = " ".join(f"a{n}: signatureCount" for n in range(31))
    over_the_limits = f"subscription {{ signatureCount(petitionId: 1) {{ {aliases} }} }}"
    assert hot(over_the_limits, None) is None  # Strawberry refuses it, from the same verdict


def test_a_count_frame_is_the_bytes_websockets_would_write():
    """The waves write text frames themselves (serving/protocol.py): the same bytes as
    websockets' own serialisation, for every length form of RFC 6455."""
    from websockets.frames import Frame, Opcode

    from serving.protocol import _text_frame

    for length in (0, 1, 125, 126, 65_535, 65_536, 70_000):
        text = b"x" * length
        assert _text_frame(text) == Frame(Opcode.TEXT, text).serialize(mask=False), length
