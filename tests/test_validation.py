"""Input rules: every refusal is data that names the field to fix, and stores nothing."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from email_validator import EmailNotValidError, validate_email

from models.text import normalized_email
from tests.factories import (
    ADD_COMMENT,
    CREATE_PETITION,
    SIGN,
    create_petition,
    petition_input,
    sign,
    signer,
)

STORED = """
query Stored($id: ID!) {
  petition(id: $id) {
    status
    signatureCount
    commentCount
    signatures(first: 100) { totalCount edges { node { id name country comment } } }
    comments(first: 100) { totalCount edges { node { id authorName body } } }
  }
}
"""

PETITION_STATUS = """
query Status($id: ID!) { petition(id: $id) { status } }
"""

PETITIONS_BY_STATUS = """
query Listed($status: PetitionStatus) {
  petitions(first: 100, status: $status) { totalCount edges { node { id status } } }
}
"""

PETITION_TEXTS = """
query Texts($id: ID!) { petition(id: $id) { title target goal body letter } }
"""

ALL_PETITIONS = "{ petitions(first: 100) { totalCount } }"

SECRET_EMAIL = "secret.person@example.org"


def global_id(type_name: str, pk: int) -> str:
    """A well-formed Relay ID, built the way the service builds them (unpadded base64url)."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def commenter(petition_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "petitionId": petition_id,
        "authorName": "Grace Hopper",
        "email": "grace@example.org",
        "body": "Count me in.",
        **overrides,
    }


async def comment(gql: Any, petition_id: str, **overrides: Any) -> dict[str, Any]:
    result = await gql(ADD_COMMENT, {"input": commenter(petition_id, **overrides)})
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["addComment"]
    return payload


async def stored(gql: Any, petition_id: str) -> dict[str, Any]:
    """Everything a refused write could have changed, as an admin reads it."""
    result = await gql(STORED, {"id": petition_id}, admin=True)
    assert "errors" not in result, result
    petition: dict[str, Any] = result["data"]["petition"]
    return petition


def blamed(errors: list[dict[str, Any]]) -> set[tuple[str | None, str]]:
    return {(error["field"], error["code"]) for error in errors}


def at_offset(moment: datetime, hours: int) -> str:
    """`moment` written as ISO 8601 at another UTC offset (the same instant)."""
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat()


@pytest.fixture
async def petition(gql):
    """An open petition that already holds one signature and one comment."""
    created = await create_petition(gql)
    assert (await sign(gql, created["id"], 1))["errors"] == []
    assert (await comment(gql, created["id"]))["errors"] == []
    return created


# --- signPetition -------------------------------------------------------------------------

# Each row: a field, and values it must refuse (every one of them on its own).
BAD_SIGNATURES = [
    pytest.param(
        "firstName",
        ["", " \t  ", "A" * 101, "Ada\nMary", "Ada\x00", "Ada\x1b[31m", "Ada\u2028Mary"],
        id="firstName",
    ),
    pytest.param(
        "lastName",
        ["", "\n", "B" * 101, "Love\r\nlace", "Love\tlace", "\u202eecalevoL"],
        id="lastName",
    ),
    pytest.param(
        "email",
        [
            "",
            "not-an-email",
            "a@b",
            "ada@@example.org",
            "ada lovelace@example.org",
            "ada\n@example.org",
            "ada@exa\tmple.org",
            "a" * 250 + "@example.org",
        ],
        id="email",
    ),
    pytest.param(
        "country",
        # ZZ and XX are user-assigned, UK and EU reserved: none is an assigned country code
        ["GBR", "1A", "G", "United Kingdom", "g\tb", "ZZ", "zz", "XX", "UK", "EU"],
        id="country",
    ),
    pytest.param("comment", ["x" * 2001, "Yes\x07", "Yes\x7f!"], id="comment"),
]


