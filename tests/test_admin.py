"""Admin mutations: the bearer token, slugs, drafts, and what updatePetition changes."""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from server import create_app
from tests.conftest import ADMIN_TOKEN
from tests.factories import create_petition, petition_input, sign

PETITION_FIELDS = """
  id slug title target goal body letter imageUrl imageCredit status
  signatureGoal signatureCount commentCount createdAt closesAt
"""

CREATE = f"""
mutation Create($input: CreatePetitionInput!) {{
  createPetition(input: $input) {{
    petition {{ {PETITION_FIELDS} }}
    errors {{ field message code }}
  }}
}}
"""

UPDATE = f"""
mutation Update($input: UpdatePetitionInput!) {{
  updatePetition(input: $input) {{
    petition {{ {PETITION_FIELDS} }}
    errors {{ field message code }}
  }}
}}
"""

BY_ID = f"""
query ById($id: ID!) {{ petition(id: $id) {{ {PETITION_FIELDS} }} }}
"""

BY_SLUG = """
query BySlug($slug: String!) { petition(slug: $slug) { id slug status } }
"""

NODE = """
query Node($id: ID!) { node(id: $id) { id ... on Petition { status } } }
"""

LIST = """
query List($status: PetitionStatus) {
  petitions(first: 100, status: $status) { totalCount edges { node { id status } } }
}
"""

SIGNATURES = """
query Signatures($id: ID!) {
  petition(id: $id) { signatureCount signatures(first: 100) { totalCount edges { node { id } } } }
}
"""

SLUG_RULE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def global_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def blamed(errors: list[dict[str, Any]]) -> set[tuple[str | None, str]]:
    return {(error["field"], error["code"]) for error in errors}


async def create(gql: Any, **overrides: Any) -> dict[str, Any]:
    """The whole `createPetition` payload, as admin."""
    result = await gql(CREATE, {"input": petition_input(**overrides)}, admin=True)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["createPetition"]
    return payload


async def update(gql: Any, petition_id: str, **changes: Any) -> dict[str, Any]:
    """The whole `updatePetition` payload, as admin."""
    result = await gql(UPDATE, {"input": {"id": petition_id, **changes}}, admin=True)
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["updatePetition"]
    return payload


async def read(gql: Any, petition_id: str, *, admin: bool = True) -> dict[str, Any]:
    result = await gql(BY_ID, {"id": petition_id}, admin=admin)
    assert "errors" not in result, result
    petition: dict[str, Any] = result["data"]["petition"]
    return petition


async def all_petitions(gql: Any) -> int:
    result = await gql(LIST, admin=True)
    total: int = result["data"]["petitions"]["totalCount"]
    return total


def hours_from_now(hours: int, offset_hours: int = 0) -> str:
    """An instant `hours` away (negative: in the past), in ISO 8601 at the given UTC offset."""
    moment = datetime.now(UTC) + timedelta(hours=hours)
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def same_instant(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


# --- who may ------------------------------------------------------------------------------

# Requests that must not count as admin: no header, a wrong token, another scheme.
NOT_ADMIN = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    {"Authorization": "Bearer "},
    {"Authorization": ADMIN_TOKEN},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": f"Token {ADMIN_TOKEN}"},
    {"X-Admin-Token": ADMIN_TOKEN},
]


async def post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def test_admin_mutations_without_the_admin_token_are_unauthorized(gql, http):
    # given
    existing = await create_petition(gql)
    before = await read(gql, existing["id"])

    for headers in NOT_ADMIN:
        # when
        created = await post(http, CREATE, {"input": petition_input()}, headers)
        changes = {"id": existing["id"], "title": "Hi"}
        updated = await post(http, UPDATE, {"input": changes}, headers)

        # then
        for payload in (created["createPetition"], updated["updatePetition"]):
            assert payload["petition"] is None, headers
            [error] = payload["errors"]
            assert (error["field"], error["code"]) == (None, "UNAUTHORIZED"), headers
            assert error["message"]
    assert await all_petitions(gql) == 1
    assert await read(gql, existing["id"]) == before


