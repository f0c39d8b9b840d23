"""Lists are Relay connections with keyset cursors: stable while new items arrive."""

from __future__ import annotations

import pytest

import models
from schema.ids import cursor
from tests.factories import ADD_COMMENT, create_petition, sign

SIGNATURES_PAGE = """
query Page($slug: String!, $first: Int, $after: String, $last: Int, $before: String) {
  petition(slug: $slug) {
    signatureCount
    signatures(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      edges { cursor node { id name createdAt } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


@pytest.fixture
async def demo(settings, app):
    """The demo petition (241 signatures), loaded while the app runs."""
    async with models.open_database(settings.database_url):
        petition = await models.load_demo()
    return petition


async def read_page(gql, **arguments):
    result = await gql(SIGNATURES_PAGE, {"slug": models.DEMO_SLUG, **arguments})
    assert "errors" not in result, result
    return result["data"]["petition"]["signatures"]


async def test_241_signers_page_10_at_a_time_in_25_pages_none_repeated(gql, demo):
    pages, after = [], None
    while True:
        page = await read_page(gql, first=10, after=after)
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    ids = [edge["node"]["id"] for page in pages for edge in page["edges"]]
    assert len(pages) == 25
    assert len(ids) == len(set(ids)) == 241
    assert [len(page["edges"]) for page in pages] == [10] * 24 + [1]
    assert pages[0]["pageInfo"]["hasPreviousPage"] is False
    assert all(page["pageInfo"]["hasPreviousPage"] for page in pages[1:])
    assert all(page["totalCount"] == 241 for page in pages)
    times = [edge["node"]["createdAt"] for page in pages for edge in page["edges"]]
    assert times == sorted(times, reverse=True)


async def test_paging_backward_reads_the_same_list_from_the_end(gql, demo):
    forward, after = [], None
    for _ in range(25):
        page = await read_page(gql, first=10, after=after)
        forward += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]

    backward, before = [], None
    for _ in range(25):
        page = await read_page(gql, last=10, before=before)
        backward = [edge["node"]["id"] for edge in page["edges"]] + backward
        before = page["pageInfo"]["startCursor"]

    assert backward == forward
    assert page["pageInfo"]["hasPreviousPage"] is False
    assert page["pageInfo"]["hasNextPage"] is True


async def test_cursors_stay_valid_while_new_signatures_arrive(gql, demo):
    # given the first page has been read
    first = await read_page(gql, first=10)
    seen = [edge["node"]["id"] for edge in first["edges"]]
    found = await gql(
        "query($slug: String!) { petition(slug: $slug) { id } }", {"slug": models.DEMO_SLUG}
    )
    petition_id = found["data"]["petition"]["id"]

    # when new signatures arrive between pages
    after = first["pageInfo"]["endCursor"]
    for round_ in range(5):
        await sign(gql, petition_id, 1000 + round_)
        page = await read_page(gql, first=50, after=after)
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break

    # then every signature that existed at the first read comes exactly once, none new
    assert len(seen) == len(set(seen)) == 241
    newest = await read_page(gql, first=5)
    assert [edge["node"]["name"] for edge in newest["edges"]][0] == "Signer1004 Example"
    assert newest["totalCount"] == 246


async def test_a_page_between_two_cursors(gql, demo):
    head = await read_page(gql, first=30)
    cursors = [edge["cursor"] for edge in head["edges"]]

    page = await read_page(gql, first=100, after=cursors[4], before=cursors[15])

    assert [edge["cursor"] for edge in page["edges"]] == cursors[5:15]


@pytest.mark.parametrize(
    "arguments",
    [{"first": 101}, {"first": -1}, {"last": 101}, {"last": -1}, {"first": 5, "last": 5}],
)
async def test_page_sizes_outside_0_to_100_are_refused(gql, demo, arguments):
    result = await gql(SIGNATURES_PAGE, {"slug": models.DEMO_SLUG, **arguments})

    assert result["data"] == {"petition": None}
    assert result["errors"][0]["message"].startswith(("`first`", "`last`", "Pass either"))


async def test_first_zero_gives_an_empty_page_and_the_default_is_ten(gql, demo):
    assert (await read_page(gql, first=0))["edges"] == []
    assert len((await read_page(gql))["edges"]) == 10


@pytest.mark.parametrize("cursor", ["not-a-cursor", "Y29tbWVudEAx", ""])
async def test_a_cursor_that_is_not_of_this_list_is_refused(gql, demo, cursor):
    result = await gql(SIGNATURES_PAGE, {"slug": models.DEMO_SLUG, "after": cursor})

    assert result["data"] == {"petition": None}
    assert result["errors"][0]["message"] == "`after` is not a cursor of this list."


COMMENTS_PAGE = """
query Comments($slug: String!, $first: Int, $after: String) {
  petition(slug: $slug) {
    commentCount
    comments(first: $first, after: $after) {
      totalCount
      edges { cursor node { authorName body } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def test_comments_read_oldest_first_and_page_by_cursor(gql):
    petition = await create_petition(gql)
    for n in range(5):
        result = await gql(
            ADD_COMMENT,
            {
                "input": {
                    "petitionId": petition["id"],
                    "authorName": f"Author {n}",
                    "email": f"author{n}@example.org",
                    "body": f"Comment {n}",
                }
            },
        )
        assert result["data"]["addComment"]["errors"] == []

    first = await gql(COMMENTS_PAGE, {"slug": petition["slug"], "first": 3})
    rest = await gql(
        COMMENTS_PAGE,
        {
            "slug": petition["slug"],
            "first": 3,
            "after": first["data"]["petition"]["comments"]["pageInfo"]["endCursor"],
        },
    )

    names = [
        edge["node"]["authorName"]
        for result in (first, rest)
        for edge in result["data"]["petition"]["comments"]["edges"]
    ]
    assert names == [f"Author {n}" for n in range(5)]
    assert first["data"]["petition"]["commentCount"] == 5
    assert first["data"]["petition"]["comments"]["totalCount"] == 5
    assert rest["data"]["petition"]["comments"]["pageInfo"]["hasNextPage"] is False


PETITIONS = """
query List($first: Int, $after: String, $status: PetitionStatus) {
  petitions(first: $first, after: $after, status: $status) {
    totalCount
    edges { cursor node { title status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_petitions_are_listed_newest_first(gql):
    titles = [f"Petition {n}" for n in range(4)]
    for title in titles:
        await create_petition(gql, title=title)

    first = (await gql(PETITIONS, {"first": 3}))["data"]["petitions"]
    rest = (await gql(PETITIONS, {"first": 3, "after": first["pageInfo"]["endCursor"]}))["data"][
        "petitions"
    ]

    listed = [edge["node"]["title"] for edge in first["edges"] + rest["edges"]]
    assert listed == titles[::-1]
    assert first["totalCount"] == 4
    assert first["pageInfo"]["hasNextPage"] is True
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_a_cursor_whose_item_is_gone_still_pages_from_its_position(gql, demo):
    # given a well-formed cursor for signature number 500, which does not exist (241 do)
    page = await read_page(gql, first=3, after=cursor("signature", 500))
    before_first = await read_page(gql, last=3, before=cursor("signature", 0))

    assert [edge["node"]["name"] for edge in page["edges"]] == [
        "Peter Kelly",
        "Barbra Doherty",
        "Marianne Mancini",
    ]
    assert page["pageInfo"]["hasPreviousPage"] is False
    assert before_first["edges"][-1]["cursor"] == cursor("signature", 1)
    assert before_first["pageInfo"]["hasNextPage"] is False