@pytest.mark.parametrize(("field", "values"), BAD_SIGNATURES)
async def test_a_bad_signature_is_refused_naming_the_field_and_stores_nothing(
    gql, petition, field, values
):
    # given
    before = await stored(gql, petition["id"])

    for value in values:
        # when
        payload = await sign(gql, petition["id"], 2, **{field: value})

        # then
        assert payload["signature"] is None, value
        assert payload["errors"], value
        assert blamed(payload["errors"]) == {(field, "INVALID_INPUT")}, value
        assert all(error["message"].strip() for error in payload["errors"])
    assert await stored(gql, petition["id"]) == before


async def test_texts_at_their_limits_are_accepted_counting_after_normalisation(gql, petition):
    # "e" + combining acute is two code points that NFC makes one "é"
    payload = await sign(
        gql, petition["id"], 2, firstName="A" * 100, lastName="e\u0301" * 100, comment="x" * 2000
    )

    commented = await comment(gql, petition["id"], authorName="G" * 100, body="y" * 5000)

    assert payload["errors"] == []
    assert payload["signature"]["name"] == "A" * 100 + " " + "\u00e9" * 100
    assert payload["signature"]["comment"] == "x" * 2000
    assert commented["errors"] == []
    assert commented["comment"]["body"] == "y" * 5000
    assert commented["petition"]["commentCount"] == 2


async def test_text_is_trimmed_and_nfc_normalised(gql, petition):
    payload = await sign(
        gql,
        petition["id"],
        2,
        firstName="\t Jose\u0301  ",
        lastName=" Mu\u0308ller\n",
        email="  jose@example.org ",
        country=" de ",
        comment="  Cafe\u0301 au lait.  ",
    )

    assert payload["errors"] == []
    signature = payload["signature"]
    assert signature["name"] == "Jos\u00e9 M\u00fcller"
    assert signature["country"] == "DE"
    assert signature["comment"] == "Caf\u00e9 au lait."
    listed = (await stored(gql, petition["id"]))["signatures"]["edges"][0]["node"]
    assert listed == {
        "id": signature["id"],
        "name": "Jos\u00e9 M\u00fcller",
        "country": "DE",
        "comment": "Caf\u00e9 au lait.",
    }


async def test_a_country_is_accepted_in_any_case_and_stored_upper_case(gql, petition):
    for n, given in enumerate(["gb", "Gb", "GB", " us ", "va", "AQ"], start=2):
        payload = await sign(gql, petition["id"], n, country=given)

        assert payload["errors"] == [], given
        assert payload["signature"]["country"] == given.strip().upper()


async def test_an_email_is_checked_for_syntax_only(gql, petition):
    # A domain that does not exist: refusing it would need a DNS lookup, which is not done.
    payload = await sign(gql, petition["id"], 2, email="ada@no-such-domain-7f3a9c.org")

    assert payload["errors"] == []


async def test_a_signature_comment_keeps_its_line_breaks_and_tabs(gql, petition):
    payload = await sign(
        gql, petition["id"], 2, comment="First line\r\n\tindented\n\nlast line\r\n"
    )

    assert payload["errors"] == []
    assert payload["signature"]["comment"] == "First line\n\tindented\n\nlast line"


async def test_every_problem_of_a_signature_is_listed_at_once(gql, petition):
    before = await stored(gql, petition["id"])

    payload = await sign(
        gql,
        petition["id"],
        2,
        firstName="  ",
        lastName="L" * 101,
        email="not-an-email",
        country="GBR",
        comment="x" * 2001,
    )

    assert payload["signature"] is None
    assert sorted(error["field"] for error in payload["errors"]) == [
        "comment",
        "country",
        "email",
        "firstName",
        "lastName",
    ]
    assert {error["code"] for error in payload["errors"]} == {"INVALID_INPUT"}
    assert await stored(gql, petition["id"]) == before


# --- addComment ---------------------------------------------------------------------------

