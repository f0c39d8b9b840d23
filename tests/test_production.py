"""The production path: PostgreSQL, Redis, migrations, several processes, faults survived.

Each test starts real `petitions` processes on a fresh PostgreSQL database and the real Redis,
drives them over HTTP and websockets, and checks that no accepted signature is lost and that
every count is exact. Figures are printed (run with `-s` to read them).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from websockets.exceptions import ConnectionClosed

from tests.conftest import (
    REDIS_URL,
    GraphQLClient,
    free_port,
    fresh_postgres_database,
    needs_postgres,
)
from tests.factories import SIGN, create_petition, signer
from tests.processes import run_command, server_process, service_env
from tests.wsclient import TRANSPORT_WS, Subscriber, subscription

pytestmark = needs_postgres

SIGNATURE_COUNT = """
subscription Count($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }
"""
SIGNATURE_ADDED = """
subscription Added($id: ID!) { signatureAdded(petitionId: $id) { id name } }
"""


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    assert REDIS_URL
    return service_env(database_url, REDIS_URL, f"test-{uuid.uuid4().hex[:12]}")


async def migrated(env: dict[str, str]) -> None:
    code, output = await run_command("migrate", env=env)
    assert code == 0, output


async def stored_emails(database_url: str, petition_pk: int) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT email FROM signature WHERE petition_id = $1", petition_pk
        )
        return {row["email"] for row in rows}
    finally:
        await connection.close()


async def stored_counts(database_url: str, petition_pk: int) -> tuple[int, int]:
    """(signature rows, stored signatureCount) of one petition, read straight from the table."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetchval(
            "SELECT COUNT(*) FROM signature WHERE petition_id = $1", petition_pk
        )
        counter = await connection.fetchval(
            "SELECT signature_count FROM petition WHERE id = $1", petition_pk
        )
        return int(rows), int(counter)
    finally:
        await connection.close()


def pk_of(petition_id: str) -> int:
    import base64

    text = base64.urlsafe_b64decode(petition_id + "=" * (-len(petition_id) % 4)).decode()
    return int(text.partition(":")[2])


class Load:
    """Signs through several servers at once and remembers which were accepted."""

    def __init__(self, urls: list[str], petition_id: str, concurrency: int = 20) -> None:
        self.clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
        self.petition_id = petition_id
        self.semaphore = asyncio.Semaphore(concurrency)
        self.accepted: set[str] = set()
        self.refused: list[str] = []
        self.failed_emails: set[str] = set()

    async def sign(self, n: int, email_n: int) -> None:
        client = self.clients[n % len(self.clients)]
        variables = {"input": signer(self.petition_id, email_n)}
        async with self.semaphore:
            try:
                response = await client.post(
                    "/graphql", json={"query": SIGN, "variables": variables}
                )
                body = response.json()
            except (httpx.TransportError, json.JSONDecodeError):
                self.failed_emails.add(variables["input"]["email"])  # the server went away
                return
        payload = (body.get("data") or {}).get("signPetition")
        if payload is None:
            assert body["errors"][0]["message"] == "Internal server error.", body
            self.failed_emails.add(variables["input"]["email"])
        elif payload["errors"]:
            self.refused.append(payload["errors"][0]["code"])
        else:
            self.accepted.add(variables["input"]["email"])

    async def run(self, emails: list[int]) -> None:
        await asyncio.gather(*(self.sign(n, e) for n, e in enumerate(emails)))

    @property
    def failed(self) -> int:
        return len(self.failed_emails)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


async def count_reaches(subscriber: Subscriber, target: int, within: float = 15) -> int:
    """Read count updates until `target` arrives; returns the last count seen."""
    seen = -1
    async with asyncio.timeout(within):
        while seen != target:
            seen = (await subscriber.next(within=within))["signatureCount"]["signatureCount"]
    return seen


async def test_two_processes_share_one_database_and_every_subscriber_sees_the_same_count(
    env, database_url
):
    await migrated(env)
    async with server_process(env) as a, server_process(env) as b:
        async with httpx.AsyncClient(base_url=a.url) as http:
            petition = await create_petition(GraphQLClient(http))
        variables = {"id": petition["id"]}
        async with (
            subscription(a.url, TRANSPORT_WS, SIGNATURE_COUNT, variables) as on_a,
            subscription(b.url, TRANSPORT_WS, SIGNATURE_COUNT, variables) as on_b,
        ):
            assert (await on_a.next())["signatureCount"]["signatureCount"] == 0
            assert (await on_b.next())["signatureCount"]["signatureCount"] == 0

            # 500 signs over both processes, 50 of them repeating an earlier email
            emails = list(range(450)) + list(range(0, 450, 9))
            load = Load([a.url, b.url], petition["id"])
            await load.run(emails)
            await load.close()

            rows, counter = await stored_counts(database_url, pk_of(petition["id"]))
            final_a = await count_reaches(on_a, rows)
            final_b = await count_reaches(on_b, rows)
            # and readers of either process (cached answers included) read the same count
            read = []
            for url in (a.url, b.url, a.url, b.url):
                async with httpx.AsyncClient(base_url=url) as http:
                    found = await GraphQLClient(http)(
                        "query($id: ID!) { petition(id: $id) { signatureCount } }",
                        {"id": petition["id"]},
                    )
                read.append(found["data"]["petition"]["signatureCount"])

    print(
        f"\nmulti-process: {len(emails)} signs, {len(load.accepted)} accepted, "
        f"{len(load.refused)} refused as duplicates, {rows} rows, counter {counter}, "
        f"subscriber on A {final_a}, on B {final_b}"
    )
    assert len(load.accepted) == 450
    assert load.failed == 0
    assert set(load.refused) == {"ALREADY_SIGNED"}
    assert len(load.refused) == 50
    assert rows == counter == final_a == final_b == 450
    assert read == [450] * 4


