"""Signatures you can defend: statuses that move the count exactly (up and down, pushed live),
canonical emails, silent quarantine, the fraud tools, confirmation by email through a real SMTP
server, erasure, anonymisation and stored tokens, through the public API on both backends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

import models
from server import Settings, create_app
from tests.conftest import ADMIN_TOKEN, free_port, running_server
from tests.factories import SIGN, create_petition, signer
from tests.mailserver import Inbox, mail_server
from tests.wsclient import TRANSPORT_WS, Subscriber, subscription

COUNT = "subscription ($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }"
ADDED = "subscription ($id: ID!) { signatureAdded(petitionId: $id) { name } }"
STRIKE = """
mutation Strike($input: StrikeSignaturesInput!) {
  strikeSignatures(input: $input) {
    matched changed petition { signatureCount } errors { field code message }
  }
}
"""
PAGE = """
query Page($slug: String!) {
  petition(slug: $slug) {
    signatureCount
    signatures(first: 100) { totalCount edges { node { id name status } } }
  }
}
"""
NODE = "query ($id: ID!) { node(id: $id) { ... on Signature { name status } } }"
SOURCES = """
query Sources($slug: String!, $kind: SignatureSourceKind!) {
  petition(slug: $slug) { signatureSources(kind: $kind) { kind value count share } }
}
"""
ERASE = """
mutation Erase($email: String!) {
  eraseSigner(input: {email: $email}) { signatures comments errors { field code } }
}
"""
CONFIRM = """
mutation Confirm($token: String!) {
  confirmSignature(input: {token: $token}) {
    signature { name status } petition { signatureCount } errors { field code }
  }
}
"""
CLOSE = (
    "mutation ($id: ID!) { updatePetition(input: {id: $id, status: CLOSED}) { errors { code } } }"
)
SIGN_CONFIRMING = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input) {
    signature { id name } petition { signatureCount } needsConfirmation errors { field code }
  }
}
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The backend's settings, with the tests' client as a trusted proxy, so that each request
    names its own client address in `X-Forwarded-For`."""
    return replace(settings, trusted_proxies=("127.0.0.1",))


@dataclass
class Client:
    """GraphQL over HTTP as one client address (and, if asked, with a token)."""

    http: httpx.AsyncClient

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        admin: bool = False,
        token: str | None = None,
        address: str = "192.0.2.1",
    ) -> dict[str, Any]:
        headers = {"X-Forwarded-For": address}
        if admin or token:
            headers["Authorization"] = f"Bearer {token or ADMIN_TOKEN}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, Client]]:
    """A real server for `settings`: its URL and a client of it."""
    async with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield url, Client(http)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[str, Client]]:
    async with serving(settings) as pair:
        yield pair


@dataclass
class AsGql:
    """The factories' `gql`: admin calls carry `token` (the setting's admin token if None)."""

    client: Client
    token: str | None = None

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, admin: bool = False
    ) -> dict[str, Any]:
        return {"data": await self.client(query, variables, admin=admin, token=self.token)}


async def sign(client: Client, petition_id: str, n: int, **overrides: Any) -> dict[str, Any]:
    address = overrides.pop("address", "192.0.2.1")
    data = await client(SIGN, {"input": signer(petition_id, n, **overrides)}, address=address)
    payload: dict[str, Any] = data["signPetition"]
    return payload


async def count_differences(settings: Settings) -> list[models.CountDifference]:
    """What `petitions check-counts` would find."""
    async with models.open_database(settings.database_url, create_schema=False):
        return await models.count_differences()


async def next_count(subscriber: Subscriber, expected: int, within: float = 1.5) -> None:
    """The subscriber is sent `expected` within `within` seconds (counts may coalesce)."""
    async with asyncio.timeout(within):
        while (await subscriber.next())["signatureCount"]["signatureCount"] != expected:
            pass


async def listed(client: Client, slug: str) -> list[str]:
    page = (await client(PAGE, {"slug": slug}))["petition"]
    names = [edge["node"]["name"] for edge in page["signatures"]["edges"]]
    assert page["signatureCount"] == page["signatures"]["totalCount"] == len(names), page
    assert {edge["node"]["status"] for edge in page["signatures"]["edges"]} <= {"VALID"}
    return names


# Canonical emails


async def test_the_spellings_of_one_gmail_mailbox_sign_once(served):
    _, client = served
    petition = await create_petition(AsGql(client))
    first = await sign(client, petition["id"], 1, email="John.Smith+news@gmail.com")
    again = await sign(client, petition["id"], 2, email="johnsmith@googlemail.com")
    other = await sign(client, petition["id"], 3, email="john.smith@example.org")

    assert first["errors"] == []
    assert other["errors"] == []
    assert again["errors"][0]["code"] == "ALREADY_SIGNED"
    assert other["petition"]["signatureCount"] == 2


