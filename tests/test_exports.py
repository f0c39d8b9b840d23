"""Exports: admins download a petition's valid signatures, oldest first, as CSV or JSON,
streamed as they are read, through the real app."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

import models
from models.exports import export, spreadsheet_safe
from models.migrations import migrate
from models.tokens import create_token
from server import Settings, create_app
from tests.conftest import ADMIN_TOKEN, running_server
from tests.factories import create_petition, sign

EXPORT_PATH = "/petitions/{slug}/signatures.{format}"
HEADER = ["number", "name", "country", "comment", "signedAt"]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

SIGNATURES_PAGE = """
query Page($slug: String!, $after: String) {
  petition(slug: $slug) {
    signatureCount
    signatures(first: 100, after: $after) {
      edges { node { name country comment createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    """The app's database, current in the test for the block (requests are made outside it,
    so that only the app's own context serves them)."""
    async with models.open_database(settings.database_url, create_schema=False):
        yield


_serial = itertools.count(1)


def signature(petition: models.Petition, number: int | None, **overrides: Any) -> models.Signature:
    n = next(_serial)
    email = overrides.pop("email", f"export{n}@example.org")
    fields: dict[str, Any] = {
        "petition_id": petition.id,
        "number": number,
        "status": models.SignatureStatus.VALID,
        "first_name": f"Signer{n}",
        "last_name": "Example",
        "email": email,
        "email_canonical": email.lower(),
        "email_domain": email.rpartition("@")[2],
        **overrides,
    }
    return models.Signature(**fields)


async def petition_with(settings: Settings, *rows: dict[str, Any], **fields: Any) -> str:
    """A petition (open unless told) with signatures made from `rows` in the order given;
    returns its slug."""
    slug = fields.pop("slug", f"export-{next(_serial)}")
    async with database(settings):
        petition = await models.Petition.create(
            slug=slug, title="Export me", target="The council", goal="Count", body="…", **fields
        )
        for row in rows:
            await signature(petition, **row).save()
    return slug


async def get_export(
    http: httpx.AsyncClient, slug: str, fmt: str, *, headers: dict[str, str] | None = None, **q: str
) -> httpx.Response:
    return await http.get(
        f"/petitions/{slug}/signatures.{fmt}",
        params=q,
        headers=ADMIN if headers is None else headers,
    )


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


MIXED = (
    {"number": 3, "first_name": "Grace", "last_name": "Hopper", "country": "US"},
    {"number": 1, "first_name": "Ada", "last_name": "Lovelace", "country": "GB"},
    {"number": 2, "status": models.SignatureStatus.INVALID, "first_name": "Struck"},
    {"number": None, "status": models.SignatureStatus.QUARANTINED, "first_name": "Held"},
    {"number": None, "status": models.SignatureStatus.PENDING, "first_name": "Waiting"},
    {"number": 7, "first_name": "Hidden", "show_name": False, "comment": "Count me in,\n twice"},
)


async def test_csv_lists_every_valid_signature_oldest_first_under_a_header(settings, http):
    # given valid signatures numbered with gaps, stored out of order, beside others
    slug = await petition_with(settings, *MIXED)

    # when
    response = await get_export(http, slug, "csv")

    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["content-disposition"] == f'attachment; filename="{slug}-signatures.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    rows = read_csv(response.text)
    assert rows[0] == HEADER
    assert [row[:4] for row in rows[1:]] == [
        ["1", "Ada Lovelace", "GB", ""],
        ["3", "Grace Hopper", "US", ""],
        ["7", "Anonymous", "", "Count me in,\n twice"],
    ]
    for row in rows[1:]:
        assert datetime.fromisoformat(row[4]).utcoffset().total_seconds() == 0
    for excluded in ("Struck", "Held", "Waiting", "Hidden", "@example.org"):
        assert excluded not in response.text


async def test_json_is_an_array_of_the_same_rows(settings, http):
    slug = await petition_with(settings, *MIXED)

    as_csv = read_csv((await get_export(http, slug, "csv")).text)
    response = await get_export(http, slug, "json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert (
        response.headers["content-disposition"] == f'attachment; filename="{slug}-signatures.json"'
    )
    assert response.headers["cache-control"] == "no-store"
    items = response.json()
    assert [list(item) for item in items] == [HEADER] * 3
    assert [(item["number"], item["name"], item["country"], item["comment"]) for item in items] == [
        (1, "Ada Lovelace", "GB", None),
        (3, "Grace Hopper", "US", None),
        (7, "Anonymous", None, "Count me in,\n twice"),
    ]
    assert [item["signedAt"] for item in items] == [row[4] for row in as_csv[1:]]


async def test_a_petition_without_valid_signatures_exports_a_header_or_an_empty_array(
    settings, http
):
    slug = await petition_with(settings, MIXED[3])

    assert read_csv((await get_export(http, slug, "csv")).text) == [HEADER]
    assert (await get_export(http, slug, "json")).json() == []


async def test_emails_true_adds_the_email_column(settings, http):
    slug = await petition_with(
        settings,
        {"number": 1, "email": "ada@example.org"},
        {"number": 2, "email": "+tag@example.org", "show_name": False},
    )

    rows = read_csv((await get_export(http, slug, "csv", emails="true")).text)
    items = (await get_export(http, slug, "json", emails="true")).json()

    assert rows[0] == [*HEADER, "email"]
    assert [row[5] for row in rows[1:]] == ["ada@example.org", "'+tag@example.org"]
    assert [list(item) for item in items] == [[*HEADER, "email"]] * 2
    assert [item["email"] for item in items] == ["ada@example.org", "+tag@example.org"]
    for emails in ({}, {"emails": "false"}):
        for fmt in ("csv", "json"):
            assert "@example.org" not in (await get_export(http, slug, fmt, **emails)).text


async def test_cells_a_spreadsheet_would_run_are_prefixed_with_a_quote(settings, gql, http):
    # given signers whose names and comments read as formulas, signed through the API
    petition = await create_petition(gql)
    formulas = ['=HYPERLINK("x")', "+1", "-2", "@SUM(1)"]
    for n, formula in enumerate(formulas):
        payload = await sign(gql, petition["id"], n, firstName=formula, comment=formula)
        assert payload["errors"] == [], payload
    await sign(gql, petition["id"], 9, firstName="Plain", comment="1+1=2")

    # when
    rows = read_csv((await get_export(http, petition["slug"], "csv")).text)
    items = (await get_export(http, petition["slug"], "json")).json()

    # then the CSV shows them as text; the JSON keeps them as they are
    assert [(row[1], row[3]) for row in rows[1:]] == [
        *((f"'{formula} Example", f"'{formula}") for formula in formulas),
        ("Plain Example", "1+1=2"),
    ]
    assert [(item["name"], item["comment"]) for item in items] == [
        *((f"{formula} Example", formula) for formula in formulas),
        ("Plain Example", "1+1=2"),
    ]


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ada = 1", "Ada = 1"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_spreadsheet_safe_prefixes_only_what_starts_a_formula(cell, shown):
    assert spreadsheet_safe(cell) == shown


async def test_the_export_agrees_with_the_public_list_of_the_demo_petition(settings, gql, http):
    async with database(settings):
        await models.load_demo()
    listed, after = [], None
    while True:
        page = await gql(SIGNATURES_PAGE, {"slug": models.DEMO_SLUG, "after": after})
        petition = page["data"]["petition"]
        listed += [edge["node"] for edge in petition["signatures"]["edges"]]
        if not petition["signatures"]["pageInfo"]["hasNextPage"]:
            break
        after = petition["signatures"]["pageInfo"]["endCursor"]

    items = (await get_export(http, models.DEMO_SLUG, "json")).json()
    rows = read_csv((await get_export(http, models.DEMO_SLUG, "csv")).text)

    assert len(items) == len(rows) - 1 == petition["signatureCount"] == 241
    oldest_first = list(reversed(listed))
    assert [item["name"] for item in items] == [node["name"] for node in oldest_first]
    assert [item["country"] for item in items] == [node["country"] for node in oldest_first]
    assert [item["comment"] for item in items] == [node["comment"] for node in oldest_first]
    assert [datetime.fromisoformat(item["signedAt"]) for item in items] == [
        datetime.fromisoformat(node["createdAt"]) for node in oldest_first
    ]
    numbers = [item["number"] for item in items]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 241
    assert [row[0] for row in rows[1:]] == [str(number) for number in numbers]


async def test_admins_export_drafts_too(settings, http):
    slug = await petition_with(settings, {"number": 1}, status=models.PetitionStatus.DRAFT)

    assert len((await get_export(http, slug, "json")).json()) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN, "Bearer ", "moderator"],
)
async def test_without_an_admin_token_the_answer_is_401_and_no_data(settings, http, authorization):
    slug = await petition_with(settings, {"number": 1, "first_name": "Secret"})
    if authorization == "moderator":
        async with database(settings):
            token = await create_token("moderation", models.TokenRole.MODERATOR)
        authorization = f"Bearer {token}"
    headers = {} if authorization is None else {"Authorization": authorization}

    for fmt in ("csv", "json"):
        response = await get_export(http, slug, fmt, headers=headers, emails="true")

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert set(response.json()) == {"error"}
        assert "Secret" not in response.text
        assert "@example.org" not in response.text


async def test_a_stored_admin_token_exports(settings, http):
    slug = await petition_with(settings, {"number": 1})
    async with database(settings):
        token = await create_token("exporter", models.TokenRole.ADMIN)

    response = await get_export(http, slug, "csv", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


async def test_an_unknown_slug_or_format_is_404(settings, http):
    slug = await petition_with(settings, {"number": 1})

    unknown = await get_export(http, "no-such-petition", "csv")
    xml = await get_export(http, slug, "xml")
    unknown_anonymous = await get_export(http, "no-such-petition", "csv", headers={})

    assert unknown.status_code == 404
    assert set(unknown.json()) == {"error"}
    assert xml.status_code == 404
    assert unknown_anonymous.status_code == 401  # no one learns which slugs exist


async def many_signatures(settings: Settings, count: int) -> str:
    slug = await petition_with(settings)
    async with database(settings):
        petition = await models.Petition.get(slug=slug)
        await models.Signature.bulk_create(
            [
                signature(
                    petition, n, first_name=f"Bulk{n}", comment="=cmd" if n % 1000 == 0 else None
                )
                for n in range(1, count + 1)
            ],
            batch_size=1000,
        )
    return slug


async def asgi_get(app: Any, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The ASGI messages the app sends for one GET (httpx's ASGI transport joins the body)."""
    messages: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages


async def test_10000_signatures_stream_a_part_per_batch_read_as_the_body_is_sent(settings, app):
    # given
    slug = await many_signatures(settings, 10_000)

    # when
    messages = await asgi_get(app, f"/petitions/{slug}/signatures.csv", ADMIN)

    # then the header, then a part for each batch of 2,000 rows: every batch was read from the
    # database after the handler had returned its response, in the app's database context
    assert messages[0]["status"] == 200
    parts = [m["body"] for m in messages[1:] if m["type"] == "http.response.body" and m["body"]]
    assert len(parts) == 6
    assert parts[0] == b"number,name,country,comment,signedAt\r\n"
    rows = read_csv(b"".join(parts).decode())
    assert rows[0] == HEADER
    assert [int(row[0]) for row in rows[1:]] == list(range(1, 10_001))
    assert rows[1000][1:4] == ["Bulk1000 Example", "", "'=cmd"]


async def test_10000_signatures_arrive_whole_from_a_real_server(settings):
    await migrate(settings.database_url)  # as `petitions serve` does on SQLite
    slug = await many_signatures(settings, 10_000)

    async with (
        running_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN) as client,
    ):
        csv_response = await client.get(f"/petitions/{slug}/signatures.csv")
        json_response = await client.get(f"/petitions/{slug}/signatures.json")

    for response in (csv_response, json_response):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"  # streamed, not buffered
        assert "content-length" not in response.headers
    rows = read_csv(csv_response.text)
    items = json_response.json()
    assert len(rows) == 10_001
    assert len(items) == 10_000
    assert [item["number"] for item in items] == list(range(1, 10_001))
    assert [row[1] for row in rows[1:]] == [item["name"] for item in items]


async def test_the_command_line_export_writes_what_the_route_serves(settings, http):
    slug = await petition_with(settings, *MIXED)
    served = (await get_export(http, slug, "csv", emails="true")).text
    written: list[str] = []
    progress: list[int] = []

    async with database(settings):
        count = await export(
            slug, "csv", emails=True, write=written.append, progress=progress.append
        )
        with pytest.raises(LookupError):
            await export("no-such-petition", "json", emails=False, write=written.append)

    assert "".join(written) == served
    assert count == sum(progress) == 3