async def kill_clients(prefix: str) -> int:
    """CLIENT KILL every Redis connection the service processes opened (named by prefix)."""
    client = redis.Redis.from_url(REDIS_URL or "")
    try:
        killed = 0
        for info in await client.client_list():
            if info.get("name") == prefix:
                killed += int(await client.execute_command("CLIENT", "KILL", "ID", info["id"]))
        return killed
    finally:
        await client.aclose()


async def test_redis_connections_killed_mid_load_lose_nothing_and_subscribers_resync(
    env, database_url
):
    await migrated(env)
    prefix = env["PETITIONS_CHANNEL_PREFIX"]
    async with server_process(env) as a, server_process(env) as b:
        async with httpx.AsyncClient(base_url=a.url) as http:
            petition = await create_petition(GraphQLClient(http))
        variables = {"id": petition["id"]}
        async with (
            subscription(a.url, TRANSPORT_WS, SIGNATURE_COUNT, variables) as counts,
            subscription(b.url, TRANSPORT_WS, SIGNATURE_ADDED, variables) as names,
        ):
            assert (await counts.next())["signatureCount"]["signatureCount"] == 0
            load = Load([a.url, b.url], petition["id"], concurrency=10)

            async def chaos() -> int:
                killed = 0
                for _ in range(3):
                    await asyncio.sleep(0.4)
                    killed += await kill_clients(prefix)
                return killed

            killed, _ = await asyncio.gather(chaos(), load.run(list(range(400))))
            await load.close()

            rows, counter = await stored_counts(database_url, pk_of(petition["id"]))
            final = await count_reaches(counts, rows)
            received = []
            async with asyncio.timeout(15):
                while len(received) < rows:
                    received.append((await names.next())["signatureAdded"]["name"])

    print(
        f"\nredis kill: {killed} connections killed, {len(load.accepted)} accepted, "
        f"{rows} rows, counter {counter}, subscriber count {final}, names received "
        f"{len(received)} ({len(set(received))} distinct)"
    )
    assert killed >= 3
    assert len(load.accepted) == 400
    assert load.failed == 0
    assert rows == counter == final == 400
    assert len(received) == len(set(received)) == 400


async def test_postgres_backends_terminated_mid_load_give_clean_errors_and_no_partial_rows(
    env, database_url
):
    await migrated(env)
    name = database_url.rsplit("/", 1)[1]
    async with server_process(env) as a:
        async with httpx.AsyncClient(base_url=a.url) as http:
            petition = await create_petition(GraphQLClient(http))
        load = Load([a.url], petition["id"], concurrency=10)
        admin = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")

        async def chaos() -> int:
            terminated = 0
            for _ in range(4):
                await asyncio.sleep(0.3)
                terminated += len(
                    await admin.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()",
                        name,
                    )
                )
            return terminated

        try:
            terminated, _ = await asyncio.gather(chaos(), load.run(list(range(400))))
        finally:
            await admin.close()
        await load.close()
        # the service recovers: signing works again
        retry = Load([a.url], petition["id"])
        await retry.run([1000, 1001])
        await retry.close()
        code, output = await run_command("check-counts", env=env)

    rows, counter = await stored_counts(database_url, pk_of(petition["id"]))
    stored = await stored_emails(database_url, pk_of(petition["id"]))
    unacknowledged = stored - load.accepted - retry.accepted
    print(
        f"\npg terminate: {terminated} backends terminated, {len(load.accepted)} accepted, "
        f"{load.failed} failed cleanly ({len(unacknowledged)} of them committed before the "
        f"connection died), {rows} rows, counter {counter}"
    )
    assert terminated >= 1
    assert len(retry.accepted) == 2
    # every accepted signature is stored, and counted; a sign whose connection died after its
    # commit is stored too, though its client saw an error (signing again says ALREADY_SIGNED)
    assert load.accepted | retry.accepted <= stored
    assert unacknowledged <= load.failed_emails
    assert rows == counter == len(stored)
    assert code == 0, output