BAD_COMMENTS = [
    pytest.param(
        "authorName", ["", "  \t ", "G" * 101, "Grace\nHopper", "Grace\tHopper"], id="authorName"
    ),
    pytest.param("email", ["not-an-email", "a@b", "grace\r\n@example.org"], id="email"),
    pytest.param(
        "body",
        ["", " \n\t\r\n ", "x" * 5001, "Hello\x00world", "Hello\x0bworld", "Hi\u202e!"],
        id="body",
    ),
]


@pytest.mark.parametrize(("field", "values"), BAD_COMMENTS)
async def test_a_bad_comment_is_refused_naming_the_field_and_stores_nothing(
    gql, petition, field, values
):
    # given
    before = await stored(gql, petition["id"])

    for value in values:
        # when
        payload = await comment(gql, petition["id"], **{field: value})

        # then
        assert payload["comment"] is None, value
        assert payload["errors"], value
        assert blamed(payload["errors"]) == {(field, "INVALID_INPUT")}, value
    assert await stored(gql, petition["id"]) == before


async def test_a_comment_body_keeps_line_breaks_and_tabs_and_is_normalised(gql, petition):
    payload = await comment(
        gql,
        petition["id"],
        authorName="  Zoe\u0308 ",
        body="\n  Dear all,\r\n\n\tsee you the\u0301re.\r\n  ",
    )

    assert payload["errors"] == []
    assert payload["comment"]["authorName"] == "Zo\u00eb"
    assert payload["comment"]["body"] == "Dear all,\n\n\tsee you th\u00e9re."
    comments = (await stored(gql, petition["id"]))["comments"]["edges"]
    assert comments[-1]["node"]["body"] == "Dear all,\n\n\tsee you th\u00e9re."


async def test_every_problem_of_a_comment_is_listed_at_once(gql, petition):
    before = await stored(gql, petition["id"])

    payload = await comment(gql, petition["id"], authorName="", email="a@b", body="x" * 5001)

    assert sorted(error["field"] for error in payload["errors"]) == [
        "authorName",
        "body",
        "email",
    ]
    assert {error["code"] for error in payload["errors"]} == {"INVALID_INPUT"}
    assert await stored(gql, petition["id"]) == before


# --- createPetition -----------------------------------------------------------------------

BAD_PETITIONS = [
    pytest.param("title", ["", "   ", "T" * 201, "Save the\nlibrary"], id="title"),
    pytest.param("target", ["The\tcouncil", "The\u2029council", "The\x85council"], id="target"),
    pytest.param("goal", ["Keep it\r\nopen.", "G" * 501], id="goal"),
    pytest.param("slug", ["save-the\n-library", "save\tit"], id="slug"),
    pytest.param("body", [" \n ", "x" * 20_001, "Hi\x00"], id="body"),
    pytest.param("letter", ["Dear council,\x00", "x" * 20_001], id="letter"),
]


@pytest.mark.parametrize(("field", "values"), BAD_PETITIONS)
async def test_a_bad_petition_is_refused_naming_the_field_and_nothing_is_created(
    gql, field, values
):
    for value in values:
        result = await gql(CREATE_PETITION, {"input": petition_input(**{field: value})}, admin=True)

        payload = result["data"]["createPetition"]
        assert payload["petition"] is None, value
        assert payload["errors"], value
        assert blamed(payload["errors"]) == {(field, "INVALID_INPUT")}, value
    assert (await gql(ALL_PETITIONS, admin=True))["data"]["petitions"]["totalCount"] == 0


async def test_every_problem_of_a_petition_is_listed_at_once(gql):
    overrides = {"title": "", "target": "a\nb", "body": "", "imageUrl": "ftp://example.org/x"}

    result = await gql(CREATE_PETITION, {"input": petition_input(**overrides)}, admin=True)

    errors = result["data"]["createPetition"]["errors"]
    assert sorted(error["field"] for error in errors) == ["body", "imageUrl", "target", "title"]
    assert {error["code"] for error in errors} == {"INVALID_INPUT"}
    assert (await gql(ALL_PETITIONS, admin=True))["data"]["petitions"]["totalCount"] == 0


