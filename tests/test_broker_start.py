"""A process started while its broadcast backend is unreachable still starts: it serves reads and
signatures, answers `/healthz` with 503, connects when the backend comes, and then
resynchronises its subscribers as after any outage."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from models.migrations import migrate
from subscriptions import Event, Hub, PetitionChanged, Resync
from tests.conftest import GraphQLClient, free_port, fresh_postgres_database, needs_postgres
from tests.factories import create_petition, sign
from tests.processes import server_process, service_env
from tests.wsclient import TRANSPORT_WS, Subscriber, subscription

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server command"
)

SIGNATURE_COUNT = """
subscription Count($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }
"""
READ_COUNT = "query($id: ID!) { petition(id: $id) { signatureCount } }"


@asynccontextmanager
async def redis_server(port: int, directory: Path) -> AsyncIterator[None]:
    """A real, empty redis-server on `port`, killed on the way out."""
    broker = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--dir", str(directory)),
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if broker.returncode is None:
            broker.kill()
        await broker.wait()


async def count_reaches(subscriber: Subscriber, target: int, within: float = 15) -> int:
    """Read count updates until `target` arrives (a resync may repeat a count already sent)."""
    seen = -1
    async with asyncio.timeout(within):
        while seen != target:
            seen = (await subscriber.next(within=within))["signatureCount"]["signatureCount"]
    return seen


async def healthy_within(http: httpx.AsyncClient, seconds: float) -> float:
    """Poll `/healthz` until it answers 200; how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while (await http.get("/healthz")).status_code != 200:
            await asyncio.sleep(0.1)
    return time.monotonic() - started


@needs_redis_server
async def test_the_hub_starts_without_its_broker_and_resyncs_when_it_comes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="petitions.subscriptions")
    port = free_port()
    hub = Hub(
        f"redis://127.0.0.1:{port}/0",
        prefix=f"test-{uuid.uuid4().hex[:12]}",
        probe_interval=0.2,
        max_backoff=0.3,
    )
    observed: list[Event] = []
    hub.observe(observed.append)
    try:
        await hub.connect()  # nothing listens on the port: no error
        assert not hub.healthy
        async with hub.listen(1, {"count"}) as listener:
            await hub.publish(PetitionChanged(1, 1, None))
            await hub.publish(PetitionChanged(1, 2, None))
            # this process's observers see its events at once, broker or not
            assert observed == [PetitionChanged(1, 1, None), PetitionChanged(1, 2, None)]
            async with redis_server(port, tmp_path):
                first = await asyncio.wait_for(listener.get(), 10)
                assert hub.healthy
                await hub.publish(PetitionChanged(1, 3, None))
                second = await asyncio.wait_for(listener.get(), 5)
    finally:
        await hub.disconnect()

    messages = [record.getMessage() for record in caplog.records]
    assert first == Resync(1)
    assert Resync(0) in observed
    assert second == PetitionChanged(1, 3, None)
    assert hub.reconnects == 1
    assert sum("unreachable at start" in message for message in messages) == 1
    assert sum("could not publish" in message for message in messages) == 1
    assert sum("publishing to the broadcast backend again" in message for message in messages) == 1


async def test_a_bad_broadcast_url_still_fails_at_start():
    hub = Hub("nats://127.0.0.1:4222")
    with pytest.raises(ValueError, match="unsupported broadcast URL scheme"):
        await hub.connect()
    await hub.disconnect()  # clean even so


async def test_disconnect_is_clean_while_the_hub_waits_for_its_broker():
    hub = Hub(f"redis://127.0.0.1:{free_port()}/0", max_backoff=0.2)
    await hub.connect()
    await asyncio.sleep(0.5)  # a few attempts, and their back-off
    await hub.disconnect()
    assert not hub.healthy


@needs_postgres
@needs_redis_server
async def test_a_process_started_while_the_broker_is_away_serves_and_connects_when_it_comes(
    tmp_path,
):
    port = free_port()
    async with fresh_postgres_database() as database_url:
        await migrate(database_url)
        env = service_env(
            database_url, f"redis://127.0.0.1:{port}/0", f"test-{uuid.uuid4().hex[:12]}"
        )
        async with (
            server_process(env, healthy=False) as a,
            httpx.AsyncClient(base_url=a.url) as http,
        ):
            gql = GraphQLClient(http)
            # it started, says it is unavailable, and serves reads and signatures meanwhile
            health = await http.get("/healthz")
            petition = await create_petition(gql)
            variables = {"id": petition["id"]}
            read = await gql(READ_COUNT, variables)
            signed = [await sign(gql, petition["id"], n) for n in range(3)]
            async with subscription(a.url, TRANSPORT_WS, SIGNATURE_COUNT, variables) as on_a:
                current = (await on_a.next())["signatureCount"]["signatureCount"]

                async with redis_server(port, tmp_path):
                    took = await healthy_within(http, 15)
                    # a signature taken now reaches the subscriber through the broker
                    await sign(gql, petition["id"], 3)
                    after_one = await count_reaches(on_a, 4)
                    # and a second process on the same broker and database shares its events
                    async with (
                        server_process(env) as b,
                        httpx.AsyncClient(base_url=b.url) as http_b,
                        subscription(b.url, TRANSPORT_WS, SIGNATURE_COUNT, variables) as on_b,
                    ):
                        assert (await on_b.next())["signatureCount"]["signatureCount"] == 4
                        await sign(gql, petition["id"], 4)  # through A, seen on B
                        on_b_count = await count_reaches(on_b, 5)
                        await sign(GraphQLClient(http_b), petition["id"], 5)  # through B, on A
                        on_a_count = await count_reaches(on_a, 6)
            output = a.output()

    print(f"\nbroker at start: healthy {took:.1f}s after redis-server started")
    assert health.status_code == 503
    assert health.json()["broadcast"] is False
    assert read["data"]["petition"]["signatureCount"] == 0
    assert [payload["errors"] for payload in signed] == [[]] * 3
    assert signed[-1]["petition"]["signatureCount"] == 3
    assert current == 3
    assert after_one == 4
    assert on_b_count == 5
    assert on_a_count == 6
    assert "Application startup failed" not in output
    assert output.count("unreachable at start") == 1
    assert output.count("could not publish") == 1
    assert output.count("publishing to the broadcast backend again") == 1