async def closing_code(subscriber: Subscriber) -> int | None:
    """Read until the server closes the websocket; the close code it sent."""
    try:
        while True:
            await subscriber.next()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_sigterm_mid_load_finishes_accepted_writes_and_closes_websockets_with_1001(
    env, database_url
):
    await migrated(env)
    async with server_process(env) as a:
        async with httpx.AsyncClient(base_url=a.url) as http:
            petition = await create_petition(GraphQLClient(http))
        async with subscription(
            a.url, TRANSPORT_WS, SIGNATURE_COUNT, {"id": petition["id"]}
        ) as watcher:
            await watcher.next()
            load = Load([a.url], petition["id"], concurrency=20)

            async def stop_soon() -> int:
                await asyncio.sleep(0.5)
                return await a.stop(signal.SIGTERM)

            exit_code, _ = await asyncio.gather(stop_soon(), load.run(list(range(2000))))
            await load.close()
            close_code = await closing_code(watcher)

    rows, counter = await stored_counts(database_url, pk_of(petition["id"]))
    print(
        f"\nsigterm: exit {exit_code}, {len(load.accepted)} accepted before the stop, "
        f"{load.failed} not taken, {rows} rows, counter {counter}, websocket close {close_code}"
    )
    # uvicorn re-raises the signal once its graceful shutdown is done, as a process should
    assert exit_code in {0, -signal.SIGTERM}
    assert close_code == 1001
    assert 0 < len(load.accepted) < 2000
    assert rows == counter == len(load.accepted)


async def test_migrate_creates_the_schema_once_and_serve_refuses_a_schema_behind(env):
    # given an empty database, serve refuses to start
    code, output = await run_command("serve", "--port", str(free_port()), env=env)
    assert code == 2
    assert "petitions migrate" in output

    first_code, first = await run_command("migrate", env=env)
    second_code, second = await run_command("migrate", env=env)

    assert first_code == second_code == 0
    assert "applied models.0001_initial" in first
    assert "up to date" in second


async def test_several_workers_with_memory_broadcast_refuse_to_start(env):
    code, output = await run_command(
        "serve", "--workers", "2", env={**env, "PETITIONS_BROADCAST_URL": "memory://"}
    )

    assert code == 2
    assert "PETITIONS_BROADCAST_URL" in output


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server command")
async def test_a_broker_that_goes_away_and_comes_back(env, database_url, tmp_path):
    """Health says 503 while the broker is away, signing goes on, and subscribers get the
    current count from the database once it is back."""
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    broker = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(0.3)
    env = {**env, "PETITIONS_BROADCAST_URL": f"redis://127.0.0.1:{port}/0"}
    await migrated(env)
    try:
        async with server_process(env) as a, httpx.AsyncClient(base_url=a.url) as http:
            gql = GraphQLClient(http)
            petition = await create_petition(gql)
            async with subscription(
                a.url, TRANSPORT_WS, SIGNATURE_COUNT, {"id": petition["id"]}
            ) as watcher:
                assert (await watcher.next())["signatureCount"]["signatureCount"] == 0

                broker.terminate()
                await broker.wait()
                statuses = []
                async with asyncio.timeout(10):
                    while (status := (await http.get("/healthz")).status_code) != 503:
                        statuses.append(status)
                        await asyncio.sleep(0.2)
                load = Load([a.url], petition["id"])
                await load.run(list(range(25)))
                await load.close()

                broker = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.DEVNULL
                )
                final = await count_reaches(watcher, 25, within=20)
                async with asyncio.timeout(10):
                    while (await http.get("/healthz")).status_code != 200:
                        await asyncio.sleep(0.2)
    finally:
        if broker.returncode is None:
            broker.terminate()
            await broker.wait()

    print(f"\nbroker away: 503 seen, {len(load.accepted)} signed meanwhile, resynced to {final}")
    assert status == 503
    assert len(load.accepted) == 25
    assert final == 25


async def test_postgres_listen_notify_carries_events_between_processes(env, database_url):
    env = {**env, "PETITIONS_BROADCAST_URL": database_url}
    await migrated(env)
    async with server_process(env) as a, server_process(env) as b:
        async with httpx.AsyncClient(base_url=a.url) as http:
            petition = await create_petition(GraphQLClient(http))
        async with subscription(
            b.url, TRANSPORT_WS, SIGNATURE_COUNT, {"id": petition["id"]}
        ) as on_b:
            assert (await on_b.next())["signatureCount"]["signatureCount"] == 0
            load = Load([a.url], petition["id"])
            await load.run(list(range(30)))
            await load.close()
            final = await count_reaches(on_b, 30)

    assert len(load.accepted) == final == 30


async def test_health_says_503_while_the_database_is_unreachable(env, database_url):
    await migrated(env)
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        async with server_process(env) as a, httpx.AsyncClient(base_url=a.url) as http:
            # when the database refuses every connection
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            away = (await http.get("/healthz")).status_code
            # and once it takes them again
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            async with asyncio.timeout(10):
                while (back := (await http.get("/healthz")).status_code) != 200:
                    await asyncio.sleep(0.2)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    assert away == 503
    assert back == 200
