"""The `petitions` command: one entry, a subcommand per task, each a short function that reads
the settings, opens what it needs and calls the domain in `models/`.

Long work shows a progress bar (tqdm) on standard error, and only when standard error is a
terminal, so that pipes, files and tests see nothing but the output. Exit status: 0 done; 1
something was found or not found (counts that differ, an unknown petition or token); 2 bad
settings or usage."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import io
import logging.config
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from server import Settings
    from subscriptions import Hub

# The service (Tortoise, Strawberry: two seconds of imports) is imported by each command when
# it runs, not here, so that `petitions --help` answers at once.

PROG = "petitions"
ROLES = ("admin", "moderator")  # models.TokenRole's values (tests/test_cli.py holds them equal)

# The broker's reach for `erase`: tell running servers within 5 s, or say that we could not.
PUBLISH_TIMEOUT = 3.0  # the hub tries to connect for this plus 2 s


class Failed(Exception):
    """A command stops with a message on standard error and exit status 1."""


# -- progress -------------------------------------------------------------------------------


def _bar(description: str, *, unit: str, total: int | None = None, **options: Any) -> Any:
    """A tqdm bar on standard error, drawn only when it is a terminal (`disable=None`)."""
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=None,
        leave=False,
        **options,
    )


# -- what commands share ---------------------------------------------------------------------


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[None]:
    """The database for one command: SQLite migrates itself, PostgreSQL must be migrated."""
    import models
    from server import prepare_database

    await prepare_database(settings)
    async with models.open_database(settings.database_url, pool_size=2, create_schema=False):
        yield


@asynccontextmanager
async def _publisher(settings: Settings) -> AsyncIterator[Hub]:
    """A publisher on PETITIONS_BROADCAST_URL for the length of one command. The hub awaits
    each publish (Redis PUBLISH, PostgreSQL NOTIFY), so none is left unsent when it goes."""
    from subscriptions import Hub

    hub = Hub(
        settings.broadcast_url,
        capacity=settings.subscriber_buffer,
        prefix=settings.channel_prefix,
        probe_timeout=PUBLISH_TIMEOUT,
    )
    await hub.connect()
    try:
        yield hub
    finally:
        await hub.disconnect()


@contextmanager
def _utf8_stdout() -> Iterator[TextIO]:
    """Standard output in UTF-8 whatever the locale: an export is a file, not a terminal
    message."""
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper):
        stdout.reconfigure(encoding="utf-8")
    try:
        yield stdout
        stdout.flush()
    except BrokenPipeError:  # `petitions export … | head`: the reader has had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())  # so that the flush at exit does not fail again
        raise Failed("standard output was closed before the export ended") from None


# -- the commands ----------------------------------------------------------------------------


def _raise_open_file_limit() -> None:
    """Every websocket is a file: take the hard limit on open files, not the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from server import GoingAwayWebSocketProtocol, create_app, prepare_database
    from serving.logs import log_config

    if args.workers > 1 and settings.broadcast_url.startswith("memory:"):
        print(
            f"{PROG}: --workers needs a shared broadcast backend: with memory:// a signature "
            "taken by one process would never reach subscribers on the others. Set "
            "PETITIONS_BROADCAST_URL=redis://… (or postgres://…).",
            file=sys.stderr,
        )
        return 2
    if args.demo:  # a log line, not a print: it goes where the server's logs go, as they go
        logging.getLogger("petitions").info(_load_demo(settings))
    asyncio.run(prepare_database(settings))  # refuse a schema that is behind, before forking
    _raise_open_file_limit()
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "ws_per_message_deflate": settings.ws_compression,
        "ws_max_size": settings.ws_max_message_bytes,
        "timeout_graceful_shutdown": 30,
        "access_log": settings.access_log,
        "proxy_headers": False,  # uvicorn would believe 127.0.0.1: ours, if configured
        "log_level": "info",
        "log_config": log_config(settings.log_format),
    }
    if args.workers > 1:  # each worker imports `server:app`, configured by the same variables
        if settings.metrics_token is not None:
            _share_metrics()
        uvicorn.run(
            "server:app", workers=args.workers, ws="server:GoingAwayWebSocketProtocol", **options
        )
    else:
        uvicorn.run(create_app(settings), ws=GoingAwayWebSocketProtocol, **options)
    return 0