async def test_with_no_admin_token_configured_no_admin_mutation_is_possible(settings):
    app = create_app(replace(settings, admin_token=None))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
                data = await post(http, CREATE, {"input": petition_input()}, headers)

                assert blamed(data["createPetition"]["errors"]) == {(None, "UNAUTHORIZED")}


async def test_the_admin_token_creates_an_open_petition_by_default(gql):
    payload = await create(gql, letter="Dear council,", imageCredit="Wallpaper Flare")

    assert payload["errors"] == []
    petition = payload["petition"]
    assert petition["status"] == "OPEN"
    assert petition["signatureCount"] == 0
    assert petition["commentCount"] == 0
    assert petition["letter"] == "Dear council,"
    assert petition["imageCredit"] == "Wallpaper Flare"
    assert await read(gql, petition["id"], admin=False) == petition


# --- slugs --------------------------------------------------------------------------------


DERIVED_SLUGS = [
    ("Save the Library: Open on Sundays!", "save-the-library-open-on-sundays"),
    ("  Café Zoë in Köln — 2026  ", "cafe-zoe-in-koln-2026"),
    ("STOP   the__bulldozers!!!", "stop-the-bulldozers"),
]


async def test_the_slug_is_derived_from_the_title(gql):
    for title, slug in DERIVED_SLUGS:
        payload = await create(gql, title=title)

        assert payload["errors"] == []
        assert payload["petition"]["slug"] == slug
        found = await gql(BY_SLUG, {"slug": slug})
        assert found["data"]["petition"]["id"] == payload["petition"]["id"]


async def test_a_title_with_no_latin_letters_still_gets_a_url_safe_slug(gql):
    first = await create(gql, title="Ελλάδα για όλους")
    second = await create(gql, title="Ελλάδα για όλους")

    slugs = [first["petition"]["slug"], second["petition"]["slug"]]
    assert all(SLUG_RULE.match(slug) for slug in slugs), slugs
    assert slugs[0] != slugs[1]


async def test_petitions_with_the_same_title_get_different_slugs(gql):
    long_title = "Save the " + "very " * 36 + "old library"
    assert len(long_title) == 200  # the longest title there may be
    for title in ("Save the library", long_title):
        # when
        payloads = [await create(gql, title=title) for _ in range(3)]

        # then
        slugs = [payload["petition"]["slug"] for payload in payloads]
        assert len(set(slugs)) == 3, slugs
        for slug, payload in zip(slugs, payloads, strict=True):
            assert SLUG_RULE.match(slug), slug
            assert len(slug) <= 100
            found = await gql(BY_SLUG, {"slug": slug})
            assert found["data"]["petition"]["id"] == payload["petition"]["id"]


async def test_petitions_with_the_same_title_created_at_once_get_different_slugs(gql):
    payloads = await asyncio.gather(*(create(gql, title="Save the pier") for _ in range(6)))

    assert [payload["errors"] for payload in payloads] == [[]] * 6
    slugs = {payload["petition"]["slug"] for payload in payloads}
    assert len(slugs) == 6, slugs
    assert all(SLUG_RULE.match(slug) for slug in slugs), slugs


async def test_an_explicit_slug_is_kept(gql):
    payload = await create(gql, title="Something else entirely", slug="keep-sundays-2026")

    assert payload["errors"] == []
    assert payload["petition"]["slug"] == "keep-sundays-2026"


async def test_a_derived_slug_steps_around_an_explicit_one(gql):
    await create(gql, slug="save-the-park")

    payload = await create(gql, title="Save the park")

    assert payload["errors"] == []
    assert payload["petition"]["slug"] != "save-the-park"
    assert SLUG_RULE.match(payload["petition"]["slug"])


async def test_an_explicit_slug_that_is_taken_is_refused(gql):
    # given
    derived = (await create(gql, title="Save the pool"))["petition"]["slug"]
    await create(gql, slug="save-the-lake")

    for taken in (derived, "save-the-lake"):
        # when
        payload = await create(gql, slug=taken)

        # then
        assert payload["petition"] is None
        assert blamed(payload["errors"]) == {("slug", "INVALID_INPUT")}
    assert await all_petitions(gql) == 2