async def test_petition_texts_are_trimmed_normalised_and_keep_their_line_breaks(gql):
    created = await create_petition(
        gql,
        title="  Save the Cafe\u0301 ",
        target="\tThe council\n",
        goal=" Keep it open. ",
        body="\r\nFirst paragraph.\r\n\r\n\tSecond paragraph.\r\n",
        letter="Dear council,\r\n\r\nPlease.\n",
    )

    result = await gql(PETITION_TEXTS, {"id": created["id"]})

    assert result["data"]["petition"] == {
        "title": "Save the Caf\u00e9",
        "target": "The council",
        "goal": "Keep it open.",
        "body": "First paragraph.\n\n\tSecond paragraph.",
        "letter": "Dear council,\n\nPlease.",
    }


# --- which petition -----------------------------------------------------------------------

# Both mutations that take a `petitionId`: (document, payload name, input for a petition ID).
MUTATIONS = [
    (SIGN, "signPetition", lambda petition_id: signer(petition_id, 2)),
    (ADD_COMMENT, "addComment", lambda petition_id: commenter(petition_id)),
]


async def refusals(gql: Any, petition_id: str) -> dict[str, dict[str, Any]]:
    """Try to sign and to comment with `petition_id`; the payloads by mutation name."""
    payloads = {}
    for document, name, make_input in MUTATIONS:
        result = await gql(document, {"input": make_input(petition_id)})
        assert "errors" not in result, result
        payloads[name] = result["data"][name]
    return payloads


UNDECODABLE_IDS = [
    "",
    "!!not base64!!",
    "42",
    base64.urlsafe_b64encode(b"Petition:one").decode().rstrip("="),
]


async def test_a_petition_id_that_does_not_decode_is_invalid_input(gql, petition):
    before = await stored(gql, petition["id"])

    for bad_id in UNDECODABLE_IDS:
        payloads = await refusals(gql, bad_id)

        for payload in payloads.values():
            assert blamed(payload["errors"]) == {("petitionId", "INVALID_INPUT")}, bad_id
            assert len(payload["errors"]) == 1
    assert await stored(gql, petition["id"]) == before


@pytest.mark.parametrize("kind", ["nothing", "signature", "comment"])
async def test_a_well_formed_id_of_no_petition_is_not_found(gql, petition, kind):
    # given
    listed = await stored(gql, petition["id"])
    ids = {
        "nothing": global_id("Petition", 99999),
        "signature": listed["signatures"]["edges"][0]["node"]["id"],
        "comment": listed["comments"]["edges"][0]["node"]["id"],
    }

    # when
    payloads = await refusals(gql, ids[kind])

    # then
    for payload in payloads.values():
        assert blamed(payload["errors"]) == {("petitionId", "NOT_FOUND")}
        assert payload["petition"] is None
    assert await stored(gql, petition["id"]) == listed


async def test_a_draft_petition_is_not_found(gql):
    draft = await create_petition(gql, status="DRAFT")
    before = await stored(gql, draft["id"])

    payloads = await refusals(gql, draft["id"])

    for payload in payloads.values():
        assert blamed(payload["errors"]) == {("petitionId", "NOT_FOUND")}
        assert payload["petition"] is None  # a draft is not shown, not even in a refusal
    assert await stored(gql, draft["id"]) == before


def an_hour_ago(offset_hours: int = 0) -> str:
    return at_offset(datetime.now(UTC) - timedelta(hours=1), offset_hours)


def in_an_hour(offset_hours: int = 0) -> str:
    return at_offset(datetime.now(UTC) + timedelta(hours=1), offset_hours)


