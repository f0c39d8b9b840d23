"""The `petitions` command line, run as an operator runs it: the installed console script in a
process of its own, its standard output and standard error read apart."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import cli
from models import TokenRole
from server import Settings
from subscriptions import CountChanged, Hub
from tests.conftest import REDIS_URL, fresh_postgres_database, needs_postgres
from tests.factories import petition_input
from tests.processes import PETITIONS, server_process

DEMO_SLUG = "amazon-stop-facial-recognition"
CSV_HEADER = "number,name,country,comment,signedAt"
TOKEN = re.compile(r"[A-Za-z0-9_-]{40,}")

CREATE = """
mutation Create($input: CreatePetitionInput!) {
  createPetition(input: $input) { petition { slug } errors { code } }
}
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def settings(tmp_path: Path, migrated_sqlite: Path) -> Settings:
    """A fresh SQLite database only: the command is a thin layer over the domain, which the
    other tests hold on both backends; its PostgreSQL path (connecting, publishing through
    Redis) is held by `test_erase_tells_running_servers_through_the_broadcast_url`."""
    path = tmp_path / "petitions.sqlite3"
    shutil.copyfile(migrated_sqlite, path)
    return Settings(
        database_url=f"sqlite://{path}", channel_prefix=f"test-cli-{uuid.uuid4().hex[:12]}"
    )


def env_of(settings: Settings) -> dict[str, str]:
    """Only what the command needs: no admin token from the environment."""
    return {
        "PETITIONS_DATABASE_URL": settings.database_url,
        "PETITIONS_BROADCAST_URL": settings.broadcast_url,
        "PETITIONS_CHANNEL_PREFIX": settings.channel_prefix,
    }


def clean_environ() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("PETITIONS")}