INVALID_SLUGS = [
    "Has-Caps",
    "with space",
    "double--dash",
    "-leading-dash",
    "trailing-dash-",
    "under_score",
    "a/b",
    "caf\u00e9",
    "why?",
    "s" * 101,
]


async def test_an_invalid_slug_is_refused(gql):
    for slug in INVALID_SLUGS:
        payload = await create(gql, slug=slug)

        assert payload["petition"] is None, slug
        assert blamed(payload["errors"]) == {("slug", "INVALID_INPUT")}, slug
    assert await all_petitions(gql) == 0


# --- image URLs ---------------------------------------------------------------------------


async def test_an_image_url_may_be_http_or_https(gql):
    for url in ("https://example.org/a.jpg", "http://example.org/b.png?size=2"):
        payload = await create(gql, imageUrl=url)

        assert payload["errors"] == [], url
        assert payload["petition"]["imageUrl"] == url


NOT_HTTP_URLS = [
    "ftp://example.org/a.jpg",
    "javascript:alert(1)",
    "data:image/png;base64,AAAA",
    "example.org/a.jpg",
    "//example.org/a.jpg",
    "https://",
    "https://exa mple.org/a.jpg",
    "https://example.org/\na.jpg",
]


async def test_an_image_url_that_is_not_http_is_refused(gql):
    existing = (await create(gql))["petition"]

    for url in NOT_HTTP_URLS:
        created = await create(gql, imageUrl=url)
        updated = await update(gql, existing["id"], imageUrl=url)

        for payload in (created, updated):
            assert payload["petition"] is None, url
            assert blamed(payload["errors"]) == {("imageUrl", "INVALID_INPUT")}, url
    assert await all_petitions(gql) == 1
    assert (await read(gql, existing["id"]))["imageUrl"] is None


# --- drafts -------------------------------------------------------------------------------


async def test_a_draft_is_invisible_to_non_admins(gql):
    # given
    draft = await create_petition(gql, status="DRAFT")
    shown = await create_petition(gql)

    # when
    by_slug = await gql(BY_SLUG, {"slug": draft["slug"]})
    by_id = await gql(BY_ID, {"id": draft["id"]})
    node = await gql(NODE, {"id": draft["id"]})
    listed = await gql(LIST)
    drafts = await gql(LIST, {"status": "DRAFT"})

    # then
    assert by_slug["data"]["petition"] is None
    assert by_id["data"]["petition"] is None
    assert node["data"]["node"] is None
    assert listed["data"]["petitions"] == {
        "totalCount": 1,
        "edges": [{"node": {"id": shown["id"], "status": "OPEN"}}],
    }
    assert drafts["data"]["petitions"] == {"totalCount": 0, "edges": []}


async def test_a_draft_is_visible_to_admins(gql):
    # given
    draft = await create_petition(gql, status="DRAFT")
    shown = await create_petition(gql)

    # when
    by_slug = await gql(BY_SLUG, {"slug": draft["slug"]}, admin=True)
    by_id = await gql(BY_ID, {"id": draft["id"]}, admin=True)
    node = await gql(NODE, {"id": draft["id"]}, admin=True)
    listed = await gql(LIST, admin=True)
    drafts = await gql(LIST, {"status": "DRAFT"}, admin=True)

    # then
    assert by_slug["data"]["petition"] == {
        "id": draft["id"],
        "slug": draft["slug"],
        "status": "DRAFT",
    }
    assert by_id["data"]["petition"]["status"] == "DRAFT"
    assert node["data"]["node"] == {"id": draft["id"], "status": "DRAFT"}
    assert listed["data"]["petitions"]["totalCount"] == 2
    assert [edge["node"]["id"] for edge in listed["data"]["petitions"]["edges"]] == [
        shown["id"],
        draft["id"],
    ]
    assert drafts["data"]["petitions"]["edges"] == [
        {"node": {"id": draft["id"], "status": "DRAFT"}}
    ]


async def test_a_petition_turned_into_a_draft_hides_its_signatures(gql):
    # given
    petition = await create_petition(gql)
    signature_id = (await sign(gql, petition["id"], 1))["signature"]["id"]

    # when
    payload = await update(gql, petition["id"], status="DRAFT")

    # then
    assert payload["petition"]["status"] == "DRAFT"
    assert (await gql(NODE, {"id": signature_id}))["data"]["node"] is None
    assert (await gql(NODE, {"id": signature_id}, admin=True))["data"]["node"] == {
        "id": signature_id
    }