# Strikes and releases


async def test_a_strike_and_a_release_move_the_count_both_ways_live(settings, served):
    url, client = served
    petition = await create_petition(AsGql(client))
    slug = petition["slug"]
    for n in range(1, 4):  # three from one network, three from elsewhere
        await sign(client, petition["id"], n, address=f"10.0.0.{n}")
    for n in range(4, 7):
        await sign(client, petition["id"], n, address=f"198.51.100.{n}")
    names = await listed(client, slug)
    page = (await client(PAGE, {"slug": slug}))["petition"]["signatures"]["edges"]
    struck_id = next(e["node"]["id"] for e in page if e["node"]["name"] == "Signer2 Example")

    async with (
        subscription(url, TRANSPORT_WS, COUNT, {"id": petition["id"]}) as counts,
        subscription(url, TRANSPORT_WS, ADDED, {"id": petition["id"]}) as added,
    ):
        assert (await counts.next())["signatureCount"]["signatureCount"] == 6
        strike = {"petitionId": petition["id"], "ip": "10.0.0.0/24", "status": "INVALID"}

        dry = await client(STRIKE, {"input": strike | {"dryRun": True}}, admin=True)
        assert dry["strikeSignatures"] == {
            "matched": 3,
            "changed": 0,
            "petition": {"signatureCount": 6},
            "errors": [],
        }
        struck = (await client(STRIKE, {"input": strike}, admin=True))["strikeSignatures"]
        assert (struck["matched"], struck["changed"]) == (3, 3)
        assert struck["petition"]["signatureCount"] == 3
        await next_count(counts, 3)  # a count goes down, pushed like one going up
        assert await listed(client, slug) == [n for n in names if n[6] in "456"]
        assert (await client(NODE, {"id": struck_id}))["node"] is None  # public: gone
        seen = (await client(NODE, {"id": struck_id}, admin=True))["node"]
        assert seen == {"name": "Signer2 Example", "status": "INVALID"}

        # a new signature is announced once, after the gap the strike left in the clock
        await sign(client, petition["id"], 7, address="198.51.100.7")
        assert (await added.next())["signatureAdded"]["name"] == "Signer7 Example"
        await next_count(counts, 4)

        released = await client(STRIKE, {"input": strike | {"status": "VALID"}}, admin=True)
        assert released["strikeSignatures"]["changed"] == 3
        await next_count(counts, 7)
        # back at their places, not announced again as new
        assert await listed(client, slug) == ["Signer7 Example", *names]
        await sign(client, petition["id"], 8, address="198.51.100.8")
        assert (await added.next())["signatureAdded"]["name"] == "Signer8 Example"

    assert await count_differences(settings) == []


async def test_a_strike_needs_an_admin_and_a_filter(served):
    _, client = served
    petition = await create_petition(AsGql(client))
    await sign(client, petition["id"], 1)
    strike = {"petitionId": petition["id"], "emailDomain": "example.org", "status": "INVALID"}

    refused = (await client(STRIKE, {"input": strike}))["strikeSignatures"]
    no_filter = {"petitionId": petition["id"], "status": "INVALID"}
    unfiltered = (await client(STRIKE, {"input": no_filter}, admin=True))["strikeSignatures"]
    bad_network = strike | {"ip": "10.0.0.0/33"}
    malformed = (await client(STRIKE, {"input": bad_network}, admin=True))["strikeSignatures"]
    pending = strike | {"status": "PENDING"}
    not_a_target = (await client(STRIKE, {"input": pending}, admin=True))["strikeSignatures"]

    assert refused["errors"][0]["code"] == "UNAUTHORIZED"
    assert unfiltered["errors"][0]["code"] == "INVALID_INPUT"
    assert malformed["errors"] == [
        {"field": "ip", "code": "INVALID_INPUT", "message": malformed["errors"][0]["message"]}
    ]
    assert not_a_target["errors"][0]["code"] == "INVALID_INPUT"
    assert await listed(client, petition["slug"]) == ["Signer1 Example"]


