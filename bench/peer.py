"""The peer: PostGraphile 4.14 on the benchmark's own PostgreSQL tables, measured in the same
run as the service, read for read, so that every read's ratio to it stands beside its ratio to
the bare route.

PostGraphile is installed with npm into a cache folder (`$XDG_CACHE_HOME/petitions-bench/
postgraphile-4.14`, else `~/.cache/…`; once, then reused) and started as real Node processes on
free ports of 127.0.0.1, as many as the service has, on the same database, with production
options (no GraphiQL, no query log, no watch) and `plan_cache_mode=force_custom_plan` for its
connections (`PGOPTIONS`, which node-postgres reads): PostGraphile runs its SQL as named
prepared statements, and a generic plan cannot see that a cursor near the end of a million rows
leaves ten of them. A function in a schema of its own (`bench_peer.plan_cache_mode()`) lets the
phase read the setting back through PostGraphile's own pool.

The reads, each with distinct requests (an undeclared `nonce` variable, new every request, as
`Workload(vary=True)` sends them to the service: no cache of results can answer; both servers
still reuse their parsed documents): the count, the first page of 10 signers (newest first),
the page `plan.seed_depth` deep after a cursor, and the seed page's whole query (the petition,
10 signers, 10 comments). PostGraphile's connections ask for the same rows: signatures
`condition: {status: "VALID"}, orderBy: NUMBER_DESC`, comments `condition: {status:
"PUBLISHED"}, orderBy: ID_ASC`; its seed page leaves out `totalCount` (a `count(*)` over the
million rows there; the petition's stored counters, which it reads too, are the same numbers).
Both servers' answers are checked against each other and the rows before anything is measured;
then each read is measured ours, peer, peer, ours (half the run's seconds each, after a warm-up
of at least a second each), so both see the same noise.

On SQLite (no PostgreSQL tables), or without `node` and `npm`, or when npm cannot install
PostGraphile, the phase is skipped with its reason printed: not a failure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench import httpclient
from bench.load import merge_curves, ms, rps
from bench.phases import (
    DEEP_SLUG,
    Context,
    _healthy_load,
    _load_summary,
    _page_variables,
    _probe,
    cpu_note,
)
from bench.procs import HOST, BenchError, Server, cpu_seconds, free_port, tail
from bench.results import Figure, at_least, ratio
from bench.service import ADMIN_TOKEN, petition_global_id
from bench.workload import COUNT_QUERY, PAGE_QUERY, Workload, graphql_post

PEER = "PostGraphile"
PACKAGE = "postgraphile@>=4.14 <5"
CACHE_NAME = "postgraphile-4.14"
PLAN_CACHE_MODE = "force_custom_plan"
PGOPTIONS = f"-c plan_cache_mode={PLAN_CACHE_MODE}"
PROBE_SCHEMA = "bench_peer"  # PostGraphile also reflects it: one query field, planCacheMode
POOL_SIZE = 10  # PostGraphile's default, and the service's (PETITIONS_DB_POOL_SIZE)
GOAL = 1.5  # our reads: at least 1.5× PostGraphile's
COMMENTS = 12  # added to the seeded petition through the API; one taken down

# The seed page: the petition by slug with every field, ten signatures, ten comments (as
# tests/test_limits.py asks it).
SEED_QUERY = (
    "query Page($slug: String!) { petition(slug: $slug) { "
    "id slug title target goal body letter imageUrl imageCredit status "
    "signatureGoal signatureCount commentCount createdAt closesAt "
    "signatures(first: 10) { totalCount "
    "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
    "edges { cursor node { id name country comment createdAt } } } "
    "comments(first: 10) { totalCount "
    "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
    "edges { cursor node { id authorName body createdAt status } } } } }"
)

# PostGraphile's reflection of the same tables: `petitionBySlug` (the unique slug),
# `signaturesByPetitionId` and `commentsByPetitionId` (the foreign keys), `nodeId` for the
# global IDs; a signer's shown name is first + last name (show_name true for every seeded one).
_SIGNERS = 'orderBy: NUMBER_DESC, condition: {status: "VALID"}'
_COMMENTERS = 'orderBy: ID_ASC, condition: {status: "PUBLISHED"}'
PEER_COUNT = "query Count($slug: String!) { petitionBySlug(slug: $slug) { signatureCount } }"
PEER_PAGE = (
    "query Page($slug: String!, $after: Cursor) { petitionBySlug(slug: $slug) { signatureCount "
    f"signaturesByPetitionId(first: 10, after: $after, {_SIGNERS}) "
    "{ edges { cursor node { firstName lastName showName createdAt } } "
    "pageInfo { hasNextPage endCursor } } } }"
)
PEER_SEED = (
    "query Page($slug: String!) { petitionBySlug(slug: $slug) { "
    "nodeId slug title target goal body letter imageUrl imageCredit status "
    "signatureGoal signatureCount commentCount createdAt closesAt "
    f"signaturesByPetitionId(first: 10, {_SIGNERS}) "
    "{ pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
    "edges { cursor node { nodeId firstName lastName showName country comment createdAt } } } "
    f"commentsByPetitionId(first: 10, {_COMMENTERS}) "
    "{ pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
    "edges { cursor node { nodeId authorName body createdAt status } } } } }"
)
# PostGraphile's own cursor for the signature numbered $number, in the page's order.
PEER_CURSOR = (
    "query Cursor($slug: String!, $number: Int!) { petitionBySlug(slug: $slug) { "
    'signaturesByPetitionId(first: 1, orderBy: NUMBER_DESC, condition: {status: "VALID", '
    "number: $number}) { edges { cursor } } } }"
)
PEER_PLAN_CACHE_MODE = "{ planCacheMode }"

ADD_COMMENT = (
    "mutation Add($input: AddCommentInput!) { addComment(input: $input) "
    "{ comment { id status } status errors { code message } } }"
)
MODERATE_COMMENT = (
    "mutation Moderate($input: ModerateCommentInput!) { moderateComment(input: $input) "
    "{ comment { id status } errors { code message } } }"
)


class Skip(Exception):
    """The peer cannot run here (no Node.js, no PostgreSQL tables, npm failed): not a failure."""


@dataclass
class Peer:
    cli: Path
    node: str
    version: str
    install: dict[str, Any]
    servers: list[Server] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def check_alive(self) -> None:
        for server in self.servers:
            if not server.alive:
                raise BenchError(
                    f"{PEER} {server.name} died (exit {server.process.returncode}):\n"
                    f"{tail(server.log)}"
                )


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "petitions-bench" / CACHE_NAME


def _installed_version(folder: Path) -> str | None:
    """The PostGraphile version installed in `folder`, when it is a 4.x from 4.14 on."""
    try:
        meta = json.loads((folder / "node_modules" / "postgraphile" / "package.json").read_text())
        version = str(meta["version"])
        major, minor = (int(part) for part in version.split(".")[:2])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (
        major != 4
        or minor < 14
        or not (folder / "node_modules" / "postgraphile" / "cli.js").is_file()
    ):
        return None
    return version


async def install(ctx: Context) -> Peer:
    """PostGraphile from the cache folder, installed there first when it is not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        raise Skip(f"{missing} not on PATH: install Node.js (with npm) to measure {PEER}")
    folder = cache_folder()
    procs = ctx.deployment.procs
    code, out, _ = await procs.run([node, "--version"], limit=30)
    info: dict[str, Any] = {"folder": str(folder), "node": out.strip() if code == 0 else "?"}
    version = _installed_version(folder)
    if version is None:
        began = time.monotonic()
        print(f"   installing {PACKAGE} into {folder} (once) …", flush=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{folder.name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            (staging / "package.json").write_text(
                json.dumps({"name": "petitions-bench-peer", "private": True}) + "\n"
            )
            argv = [npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"]
            code, out, err = await procs.run([*argv, PACKAGE], cwd=staging, limit=600)
            if code != 0:
                raise Skip(f"npm install {PACKAGE} failed ({code}): {(out + err).strip()[-300:]}")
            version = _installed_version(staging)
            if version is None:
                raise Skip(f"npm install {PACKAGE} left no PostGraphile 4.14+ in {staging}")
            if _installed_version(folder) is None:  # not installed by another run meanwhile
                shutil.rmtree(folder, ignore_errors=True)  # a broken or older install
                staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        info["installed_s"] = round(time.monotonic() - began, 1)
    else:
        info["installed_s"] = 0.0  # cached
    version = _installed_version(folder) or version
    if version is None:
        raise Skip(f"no PostGraphile 4.14+ in {folder} after installing it")
    cli = folder / "node_modules" / "postgraphile" / "cli.js"
    return Peer(cli=cli, node=node, version=version, install=info)


async def _probe_schema(url: str, create: bool) -> None:
    """`bench_peer.plan_cache_mode()`: the setting as PostGraphile's connections have it."""
    connection = await asyncpg.connect(url)
    try:
        if create:
            await connection.execute(
                f"CREATE SCHEMA IF NOT EXISTS {PROBE_SCHEMA}; "
                f"CREATE OR REPLACE FUNCTION {PROBE_SCHEMA}.plan_cache_mode() RETURNS text "
                "LANGUAGE sql STABLE AS $$ SELECT current_setting('plan_cache_mode') $$"
            )
        else:
            await connection.execute(f"DROP SCHEMA IF EXISTS {PROBE_SCHEMA} CASCADE")
    finally:
        await connection.close()


async def start(ctx: Context, peer: Peer) -> None:
    """As many PostGraphile processes as the service has, on the service's database."""
    procs, database = ctx.deployment.procs, ctx.deployment.database_url
    options = " ".join(filter(None, [os.environ.get("PGOPTIONS", ""), PGOPTIONS]))
    env = {**os.environ, "PGOPTIONS": options, "NODE_ENV": "production"}
    for index in range(ctx.deployment.process_count):
        port = free_port()
        name = f"peer-postgraphile-{index}"
        log = procs.workdir / f"{name}.log"
        argv = [
            peer.node,
            str(peer.cli),
            "--connection",
            database,
            "--schema",
            f"public,{PROBE_SCHEMA}",
            "--host",
            HOST,
            "--port",
            str(port),
            "--max-pool-size",
            str(POOL_SIZE),
            "--disable-graphiql",
            "--disable-query-log",
        ]
        process = await procs.spawn(argv, env=env, cwd=peer.cli.parent, log=log)
        server = Server(name, process, port, log)
        peer.servers.append(server)
        await _ready(server)


async def _ready(server: Server, within: float = 90.0) -> None:
    """PostGraphile has no health route: ready once `{ __typename }` is answered."""
    try:
        async with asyncio.timeout(within):
            while True:
                if not server.alive:
                    raise BenchError(
                        f"{server.name} exited with {server.process.returncode} on start:\n"
                        f"{tail(server.log)}"
                    )
                with contextlib.suppress(httpclient.HTTPError, OSError, TimeoutError):
                    answer = await httpclient.graphql(server.url, "{ __typename }", within=2)
                    if answer.get("data") == {"__typename": "Query"}:
                        return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise BenchError(
            f"{server.name} did not answer in {within:g} s:\n{tail(server.log)}"
        ) from None


async def _plan_cache_modes(peer: Peer) -> list[str]:
    """Each process's answer, read back through its own pool (several times: several
    connections)."""
    modes = set()
    for url in peer.urls:
        for _ in range(3):
            answer = await httpclient.graphql(url, PEER_PLAN_CACHE_MODE)
            modes.add(str((answer.get("data") or {}).get("planCacheMode")))
    return sorted(modes)


async def _add_comments(ctx: Context) -> list[tuple[str, str]]:
    """Comments on the seeded petition, through the service's API (so it keeps its counters
    and caches itself): COMMENTS published (a moderator publishes any the filter held), the
    third then taken down. The first 10 published ones, oldest first, from the table."""
    url = ctx.urls[0]
    petition_id = petition_global_id(ctx.deep_pk)
    for k in range(1, COMMENTS + 1):
        answer = await httpclient.graphql(
            url,
            ADD_COMMENT,
            {
                "input": {
                    "petitionId": petition_id,
                    "authorName": f"Bench Commenter {k}",
                    "email": f"bench-commenter-{k}-{ctx.email_tag}@example.org",
                    "body": f"Comment {k}: a fast page matters when a million people sign.",
                }
            },
        )
        payload = (answer.get("data") or {}).get("addComment") or {}
        comment = payload.get("comment") or {}
        if answer.get("errors") or payload.get("errors") or not comment.get("id"):
            raise BenchError(f"addComment failed: {answer}")
        status = "HIDDEN" if k == 3 else "PUBLISHED"
        if comment.get("status") != status:
            answer = await httpclient.graphql(
                url,
                MODERATE_COMMENT,
                {"input": {"id": comment["id"], "status": status}},
                token=ADMIN_TOKEN,
            )
            moderated = (answer.get("data") or {}).get("moderateComment") or {}
            if answer.get("errors") or moderated.get("errors"):
                raise BenchError(f"moderateComment failed: {answer}")
    connection = await asyncpg.connect(ctx.deployment.database_url)
    try:
        rows = await connection.fetch(
            "SELECT author_name, body FROM comment WHERE petition_id = $1 "
            "AND status = 'PUBLISHED' ORDER BY id LIMIT 10",
            ctx.deep_pk,
        )
    finally:
        await connection.close()
    return [(str(row[0]), str(row[1])) for row in rows]


@dataclass(frozen=True)
class Read:
    key: str
    label: str
    ours: Workload
    theirs: Workload


def _names(body: bytes, path: tuple[str, ...]) -> list[str]:
    """The signers' shown names on a page: ours name them, PostGraphile gives both names."""
    node: Any = json.loads(body)["data"]
    for step in path:
        node = node[step]
    names = []
    for edge in node["edges"]:
        signer = edge["node"]
        if "name" in signer:
            names.append(signer["name"])
        else:
            names.append(
                f"{signer['firstName']} {signer['lastName']}" if signer["showName"] else ""
            )
    return names


async def _check_all(
    urls: list[str], workload: Workload, check: Callable[[Any], str], what: str
) -> None:
    for url in urls:
        status, body, _ = await _probe(url, workload)
        try:
            problem = check(json.loads(body)) if status == 200 else f"HTTP {status}"
        except (KeyError, TypeError, ValueError, IndexError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem:
            raise BenchError(f"{what} at {url} wrong ({problem}): {body[:300]!r}")


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _seed_problem(ours: dict[str, Any], theirs: dict[str, Any], comments: list[Any]) -> str:
    """Where the two seed pages differ (or differ from the rows); "" when they agree."""
    mine, peer = ours["data"]["petition"], theirs["data"]["petitionBySlug"]
    for name in (
        "slug title target goal body letter imageUrl imageCredit status signatureGoal "
        "signatureCount commentCount"
    ).split():
        if mine[name] != peer[name]:
            return f"{name}: ours {mine[name]!r}, {PEER} {peer[name]!r}"
    for name in ("createdAt", "closesAt"):
        if _when(mine[name]) != _when(peer[name]):
            return f"{name}: ours {mine[name]!r}, {PEER} {peer[name]!r}"
    signers = [
        (
            e["node"]["name"],
            e["node"]["country"],
            e["node"]["comment"],
            _when(e["node"]["createdAt"]),
        )
        for e in mine["signatures"]["edges"]
    ]
    their_signers = [
        (
            f"{e['node']['firstName']} {e['node']['lastName']}",
            e["node"]["country"],
            e["node"]["comment"],
            _when(e["node"]["createdAt"]),
        )
        for e in peer["signaturesByPetitionId"]["edges"]
    ]
    if signers != their_signers or len(signers) != 10:
        return f"signers: ours {signers[:2]}…, {PEER} {their_signers[:2]}…"
    said = [
        (e["node"]["authorName"], e["node"]["body"], _when(e["node"]["createdAt"]))
        for e in mine["comments"]["edges"]
    ]
    their_said = [
        (e["node"]["authorName"], e["node"]["body"], _when(e["node"]["createdAt"]))
        for e in peer["commentsByPetitionId"]["edges"]
    ]
    if said != their_said or [(a, b) for a, b, _ in said] != comments:
        return f"comments: ours {said[:2]}…, {PEER} {their_said[:2]}…, rows {comments[:2]}…"
    for connection, theirs_name in (
        ("signatures", "signaturesByPetitionId"),
        ("comments", "commentsByPetitionId"),
    ):
        if (
            mine[connection]["pageInfo"]["hasNextPage"]
            != peer[theirs_name]["pageInfo"]["hasNextPage"]
        ):
            return f"{connection}: hasNextPage differs"
    if mine["signatures"]["totalCount"] != peer["signatureCount"]:
        return "signatures totalCount differs from the stored count"
    return ""


async def reads_to_compare(ctx: Context, peer: Peer) -> list[Read]:
    """The four reads, each checked on every process of both servers."""
    deepest, total = ctx.plan.seed_depth, ctx.deep_total
    slug = {"slug": DEEP_SLUG}
    answer = await httpclient.graphql(
        peer.urls[0], PEER_CURSOR, {**slug, "number": total - deepest + 1}
    )
    try:
        edges = answer["data"]["petitionBySlug"]["signaturesByPetitionId"]["edges"]
        cursor = str(edges[0]["cursor"])
    except (KeyError, TypeError, IndexError):
        raise BenchError(f"{PEER} cursor of signature {total - deepest + 1}: {answer}") from None
    reads = [
        Read(
            "peer_count",
            f"count read vs {PEER}, distinct requests",
            graphql_post(COUNT_QUERY, slug, vary=True),
            graphql_post(PEER_COUNT, slug, vary=True),
        ),
        Read(
            "peer_page_first",
            f"first page of 10 signers vs {PEER}, distinct requests",
            graphql_post(PAGE_QUERY, _page_variables(ctx, 0), vary=True),
            graphql_post(PEER_PAGE, slug, vary=True),
        ),
        Read(
            "peer_page_deep",
            f"page {deepest:,} deep vs {PEER}, distinct requests",
            graphql_post(PAGE_QUERY, _page_variables(ctx, deepest), vary=True),
            graphql_post(PEER_PAGE, {**slug, "after": cursor}, vary=True),
        ),
        Read(
            "peer_seed_page",
            f"seed page's whole query vs {PEER}, distinct requests",
            graphql_post(SEED_QUERY, slug, vary=True),
            graphql_post(PEER_SEED, slug, vary=True),
        ),
    ]
    count = {"signatureCount": total}
    await _check_all(
        ctx.urls,
        reads[0].ours,
        lambda a: "" if a == {"data": {"petition": count}} else "count",
        "count read",
    )
    await _check_all(
        peer.urls,
        reads[0].theirs,
        lambda a: "" if a == {"data": {"petitionBySlug": count}} else "count",
        f"{PEER} count read",
    )
    for read, depth in ((reads[1], 0), (reads[2], deepest)):
        wanted = [f"Seed Signer{n}" for n in range(total - depth, total - depth - 10, -1)]
        for urls, workload, path, who in (
            (ctx.urls, read.ours, ("petition", "signatures"), "our"),
            (peer.urls, read.theirs, ("petitionBySlug", "signaturesByPetitionId"), PEER),
        ):
            for url in urls:
                status, body, _ = await _probe(url, workload)
                try:
                    names = _names(body, path)
                except (KeyError, TypeError, ValueError):
                    raise BenchError(
                        f"{who} page at depth {depth} broken: {status} {body[:300]!r}"
                    ) from None
                if names != wanted:
                    raise BenchError(
                        f"{who} page at depth {depth}: got {names[:3]}…, wanted {wanted[:3]}…"
                    )
    comments = await _add_comments(ctx)
    if len(comments) != 10:
        raise BenchError(f"the seeded petition holds {len(comments)} published comments, not 10")
    for url in ctx.urls:
        for peer_url in peer.urls:
            _, ours, _ = await _probe(url, reads[3].ours)
            _, theirs, _ = await _probe(peer_url, reads[3].theirs)
            try:
                problem = _seed_problem(json.loads(ours), json.loads(theirs), comments)
            except (KeyError, TypeError, ValueError) as error:
                problem = f"{type(error).__name__}: {error}: ours {ours[:200]!r}, "
                problem += f"{PEER} {theirs[:200]!r}"
            if problem:
                raise BenchError(f"seed page differs: {problem}")
    return reads


async def _measure(
    ctx: Context, peer: Peer, workload: Workload, theirs: bool, seconds: float
) -> dict[str, Any]:
    """One closed-loop run against our processes or PostGraphile's, with the server CPU of
    whichever it was (Context.closed only knows the service's and the baselines')."""
    servers = peer.servers if theirs else ctx.deployment.servers
    before = sum(cpu_seconds(server.pid) for server in servers)
    began = time.monotonic()
    # Each run warmed up for at least a second (wrk leaves shorter warm-ups out): a Node process
    # just started has neither its JIT nor its pool's connections warm.
    warmup = max(1.0, ctx.plan.http_warmup)
    urls = peer.urls if theirs else ctx.urls
    result = await ctx.closed(urls, workload, duration=seconds, warmup=warmup)
    wall = time.monotonic() - began
    if theirs:
        result["cpu"]["server_cores"] = (
            sum(cpu_seconds(server.pid) for server in servers) - before
        ) / wall
        peer.check_alive()
    return result


def _combined(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds run one after another: req/s over their time together, percentiles merged."""
    seconds = sum(float(r["duration_s"]) for r in results)
    parts = [(int(r["requests"]), [float(x) for x in r["curve_us"]]) for r in results]
    p50, p90, p99 = merge_curves(parts, (50, 90, 99))
    cpu = {
        key: sum(r["cpu"][key] * float(r["duration_s"]) for r in results) / seconds
        for key in ("server_cores", "load_cores", "machine_cores")
    }
    return {
        "requests": sum(int(r["requests"]) for r in results),
        "duration_s": seconds,
        "rps": sum(rps(r) * float(r["duration_s"]) for r in results) / seconds,
        "latency_us": {"p50": p50, "p90": p90, "p99": p99},
        "cpu": cpu,
        "rounds": [_load_summary(r) for r in results],
    }


def _skipped(ctx: Context, reason: str) -> None:
    print(f"   skipped: {reason}", flush=True)
    ctx.run.raw["peer"] = {"skipped": reason}
    ctx.run.add(Figure("peer", f"{PEER} peer", None, "", note=f"skipped: {reason}"))


async def compare(ctx: Context) -> None:
    """PostGraphile beside the service, read for read (see the module's docstring)."""
    if ctx.deployment.backend != "postgres":
        _skipped(ctx, f"{PEER} needs PostgreSQL tables (this is the {ctx.deployment.backend} run)")
        return
    if not ctx.deep_total:
        raise BenchError("no seeded petition to read (the seed phase did not run)")
    try:
        found = await install(ctx)
    except Skip as reason:
        _skipped(ctx, str(reason))
        return
    database = ctx.deployment.database_url
    await _probe_schema(database, create=True)
    try:
        await start(ctx, found)
        await _measure_reads(ctx, found)
    finally:
        for server in found.servers:
            await ctx.deployment.procs.stop(server.process)
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await _probe_schema(database, create=False)


async def _measure_reads(ctx: Context, found: Peer) -> None:
    run, plan = ctx.run, ctx.plan
    modes = await _plan_cache_modes(found)
    if modes != [PLAN_CACHE_MODE]:
        raise BenchError(
            f"{PEER}'s connections have plan_cache_mode {modes}, not {PLAN_CACHE_MODE}"
        )
    reads = await reads_to_compare(ctx, found)
    processes = len(found.servers)
    raw: dict[str, Any] = {
        "version": found.version,
        "processes": processes,
        "service_processes": len(ctx.deployment.servers),
        "pool_size": POOL_SIZE,
        "pgoptions": PGOPTIONS,
        "plan_cache_mode": modes[0],
        "install": found.install,
        "reads": {},
    }
    run.raw["peer"] = raw
    seconds = max(1.0, plan.http_seconds / 2)
    bare = ctx.base_rps()
    for read in reads:
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        for peer_run in (False, True, True, False):  # ours, peer, peer, ours
            result = await _measure(
                ctx, found, read.theirs if peer_run else read.ours, peer_run, seconds
            )
            _healthy_load(f"{read.key} ({PEER if peer_run else 'ours'})", result)
            (theirs if peer_run else ours).append(result)
        mine, peer_result = _combined(ours), _combined(theirs)
        raw["reads"][read.key] = {"ours": mine, "peer": peer_result}
        share = ratio(rps(mine), rps(peer_result))
        bare_share = ratio(rps(mine), bare)
        run.add(
            Figure(
                read.key,
                read.label,
                rps(mine),
                "req/s",
                share,
                PEER,
                f"≥ {GOAL:.2f}× {PEER}",
                at_least(share, GOAL),
                note=f"{PEER} {rps(peer_result):,.0f}/s ({processes} Node process"
                f"{'es' if processes != 1 else ''}); p99 ours {ms(mine, 'p99'):.1f} ms, "
                f"{PEER} {ms(peer_result, 'p99'):.1f} ms"
                + (f"; ours {bare_share:.2f}× bare" if bare_share is not None else "")
                + f"; ours {cpu_note(mine)}; {PEER} {cpu_note(peer_result)}",
            )
        )
