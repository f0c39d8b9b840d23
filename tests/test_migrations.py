"""Schema migrations: they build the schema the models expect, once, on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise.context import require_context
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError
from tortoise.migrations.executor import MigrationTarget

import models
from models import Comment, CommentChange, Petition, Signature, open_database
from models.migrations import APP_LABEL, _executor, migrate, pending_migrations, unmigrated_changes
from tests.conftest import (
    POSTGRES_URL,
    database_url_named,
    fresh_postgres_database,
    needs_postgres,
)

INITIAL = "models.0001_initial"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database of the backend under test."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'migrated.sqlite3'}"
        return
    async with fresh_postgres_database() as url:
        yield url


async def table_names(database_url: str) -> set[str]:
    async with open_database(database_url, create_schema=False) as context:
        db = context.db()
        if db.capabilities.dialect == "postgres":
            query = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        _, rows = await db.execute_query(query)
    return {row["name"] for row in rows if row["name"] != "sqlite_sequence"}


def signature(petition: Petition, number: int, email: str) -> Signature:
    return Signature(
        petition=petition,
        number=number,
        first_name="Ada",
        last_name="Lovelace",
        email=email,
        email_canonical=email,
    )


async def test_migrate_builds_the_schema_once(empty_database: str):
    pending = await pending_migrations(empty_database)

    assert pending[0] == INITIAL
    assert await table_names(empty_database) == set()  # looking changed nothing
    assert await migrate(empty_database) == pending
    assert await migrate(empty_database) == []
    assert await pending_migrations(empty_database) == []
    assert await table_names(empty_database) == {
        "api_token",
        "outbox_mail",
        "petition",
        "signature",
        "comment",
        "comment_change",
        "comment_report",
        "country_count",
        "bucket_count",
        "milestone",
        "tortoise_migrations",
    }


async def test_the_migrated_schema_holds_the_models_and_their_unique_constraints(
    empty_database: str,
):
    await migrate(empty_database)

    async with open_database(empty_database, create_schema=False):
        petition = await Petition.create(
            slug="save-the-library", title="Save it", target="Council", goal="Open", body="…"
        )
        await signature(petition, 1, "ada@example.org").save()
        await Comment.create(petition=petition, author_name="Ada", email="a@b.org", body="Yes")

        with pytest.raises(IntegrityError):  # (petition_id, email_canonical)
            await signature(petition, 2, "ada@example.org").save()
        with pytest.raises(IntegrityError):  # (petition_id, number)
            await signature(petition, 1, "grace@example.org").save()
        with pytest.raises(IntegrityError):  # slug
            await Petition.create(
                slug="save-the-library", title="T", target="T", goal="G", body="B"
            )

        assert await Signature.filter(petition=petition).count() == 1
        assert await Comment.filter(petition=petition).count() == 1


async def test_migrate_inside_an_open_database_leaves_that_context_current(empty_database: str):
    async with open_database(empty_database, create_schema=False) as context:
        assert await migrate(empty_database) != []

        assert require_context() is context
        assert await Petition.all().count() == 0


async def migrate_to(database_url: str, name: str) -> None:
    """Apply the migrations up to `name` only, as a database made before the later ones."""
    async with _executor(database_url) as executor:
        await executor.migrate(
            [MigrationTarget(app_label=APP_LABEL, name=name)], direction="forward"
        )


async def test_fake_initial_adopts_a_database_made_by_generate_schemas(empty_database: str):
    # given the tables of the initial schema, made without migrations (no record of them)
    await migrate_to(empty_database, "0001_initial")
    async with open_database(empty_database, create_schema=False):
        await require_context().db().execute_script('DROP TABLE "tortoise_migrations"')
    pending = await pending_migrations(empty_database)

    with pytest.raises(OperationalError):  # the tables are there already
        await migrate(empty_database)
    assert await migrate(empty_database, fake_initial=True) == pending
    assert await pending_migrations(empty_database) == []


async def test_moderation_numbers_the_comments_already_published(empty_database: str):
    # given comments made before moderation existed
    await migrate_to(empty_database, "0001_initial")
    async with open_database(empty_database, create_schema=False):
        await (
            require_context()
            .db()
            .execute_script(
                "INSERT INTO petition (slug, title, target, goal, body, status, signature_goal, "
                "signature_count, comment_count, last_signature_number, created_at) VALUES "
                "('a', 'A', 'T', 'G', 'B', 'OPEN', NULL, 0, 2, 0, '2026-01-01 00:00:00+00:00');"
                "INSERT INTO comment (petition_id, author_name, email, body, status, created_at) "
                "VALUES (1, 'x', 'x@example.org', 'one', 'PUBLISHED', '2026-01-01 00:00:00+00:00'),"
                " (1, 'y', 'y@example.org', 'held', 'HELD', '2026-01-01 00:00:00+00:00'),"
                " (1, 'z', 'z@example.org', 'two', 'PUBLISHED', '2026-01-01 00:00:00+00:00');"
            )
        )
    # when
    await migrate(empty_database)
    # then
    async with open_database(empty_database, create_schema=False):
        changes = (
            await CommentChange.all()
            .order_by("sequence")
            .values_list("sequence", "comment__body", "public")
        )
        petition = await Petition.get(slug="a")
    assert changes == [(1, "one", True), (2, "two", True)]
    assert petition.last_comment_sequence == 2


async def test_integrity_folds_gmail_spellings_and_keeps_the_unique_constraints(
    empty_database: str,
):
    # given signatures made before canonical emails folded Gmail's dots and +tags
    await migrate_to(empty_database, "0002_moderation")
    async with open_database(empty_database, create_schema=False):
        await (
            require_context()
            .db()
            .execute_script(
                "INSERT INTO petition (slug, title, target, goal, body, status, signature_goal, "
                "signature_count, comment_count, last_signature_number, created_at, "
                "last_comment_sequence) VALUES "
                "('a', 'A', 'T', 'G', 'B', 'CLOSED', NULL, 4, 0, 4, "
                "'2026-01-01 00:00:00+00:00', 0);"
                "INSERT INTO signature (petition_id, number, first_name, last_name, email, "
                "email_canonical, show_name, created_at) VALUES "
                "(1, 1, 'J', 'S', 'John.Smith+x@gmail.com', 'john.smith+x@gmail.com', TRUE, "
                "'2026-01-01 00:00:00+00:00'),"
                "(1, 2, 'J', 'S', 'johnsmith@googlemail.com', 'johnsmith@googlemail.com', TRUE, "
                "'2026-01-01 00:00:01+00:00'),"
                "(1, 3, 'A', 'L', 'ada@example.org', 'ada@example.org', TRUE, "
                "'2026-01-01 00:00:02+00:00'),"
                "(1, 4, 'G', 'H', 'Grace.H@Gmail.com', 'grace.h@gmail.com', TRUE, "
                "'2026-01-01 00:00:03+00:00');"
                "INSERT INTO comment (petition_id, author_name, email, body, status, created_at) "
                "VALUES (1, 'x', 'X.Y+z@gmail.com', 'one', 'HELD', '2026-01-01 00:00:00+00:00');"
            )
        )
    # when
    await migrate(empty_database)
    # then the later spelling of one mailbox is struck off, and the count follows
    async with open_database(empty_database, create_schema=False):
        rows = (
            await Signature.all()
            .order_by("number")
            .values_list("number", "email_canonical", "email_domain", "status")
        )
        petition = await Petition.get(slug="a")
        comment = await Comment.get(body="one")
        with pytest.raises(IntegrityError):  # SQLite's table rebuild must not lose them
            await signature(petition, 5, "ada@example.org").save()
        with pytest.raises(IntegrityError):
            await signature(petition, 3, "new@example.org").save()
    assert rows == [
        (1, "johnsmith@gmail.com", "gmail.com", "VALID"),
        (2, "duplicate-2#johnsmith@gmail.com", "gmail.com", "INVALID"),
        (3, "ada@example.org", "example.org", "VALID"),
        (4, "graceh@gmail.com", "gmail.com", "VALID"),
    ]
    assert petition.signature_count == 3
    assert petition.closed_at is not None
    assert comment.email_canonical == "xy@gmail.com"


async def test_surfaces_figures_counts_the_signatures_already_there(empty_database: str):
    # given valid, struck and held signatures made before the figures were counted
    await migrate_to(empty_database, "0003_integrity")
    rows = [
        # number, status, country, created_at
        (1, "VALID", "GB", "2026-01-01 10:05:03.123456+00:00"),
        (2, "VALID", "GB", "2026-01-01 10:05:59+00:00"),
        (3, "VALID", "FR", "2026-01-01 11:00:00+00:00"),
        (4, "VALID", None, "2026-01-02 00:00:01+00:00"),
        (5, "INVALID", "DE", "2026-01-02 00:00:02+00:00"),
        ("NULL", "QUARANTINED", "DE", "2026-01-02 00:00:03+00:00"),
    ]
    values = ",".join(
        f"(1, {number}, '{status}', 'A', 'B', 'e{i}@example.org', 'e{i}@example.org', "
        f"{'NULL' if country is None else repr(country)}, TRUE, '{created_at}')"
        for i, (number, status, country, created_at) in enumerate(rows)
    )
    async with open_database(empty_database, create_schema=False):
        await (
            require_context()
            .db()
            .execute_script(
                "INSERT INTO petition (slug, title, target, goal, body, status, signature_goal, "
                "signature_count, comment_count, last_signature_number, created_at, "
                "last_comment_sequence) VALUES "
                "('a', 'A', 'T', 'G', 'B', 'OPEN', 3, 4, 0, 5, '2026-01-01 00:00:00+00:00', 0);"
                "INSERT INTO signature (petition_id, number, status, first_name, last_name, "
                f"email, email_canonical, country, show_name, created_at) VALUES {values};"
            )
        )
    # when
    await migrate(empty_database)
    # then
    async with open_database(empty_database, create_schema=False):
        petition = await Petition.get(slug="a")
        countries = await models.country_counts(petition.id, 10)
        hours = await models.signatures_over_time(
            petition.id,
            models.Interval.HOUR,
            datetime(2026, 1, 1, 10, tzinfo=UTC),
            datetime(2026, 1, 1, 13, tzinfo=UTC),
        )
        minutes = await models.signatures_over_time(
            petition.id,
            models.Interval.MINUTE,
            datetime(2026, 1, 1, 10, 5, tzinfo=UTC),
            datetime(2026, 1, 1, 10, 7, tzinfo=UTC),
        )
        days = await models.signatures_over_time(
            petition.id,
            models.Interval.DAY,
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 3, tzinfo=UTC),
        )
        milestones = await models.milestones(petition.id, petition.signature_goal)
        audited = await models.count_differences()
    assert countries == [("GB", 2), ("FR", 1)]
    assert [count for _, count in hours] == [2, 1, 0]
    assert [count for _, count in minutes] == [2, 0]
    assert [count for _, count in days] == [3, 1]
    assert milestones[0] == (3, datetime(2026, 1, 1, 11, tzinfo=UTC))  # the goal: the 3rd signed
    assert [reached for _, reached in milestones[1:]] == [None] * 5
    assert audited == []


async def test_fake_initial_runs_the_initial_migration_on_an_empty_database(empty_database: str):
    pending = await pending_migrations(empty_database)

    assert await migrate(empty_database, fake_initial=True) == pending
    assert "signature" in await table_names(empty_database)


@needs_postgres
async def test_simultaneous_migrations_apply_each_migration_once():
    async with fresh_postgres_database() as url:
        pending = await pending_migrations(url)

        results = await asyncio.gather(*(migrate(url) for _ in range(3)))

        assert sorted(results, key=len) == [[], [], pending]


async def test_the_migrations_match_the_models():
    changes = await unmigrated_changes()

    assert changes == [], (
        "models/tables.py has changes no migration covers; make one with "
        "`tortoise -c models.migrations.TORTOISE_ORM makemigrations --name <what_changed>`"
    )


def test_the_migrations_are_found_from_any_working_folder(tmp_path: Path):
    url = f"sqlite://{tmp_path / 'elsewhere.sqlite3'}"
    script = (
        "import asyncio, models.migrations as m; "
        f"print(asyncio.run(m.pending_migrations({url!r}))[0])"
    )

    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == INITIAL


@needs_postgres
async def test_an_unreachable_database_is_an_error_not_a_pending_migration():
    assert POSTGRES_URL
    missing = database_url_named(POSTGRES_URL, "petitions_test_does_not_exist")

    with pytest.raises(DBConnectionError):
        await pending_migrations(missing)