async def test_a_strike_racing_a_burst_of_signatures_leaves_every_counter_exact(settings, served):
    url, client = served
    petition = await create_petition(AsGql(client))
    strike = {"petitionId": petition["id"], "ip": "10.9.0.0/16", "status": "INVALID"}

    async def burst() -> None:
        await asyncio.gather(
            *(
                sign(client, petition["id"], n, address=f"10.9.{n % 7}.{n % 200}")
                if n % 2
                else sign(client, petition["id"], n, address=f"203.0.113.{n % 200}")
                for n in range(1, 201)
            )
        )

    async def strikes() -> None:
        for turn in range(12):
            status = "INVALID" if turn % 2 == 0 else "VALID"
            await client(STRIKE, {"input": strike | {"status": status}}, admin=True)
            await asyncio.sleep(0.01)
        await client(STRIKE, {"input": strike}, admin=True)

    async with subscription(url, TRANSPORT_WS, COUNT, {"id": petition["id"]}) as counts:
        await counts.next()
        await asyncio.gather(burst(), strikes())
        await next_count(counts, 100, within=3)  # every one of 10.9/16 struck off at the end

    assert len(await listed(client, petition["slug"])) == 100
    assert await count_differences(settings) == []


# Held silently


async def test_a_blocked_signature_is_answered_as_counted_and_held(settings):
    blocked = replace(
        settings,
        blocked_email_domains=("spam.example",),
        blocked_networks=("203.0.113.0/24",),
    )
    async with serving(blocked) as (_, client):
        petition = await create_petition(AsGql(client))
        honest = await sign(client, petition["id"], 1)
        by_domain = await sign(client, petition["id"], 2, email="bot2@Spam.Example")
        by_network = await sign(client, petition["id"], 3, address="203.0.113.9")

        # the answers tell nothing: the signature's public fields, the petition, no error
        for payload, n in ((honest, 1), (by_domain, 2), (by_network, 3)):
            assert payload["errors"] == []
            assert payload["signature"]["name"] == f"Signer{n} Example"
        assert by_network["petition"]["signatureCount"] == 1  # it did not move
        assert await listed(client, petition["slug"]) == ["Signer1 Example"]
        held_id = by_domain["signature"]["id"]
        assert (await client(NODE, {"id": held_id}))["node"] is None
        assert (await client(NODE, {"id": held_id}, admin=True))["node"]["status"] == (
            "QUARANTINED"
        )

        # an admin sees where they came from, and releases them
        sources = await client(SOURCES, {"slug": petition["slug"], "kind": "IP"}, admin=True)
        assert sources["petition"]["signatureSources"] == [
            {"kind": "IP", "value": "192.0.2.1", "count": 2, "share": 2 / 3},
            {"kind": "IP", "value": "203.0.113.9", "count": 1, "share": 1 / 3},
        ]
        domains = await client(
            SOURCES, {"slug": petition["slug"], "kind": "EMAIL_DOMAIN"}, admin=True
        )
        assert domains["petition"]["signatureSources"][0]["value"] == "example.org"
        public = await client(SOURCES, {"slug": petition["slug"], "kind": "COUNTRY"})
        assert public["petition"]["signatureSources"] is None
        release = {"petitionId": petition["id"], "emailDomain": "spam.example", "status": "VALID"}
        released = (await client(STRIKE, {"input": release}, admin=True))["strikeSignatures"]
        assert (released["changed"], released["petition"]["signatureCount"]) == (1, 2)
        assert await listed(client, petition["slug"]) == ["Signer2 Example", "Signer1 Example"]
    assert await count_differences(settings) == []


async def test_over_the_limit_a_signature_can_be_held_instead_of_refused(settings):
    limited = replace(settings, sign_limit="2/300s", sign_limit_action="quarantine")
    async with serving(limited) as (_, client):
        petition = await create_petition(AsGql(client))
        answers = [await sign(client, petition["id"], n, address="10.1.1.1") for n in (1, 2, 3)]

        assert [a["errors"] for a in answers] == [[], [], []]
        assert answers[2]["signature"]["name"] == "Signer3 Example"
        assert answers[2]["petition"]["signatureCount"] == 2
        assert len(await listed(client, petition["slug"])) == 2


# Confirmation by email


@asynccontextmanager
async def confirming(settings: Settings, port: int, **changes: Any) -> AsyncIterator[Any]:
    confirm = replace(
        settings,
        confirm_emails=True,
        smtp_url=f"smtp://127.0.0.1:{port}",
        mail_from="Petitions <petitions@example.net>",
        public_url="https://petitions.example.net",
        **changes,
    )
    async with serving(confirm) as pair:
        yield pair


async def mails(inbox: Inbox, count: int, within: float = 10) -> list[str]:
    async with asyncio.timeout(within):
        while len(inbox.messages) < count:
            await asyncio.sleep(0.05)
    return [message.get_content() for message in inbox.messages]