CLOSED = [
    pytest.param(lambda: {"status": "CLOSED"}, id="status-closed"),
    pytest.param(lambda: {"closesAt": an_hour_ago()}, id="closed-an-hour-ago-utc"),
    pytest.param(lambda: {"closesAt": an_hour_ago(14)}, id="closed-an-hour-ago-at-plus-14"),
]


@pytest.mark.parametrize("closing", CLOSED)
async def test_a_closed_petition_refuses_signatures_and_comments(gql, closing):
    closed = await create_petition(gql, **closing())
    before = await stored(gql, closed["id"])

    payloads = await refusals(gql, closed["id"])

    for payload in payloads.values():
        assert blamed(payload["errors"]) == {("petitionId", "PETITION_CLOSED")}
    assert await stored(gql, closed["id"]) == before


@pytest.mark.parametrize("closing", CLOSED)
async def test_a_closed_petition_reads_and_filters_as_closed(gql, closing):
    # given
    closed = await create_petition(gql, **closing())
    await create_petition(gql)

    # when
    status = await gql(PETITION_STATUS, {"id": closed["id"]})
    closed_list = await gql(PETITIONS_BY_STATUS, {"status": "CLOSED"})
    open_list = await gql(PETITIONS_BY_STATUS, {"status": "OPEN"})

    # then
    assert status["data"]["petition"]["status"] == "CLOSED"
    closed_page = closed_list["data"]["petitions"]
    assert closed_page["edges"] == [{"node": {"id": closed["id"], "status": "CLOSED"}}]
    assert closed_page["totalCount"] == 1
    open_page = open_list["data"]["petitions"]
    assert closed["id"] not in [edge["node"]["id"] for edge in open_page["edges"]]
    assert open_page["totalCount"] == 1


async def test_a_petition_before_its_closing_time_reads_filters_and_signs_as_open(gql):
    # given: an hour from now, written at UTC-12 (its clock reads 11 hours before UTC's)
    closing = await create_petition(gql, closesAt=in_an_hour(-12))

    # when
    status = await gql(PETITION_STATUS, {"id": closing["id"]})
    open_list = await gql(PETITIONS_BY_STATUS, {"status": "OPEN"})
    closed_list = await gql(PETITIONS_BY_STATUS, {"status": "CLOSED"})
    signed = await sign(gql, closing["id"], 1)

    # then
    assert status["data"]["petition"]["status"] == "OPEN"
    assert open_list["data"]["petitions"]["edges"] == [
        {"node": {"id": closing["id"], "status": "OPEN"}}
    ]
    assert closed_list["data"]["petitions"]["totalCount"] == 0
    assert signed["errors"] == []


# --- privacy of emails in refusals --------------------------------------------------------


def without(values: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != key}


LEAKS = [
    pytest.param(SIGN, lambda pid: signer(pid, 2, email=SECRET_EMAIL), id="already-signed"),
    pytest.param(
        SIGN, lambda pid: signer(pid, 2, email="secret.person@@example.org"), id="bad-email"
    ),
    pytest.param(
        SIGN,
        lambda pid: signer(global_id("Petition", 99999), 2, email=SECRET_EMAIL),
        id="unknown-petition",
    ),
    pytest.param(
        SIGN,
        lambda pid: without(signer(pid, 2, email=SECRET_EMAIL), "firstName"),
        id="variable-missing-a-field",
    ),
    pytest.param(
        SIGN,
        lambda pid: signer(pid, 2, email=SECRET_EMAIL, firstName=7),
        id="variable-of-a-wrong-type",
    ),
    pytest.param(
        SIGN,
        lambda pid: signer(pid, 2, email=SECRET_EMAIL, nickname="Ada"),
        id="variable-with-an-unknown-field",
    ),
    pytest.param(
        ADD_COMMENT,
        lambda pid: commenter(pid, email="secret.person@@example.org"),
        id="comment-bad-email",
    ),
    pytest.param(
        ADD_COMMENT,
        lambda pid: without(commenter(pid, email=SECRET_EMAIL), "body"),
        id="comment-variable-missing-a-field",
    ),
]