async def test_publishing_a_draft_makes_it_visible(gql):
    draft = await create_petition(gql, status="DRAFT")

    payload = await update(gql, draft["id"], status="OPEN")

    assert payload["errors"] == []
    found = await gql(BY_SLUG, {"slug": draft["slug"]})
    assert found["data"]["petition"] == {"id": draft["id"], "slug": draft["slug"], "status": "OPEN"}
    assert (await sign(gql, draft["id"], 1))["errors"] == []


# --- updatePetition -----------------------------------------------------------------------


async def test_an_update_changes_the_given_fields_and_keeps_the_others(gql):
    # given
    before = (
        await create(
            gql,
            letter="Dear council,\n\nPlease.",
            imageUrl="https://example.org/a.jpg",
            imageCredit="Wallpaper Flare",
            closesAt=hours_from_now(48),
            signatureGoal=500,
        )
    )["petition"]

    # when
    payload = await update(
        gql, before["id"], title="  A new title ", signatureGoal=2500, body="New\r\nbody"
    )

    # then
    assert payload["errors"] == []
    after = payload["petition"]
    assert after == {
        **before,
        "title": "A new title",
        "signatureGoal": 2500,
        "body": "New\nbody",
        "closesAt": after["closesAt"],
    }
    assert same_instant(after["closesAt"], before["closesAt"])
    assert after["slug"] == before["slug"]  # links to the petition keep working
    assert await read(gql, before["id"]) == after


async def test_null_clears_the_nullable_fields_and_keeps_the_others(gql):
    # given
    before = (
        await create(
            gql,
            letter="Dear council,",
            imageUrl="https://example.org/a.jpg",
            imageCredit="Wallpaper Flare",
            closesAt=hours_from_now(48),
            signatureGoal=500,
        )
    )["petition"]
    nullable = ["letter", "imageUrl", "imageCredit", "closesAt", "signatureGoal"]
    required = ["title", "target", "goal", "body", "status"]

    # when
    payload = await update(gql, before["id"], **dict.fromkeys(nullable + required))

    # then
    assert payload["errors"] == []
    after = payload["petition"]
    assert {name: after[name] for name in nullable} == dict.fromkeys(nullable)
    assert {name: after[name] for name in required} == {name: before[name] for name in required}
    assert await read(gql, before["id"]) == after


async def test_an_update_with_only_the_id_changes_nothing(gql):
    before = (await create(gql, letter="Dear council,", closesAt=hours_from_now(5)))["petition"]

    payload = await update(gql, before["id"])

    assert payload["errors"] == []
    assert payload["petition"] == before


async def test_the_signature_goal_can_be_changed(gql):
    petition = await create_petition(gql, signatureGoal=100)

    for goal in (1, 250_000):
        payload = await update(gql, petition["id"], signatureGoal=goal)

        assert payload["errors"] == []
        assert payload["petition"]["signatureGoal"] == goal
        assert (await read(gql, petition["id"], admin=False))["signatureGoal"] == goal


BAD_UPDATES: list[tuple[dict[str, Any], str]] = [
    ({"title": ""}, "title"),
    ({"title": "New\ntitle"}, "title"),
    ({"target": "T" * 201}, "target"),
    ({"body": "  "}, "body"),
    ({"signatureGoal": 0}, "signatureGoal"),
    ({"signatureGoal": -5}, "signatureGoal"),
    ({"imageCredit": "Photo\tby me"}, "imageCredit"),
]


async def test_a_bad_update_is_refused_and_changes_nothing(gql):
    before = (await create(gql))["petition"]

    for changes, field in BAD_UPDATES:
        payload = await update(gql, before["id"], **changes)

        assert payload["petition"] is None, changes
        assert blamed(payload["errors"]) == {(field, "INVALID_INPUT")}, changes
    assert await read(gql, before["id"]) == before