def token_in(text: str) -> str:
    match = re.search(r"https://petitions\.example\.net/confirm/([A-Za-z0-9_-]+)", text)
    assert match, text
    assert match.group(1) in text.replace(match.group(0), "")  # the bare token too
    return match.group(1)


async def test_confirmation_by_email_end_to_end(settings):
    inbox, port = Inbox(), free_port()
    async with mail_server(inbox, port), confirming(settings, port) as (url, client):
        petition = await create_petition(AsGql(client))
        async with subscription(url, TRANSPORT_WS, COUNT, {"id": petition["id"]}) as counts:
            assert (await counts.next())["signatureCount"]["signatureCount"] == 0
            first = await client(SIGN_CONFIRMING, {"input": signer(petition["id"], 1)})
            assert first["signPetition"] == {
                "signature": None,
                "petition": {"signatureCount": 0},
                "needsConfirmation": True,
                "errors": [],
            }
            [text] = await mails(inbox, 1)
            assert str(inbox.messages[0]["To"]) == "signer1@example.org"
            token = token_in(text)

            # the link's page changes nothing: a mail scanner following it confirms nothing
            page = await client.http.get(f"/confirm/{token}")
            assert page.status_code == 200
            assert "<form" in page.text
            assert "button" in page.text
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert await listed(client, petition["slug"]) == []
            pressed = await client.http.post(f"/confirm/{token}")
            assert pressed.status_code == 200
            assert "counts" in pressed.text
            await next_count(counts, 1)

            again = (await client(CONFIRM, {"token": token}))["confirmSignature"]
            assert again == {
                "signature": {"name": "Signer1 Example", "status": "VALID"},
                "petition": {"signatureCount": 1},
                "errors": [],
            }
            assert await listed(client, petition["slug"]) == ["Signer1 Example"]

            # a repeated email answers as a first one, and its owner is told (once a day)
            repeat = signer(petition["id"], 9, email=" Signer1@Example.org ")
            for _ in range(2):
                answer = await client(SIGN_CONFIRMING, {"input": repeat})
                assert answer["signPetition"] == first["signPetition"] | {
                    "petition": {"signatureCount": 1}
                }
            texts = await mails(inbox, 2)
            assert "already" in texts[1]
            assert "/confirm/" not in texts[1]
            await asyncio.sleep(0.5)
            assert len(inbox.messages) == 2

        unknown = (await client(CONFIRM, {"token": "not-a-token"}))["confirmSignature"]
        assert unknown["errors"] == [{"field": "token", "code": "NOT_FOUND"}]
        missing = await client.http.get("/confirm/not-a-token")
        assert missing.status_code == 404
        assert "<html" in missing.text
    assert await count_differences(settings) == []


async def test_an_expired_token_confirms_nothing(settings):
    inbox, port = Inbox(), free_port()
    async with mail_server(inbox, port), confirming(settings, port, confirm_ttl=1.0) as pair:
        _, client = pair
        petition = await create_petition(AsGql(client))
        await client(SIGN_CONFIRMING, {"input": signer(petition["id"], 1)})
        token = token_in((await mails(inbox, 1))[0])
        await asyncio.sleep(1.2)

        expired = (await client(CONFIRM, {"token": token}))["confirmSignature"]
        page = await client.http.get(f"/confirm/{token}")

        assert expired["errors"] == [{"field": "token", "code": "NOT_FOUND"}]
        assert page.status_code == 404
        assert await listed(client, petition["slug"]) == []


async def test_mails_wait_in_the_outbox_while_the_mail_server_is_down(settings):
    inbox, port = Inbox(), free_port()  # nothing listens there yet
    async with confirming(settings, port) as (_, client):
        petition = await create_petition(AsGql(client))
        for n in range(1, 6):
            answer = await client(SIGN_CONFIRMING, {"input": signer(petition["id"], n)})
            assert answer["signPetition"]["needsConfirmation"] is True
        await asyncio.sleep(1)
        async with mail_server(inbox, port):
            texts = await mails(inbox, 5, within=20)
            await asyncio.sleep(0.5)
        tokens = [token_in(text) for text in texts]
        assert sorted(str(m["To"]) for m in inbox.messages) == [
            f"signer{n}@example.org" for n in range(1, 6)
        ]  # each once
        for token in tokens:
            assert (await client(CONFIRM, {"token": token}))["confirmSignature"]["errors"] == []
        assert len(await listed(client, petition["slug"])) == 5


# Erasure and anonymisation


