"""Rate limits and client addresses (the README's "Rate limits").

`PETITIONS_SIGN_LIMIT` and `PETITIONS_COMMENT_LIMIT` (`N/Ss`) count per client address: signing
per address per petition, commenting per address over all petitions. Over the limit the mutation
answers `RATE_LIMITED` and stores nothing. The client address is the socket's peer, or, only when
that peer is a trusted proxy, the rightmost `X-Forwarded-For` entry (the one the proxy appended).
With Redis as the broadcast backend every process counts against the same limit, and when Redis
cannot be reached the limits fail open: signing goes on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from schema import make_schema
from schema.compiled import Plans
from schema.rates import RateLimits, parse_rate
from server import BadSetting, Settings, create_app
from tests.conftest import (
    REDIS_URL,
    GraphQLClient,
    free_port,
    fresh_postgres_database,
    needs_postgres,
)
from tests.factories import ADD_COMMENT, create_petition, signer
from tests.processes import run_command, server_process, service_env

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input)DIRECTIVE {
    signature { name }
    petition { id signatureCount }
    errors { field message code }
  }
}
"""
PETITION = """
query Petition($id: ID!) {
  petition(id: $id) {
    signatureCount
    commentCount
    signatures(first: 50) { totalCount edges { node { name } } }
  }
}
"""
PROXY = "10.0.0.1"


def compiled(document: str) -> str:
    return document.replace("DIRECTIVE", "")


def through_strawberry(document: str) -> str:
    """`@include(if: true)` on the root field: no compiled plan takes it, Strawberry answers."""
    return document.replace("DIRECTIVE", " @include(if: true)")


PATHS = [
    pytest.param(compiled(SIGN), id="compiled"),
    pytest.param(through_strawberry(SIGN), id="strawberry"),
]


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Any]:
    """The real app under these settings, its lifespan running."""
    manager = LifespanManager(create_app(settings))
    try:
        async with manager:
            yield manager.app
    finally:
        # The lifespan does not close the rate store's Redis connections (yet): close them here.
        policy = manager._state.get("policy")
        if policy is not None:
            await policy.rates.close()


