"""The figures of the part "surfaces": countries, signatures over time and milestones, answered
from counters that every change of a signature's status moves in its own transaction, on both
backends; `milestoneReached` over real websockets, and between two processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import models
from models.figures import bucket_starts
from schema.ids import global_id, parse_global_id
from server import Settings
from tests.conftest import (
    REDIS_URL,
    GraphQLClient,
    free_port,
    fresh_postgres_database,
    needs_postgres,
)
from tests.factories import create_petition, sign
from tests.mailserver import Inbox, mail_server
from tests.processes import run_command, server_process, service_env
from tests.test_integrity import CONFIRM, SIGN_CONFIRMING, AsGql, confirming, mails, token_in
from tests.wsclient import PROTOCOLS, TRANSPORT_WS, Subscriber, subscription

FIGURES = """
query Figures($id: ID!, $first: Int, $interval: Interval!, $since: DateTime, $until: DateTime) {
  node(id: $id) {
    ... on Petition {
      signatureCount signatureGoal
      countries(first: $first) { country count }
      signaturesOverTime(interval: $interval, since: $since, until: $until) { start count }
      milestones { count reachedAt }
    }
  }
}
"""
COUNTRIES = "query ($slug: String!, $first: Int) { petition(slug: $slug) { countries(first: $first) { country count } } }"  # noqa: E501
OVER_TIME = """
query ($slug: String!, $interval: Interval!, $since: DateTime, $until: DateTime) {
  petition(slug: $slug) {
    signaturesOverTime(interval: $interval, since: $since, until: $until) { start count }
  }
}
"""
MILESTONES = "query ($slug: String!) { petition(slug: $slug) { milestones { count reachedAt } } }"
MILESTONE_REACHED = (
    "subscription ($id: ID!) { milestoneReached(petitionId: $id) { count reachedAt } }"
)
STRIKE = """
mutation Strike($input: StrikeSignaturesInput!) {
  strikeSignatures(input: $input) { matched changed errors { code } }
}
"""
ERASE = "mutation ($email: String!) { eraseSigner(input: {email: $email}) { signatures } }"
SET_GOAL = """
mutation ($id: ID!, $goal: Int) {
  updatePetition(input: {id: $id, signatureGoal: $goal}) {
    petition { signatureGoal } errors { code }
  }
}
"""
FIXED = [100, 1_000, 10_000, 100_000, 1_000_000]


async def figures(gql: Any, petition_id: str, **variables: Any) -> dict[str, Any]:
    result = await gql(FIGURES, {"id": petition_id, "interval": "MINUTE", **variables}, admin=True)
    assert "errors" not in result, result
    found: dict[str, Any] = result["data"]["node"]
    return found


async def read(gql: Any, query: str, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = await gql(query, variables)
    return result


def iso(moment: datetime) -> str:
    return moment.isoformat()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def models_pk(petition_id: str) -> int:
    parsed = parse_global_id(petition_id)
    assert parsed is not None
    return parsed[1]


async def differences(settings: Settings) -> list[models.CountDifference]:
    """What `petitions check-counts` would find."""
    async with models.open_database(settings.database_url, create_schema=False):
        return await models.count_differences()


async def held_signatures(
    settings: Settings, petition: dict[str, Any], signed: list[tuple[str | None, datetime]]
) -> None:
    """Store held signatures signed at chosen times (from old.example): not counted until a
    strike releases them, which counts them through the real code."""
    async with models.open_database(settings.database_url, create_schema=False):
        for n, (country, created_at) in enumerate(signed):
            email = f"held{n}@old.example"
            await models.Signature.create(
                petition_id=models_pk(petition["id"]),
                status=models.SignatureStatus.QUARANTINED,
                first_name="Held",
                last_name=str(n),
                email=email,
                email_canonical=email,
                email_domain="old.example",
                country=country,
                created_at=created_at,
            )


async def strike(gql: Any, petition: dict[str, Any], status: str, **filters: Any) -> None:
    result = await gql(
        STRIKE,
        {"input": {"petitionId": petition["id"], "status": status, **filters}},
        admin=True,
    )
    assert result["data"]["strikeSignatures"]["errors"] == [], result


# Counting -------------------------------------------------------------------------------------


async def test_signing_counts_countries_and_the_current_buckets(settings, gql):
    petition = await create_petition(gql)
    countries = ["gb", "fr", "gb", None, "de", "gb", "fr"]

    for n, country in enumerate(countries):
        await sign(gql, petition["id"], n, **({"country": country} if country else {}))
    now = datetime.now(UTC)
    found = await figures(gql, petition["id"], first=10)

    assert found["countries"] == [
        {"country": "GB", "count": 3},
        {"country": "FR", "count": 2},
        {"country": "DE", "count": 1},
    ]
    buckets = found["signaturesOverTime"]
    assert len(buckets) == 60
    assert at(buckets[-1]["start"]) == now.replace(second=0, microsecond=0) or (
        now.second == 0 and sum(b["count"] for b in buckets[-2:]) == 7
    )
    assert sum(bucket["count"] for bucket in buckets) == 7
    for interval in ("HOUR", "DAY"):
        spread = await figures(gql, petition["id"], interval=interval)
        assert sum(bucket["count"] for bucket in spread["signaturesOverTime"]) == 7
    assert await differences(settings) == []


async def test_buckets_by_when_signed_through_strikes_and_erasure(settings, gql):
    petition = await create_petition(gql)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    await held_signatures(
        settings,
        petition,
        [
            ("GB", day + timedelta(hours=10, minutes=5, seconds=1)),
            ("GB", day + timedelta(hours=10, minutes=5, seconds=59, microseconds=999_999)),
            ("FR", day + timedelta(hours=10, minutes=7)),
            (None, day + timedelta(hours=11, minutes=30)),
            ("FR", day + timedelta(days=1, seconds=1)),
        ],
    )
    since, until = day + timedelta(hours=10, minutes=4), day + timedelta(hours=10, minutes=9)

    async def figures_now() -> tuple[list[Any], list[int], list[int], list[int]]:
        found = await figures(gql, petition["id"], since=iso(since), until=iso(until))
        hours = await figures(
            gql, petition["id"], interval="HOUR", since=iso(day), until=iso(day + timedelta(1))
        )
        days = await figures(
            gql, petition["id"], interval="DAY", since=iso(day), until=iso(day + timedelta(3))
        )
        return (
            found["countries"],
            [bucket["count"] for bucket in found["signaturesOverTime"]],
            [bucket["count"] for bucket in hours["signaturesOverTime"]][9:13],
            [bucket["count"] for bucket in days["signaturesOverTime"]],
        )

    # held: not counted
    assert await figures_now() == ([], [0] * 5, [0] * 4, [0, 0, 0])

    # released: counted where they were signed
    await strike(gql, petition, "VALID", emailDomain="old.example")
    found = await figures(gql, petition["id"], since=iso(since), until=iso(until))
    assert [at(bucket["start"]) for bucket in found["signaturesOverTime"]] == [
        since + timedelta(minutes=m) for m in range(5)
    ]
    assert await figures_now() == (
        [{"country": "FR", "count": 2}, {"country": "GB", "count": 2}],
        [0, 2, 0, 1, 0],
        [0, 3, 1, 0],
        [4, 1, 0],
    )

    # struck off (the 10:05 pair), then back
    window = {"signedAfter": iso(since), "signedBefore": iso(since + timedelta(minutes=2))}
    await strike(gql, petition, "INVALID", **window)
    assert await figures_now() == (
        [{"country": "FR", "count": 2}],
        [0, 0, 0, 1, 0],
        [0, 1, 1, 0],
        [2, 1, 0],
    )
    await strike(gql, petition, "VALID", **window)
    assert (await figures_now())[1] == [0, 2, 0, 1, 0]

    # erased
    erased = await gql(ERASE, {"email": "held2@old.example"}, admin=True)
    assert erased["data"]["eraseSigner"]["signatures"] == 1
    assert await figures_now() == (
        [{"country": "GB", "count": 2}, {"country": "FR", "count": 1}],
        [0, 2, 0, 0, 0],
        [0, 2, 1, 0],
        [3, 1, 0],
    )
    assert await differences(settings) == []


async def test_a_pending_signature_counts_once_confirmed(settings):
    inbox, port = Inbox(), free_port()
    async with mail_server(inbox, port), confirming(settings, port) as (_, client):
        gql = AsGql(client)
        petition = await create_petition(gql)
        signed = await client(
            SIGN_CONFIRMING,
            {
                "input": {
                    "petitionId": petition["id"],
                    "firstName": "Ada",
                    "lastName": "Lovelace",
                    "email": "ada@example.org",
                    "country": "gb",
                }
            },
        )
        assert signed["signPetition"]["needsConfirmation"] is True
        pending = await client(FIGURES, {"id": petition["id"], "interval": "DAY"}, admin=True)

        token = token_in((await mails(inbox, 1))[0])
        await client(CONFIRM, {"token": token})
        confirmed = await client(FIGURES, {"id": petition["id"], "interval": "DAY"}, admin=True)

    assert pending["node"]["countries"] == []
    assert sum(bucket["count"] for bucket in pending["node"]["signaturesOverTime"]) == 0
    assert confirmed["node"]["countries"] == [{"country": "GB", "count": 1}]
    assert confirmed["node"]["signaturesOverTime"][-1]["count"] == 1
    assert await differences(settings) == []


async def test_the_demo_petition_has_its_figures(settings, gql, app):
    async with models.open_database(settings.database_url):
        demo = await models.load_demo()
        signed = [
            signature.created_at
            for signature in await models.Signature.filter(petition_id=demo.id).order_by("number")
        ]
    since = signed[0] - timedelta(days=1)
    found = await figures(gql, global_id("Petition", demo.id), interval="DAY", since=iso(since))

    assert len(signed) == found["signatureCount"] == 241
    assert sum(bucket["count"] for bucket in found["signaturesOverTime"]) == 241
    assert found["countries"] == []
    assert found["milestones"][0]["count"] == 100
    assert at(found["milestones"][0]["reachedAt"]) == signed[99]
    assert [milestone["reachedAt"] for milestone in found["milestones"][1:]] == [None] * 4
    assert await differences(settings) == []


async def test_check_counts_finds_and_repairs_the_figures(settings, gql):
    petition = await create_petition(gql, signatureGoal=2)
    for n, country in enumerate(["gb", "gb", "fr"]):
        await sign(gql, petition["id"], n, country=country)
    pk = models_pk(petition["id"])
    async with models.open_database(settings.database_url, create_schema=False):
        await models.CountryCount.filter(petition_id=pk, country="GB").update(count=5)
        await models.BucketCount.filter(petition_id=pk, interval=models.Interval.HOUR).delete()
        await models.Milestone.filter(petition_id=pk).delete()

    found = await differences(settings)
    async with models.open_database(settings.database_url, create_schema=False):
        await models.repair_counts(found)
    after = await differences(settings)
    milestones = (await figures(gql, petition["id"]))["milestones"]

    by_counter: dict[str, list[models.CountDifference]] = {}
    for difference in found:
        by_counter.setdefault(difference.counter, []).append(difference)
    [country] = by_counter["country_count"]
    [milestone] = by_counter["milestone"]
    assert (country.entry, country.stored, country.actual) == ("GB", 5, 2)
    assert str(country).endswith("country_count GB is 5, rows say 2")
    assert (milestone.entry, milestone.stored, milestone.actual) == ("2", 0, 1)
    assert sum(d.actual for d in by_counter["bucket_count"]) == 3  # the hours deleted
    assert {d.entry.split()[0] for d in by_counter["bucket_count"] if d.entry} == {"HOUR"}
    assert after == []
    assert milestones[0]["count"] == 2
    assert milestones[0]["reachedAt"] is not None


async def test_the_command_repairs_a_tampered_counter(settings, gql):
    petition = await create_petition(gql)
    await sign(gql, petition["id"], 1, country="nl")
    async with models.open_database(settings.database_url, create_schema=False):
        await models.CountryCount.filter(country="NL").update(count=7)
    env = service_env(settings.database_url, settings.broadcast_url, settings.channel_prefix)

    checked = await run_command("check-counts", env=env)
    repaired = await run_command("check-counts", "--repair", env=env)

    assert checked[0] == 1
    assert "country_count NL is 7, rows say 1" in checked[1]
    assert repaired[0] == 0, repaired[1]
    assert await differences(settings) == []


# Reading --------------------------------------------------------------------------------------


async def test_countries_largest_first_ties_by_code_and_first_bounded(gql):
    petition = await create_petition(gql)
    for n, country in enumerate(["se", "at", "se", "be", "at", "gb", "se"]):
        await sign(gql, petition["id"], n, country=country)
    slug = petition["slug"]

    two = await read(gql, COUNTRIES, slug=slug, first=2)
    default = await read(gql, COUNTRIES, slug=slug)
    zero = await read(gql, COUNTRIES, slug=slug, first=0)
    too_many = await read(gql, COUNTRIES, slug=slug, first=251)
    most = await read(gql, COUNTRIES, slug=slug, first=250)

    assert two["data"]["petition"]["countries"] == [
        {"country": "SE", "count": 3},
        {"country": "AT", "count": 2},
    ]
    assert [c["country"] for c in default["data"]["petition"]["countries"]] == [
        "SE",
        "AT",
        "BE",
        "GB",
    ]
    assert most["data"]["petition"]["countries"] == default["data"]["petition"]["countries"]
    for refused in (zero, too_many):
        assert refused["data"] is None or refused["data"]["petition"] is None
        assert refused["errors"][0]["message"] == "`first` must be between 1 and 250."


async def test_signatures_over_time_bounds(gql):
    petition = await create_petition(gql)
    slug = petition["slug"]
    until = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)

    defaults = await read(gql, OVER_TIME, slug=slug, interval="HOUR", until=iso(until))
    empty = await read(
        gql, OVER_TIME, slug=slug, interval="DAY", since=iso(until), until=iso(until)
    )
    backwards = await read(
        gql,
        OVER_TIME,
        slug=slug,
        interval="MINUTE",
        since=iso(until),
        until=iso(until - timedelta(seconds=1)),
    )
    thousand = await read(
        gql,
        OVER_TIME,
        slug=slug,
        interval="MINUTE",
        since=iso(until - timedelta(minutes=1000)),
        until=iso(until),
    )
    too_many = await read(
        gql,
        OVER_TIME,
        slug=slug,
        interval="MINUTE",
        since=iso(until - timedelta(minutes=1001)),
        until=iso(until),
    )

    hours = defaults["data"]["petition"]["signaturesOverTime"]
    assert len(hours) == 60
    assert hours[0] == {"start": "2026-04-29T01:00:00+00:00", "count": 0}
    assert hours[-1] == {"start": "2026-05-01T12:00:00+00:00", "count": 0}
    assert empty["data"]["petition"]["signaturesOverTime"] == []
    assert len(thousand["data"]["petition"]["signaturesOverTime"]) == 1000
    assert backwards["errors"][0]["message"] == "`since` must not be after `until`."
    assert too_many["errors"][0]["message"].startswith("Ask for at most 1,000 buckets")


def test_bucket_starts_are_whole_utc_intervals_in_since_until():
    now = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
    minutes = bucket_starts(models.Interval.MINUTE, None, None, now)
    aligned = bucket_starts(
        models.Interval.DAY, datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC), now
    )
    offset = bucket_starts(
        models.Interval.HOUR,
        datetime.fromisoformat("2026-05-01T10:30:00+02:00"),
        datetime.fromisoformat("2026-05-01T11:00:00+02:00"),
        now,
    )

    assert len(minutes) == 60
    assert minutes[-1] == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # the current minute
    assert aligned == [datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)]
    assert offset == []  # 08:30 to 09:00 UTC holds no whole hour's start


# Milestones -----------------------------------------------------------------------------------


async def test_milestones_and_the_goal_reached_kept_when_the_count_drops(settings, gql):
    petition = await create_petition(gql, signatureGoal=3)
    for n in range(2):
        await sign(gql, petition["id"], n)
    before = (await figures(gql, petition["id"]))["milestones"]
    await sign(gql, petition["id"], 2)
    goal = (await figures(gql, petition["id"]))["milestones"]
    # a batch that passes 100 at once
    await asyncio.gather(*(sign(gql, petition["id"], n) for n in range(3, 101)))
    hundred = (await figures(gql, petition["id"]))["milestones"]
    await strike(gql, petition, "INVALID", emailDomain="example.org")
    dropped = await figures(gql, petition["id"])

    assert before == [{"count": count, "reachedAt": None} for count in [3, *FIXED]]
    assert goal[0]["reachedAt"] is not None
    assert [m["reachedAt"] is not None for m in hundred] == [True, True, False, False, False, False]
    assert dropped["signatureCount"] == 0
    assert dropped["milestones"] == hundred
    assert await differences(settings) == []


async def test_a_goal_set_below_the_count_is_reached_when_set(gql):
    petition = await create_petition(gql, signatureGoal=50)
    for n in range(3):
        await sign(gql, petition["id"], n)
    set_at = datetime.now(UTC)

    changed = await gql(SET_GOAL, {"id": petition["id"], "goal": 2}, admin=True)
    found = await figures(gql, petition["id"])
    equal = await gql(SET_GOAL, {"id": petition["id"], "goal": 100}, admin=True)
    once = await figures(gql, petition["id"])

    assert changed["data"]["updatePetition"]["errors"] == []
    assert found["milestones"][0]["count"] == 2
    assert at(found["milestones"][0]["reachedAt"]) >= set_at - timedelta(seconds=1)
    assert equal["data"]["updatePetition"]["errors"] == []
    assert [m["count"] for m in once["milestones"]] == FIXED  # 100 once, not reached yet
    assert all(m["reachedAt"] is None for m in once["milestones"])


async def test_a_cached_figure_drops_when_the_petition_changes(gql):
    petition = await create_petition(gql)
    await sign(gql, petition["id"], 1, country="gb")
    slug = petition["slug"]

    first = await read(gql, COUNTRIES, slug=slug)
    await sign(gql, petition["id"], 2, country="gb")
    second = await read(gql, COUNTRIES, slug=slug)

    assert first["data"]["petition"]["countries"] == [{"country": "GB", "count": 1}]
    assert second["data"]["petition"]["countries"] == [{"country": "GB", "count": 2}]


# milestoneReached -----------------------------------------------------------------------------


async def next_milestone(subscriber: Subscriber, within: float = 5) -> dict[str, Any]:
    data = await subscriber.next(within=within)
    milestone: dict[str, Any] = data["milestoneReached"]
    return milestone


async def nothing_more(subscriber: Subscriber, within: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await subscriber.next(within=within)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_milestone_reached_is_pushed_once_each(server_url, protocol):
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        gql = GraphQLClient(http)
        petition = await create_petition(gql, signatureGoal=2)
        variables = {"id": petition["id"]}
        async with subscription(server_url, protocol, MILESTONE_REACHED, variables) as watcher:
            await asyncio.sleep(0.1)  # subscribed before the first signature
            await sign(gql, petition["id"], 1)
            await sign(gql, petition["id"], 2)
            goal = await next_milestone(watcher)
            await strike(gql, petition, "INVALID", emailDomain="example.org")
            await strike(gql, petition, "VALID", emailDomain="example.org")  # 2 again: told once
            await asyncio.gather(*(sign(gql, petition["id"], n) for n in range(3, 101)))
            hundred = await next_milestone(watcher)
            await nothing_more(watcher)

    assert goal["count"] == 2
    assert hundred["count"] == 100
    assert at(hundred["reachedAt"]) >= at(goal["reachedAt"])


async def test_milestone_reached_refuses_an_unknown_petition(server_url):
    async with subscription(server_url, TRANSPORT_WS, MILESTONE_REACHED, {"id": "nope"}) as sub:
        with pytest.raises(Exception, match="No petition has that id"):
            await sub.next()


# Two processes --------------------------------------------------------------------------------


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


@needs_postgres
async def test_milestone_reached_crosses_processes_once(postgres_url):
    assert REDIS_URL
    env = service_env(postgres_url, REDIS_URL, f"test-figures-{uuid.uuid4().hex[:12]}")
    code, output = await run_command("migrate", env=env)
    assert code == 0, output
    async with server_process(env) as a, server_process(env) as b:
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
            gql = GraphQLClient(on_b)
            petition = await create_petition(gql, signatureGoal=5)
            variables = {"id": petition["id"]}
            async with (
                subscription(a.url, TRANSPORT_WS, MILESTONE_REACHED, variables) as watcher_a,
                subscription(b.url, TRANSPORT_WS, MILESTONE_REACHED, variables) as watcher_b,
            ):
                await asyncio.sleep(0.2)
                async with httpx.AsyncClient(base_url=a.url, timeout=30) as on_a:
                    signers = [GraphQLClient(on_a), gql]
                    await asyncio.gather(
                        *(sign(signers[n % 2], petition["id"], n) for n in range(120))
                    )
                seen = {
                    name: [await next_milestone(watcher) for _ in range(2)]
                    for name, watcher in (("a", watcher_a), ("b", watcher_b))
                }
                await nothing_more(watcher_a)
                await nothing_more(watcher_b)
            read = await figures(gql, petition["id"])

    assert [m["count"] for m in seen["a"]] == [5, 100]
    assert seen["a"] == seen["b"]
    assert [m["reachedAt"] for m in read["milestones"][:2]] == [m["reachedAt"] for m in seen["a"]]