@pytest.mark.parametrize(("document", "make_input"), LEAKS)
async def test_no_refusal_repeats_the_email_in_a_response_or_a_log_line(
    gql, http, caplog, document, make_input
):
    # given
    petition = await create_petition(gql)
    assert (await sign(gql, petition["id"], 1, email=SECRET_EMAIL))["errors"] == []
    caplog.set_level(logging.INFO)  # what `petitions serve` logs

    # when
    response = await http.post(
        "/graphql", json={"query": document, "variables": {"input": make_input(petition["id"])}}
    )

    # then
    body = response.json()
    refused = body.get("errors") or next(iter(body["data"].values()))["errors"]
    assert refused, body  # it was refused...
    assert "secret" not in response.text.lower()  # ...without naming the email
    assert "secret" not in caplog.text.lower()


# --- page sizes ---------------------------------------------------------------------------


# Each: a query asking for a page size out of range, and the argument to blame.
OUT_OF_RANGE_PAGES = [
    ("{ petitions(first: 101) { totalCount } }", "first"),
    ("{ petitions(last: -1) { totalCount } }", "last"),
    ("query($id: ID!) { petition(id: $id) { signatures(first: -1) { totalCount } } }", "first"),
    ("query($id: ID!) { petition(id: $id) { comments(last: 101) { totalCount } } }", "last"),
]


async def test_a_page_size_outside_0_to_100_is_a_graphql_error(gql, petition):
    for query, argument in OUT_OF_RANGE_PAGES:
        result = await gql(query, {"id": petition["id"]} if "$id" in query else {})

        [error] = result["errors"]
        assert argument in error["message"], query
        assert "100" in error["message"], query
        assert "Traceback" not in str(result)


async def test_page_sizes_of_0_and_100_are_accepted(gql, petition):
    result = await gql(
        "query($id: ID!) { petitions(first: 0) { totalCount edges { cursor } }"
        " petition(id: $id) { signatures(last: 100) { totalCount } } }",
        {"id": petition["id"]},
    )

    assert "errors" not in result, result
    assert result["data"]["petitions"] == {"totalCount": 1, "edges": []}
    assert result["data"]["petition"]["signatures"]["totalCount"] == 1


def test_plain_addresses_are_normalized_exactly_as_email_validator_does():
    """`normalized_email` answers plain addresses from a kept verdict on their domain: the
    same address, or the same refusal, as email-validator's for every one of these."""
    addresses = [
        "ada@example.org",
        "Ada.Lovelace+petitions@Example.ORG",
        "a_b%c-d@sub.example.co.uk",
        "x..y@example.org",
        ".x@example.org",
        "x.@example.org",
        "x@example.org.",
        "x@-example.org",
        "x@example..org",
        "x@localhost",
        "x@example.invalid",
        "x@something.test",
        "x@xn--bcher-kva.example",
        "x@bücher.example",
        "ü@example.org",
        "l" * 64 + "@example.org",
        "l" * 65 + "@example.org",
        "x@" + "d" * 63 + ".example.org",
        "x@" + "d" * 64 + ".example.org",
        "x@" + ".".join(["d" * 60] * 4) + ".org",
        "x@example",
        "x@123.example.org",
        '"quoted"@example.org',
    ]
    for address in addresses:
        try:
            expected: str | type[Exception] = validate_email(
                address, check_deliverability=False
            ).normalized
        except EmailNotValidError:
            expected = EmailNotValidError
        try:
            got: str | type[Exception] = normalized_email(address)
        except EmailNotValidError:
            got = EmailNotValidError
        assert got == expected, address
        # and a second time, from the kept verdict
        try:
            again: str | type[Exception] = normalized_email(address)
        except EmailNotValidError:
            again = EmailNotValidError
        assert again == expected, address