async def post(
    app: Any,
    query: str,
    variables: dict[str, Any],
    *,
    peer: str = "192.0.2.1",
    forwarded_for: str | None = None,
) -> dict[str, Any]:
    """POST a document to the app as if from the socket peer `peer`."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    transport = httpx.ASGITransport(app=app, client=(peer, 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def sign_from(
    app: Any,
    petition_id: str,
    n: int,
    *,
    peer: str = "192.0.2.1",
    forwarded_for: str | None = None,
    document: str = compiled(SIGN),
    **overrides: Any,
) -> dict[str, Any]:
    """Sign as signer `n` from `peer`; returns the `signPetition` payload."""
    variables = {"input": signer(petition_id, n, **overrides)}
    body = await post(app, document, variables, peer=peer, forwarded_for=forwarded_for)
    payload: dict[str, Any] = body["data"]["signPetition"]
    return payload


async def comment_from(app: Any, petition_id: str, *, peer: str = "192.0.2.1") -> dict[str, Any]:
    variables = {
        "input": {
            "petitionId": petition_id,
            "authorName": "Grace Hopper",
            "email": "grace@example.org",
            "body": "Count me in.",
        }
    }
    body = await post(app, ADD_COMMENT, variables, peer=peer)
    payload: dict[str, Any] = body["data"]["addComment"]
    return payload


async def new_petition(app: Any) -> str:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.250", 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        petition = await create_petition(GraphQLClient(http))
    petition_id: str = petition["id"]
    return petition_id


async def read_petition(app: Any, petition_id: str) -> dict[str, Any]:
    body = await post(app, PETITION, {"id": petition_id})
    petition: dict[str, Any] = body["data"]["petition"]
    return petition


def signer_names(petition: dict[str, Any]) -> set[str]:
    return {edge["node"]["name"] for edge in petition["signatures"]["edges"]}


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["errors"]]


def assert_rate_limited(payload: dict[str, Any]) -> None:
    assert codes(payload) == ["RATE_LIMITED"], payload
    assert payload["errors"][0]["message"].strip(), "a human message"
    assert "RATE_LIMITED" not in payload["errors"][0]["message"]


# --- signing ---------------------------------------------------------------------------------


async def test_with_no_rate_configured_nothing_is_rate_limited(settings):
    # given
    async with served(settings) as app:
        petition_id = await new_petition(app)
        other_id = await new_petition(app)
        # when
        signed = [await sign_from(app, petition_id, n) for n in range(12)]
        commented = [await comment_from(app, other_id) for _ in range(6)]
        # then
        assert all(payload["errors"] == [] for payload in signed + commented)
        assert (await read_petition(app, petition_id))["signatureCount"] == 12
        assert (await read_petition(app, other_id))["commentCount"] == 6


@pytest.mark.parametrize("document", PATHS)
async def test_the_fourth_signature_from_one_address_to_one_petition_is_refused_and_not_stored(
    settings, document
):
    # given
    async with served(replace(settings, sign_limit="3/60s")) as app:
        petition_id = await new_petition(app)
        other_id = await new_petition(app)
        for n in range(3):
            taken = await sign_from(app, petition_id, n, peer="10.1.1.1", document=document)
            assert taken["errors"] == [], taken
        # when
        refused = await sign_from(app, petition_id, 3, peer="10.1.1.1", document=document)
        # then: RATE_LIMITED, and nothing stored
        assert_rate_limited(refused)
        assert refused["signature"] is None
        assert refused["petition"]["signatureCount"] == 3
        stored = await read_petition(app, petition_id)
        assert stored["signatureCount"] == stored["signatures"]["totalCount"] == 3
        assert "Signer3 Example" not in signer_names(stored)
        # and the same address may sign another petition (the count is per petition)
        elsewhere = await sign_from(app, other_id, 3, peer="10.1.1.1", document=document)
        assert elsewhere["errors"] == [], elsewhere
        # and another address may sign the first petition, even with the refused email
        # (no row was written for it)
        other = await sign_from(app, petition_id, 3, peer="10.1.1.2", document=document)
        assert other["errors"] == [], other
        assert other["petition"]["signatureCount"] == 4


async def test_both_paths_count_against_one_limit_and_refuse_alike(settings):
    # given
    assert Plans(make_schema().documents).get(compiled(SIGN), None) is not None
    async with served(replace(settings, sign_limit="2/60s")) as app:
        petition_id = await new_petition(app)
        # when
        first = await sign_from(app, petition_id, 1, document=compiled(SIGN))
        second = await sign_from(app, petition_id, 2, document=through_strawberry(SIGN))
        fast = await sign_from(app, petition_id, 3, document=compiled(SIGN))
        slow = await sign_from(app, petition_id, 3, document=through_strawberry(SIGN))
        # then
        assert first["errors"] == second["errors"] == []
        assert_rate_limited(fast)
        assert fast == slow
        assert (await read_petition(app, petition_id))["signatureCount"] == 2


async def test_an_invalid_signature_does_not_use_up_the_limit(settings):
    # given
    async with served(replace(settings, sign_limit="2/60s")) as app:
        petition_id = await new_petition(app)
        # when
        invalid = [await sign_from(app, petition_id, n, email="not an email") for n in range(3)]
        taken = [await sign_from(app, petition_id, n) for n in range(2)]
        # then
        assert all(codes(payload) == ["INVALID_INPUT"] for payload in invalid)
        assert all(payload["errors"] == [] for payload in taken)
        assert_rate_limited(await sign_from(app, petition_id, 9))


# --- commenting ------------------------------------------------------------------------------


async def test_comments_are_limited_per_address_over_all_petitions(settings):
    # given
    async with served(replace(settings, comment_limit="2/60s")) as app:
        first = await new_petition(app)
        second = await new_petition(app)
        third = await new_petition(app)
        assert (await comment_from(app, first, peer="10.2.2.2"))["errors"] == []
        assert (await comment_from(app, second, peer="10.2.2.2"))["errors"] == []
        # when: a third comment from that address, to a petition it has not commented on
        refused = await comment_from(app, third, peer="10.2.2.2")
        # then
        assert_rate_limited(refused)
        assert refused["comment"] is None
        assert (await read_petition(app, third))["commentCount"] == 0
        assert_rate_limited(await comment_from(app, first, peer="10.2.2.2"))
        assert (await read_petition(app, first))["commentCount"] == 1
        # and another address may still comment
        assert (await comment_from(app, third, peer="10.2.2.3"))["errors"] == []
        assert (await read_petition(app, third))["commentCount"] == 1


# --- client addresses ------------------------------------------------------------------------


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(settings):
    # given
    async with served(replace(settings, sign_limit="3/60s")) as app:
        petition_id = await new_petition(app)
        # when: one peer claims a different address every time
        answers = [
            await sign_from(app, petition_id, n, peer=PROXY, forwarded_for=f"198.51.100.{n}")
            for n in range(5)
        ]
        # then: it is still one address
        assert [codes(answer) for answer in answers] == [[]] * 3 + [["RATE_LIMITED"]] * 2
        assert (await read_petition(app, petition_id))["signatureCount"] == 3


@pytest.mark.parametrize("trusted", [(PROXY,), ("10.0.0.0/8",), ("192.0.2.7", PROXY)])
async def test_a_trusted_proxy_names_the_client_by_the_entry_it_appended(settings, trusted):
    # given
    async with served(replace(settings, sign_limit="3/60s", trusted_proxies=trusted)) as app:
        petition_id = await new_petition(app)
        # when: many clients behind the proxy
        behind = [
            await sign_from(app, petition_id, n, peer=PROXY, forwarded_for=f"203.0.113.{n}")
            for n in range(6)
        ]
        # and one client that writes its own X-Forwarded-For, to which the proxy appends
        spoofing = [
            await sign_from(
                app, petition_id, 10 + n, peer=PROXY, forwarded_for=f"1.1.1.{n}, 203.0.113.77"
            )
            for n in range(4)
        ]
        # then: each client behind it is counted on its own, by the rightmost entry
        assert all(answer["errors"] == [] for answer in behind)
        assert [codes(answer) for answer in spoofing] == [[], [], [], ["RATE_LIMITED"]]
        # and it is the same address as that client connecting directly (not the proxy)
        assert_rate_limited(await sign_from(app, petition_id, 20, peer="203.0.113.77"))
        assert (await sign_from(app, petition_id, 21, peer=PROXY))["errors"] == []
        assert (await read_petition(app, petition_id))["signatureCount"] == 10


async def test_a_proxy_appending_one_entry_on_its_own_names_that_client(settings):
    # given
    async with served(replace(settings, sign_limit="3/60s", trusted_proxies=(PROXY,))) as app:
        petition_id = await new_petition(app)
        # when: the client sent nothing; the proxy's entry is the only one (with a port)
        answers = [
            await sign_from(app, petition_id, n, peer=PROXY, forwarded_for="203.0.113.5:4431")
            for n in range(4)
        ]
        # then
        assert [codes(answer) for answer in answers] == [[], [], [], ["RATE_LIMITED"]]
        assert_rate_limited(await sign_from(app, petition_id, 9, peer="203.0.113.5"))


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored_even_with_trusted_proxies(
    settings,
):
    # given
    limited = replace(settings, sign_limit="3/60s", trusted_proxies=(PROXY, "10.9.0.0/16"))
    async with served(limited) as app:
        petition_id = await new_petition(app)
        # when: a peer that is no trusted proxy claims varying addresses (even trusted ones)
        answers = [
            await sign_from(
                app, petition_id, n, peer="192.0.2.66", forwarded_for=f"198.51.100.{n}, {PROXY}"
            )
            for n in range(4)
        ]
        # then: it is counted as itself
        assert [codes(answer) for answer in answers] == [[], [], [], ["RATE_LIMITED"]]
        assert (await read_petition(app, petition_id))["signatureCount"] == 3


# --- real `petitions serve` processes --------------------------------------------------------


async def sign_over_http(
    client: httpx.AsyncClient, petition_id: str, n: int, forwarded_for: str | None = None
) -> dict[str, Any]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = await client.post(
        "/graphql",
        json={"query": compiled(SIGN), "variables": {"input": signer(petition_id, n)}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["data"]["signPetition"]
    return payload


@pytest.mark.parametrize(
    ("trusted", "taken"),
    [
        pytest.param(None, 2, id="no-trusted-proxies"),
        pytest.param("127.0.0.1", 4, id="trusting-127.0.0.1"),
    ],
)
async def test_a_real_server_believes_x_forwarded_for_only_from_a_trusted_proxy(
    tmp_path: Path, trusted, taken
):
    # given: `petitions serve` on 127.0.0.1, which uvicorn alone would trust
    env = service_env(f"sqlite://{tmp_path / 'p.sqlite3'}", "memory://", "rates")
    env["PETITIONS_SIGN_LIMIT"] = "2/60s"
    if trusted:
        env["PETITIONS_TRUSTED_PROXIES"] = trusted
    async with (
        server_process(env) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        petition = await create_petition(GraphQLClient(client))
        # when: each request claims another address
        answers = [
            await sign_over_http(client, petition["id"], n, forwarded_for=f"198.51.100.{n}")
            for n in range(4)
        ]
    # then
    assert [codes(answer) for answer in answers] == [[]] * taken + [["RATE_LIMITED"]] * (4 - taken)


async def stored_signatures(database_url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetchval("SELECT COUNT(*) FROM signature")
        counter = await connection.fetchval("SELECT SUM(signature_count) FROM petition")
        return int(rows), int(counter)
    finally:
        await connection.close()


@needs_postgres
async def test_two_processes_sharing_redis_count_against_one_limit():
    assert REDIS_URL
    async with fresh_postgres_database() as database_url, AsyncExitStack() as stack:
        # given: two processes on one database and one Redis, a limit of 4 signatures
        env = service_env(database_url, REDIS_URL, f"test-{uuid.uuid4().hex[:12]}")
        env |= {"PETITIONS_SIGN_LIMIT": "4/60s", "PETITIONS_COMMENT_LIMIT": "2/60s"}
        code, output = await run_command("migrate", env=env)
        assert code == 0, output
        servers = await asyncio.gather(
            stack.enter_async_context(server_process(env)),
            stack.enter_async_context(server_process(env)),
        )
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=s.url, timeout=30))
            for s in servers
        ]
        petition = await create_petition(GraphQLClient(clients[0]))
        # when: ten signatures at once from one address, spread over both processes
        signed = await asyncio.gather(
            *(sign_over_http(clients[n % 2], petition["id"], n) for n in range(10))
        )
        commented = []
        for n in range(5):
            response = await clients[n % 2].post(
                "/graphql",
                json={
                    "query": ADD_COMMENT,
                    "variables": {
                        "input": {
                            "petitionId": petition["id"],
                            "authorName": "Grace Hopper",
                            "email": "grace@example.org",
                            "body": "Count me in.",
                        }
                    },
                },
            )
            commented.append(response.json()["data"]["addComment"])
        # then: four taken in all, whichever process they hit, the rest refused
        outcomes = sorted(codes(answer)[0] if answer["errors"] else "TAKEN" for answer in signed)
        assert outcomes == ["RATE_LIMITED"] * 6 + ["TAKEN"] * 4
        taken = {answer["petition"]["signatureCount"] for answer in signed if not answer["errors"]}
        assert taken <= {1, 2, 3, 4}
        assert [codes(answer) for answer in commented] == [[], []] + [["RATE_LIMITED"]] * 3
        assert await stored_signatures(database_url) == (4, 4)


# --- failing open ----------------------------------------------------------------------------


async def test_signing_goes_on_when_the_rate_store_cannot_be_reached(settings):
    # given: the broadcast backend (and so the rate store) is a Redis where nothing listens
    away = replace(
        settings,
        broadcast_url=f"redis://127.0.0.1:{free_port()}/0",
        sign_limit="1/60s",
        comment_limit="1/60s",
    )
    async with served(away) as app:
        petition_id = await new_petition(app)
        # when
        signed = [await sign_from(app, petition_id, n) for n in range(3)]
        commented = [await comment_from(app, petition_id) for _ in range(2)]
        # then
        assert all(answer["errors"] == [] for answer in signed + commented)
        assert (await read_petition(app, petition_id))["signatureCount"] == 3


async def test_rate_limits_fail_open_and_say_so_once(caplog):
    # given
    rates = RateLimits({"sign": "1/60s"}, f"redis://127.0.0.1:{free_port()}/0", "test")
    # when
    with caplog.at_level(logging.INFO, logger="petitions.rates"):
        allowed = [await rates.allow("sign", "192.0.2.1", "1") for _ in range(3)]
    # then
    assert allowed == [True, True, True]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "allowing" in warnings[0].getMessage()


async def test_rate_limits_count_per_kind_and_keys_in_memory():
    # given
    rates = RateLimits({"sign": "2/60s", "comment": None}, "memory://", "test")
    # when / then
    assert [await rates.allow("sign", "a", "1") for _ in range(3)] == [True, True, False]
    assert await rates.allow("sign", "a", "2")
    assert await rates.allow("sign", "b", "1")
    assert all([await rates.allow("comment", "a") for _ in range(5)])
    assert await rates.allow("report", "a")


@needs_postgres
async def test_rate_limits_in_redis_are_shared_by_every_instance_of_one_prefix():
    # given
    assert REDIS_URL
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    one = RateLimits({"sign": "3/60s"}, REDIS_URL, prefix)
    two = RateLimits({"sign": "3/60s"}, REDIS_URL, prefix)
    elsewhere = RateLimits({"sign": "3/60s"}, REDIS_URL, f"{prefix}-other")
    # when
    allowed = [await (one if n % 2 else two).allow("sign", "a", "1") for n in range(5)]
    # then
    assert allowed == [True, True, True, False, False]
    assert await elsewhere.allow("sign", "a", "1")
    for rates in (one, two, elsewhere):
        await rates.close()


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["5/300s", "1/1s", " 5 / 300 s "])
def test_a_rate_reads_n_per_s_seconds(text):
    # when
    settings = Settings.from_env({"PETITIONS_SIGN_LIMIT": text, "PETITIONS_COMMENT_LIMIT": text})
    item = parse_rate(text)
    # then
    assert settings.sign_limit == settings.comment_limit == text.strip()
    assert item.amount == int(text.split("/")[0])
    assert item.get_expiry() == int(text.split("/")[1].strip().rstrip("s"))


def test_rates_are_off_unless_set():
    settings = Settings.from_env({"PETITIONS_SIGN_LIMIT": " "})
    assert settings.sign_limit is None
    assert settings.comment_limit is None
    assert settings.trusted_proxies == ()


def test_trusted_proxies_are_a_comma_separated_list():
    settings = Settings.from_env({"PETITIONS_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12,"})
    assert settings.trusted_proxies == ("10.0.0.1", "172.16.0.0/12")


BAD_RATES = [
    "5 per minute",
    "abc",
    "5/300",
    "-1/10s",
    "0/10s",
    "5/0s",
]


@pytest.mark.parametrize("name", ["SIGN_LIMIT", "COMMENT_LIMIT"])
@pytest.mark.parametrize("text", BAD_RATES)
def test_a_rate_that_does_not_read_is_refused_naming_its_variable(name, text):
    with pytest.raises(BadSetting, match=f"PETITIONS_{name}"):
        Settings.from_env({f"PETITIONS_{name}": text})


@pytest.mark.parametrize("text", ["5 per minute", "abc", "0/10s", "5/0s"])
def test_parse_rate_refuses_what_is_no_rate(text):
    with pytest.raises(ValueError, match="N/Ss"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["5 per minute", "0/10s"])
async def test_petitions_serve_exits_2_naming_a_rate_that_does_not_read(tmp_path: Path, text):
    # given
    env = {
        "PETITIONS_DATABASE_URL": f"sqlite://{tmp_path / 'p.sqlite3'}",
        "PETITIONS_SIGN_LIMIT": text,
    }
    # when
    code, output = await run_command("serve", "--port", str(free_port()), env=env, timeout=20)
    # then
    assert code == 2, output
    assert "PETITIONS_SIGN_LIMIT" in output
    assert "Traceback" not in output
