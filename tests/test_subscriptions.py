"""Subscriptions over a real server and a real websocket client, in both subprotocols.

`graphql-transport-ws` (the current protocol) and the legacy `graphql-ws` are both served on
`/graphql`; every behaviour below is checked in both, on every backend.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from server import create_app
from tests.conftest import running_server
from tests.factories import comment, create_petition, sign
from tests.wsclient import (
    PROTOCOLS,
    TIMEOUT,
    TRANSPORT_WS,
    Subscriber,
    SubscriptionEnded,
    subscription,
    ws_url,
)

LIVE_DEADLINE = 1.0  # the contract: the latest count arrives within one second of the write

SIGNATURE_COUNT = """
subscription Count($id: ID!) {
  signatureCount(petitionId: $id) { petitionId signatureCount signatureGoal }
}
"""

SIGNATURE_ADDED = """
subscription Added($id: ID!) {
  signatureAdded(petitionId: $id) { id name country comment createdAt }
}
"""

COMMENT_ADDED = """
subscription Commented($id: ID!) {
  commentAdded(petitionId: $id) { id authorName body createdAt }
}
"""

LEAK_MARKERS = (
    "Traceback",
    'File "',
    "SELECT",
    "INSERT",
    "sqlite",
    "asyncpg",
    "tortoise",
    "Exception",
    "Error:",
)


async def until_live(
    subscriber: Subscriber, key: str, poke: Callable[[int], Awaitable[dict[str, Any]]]
) -> None:
    """Make writes with `poke(n)` (returning the object its event will carry) until one comes
    through: from then on the subscription is listening and misses nothing.

    `signatureAdded` and `commentAdded` send nothing on subscribe, and neither protocol
    acknowledges a subscription, so this is the only way for a client to know."""
    async with asyncio.timeout(TIMEOUT):
        for n in range(1, 1000):
            expected = await poke(n)
            try:
                while True:
                    data = await subscriber.next(within=0.3)
                    if data[key] == expected:
                        return
            except TimeoutError:
                continue


def petition_pk(petition_id: str) -> int:
    text = base64.urlsafe_b64decode(petition_id + "=" * (-len(petition_id) % 4)).decode()
    kind, _, pk = text.partition(":")
    assert kind == "Petition", text
    return int(pk)


def encode_id(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def probe_signer(petition_id: str, server_gql: Any) -> Callable[[int], Awaitable[dict[str, Any]]]:
    async def poke(n: int) -> dict[str, Any]:
        payload = await sign(
            server_gql,
            petition_id,
            10_000 + n,
            firstName=f"Probe{n}",
            email=f"probe{n}@example.org",
        )
        assert payload["errors"] == [], payload
        signature: dict[str, Any] = payload["signature"]
        return signature

    return poke


# signatureCount


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_signature_count_sends_the_current_count_at_once_then_every_change(
    server_url, server_gql, protocol
):
    # given
    petition = await create_petition(server_gql, signatureGoal=500)
    for n in range(3):
        await sign(server_gql, petition["id"], n)

    # when
    async with subscription(
        server_url, protocol, SIGNATURE_COUNT, {"id": petition["id"]}
    ) as subscriber:
        first = await subscriber.next()

        # then
        assert first == {
            "signatureCount": {
                "petitionId": petition["id"],
                "signatureCount": 3,
                "signatureGoal": 500,
            }
        }

        # when
        payloads = await asyncio.gather(*(sign(server_gql, petition["id"], n) for n in range(3, 8)))
        assert all(p["errors"] == [] for p in payloads)

        # then
        counts: list[int] = []
        async with asyncio.timeout(LIVE_DEADLINE):
            while not counts or counts[-1] < 8:
                update = (await subscriber.next())["signatureCount"]
                assert update["petitionId"] == petition["id"]
                assert update["signatureGoal"] == 500
                counts.append(update["signatureCount"])
    assert counts == sorted(set(counts)), counts  # strictly increasing
    assert counts[-1] == 8
    assert all(3 < count <= 8 for count in counts), counts


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_two_subscribers_on_one_petition_both_reach_the_final_count(
    server_url, server_gql, protocol
):
    # given
    petition = await create_petition(server_gql)
    variables = {"id": petition["id"]}
    async with (
        subscription(server_url, protocol, SIGNATURE_COUNT, variables) as one,
        subscription(server_url, protocol, SIGNATURE_COUNT, variables) as two,
    ):
        assert (await one.next())["signatureCount"]["signatureCount"] == 0
        assert (await two.next())["signatureCount"]["signatureCount"] == 0

        # when
        await asyncio.gather(*(sign(server_gql, petition["id"], n) for n in range(12)))

        # then
        async def final_count(subscriber: Subscriber) -> list[int]:
            counts: list[int] = []
            while not counts or counts[-1] < 12:
                counts.append((await subscriber.next())["signatureCount"]["signatureCount"])
            return counts

        async with asyncio.timeout(TIMEOUT):
            seen = await asyncio.gather(final_count(one), final_count(two))
    for counts in seen:
        assert counts == sorted(set(counts)), counts
        assert counts[-1] == 12


# signatureAdded


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_signature_added_sends_every_new_signature_once_in_order_with_its_public_name(
    server_url, server_gql, protocol
):
    # given
    petition = await create_petition(server_gql)
    emails = [f"private.signer{n}@example.org" for n in range(10)]
    async with subscription(
        server_url, protocol, SIGNATURE_ADDED, {"id": petition["id"]}
    ) as subscriber:
        await until_live(subscriber, "signatureAdded", probe_signer(petition["id"], server_gql))
        subscriber.frames.clear()

        # when
        expected = []
        for n, email in enumerate(emails):
            payload = await sign(
                server_gql,
                petition["id"],
                n,
                email=email,
                showName=n != 4,
                country="fr",
                comment=f"Reason {n}",
            )
            assert payload["errors"] == [], payload
            expected.append(payload["signature"])

        # then
        received = [(await subscriber.next())["signatureAdded"] for _ in emails]
        with pytest.raises(TimeoutError):
            await subscriber.next(within=0.3)  # and nothing more

    assert [s["name"] for s in received] == [
        "Anonymous" if n == 4 else f"Signer{n} Example" for n in range(10)
    ]
    assert received == expected
    assert received[0]["country"] == "FR"
    wire = "".join(subscriber.frames)
    for email in emails:
        assert email not in wire
    assert "private.signer" not in wire
    assert "@" not in wire


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_signature_added_sends_each_of_many_simultaneous_signatures_exactly_once(
    server_url, server_gql, protocol
):
    # given
    petition = await create_petition(server_gql)
    async with subscription(
        server_url, protocol, SIGNATURE_ADDED, {"id": petition["id"]}
    ) as subscriber:
        await until_live(subscriber, "signatureAdded", probe_signer(petition["id"], server_gql))

        # when
        payloads = await asyncio.gather(*(sign(server_gql, petition["id"], n) for n in range(30)))
        accepted = [p["signature"] for p in payloads if p["errors"] == []]
        assert len(accepted) == 30

        # then
        received = [(await subscriber.next())["signatureAdded"] for _ in accepted]
        with pytest.raises(TimeoutError):
            await subscriber.next(within=0.3)

    names = [s["name"] for s in received]
    assert sorted(names) == sorted(s["name"] for s in accepted)
    assert len(set(names)) == 30
    ids = [s["id"] for s in received]
    assert len(set(ids)) == 30
    assert set(ids) == {s["id"] for s in accepted}


# commentAdded


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_comment_added_delivers_a_published_comment(server_url, server_gql, protocol):
    # given
    petition = await create_petition(server_gql)

    async def poke(n: int) -> dict[str, Any]:
        payload = await comment(server_gql, petition["id"], body=f"Probe {n}")
        posted: dict[str, Any] = payload["comment"]
        return posted

    async with subscription(
        server_url, protocol, COMMENT_ADDED, {"id": petition["id"]}
    ) as subscriber:
        await until_live(subscriber, "commentAdded", poke)
        subscriber.frames.clear()

        # when
        payload = await comment(
            server_gql,
            petition["id"],
            authorName="Ada Lovelace",
            email="ada.secret@example.org",
            body="Libraries matter.\nOpen on Sundays!",
        )

        # then
        received = (await subscriber.next())["commentAdded"]

    assert received == payload["comment"]
    assert received["authorName"] == "Ada Lovelace"
    assert received["body"] == "Libraries matter.\nOpen on Sundays!"
    assert "ada.secret" not in "".join(subscriber.frames)


# Petitions a subscription may not follow: unknown, malformed, of another type, or DRAFT


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["unknown", "malformed", "too large", "not a petition", "draft"])
async def test_a_subscription_to_an_unknown_or_draft_petition_ends_with_a_clean_error(
    server_url, server_gql, protocol, kind
):
    # given
    petition = await create_petition(server_gql)
    if kind == "draft":
        draft = await create_petition(server_gql, status="DRAFT")
        assert draft["status"] == "DRAFT"
        petition_id = draft["id"]
    else:
        petition_id = {
            "unknown": encode_id(f"Petition:{petition_pk(petition['id']) + 1000}"),
            "malformed": "not-a-global-id!",
            "too large": encode_id("Petition:999999999999999999"),
            "not a petition": encode_id(f"Signature:{petition_pk(petition['id'])}"),
        }[kind]

    for query in (SIGNATURE_COUNT, SIGNATURE_ADDED, COMMENT_ADDED):
        # when
        async with subscription(server_url, protocol, query, {"id": petition_id}) as subscriber:
            with pytest.raises(SubscriptionEnded) as ended:
                await subscriber.next()

        # then
        if protocol == TRANSPORT_WS:
            assert json.loads(ended.value.frame)["type"] == "error", ended.value.frame
        assert ended.value.errors
        for error in ended.value.errors:
            message = error["message"]
            assert message
            for marker in LEAK_MARKERS:
                assert marker not in message, message
            assert "exception" not in error.get("extensions", {}), error


# Cross-origin handshakes


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_handshake_from_another_origin_is_accepted_by_default(server_url, protocol):
    async with asyncio.timeout(TIMEOUT):
        ws = await connect(
            ws_url(server_url),
            subprotocols=[Subprotocol(protocol)],
            origin=Origin("https://widget.example.org"),
        )
    async with ws:
        assert ws.subprotocol == protocol
        await Subscriber(ws, protocol).init()


async def test_only_the_allowed_origins_may_open_a_websocket(settings):
    # given
    app = create_app(replace(settings, allowed_origins=("https://good.example",)))

    async with running_server(app) as url:
        # when / then
        with pytest.raises(InvalidStatus) as refused:
            async with asyncio.timeout(TIMEOUT):
                await connect(
                    ws_url(url),
                    subprotocols=[Subprotocol(TRANSPORT_WS)],
                    origin=Origin("https://evil.example"),
                )
        assert refused.value.response.status_code == 403

        async with asyncio.timeout(TIMEOUT):
            ws = await connect(
                ws_url(url),
                subprotocols=[Subprotocol(TRANSPORT_WS)],
                origin=Origin("https://good.example"),
            )
        async with ws:
            await Subscriber(ws, TRANSPORT_WS).init()