async def test_erasing_a_signer_removes_them_everywhere_and_tells_subscribers(settings, served):
    url, client = served
    petitions = [await create_petition(AsGql(client)) for _ in range(2)]
    for index, petition in enumerate(petitions):
        await sign(
            client, petition["id"], 1, email=["alice.b@gmail.com", "aliceb+x@gmail.com"][index]
        )
        await sign(client, petition["id"], 2)
    comment = await client(
        "mutation ($input: AddCommentInput!) { addComment(input: $input) { status } }",
        {
            "input": {
                "petitionId": petitions[0]["id"],
                "authorName": "Alice",
                "email": "Alice.B@googlemail.com",
                "body": "Keep the library open: my children read there every week.",
            }
        },
    )
    assert comment["addComment"]["status"] == "PUBLISHED"

    async with subscription(url, TRANSPORT_WS, COUNT, {"id": petitions[1]["id"]}) as counts:
        assert (await counts.next())["signatureCount"]["signatureCount"] == 2
        refused = (await client(ERASE, {"email": "alice.b@gmail.com"}))["eraseSigner"]
        assert refused["errors"] == [{"field": None, "code": "UNAUTHORIZED"}]
        erased = await client(ERASE, {"email": "ALICEB@googlemail.com"}, admin=True)
        assert erased["eraseSigner"] == {"signatures": 2, "comments": 1, "errors": []}
        await next_count(counts, 1)

    for petition in petitions:
        assert await listed(client, petition["slug"]) == ["Signer2 Example"]
    counted = await client(
        "query ($slug: String!) { petition(slug: $slug) { commentCount } }",
        {"slug": petitions[0]["slug"]},
    )
    assert counted["petition"]["commentCount"] == 0
    assert await count_differences(settings) == []


async def test_anonymise_strips_closed_petitions_and_the_files_forget(settings, served, tmp_path):
    _, client = served
    closed, open_ = await create_petition(AsGql(client)), await create_petition(AsGql(client))
    for n in range(1, 4):
        await sign(client, closed["id"], n, email=f"forget-me-{n}@example.org", country="FR")
    await sign(client, open_["id"], 1, email="keep-me@example.org")
    await client(
        CLOSE,
        {"id": closed["id"]},
        admin=True,
    )

    async with models.open_database(settings.database_url, create_schema=False):
        assert await models.anonymise(1) == 0  # closed for less than a day
        assert await models.anonymise(0) == 3
        assert await models.anonymise(0) == 0  # nothing left to strip
        rows = await models.Signature.filter(petition__slug=closed["slug"]).values(
            "email", "address", "first_name", "country"
        )
        kept = await models.Signature.get(petition__slug=open_["slug"])

    assert sorted(row["first_name"] for row in rows) == ["Signer1", "Signer2", "Signer3"]
    assert {(r["email"], r["address"], r["country"]) for r in rows} == {("", None, "FR")}
    assert kept.email == "keep-me@example.org"
    assert kept.address == "192.0.2.1"
    assert len(await listed(client, closed["slug"])) == 3
    if settings.database_url.startswith("sqlite://"):  # gone from the files, WAL included
        database = Path(settings.database_url.removeprefix("sqlite://"))
        for path in database.parent.glob(database.name + "*"):
            assert b"forget-me" not in path.read_bytes(), path
    assert await count_differences(settings) == []


# Tokens


async def test_stored_tokens_carry_their_role_until_revoked(settings, served):
    _, client = served
    async with models.open_database(settings.database_url, create_schema=False):
        admin = await models.tokens.create_token("ops", models.TokenRole.ADMIN)
        moderator = await models.tokens.create_token("mod", models.TokenRole.MODERATOR)
        stored = [row.token_hash for row in await models.tokens.list_tokens()]
    assert admin not in stored
    assert moderator not in stored

    petition = await create_petition(AsGql(client, admin))
    strike = {"petitionId": petition["id"], "emailDomain": "example.org", "status": "INVALID"}
    by_moderator = await client(STRIKE, {"input": strike}, token=moderator)
    queue = await client("{ moderationQueue(status: HELD) { totalCount } }", token=moderator)

    assert by_moderator["strikeSignatures"]["errors"][0]["code"] == "UNAUTHORIZED"
    assert queue["moderationQueue"]["totalCount"] == 0
    async with models.open_database(settings.database_url, create_schema=False):
        assert await models.tokens.revoke_token("ops") is True
    after = await client(STRIKE, {"input": strike}, token=admin)
    assert after["strikeSignatures"]["errors"][0]["code"] == "UNAUTHORIZED"