async def test_an_update_never_changes_the_signature_count(gql):
    # given
    petition = await create_petition(gql)
    for n in range(3):
        await sign(gql, petition["id"], n)

    # when
    payload = await update(gql, petition["id"], title="Renamed", signatureGoal=10, status="OPEN")

    # then
    assert payload["petition"]["signatureCount"] == 3
    counts = await gql(SIGNATURES, {"id": petition["id"]})
    assert counts["data"]["petition"]["signatureCount"] == 3
    assert counts["data"]["petition"]["signatures"]["totalCount"] == 3


async def test_updates_racing_with_signatures_lose_no_signature(gql):
    petition = await create_petition(gql)

    await asyncio.gather(
        *(sign(gql, petition["id"], n) for n in range(12)),
        *(update(gql, petition["id"], signatureGoal=100 + n) for n in range(6)),
    )

    counts = await gql(SIGNATURES, {"id": petition["id"]})
    data = counts["data"]["petition"]
    assert data["signatureCount"] == 12
    assert len(data["signatures"]["edges"]) == 12


async def test_an_update_of_an_unknown_id_is_not_found(gql):
    petition = await create_petition(gql)
    signature_id = (await sign(gql, petition["id"], 1))["signature"]["id"]

    for unknown in (global_id("Petition", 99999), signature_id):
        payload = await update(gql, unknown, title="Renamed")

        assert payload["petition"] is None
        assert blamed(payload["errors"]) == {("id", "NOT_FOUND")}


async def test_an_update_of_a_malformed_id_is_invalid_input(gql):
    for bad_id in ("", "!!", "42", "UGV0aXRpb246"):  # the last is "Petition:" without a key
        payload = await update(gql, bad_id, title="Renamed")

        assert payload["petition"] is None, bad_id
        assert blamed(payload["errors"]) == {("id", "INVALID_INPUT")}, bad_id


@pytest.mark.parametrize("offset_hours", [0, 14, -12])
async def test_an_update_of_closes_at_to_the_past_closes_the_petition(gql, offset_hours):
    # given
    petition = await create_petition(gql)
    await create_petition(gql)

    # when
    payload = await update(gql, petition["id"], closesAt=hours_from_now(-1, offset_hours))

    # then
    assert payload["petition"]["status"] == "CLOSED"
    closed = (await gql(LIST, {"status": "CLOSED"}))["data"]["petitions"]
    assert closed["edges"] == [{"node": {"id": petition["id"], "status": "CLOSED"}}]
    opened = (await gql(LIST, {"status": "OPEN"}))["data"]["petitions"]
    assert petition["id"] not in [edge["node"]["id"] for edge in opened["edges"]]
    signed = await sign(gql, petition["id"], 1)
    assert blamed(signed["errors"]) == {("petitionId", "PETITION_CLOSED")}


@pytest.mark.parametrize("offset_hours", [0, 14, -12])
async def test_an_update_of_closes_at_to_the_future_keeps_the_petition_open(gql, offset_hours):
    # given
    petition = await create_petition(gql)

    # when
    payload = await update(gql, petition["id"], closesAt=hours_from_now(1, offset_hours))

    # then
    assert payload["petition"]["status"] == "OPEN"
    opened = (await gql(LIST, {"status": "OPEN"}))["data"]["petitions"]
    assert opened["edges"] == [{"node": {"id": petition["id"], "status": "OPEN"}}]
    assert (await gql(LIST, {"status": "CLOSED"}))["data"]["petitions"]["totalCount"] == 0


# --- finding one petition -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param("{ petition { id } }", {}, id="neither"),
        pytest.param("{ petition(id: null, slug: null) { id } }", {}, id="both-null"),
        pytest.param(
            "query($id: ID!, $slug: String!) { petition(id: $id, slug: $slug) { id } }",
            None,
            id="both",
        ),
    ],
)
async def test_petition_needs_exactly_one_of_slug_and_id(gql, query, variables):
    petition = await create_petition(gql)
    if variables is None:
        variables = {"id": petition["id"], "slug": petition["slug"]}

    result = await gql(query, variables)

    assert result["data"] == {"petition": None}
    [error] = result["errors"]
    assert "slug" in error["message"]
    assert error["path"] == ["petition"]