async def petitions(*args: str, env: dict[str, str], timeout: float = 60) -> Ran:
    """Run `petitions ARGS…` (standard error a pipe, as in any script: no progress bars)."""
    process = await asyncio.create_subprocess_exec(
        PETITIONS,
        *args,
        env={**clean_environ(), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def petitions_help(*args: str) -> Ran:
    # a bad setting does not stand in the way of reading the help
    env = {**clean_environ(), "PETITIONS_DB_POOL_SIZE": "lots"}
    done = subprocess.run(
        [PETITIONS, *args, "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    return Ran(done.returncode, done.stdout, done.stderr)


# -- help ------------------------------------------------------------------------------------


def test_the_top_level_help_lists_every_command_on_a_line_and_gives_examples():
    ran = petitions_help()

    assert ran.code == 0
    for command in (
        "serve",
        "demo",
        "migrate",
        "check-counts",
        "export",
        "erase",
        "anonymise",
        "token",
    ):
        assert re.search(rf"^ +{command} +\S", ran.out, re.MULTILINE), command
    assert "petitions serve --demo" in ran.out
    assert "petitions export my-petition --format json > out.json" in ran.out
    assert "petitions token create --role moderator --name alice" in ran.out


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("serve", ["--host", "--port", "--workers", "--demo", "PETITIONS_"]),
        ("demo", ["PETITIONS_DATABASE_URL"]),
        ("migrate", ["PETITIONS_DATABASE_URL"]),
        ("check-counts", ["--repair", "PETITIONS_DATABASE_URL"]),
        ("export", ["SLUG", "--format", "csv", "json", "--emails", "standard output"]),
        ("erase", ["EMAIL", "PETITIONS_BROADCAST_URL", "PETITIONS_DATABASE_URL"]),
        ("anonymise", ["--closed-for", "DAYS", "PETITIONS_DATABASE_URL"]),
        ("token", ["create", "list", "revoke"]),
        ("token create", ["--role", "admin", "moderator", "--name", "once"]),
        ("token list", ["PETITIONS_DATABASE_URL"]),
        ("token revoke", ["NAME", "Exit status 1"]),
    ],
)
def test_each_command_explains_itself_and_its_options(command, mentions):
    ran = petitions_help(*command.split())

    assert ran.code == 0
    for mention in mentions:
        assert mention in ran.out, mention


# -- tokens ----------------------------------------------------------------------------------


async def test_token_create_prints_the_token_alone_on_the_last_line(settings):
    env = env_of(settings)
    created = await petitions("token", "create", "--role", "moderator", "--name", "alice", env=env)
    listed = await petitions("token", "list", env=env)

    assert created.code == 0
    token = created.out.splitlines()[-1]
    assert TOKEN.fullmatch(token)
    assert listed.code == 0
    assert re.search(r"^alice +moderator +\d{4}-\d\d-\d\d", listed.out, re.MULTILINE)
    assert token not in listed.out + listed.err


async def test_a_revoked_token_leaves_the_list_and_an_unknown_name_exits_1(settings):
    env = env_of(settings)
    await petitions("token", "create", "--role", "admin", "--name", "ci", env=env)

    revoked = await petitions("token", "revoke", "ci", env=env)
    listed = await petitions("token", "list", env=env)
    unknown = await petitions("token", "revoke", "ci", env=env)

    assert revoked.code == 0
    assert listed.code == 0
    assert listed.out == ""
    assert unknown.code == 1
    assert "no token named 'ci'" in unknown.err


def test_the_roles_offered_are_the_roles_there_are():
    assert set(cli.ROLES) == {role.value for role in TokenRole}


async def test_a_taken_token_name_exits_1_with_a_message(settings):
    env = env_of(settings)
    first = await petitions("token", "create", "--role", "admin", "--name", "ci", env=env)
    second = await petitions("token", "create", "--role", "moderator", "--name", "ci", env=env)

    assert first.code == 0
    assert second.code == 1
    assert second.out == ""
    assert "'ci' exists already" in second.err


async def test_a_created_admin_token_is_an_admin_bearer_until_revoked(settings):
    env = env_of(settings)
    created = await petitions("token", "create", "--role", "admin", "--name", "ops", env=env)
    token = created.out.splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    variables = {"input": petition_input()}

    async with (
        server_process(env) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        allowed = await http.post(
            "/graphql", json={"query": CREATE, "variables": variables}, headers=headers
        )
        await petitions("token", "revoke", "ops", env=env)
        refused = await http.post(
            "/graphql", json={"query": CREATE, "variables": variables}, headers=headers
        )

    assert allowed.json()["data"]["createPetition"]["errors"] == []
    assert refused.json()["data"]["createPetition"]["errors"] == [{"code": "UNAUTHORIZED"}]


# -- exports ---------------------------------------------------------------------------------


async def test_export_of_an_unknown_slug_exits_1(settings):
    ran = await petitions("export", "no-such-petition", env=env_of(settings))

    assert ran.code == 1
    assert ran.out == ""
    assert "no-such-petition" in ran.err


async def test_export_of_the_demo_petition_is_clean_csv_on_standard_output(settings):
    env = env_of(settings)
    assert (await petitions("demo", env=env)).code == 0

    ran = await petitions("export", DEMO_SLUG, env=env)

    assert ran.code == 0
    lines = ran.out.splitlines()
    assert len(lines) == 242  # the header and 241 signatures
    assert lines[0] == CSV_HEADER
    rows = list(csv.reader(lines[1:]))
    assert [int(row[0]) for row in rows] == list(range(1, 242))
    assert all(len(row) == 5 for row in rows)
    assert "\r" not in ran.out.replace("\r\n", "\n")  # no progress bar drawn into it
    assert "241 signature(s)" in ran.err


async def test_export_as_json_with_emails(settings):
    env = env_of(settings)
    await petitions("demo", env=env)

    ran = await petitions("export", DEMO_SLUG, "--format", "json", "--emails", env=env)

    assert ran.code == 0
    signatures = json.loads(ran.out)
    assert len(signatures) == 241
    assert set(signatures[0]) == {"number", "name", "country", "comment", "signedAt", "email"}


# -- settings and usage ----------------------------------------------------------------------


async def test_a_bad_setting_exits_2_naming_the_variable(settings):
    ran = await petitions(
        "token", "list", env={**env_of(settings), "PETITIONS_DB_POOL_SIZE": "lots"}
    )

    assert ran.code == 2
    assert "PETITIONS_DB_POOL_SIZE" in ran.err


async def test_bad_usage_exits_2(settings):
    ran = await petitions("token", "create", "--role", "king", "--name", "x", env=env_of(settings))

    assert ran.code == 2
    assert "--role" in ran.err


# -- forgetting people (the domain's own tests are in the lead's hands) -----------------------


async def test_erase_removes_a_signer_and_the_export_shrinks(settings):
    env = env_of(settings)
    await petitions("demo", env=env)

    erased = await petitions("erase", "Demo-Signer-1@example.org", env=env)
    again = await petitions("erase", "demo-signer-1@example.org", env=env)
    exported = await petitions("export", DEMO_SLUG, env=env)
    audited = await petitions("check-counts", env=env)

    assert erased.code == 0
    assert "removed 1 signature(s) and 0 comment(s)" in erased.out
    assert again.code == 0
    assert "removed 0 signature(s)" in again.out
    assert len(exported.out.splitlines()) == 241
    assert audited.code == 0


@needs_postgres
async def test_erase_tells_running_servers_through_the_broadcast_url(migrated_postgres):
    assert REDIS_URL
    async with fresh_postgres_database(migrated_postgres) as url:
        settings = Settings(
            database_url=url,
            broadcast_url=REDIS_URL,
            channel_prefix=f"test-cli-{uuid.uuid4().hex[:12]}",
        )
        await _erase_through_redis(settings)


async def _erase_through_redis(settings: Settings) -> None:
    assert REDIS_URL
    env = env_of(settings)
    await petitions("demo", env=env)
    hub = Hub(REDIS_URL, prefix=settings.channel_prefix)
    await hub.connect()
    try:
        async with hub.listen(1, {CountChanged.kind}) as listener:
            erased = await petitions("erase", "demo-signer-1@example.org", env=env)
            async with asyncio.timeout(5):
                event = await listener.get()
    finally:
        await hub.disconnect()

    assert erased.code == 0
    assert isinstance(event, CountChanged)
    assert event.signature_count == 240


async def test_anonymise_needs_its_days_and_leaves_open_petitions_alone(settings):
    env = env_of(settings)
    await petitions("demo", env=env)

    missing = await petitions("anonymise", env=env)
    ran = await petitions("anonymise", "--closed-for", "0", env=env)
    exported = await petitions("export", DEMO_SLUG, "--emails", env=env)

    assert missing.code == 2
    assert "--closed-for" in missing.err
    assert ran.code == 0
    assert "from 0 signature(s)" in ran.out
    assert "demo-signer-1@example.org" in exported.out