def _share_metrics() -> None:
    """Workers write their figures to files in one folder, which `/metrics` adds up
    (prometheus-client's multiprocess mode): the operator's `PROMETHEUS_MULTIPROC_DIR`, emptied
    of an earlier run's figures, or a new temporary folder. Set before the workers start: each
    reads it when it first imports prometheus-client."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="petitions-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def demo(args: argparse.Namespace, settings: Settings) -> int:
    print(_load_demo(settings))
    return 0


def _load_demo(settings: Settings) -> str:
    """Load the demo petition if it is not there; where it is."""
    import models

    async def load() -> models.Petition:
        async with _database(settings):
            return await models.load_demo()

    petition = asyncio.run(load())
    return f"demo petition: /p/{petition.slug} ({petition.signature_count} signatures)"


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from models import migrations

    applied = asyncio.run(migrations.migrate(settings.database_url))
    print(f"migrate: applied {', '.join(applied)}" if applied else "migrate: up to date")
    return 0


def check_counts(args: argparse.Namespace, settings: Settings) -> int:
    import models

    async def _audit(description: str) -> list[models.CountDifference]:
        with _bar(description, unit="signature") as bar:

            def total(count: int) -> None:
                bar.total = count
                bar.refresh()

            return await models.count_differences(progress=bar.update, total=total)

    async def check() -> int:
        async with _database(settings):
            differences = await _audit("counting rows")
            for difference in differences:
                print(f"differs: {difference}")
            if not differences:
                print("check-counts: every counter equals the rows behind it")
                return 0
            if not args.repair:
                print(f"check-counts: {len(differences)} difference(s); --repair fixes them")
                return 1
            with _bar("repairing", unit="counter", total=len(differences)) as bar:
                for difference in differences:  # each its own transaction: safe to interrupt
                    await models.repair_counts([difference])
                    bar.update(1)
            left = await _audit("counting rows again")
            print(f"check-counts: repaired {len(differences) - len(left)} counter(s)")
            return 0 if not left else 1

    return asyncio.run(check())


def export(args: argparse.Namespace, settings: Settings) -> int:
    import models
    from models import exports

    async def run() -> int:
        async with _database(settings):
            petition = await models.find_petition(admin=True, slug=args.slug)
            if petition is None:
                raise Failed(f"no petition with the slug {args.slug!r}")
            total = await exports.count_valid(petition.id)
            with _utf8_stdout() as stdout, _bar("exporting", unit="signature", total=total) as bar:
                try:
                    return await exports.export(
                        args.slug,
                        args.format,
                        emails=args.emails,
                        write=stdout.write,
                        progress=bar.update,
                    )
                except LookupError:  # deleted since we looked
                    raise Failed(f"no petition with the slug {args.slug!r}") from None

    written = asyncio.run(run())
    print(f"export: {written} signature(s) of {args.slug}", file=sys.stderr)
    return 0


def erase(args: argparse.Namespace, settings: Settings) -> int:
    from models import erasure

    async def run() -> erasure.Erased:
        async with _database(settings), _publisher(settings) as hub:
            if not hub.healthy:
                print(
                    f"{PROG}: could not reach PETITIONS_BROADCAST_URL: erasing anyway; running "
                    "servers catch up when they reconnect to it",
                    file=sys.stderr,
                )
            with _bar("erasing", unit="row") as bar:
                return await erasure.erase_signer(args.email, publisher=hub, progress=bar.update)

    erased = asyncio.run(run())
    print(
        f"erase: removed {erased.signatures} signature(s) and {erased.comments} comment(s) "
        f"of {args.email}"
    )
    if settings.broadcast_url.startswith("memory:"):
        print(
            f"{PROG}: PETITIONS_BROADCAST_URL is memory://, so running servers were not told: "
            "they show the change at their next start",
            file=sys.stderr,
        )
    return 0


def anonymise(args: argparse.Namespace, settings: Settings) -> int:
    from models import erasure

    async def run() -> int:
        async with _database(settings):
            with _bar("anonymising", unit="signature") as bar:

                def total(count: int) -> None:
                    bar.total = count
                    bar.refresh()

                return await erasure.anonymise(args.closed_for, progress=bar.update, total=total)

    stripped = asyncio.run(run())
    print(
        f"anonymise: stripped emails and addresses from {stripped} signature(s) of petitions "
        f"closed for {args.closed_for} day(s) or more"
    )
    return 0


def token_create(args: argparse.Namespace, settings: Settings) -> int:
    import models
    from models import tokens

    async def run() -> str:
        async with _database(settings):
            try:
                return await tokens.create_token(args.name, models.TokenRole(args.role))
            except tokens.TokenNameTaken as error:
                raise Failed(f"{error}: choose another --name, or revoke it first") from None

    token = asyncio.run(run())
    print(
        f"token create: {args.role} token {args.name!r}. It is shown once, below, and stored "
        "only as a hash: keep it now. Send it as `Authorization: Bearer <token>`.",
        file=sys.stderr,
    )
    print(token)
    return 0


def token_list(args: argparse.Namespace, settings: Settings) -> int:
    import models
    from models import tokens

    async def run() -> list[models.ApiToken]:
        async with _database(settings):
            return await tokens.list_tokens()

    stored = asyncio.run(run())
    if not stored:
        print(f"token list: no tokens; `{PROG} token create` makes one", file=sys.stderr)
        return 0
    rows = [("name", "role", "created")] + [
        (
            token.name,
            str(token.role),
            token.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        for token in stored
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, role, created in rows:
        print(f"{name:<{widths[0]}}  {role:<{widths[1]}}  {created}")
    return 0


def token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from models import tokens

    async def run() -> bool:
        async with _database(settings):
            return await tokens.revoke_token(args.name)

    if not asyncio.run(run()):
        raise Failed(f"no token named {args.name!r} (`{PROG} token list` shows them)")
    print(f"token revoke: {args.name!r} no longer works")
    return 0


# -- the parser ------------------------------------------------------------------------------

DATABASE = "Reads PETITIONS_DATABASE_URL (default: petitions.sqlite3 in the working folder)."

EXAMPLES = """\
examples:
  petitions serve --demo
      serve the demo petition at http://127.0.0.1:8000/graphql (GraphiQL in a browser)
  petitions export my-petition --format json > out.json
      every valid signature of /my-petition, as JSON, in out.json
  petitions token create --role moderator --name alice
      a bearer token for Alice, printed once on the last line

