"""What operators run: the `petitions` command, count audits, and the broadcast hub's limits."""

from __future__ import annotations

import asyncio
import contextlib
import gc

import httpx
from tortoise.context import require_context

import models
from server import Settings
from serving import keep_connections_out_of_the_collector
from subscriptions import FellBehind, Hub, PetitionChanged, SignatureAdded
from tests.processes import run_command, server_process, service_env

DEMO_QUERY = """
{ petition(slug: "amazon-stop-facial-recognition") {
    title signatureCount commentCount signatures(first: 1) { edges { node { name } } } } }
"""


def env_of(settings: Settings) -> dict[str, str]:
    return service_env(settings.database_url, settings.broadcast_url, settings.channel_prefix)


async def test_serve_demo_answers_the_contract_queries_for_the_demo_petition(settings):
    async with (
        server_process(env_of(settings), "--demo") as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        response = await http.post("/graphql", json={"query": DEMO_QUERY})

    petition = response.json()["data"]["petition"]
    assert petition["signatureCount"] == 241
    assert petition["commentCount"] == 1  # the seed's spam comment is not public
    assert petition["signatures"]["edges"][0]["node"]["name"] == "Peter Kelly"


async def test_petitions_demo_loads_the_demo_once(settings):
    first_code, first = await run_command("demo", env=env_of(settings))
    second_code, second = await run_command("demo", env=env_of(settings))

    assert first_code == second_code == 0
    assert "241 signatures" in first
    assert "241 signatures" in second


async def test_check_counts_finds_nothing_then_a_broken_counter_then_repairs_it(settings):
    env = env_of(settings)
    await run_command("demo", env=env)
    clean_code, clean = await run_command("check-counts", env=env)

    # given a counter broken behind the service's back
    async with models.open_database(settings.database_url, create_schema=False):
        await (
            require_context()
            .db()
            .execute_script("UPDATE petition SET signature_count = 200, comment_count = 5")
        )
    found_code, found = await run_command("check-counts", env=env)
    repair_code, repaired = await run_command("check-counts", "--repair", env=env)
    after_code, after = await run_command("check-counts", env=env)

    assert clean_code == 0
    assert "every counter equals the rows behind it" in clean
    assert found_code == 1
    assert "signature_count is 200, rows say 241" in found
    assert "comment_count is 5, rows say 1" in found
    assert repair_code == 0
    assert "repaired 2 counter(s)" in repaired
    assert after_code == 0


async def test_a_slow_listener_is_cut_off_without_slowing_the_others():
    hub = Hub("memory://", capacity=5, prefix="test-hub")
    await hub.connect()
    try:
        async with (
            hub.listen(1, {"signature"}) as slow,
            hub.listen(1, {"signature"}) as fast,
            hub.listen(1, {"count", "signature"}, latest_only=True) as counter,
        ):
            received = []
            for number in range(1, 21):
                await hub.publish(
                    SignatureAdded(1, number, None, number, number, "A", None, None, "")
                )
                await asyncio.sleep(0)
                received.append(await asyncio.wait_for(fast.get(), 5))
            await hub.publish(PetitionChanged(1, 20, 100, 20))
            # an older count arriving late (from another process) does not replace it
            await hub.publish(SignatureAdded(1, 5, None, 5, 5, "A", None, None, ""))
            latest = await asyncio.wait_for(counter.get(), 5)

            try:
                await asyncio.wait_for(slow.get(), 5)
            except FellBehind as error:
                cut_off = str(error)
    finally:
        await hub.disconnect()

    assert [event.number for event in received] == list(range(1, 21))
    assert latest == PetitionChanged(1, 20, 100, 20)
    assert cut_off == "the client fell too far behind the events; subscribe again"


async def test_long_lived_connections_are_kept_out_of_the_collectors_way():
    """A full garbage collection walks every tracked object: with thousands of websockets it
    stops the server for seconds. Their objects are frozen as their number grows, and given
    back to the collector when most of them have closed."""
    open_websockets = [0]
    policy = asyncio.create_task(
        keep_connections_out_of_the_collector(lambda: open_websockets[0], at_least=10)
    )
    seen = []
    try:
        for count in [5, 10, 11, 20, 11, 2]:
            open_websockets[0] = count
            kept = [[n] for n in range(1000)]  # objects that live on, as a connection's do
            await asyncio.sleep(1.3)
            seen.append(gc.get_freeze_count() >= len(kept))
    finally:
        policy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await policy
    # frozen from 10 open, not again at 11 (<1.25x) though new objects came; 20 freezes again
    # what came since; at 11 (of 20 frozen) it stays; at 2 all is given back
    assert seen == [False, True, True, True, True, False]
    assert gc.get_freeze_count() == 0


async def test_the_audit_scans_in_ranges_and_reports_only_what_a_snapshot_confirms(
    settings, monkeypatch
):
    # given the demo (241 signatures) scanned 50 ids a query, and one valid signature struck
    # off behind the counter's back
    await run_command("demo", env=env_of(settings))
    monkeypatch.setattr(models.audit, "SCAN_STEP", 50)
    covered: list[int] = []
    totals: list[int] = []
    async with models.open_database(settings.database_url, create_schema=False):
        clean = await models.count_differences(progress=covered.append, total=totals.append)
        await models.Signature.filter(number=120).update(status=models.SignatureStatus.INVALID)
        found = await models.count_differences()

    assert clean == []
    assert totals == [241]
    assert covered == [50, 50, 50, 50, 41]
    counters = [(d.counter, d.stored, d.actual) for d in found if d.entry is None]
    assert counters == [("signature_count", 241, 240)]
    # and the buckets it was counted in (the demo's signers give no country)
    buckets = [d for d in found if d.entry is not None]
    assert sorted(d.entry.split()[0] for d in buckets) == ["DAY", "HOUR", "MINUTE"]
    assert {(d.counter, d.stored - d.actual) for d in buckets} == {("bucket_count", 1)}