Settings come from PETITIONS_* environment variables (the README's "Settings"); one that
does not read stops the command with exit status 2, naming it.
Exit status: 0 done; 1 something was found or not found (counters that differ, an unknown
petition or token); 2 bad settings or usage.
`petitions COMMAND --help` tells more about a command."""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (paragraphs, lists), options in a wider first column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=26)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):  # Python 3.11 leaves out their
            for command in action._get_subactions():  # indent, so the longest wraps a line
                width = len(self._format_action_invocation(command)) + self._current_indent
                self._action_max_length = max(
                    self._action_max_length, width + self._indent_increment
                )


def _number(least: int, most: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least or (most is not None and value > most):
            within = f"from {least} to {most}" if most is not None else f"at least {least}"
            raise argparse.ArgumentTypeError(f"must be {within}, not {value}")
        return value

    return parse


def _token_name(text: str) -> str:
    if not text.strip() or text != text.strip() or len(text) > 100:
        raise argparse.ArgumentTypeError(
            f"a token name is 1 to 100 characters, without spaces around: {text!r}"
        )
    return text


def _command(
    commands: Any,
    name: str,
    run: Callable[[argparse.Namespace, Settings], int] | None,
    summary: str,
    description: str,
    needs: str = DATABASE,
) -> argparse.ArgumentParser:
    """A subcommand: `summary` is its line in the list, `description` (and what it reads from
    the environment) its `--help`."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=f"{description}\n\n{needs}", formatter_class=_Help
    )
    if run is not None:
        parser.set_defaults(run=run)
    return parser


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The petition service: serve its GraphQL API, and look after its data.",
        epilog=EXAMPLES,
        formatter_class=_Help,
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", required=True, metavar="COMMAND"
    )

    serving = _command(
        commands,
        "serve",
        serve,
        "serve the GraphQL API over HTTP and websockets",
        "Serve the GraphQL API at /graphql (HTTP and websockets) and /healthz until stopped\n"
        "(Ctrl-C or SIGTERM: open requests get 30 seconds to finish). On SQLite the schema\n"
        "is created or upgraded at start; PostgreSQL must be migrated first\n"
        "(`petitions migrate`).",
        needs='Reads every PETITIONS_* variable (the README\'s "Settings").',
    )
    serving.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: all)",
    )
    serving.add_argument(
        "--port", type=_number(1, 65535), default=8000, help="TCP port (default: 8000)"
    )
    serving.add_argument(
        "--workers",
        type=_number(1),
        default=1,
        help="server processes (default: 1); more than one needs a shared "
        "PETITIONS_BROADCAST_URL (redis://… or postgres://…)",
    )
    serving.add_argument(
        "--demo", action="store_true", help="load the demo petition first, if it is not there"
    )

    _command(
        commands,
        "demo",
        demo,
        "load the demo petition and exit",
        "Load the demo petition (amazon-stop-facial-recognition, 241 signatures) unless it\n"
        "is there already.",
    )
    _command(
        commands,
        "migrate",
        migrate,
        "apply the database migrations",
        "Apply the migrations the database lacks, and say which. PostgreSQL needs this\n"
        "before `petitions serve` after every upgrade; SQLite does it by itself at start.",
    )

    checking = _command(
        commands,
        "check-counts",
        check_counts,
        "audit every stored counter against its rows",
        "Compare each petition's stored counters (signatures, comments, the last signature\n"
        "number) with a count of the rows behind them, and print each that differs.\n"
        "Exit status 1 when one differs (and --repair could not set it right).",
    )
    checking.add_argument(
        "--repair",
        action="store_true",
        help="set each differing counter to a fresh count of its rows (safe while serving)",
    )

    exporting = _command(
        commands,
        "export",
        export,
        "print a petition's signatures as CSV or JSON",
        "Write every valid signature of one petition, oldest first, to standard output:\n"
        "number, name (the public name), country, comment, signedAt; CSV with a header row,\n"
        "or a JSON array of objects with those keys. Progress goes to standard error.\n"
        "Exit status 1 if there is no such petition.",
    )
    exporting.add_argument("slug", metavar="SLUG", help="the petition's slug, as in its address")
    exporting.add_argument(
        "--format", choices=["csv", "json"], default="csv", help="csv (default) or json"
    )
    exporting.add_argument(
        "--emails",
        action="store_true",
        help="add each signer's email (personal data: keep the file safe)",
    )

    erasing = _command(
        commands,
        "erase",
        erase,
        "remove one email's signatures and comments everywhere",
        "Remove every signature and comment of one email address over all petitions (one\n"
        "mailbox, however it is spelt: case, and dots and +tags at Gmail), for a person who\n"
        "asks to be forgotten. Counts drop exactly, and running servers are told through\n"
        "PETITIONS_BROADCAST_URL (with memory://, they see it at their next start).",
        needs="Reads PETITIONS_DATABASE_URL, PETITIONS_BROADCAST_URL and PETITIONS_CHANNEL_PREFIX.",
    )
    erasing.add_argument("email", metavar="EMAIL", help="the signer's email address")

    anonymising = _command(
        commands,
        "anonymise",
        anonymise,
        "strip emails and addresses from long-closed petitions",
        "Strip the emails and client addresses from the signatures of every petition closed\n"
        "for at least DAYS days (since its closing date, or since an admin closed it).\n"
        "Names, countries and counts stay. It cannot be undone.",
    )
    anonymising.add_argument(
        "--closed-for",
        metavar="DAYS",
        type=_number(0),
        required=True,
        help="days since a petition closed (0: every closed petition)",
    )

    tokens = _command(
        commands,
        "token",
        None,
        "create, list or revoke admin and moderator tokens",
        "Bearer tokens for the API (`Authorization: Bearer <token>`), stored as hashes only.\n"
        "They work beside PETITIONS_ADMIN_TOKEN and PETITIONS_MODERATOR_TOKEN.",
    )
    token_commands = tokens.add_subparsers(
        title="token commands", dest="token_command", required=True, metavar="TOKEN_COMMAND"
    )
    creating = _command(
        token_commands,
        "create",
        token_create,
        "make a token and print it, once",
        "Make a new token and print it alone on the last line of standard output. It is\n"
        "shown this once and stored only as a hash: keep it now.\n"
        "Exit status 1 if the name is taken.",
    )
    creating.add_argument(
        "--role",
        choices=ROLES,
        required=True,
        help="admin: everything, petitions and moderation; moderator: moderation only",
    )
    creating.add_argument(
        "--name",
        type=_token_name,
        required=True,
        help="who or what holds it (unique), to list and revoke it by",
    )
    _command(
        token_commands,
        "list",
        token_list,
        "list the tokens: name, role, created",
        "List every token's name, role and creation time (never the token itself).",
    )
    revoking = _command(
        token_commands,
        "revoke",
        token_revoke,
        "make a token stop working",
        "Delete a token: requests that bear it are refused from now on.\n"
        "Exit status 1 if there is no token of that name.",
    )
    revoking.add_argument("name", metavar="NAME", help="the token's name, as `token list` shows")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `petitions` command."""
    args = make_parser().parse_args(argv)
    from server import BadSetting, SchemaBehind, Settings
    from serving.logs import log_config

    try:
        settings = Settings.from_env()
    except BadSetting as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    logging.config.dictConfig(log_config(settings.log_format))
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        return run(args, settings)
    except SchemaBehind as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except Failed as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
