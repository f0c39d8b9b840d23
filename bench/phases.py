"""The HTTP phases: baselines, signing (throughput, latency, exact accounting), count reads,
and pages by depth. Fan-out and names are in `bench.fanout`."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import resource
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import confirmation, httpclient, seed
from bench.load import Loader, ms, rps
from bench.plan import Plan
from bench.procs import BenchError, Server, cpu_seconds, free_port, machine_busy_seconds
from bench.results import Figure, Run, at_least, at_most, ratio
from bench.service import Deployment
from bench.workload import (
    COUNT_QUERY,
    PAGE_QUERY,
    Workload,
    graphql_get,
    graphql_post,
    sign_workload,
    static_post,
    with_nonce,
)

DEEP_SLUG = "bench-deep"
SIGN_SLUG = "bench-signing"
CONFIRM_SLUG = "bench-signing-confirmed"
CONFIRM_RUNS = 100  # confirmation mode's runs are numbered from 101 (names, emails)
MAIL_DRAIN = 20.0  # seconds the mailer is given to empty the outbox after the load (quick: 10)
WIDE_CONNECTIONS = 64  # signing's second sustained run: "≥ 4,000/s at 64 connections, p99 ≤ 250"
WIDE_TARGET = 4000
WIDE_P99_MS = 250


def page_cursor(number: int) -> str:
    """The service's signature cursor (opaque to clients; the probe checks it still works)."""
    return base64.urlsafe_b64encode(f"signature@{number}".encode()).decode().rstrip("=")


@dataclass
class Context:
    plan: Plan
    loader: Loader
    deployment: Deployment
    baselines: list[Server]  # as many baseline processes as the service has
    run: Run
    email_tag: str
    deep_pk: int = 0
    deep_total: int = 0
    confirmation: bool = True  # signing also runs with confirmation mode on

    @property
    def urls(self) -> list[str]:
        return self.deployment.urls

    async def closed(self, urls: list[str], workload: Any, **options: Any) -> dict[str, Any]:
        options.setdefault("connections", self.plan.connections)
        options.setdefault("duration", self.plan.http_seconds)
        options.setdefault("warmup", self.plan.http_warmup)
        servers = [s for s in [*self.baselines, *self.deployment.servers] if s.url in urls]
        server_cpu = sum(cpu_seconds(s.pid) for s in servers)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine = machine_busy_seconds()
        began = time.monotonic()
        result = await self.loader.closed(urls, workload, **options)
        wall = time.monotonic() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        result["cpu"] = {
            # Cores busy during the run (warm-up included): a server process tops out at
            # 1.0; a load generator near 1.0 means the figure is client-bound.
            "server_cores": (sum(cpu_seconds(s.pid) for s in servers) - server_cpu) / wall,
            "load_cores": load_cpu / wall,
            # Everything busy on the machine: the rest is the database, Redis, the kernel.
            "machine_cores": (machine_busy_seconds() - machine) / wall,
        }
        self.deployment.check_alive()
        return result

    def base_rps(self) -> float | None:
        bare = self.run.figure("bare")
        return bare.value if bare else None


def cpu_note(result: dict[str, Any]) -> str:
    cpu = result.get("cpu") or {}
    if not cpu:
        return ""
    return (
        f"cpu: server {cpu['server_cores']:.2f}, load {cpu['load_cores']:.2f}, other "
        f"{max(0.0, cpu['machine_cores'] - cpu['server_cores'] - cpu['load_cores']):.2f} cores"
    )


def _load_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a load result worth keeping in the JSON (not the per-thread lists)."""
    return {k: v for k, v in result.items() if k not in ("threads", "curve_us")}


def _healthy_load(name: str, result: dict[str, Any]) -> None:
    if result["requests"] == 0:
        raise BenchError(f"{name}: no request was answered ({_load_summary(result)})")
    bad = result.get("non2xx", 0) + result.get("graphql_errors", 0)
    if bad > 0.01 * result["requests"]:
        raise BenchError(f"{name}: {bad} of {result['requests']} answers were errors")


async def baselines(ctx: Context) -> None:
    run, url = ctx.run, [b.url for b in ctx.baselines]
    for baseline in ctx.baselines:
        status, body = await httpclient.get(baseline.url, "/graphql?query=%7Bhello%7D")
        if status != 200 or json.loads(body) != {"data": {"hello": "world"}}:
            raise BenchError(f"baseline GraphQL broken: {status} {body[:200]!r}")
    bare = await ctx.closed(url, static_post("/bare", {}))
    _healthy_load("bare", bare)
    run.raw["bare"] = _load_summary(bare)
    run.add(Figure("bare", "bare Starlette JSON POST", rps(bare), "req/s", note=cpu_note(bare)))
    for key, label, document in (
        ("hello", "trivial query { hello }", "query { hello }"),
        ("noop", "trivial mutation { noop }", "mutation { noop }"),
    ):
        result = await ctx.closed(url, graphql_post(document))
        _healthy_load(key, result)
        run.raw[key] = _load_summary(result)
        share = ratio(rps(result), rps(bare))
        run.add(Figure(key, label, rps(result), "req/s", share, "bare", note=cpu_note(result)))


async def bare_again(ctx: Context) -> None:
    """The bare route once more, at the end: how much the machine drifted during the run."""
    result = await ctx.closed([b.url for b in ctx.baselines], static_post("/bare", {}))
    _healthy_load("bare (end)", result)
    ctx.run.raw["bare_end"] = _load_summary(result)
    first = ctx.base_rps()
    ctx.run.add(
        Figure(
            "bare_end",
            "bare route again, at the end",
            rps(result),
            "req/s",
            ratio(rps(result), first),
            "bare",
            note="drift check: far from 1.00 means a noisy machine",
        )
    )


def account(
    runs: list[dict[str, Any]], names: list[tuple[int, str, str]]
) -> tuple[dict[str, Any], list[str]]:
    """Compare what every load thread sent and had acknowledged with the stored rows.

    A signature is named "R<run>T<thread> N<k>"; thread t of run r sent k = 0 … sent-1.
    Lost: acknowledged but not stored. Phantom: stored but never sent. Unacknowledged
    rows are allowed only up to the requests whose answer never came (cut off by the end of
    a wrk run, or a broken connection)."""
    sent: dict[tuple[int, int], int] = {}
    acked: set[tuple[int, int, int]] = set()
    unknown = refused = ok = 0
    for run in runs:
        for thread in run["threads"]:
            key = (run["run"], int(thread["id"]))
            sent[key] = sent.get(key, 0) + int(thread["sent"])
            unknown += int(thread["sent"]) - int(thread["answered"])
            refused += int(thread["refused"])
            ok += int(thread["ok"])
            acked.update((key[0], key[1], int(k)) for k in thread["acked"])
    stored: set[tuple[int, int, int]] = set()
    foreign = 0
    for _, first, last in names:
        try:
            run_part, thread_part = first[1:].split("T")
            identity = (int(run_part), int(thread_part), int(last[1:]))
        except ValueError:
            foreign += 1
            continue
        stored.add(identity)
    lost = len(acked - stored)
    phantom = sum(1 for r, t, k in stored if k >= sent.get((r, t), 0)) + foreign
    unacknowledged = len(stored - acked)
    report = {
        "sent": sum(sent.values()),
        "acknowledged": ok,
        "distinct_acknowledged": len(acked),
        "refused": refused,
        "unanswered": unknown,
        "stored": len(names),
        "lost": lost,
        "phantom": phantom,
        "stored_unacknowledged": unacknowledged,
    }
    problems = []
    if lost:
        problems.append(f"{lost} acknowledged signature(s) are not stored")
    if phantom:
        problems.append(f"{phantom} stored signature(s) were never sent")
    if len(acked) != ok:
        problems.append(f"{ok - len(acked)} signature(s) acknowledged twice")
    if unacknowledged > unknown:
        problems.append(
            f"{unacknowledged} stored signature(s) were not acknowledged, but only "
            f"{unknown} request(s) went unanswered"
        )
    if refused:
        problems.append(f"{refused} sign request(s) were refused (all emails were new)")
    return report, problems


async def signing(ctx: Context) -> None:
    run, plan = ctx.run, ctx.plan
    global_id, pk = await ctx.deployment.create_petition(SIGN_SLUG)
    runs: list[dict[str, Any]] = []
    run_number = 0

    async def sign(connections: int, seconds: float, warmup: float = 0.0) -> dict[str, Any]:
        nonlocal run_number
        run_number += 1
        workload = sign_workload(global_id, run_number, ctx.email_tag)
        result = await ctx.closed(
            ctx.urls, workload, connections=connections, duration=seconds, warmup=warmup
        )
        result["run"] = run_number
        runs.append(result)
        return result

    await sign(plan.connections, 1.0 if plan.quick else 2.0)  # warm-up, accounted too
    main = await sign(plan.connections, plan.sign_seconds)
    run.raw["sign"] = _load_summary(main)
    # The same sustained run at 64 connections: a crowd twice the size.
    wide = await sign(WIDE_CONNECTIONS, plan.sign_seconds)
    run.raw[f"sign_c{WIDE_CONNECTIONS}"] = _load_summary(wide)
    sweep = {plan.connections: rps(main), WIDE_CONNECTIONS: rps(wide)}
    sweep_latency = {plan.connections: ms(main, "p99"), WIDE_CONNECTIONS: ms(wide, "p99")}
    # The short runs, at the counts not measured above (their keys are `sign_c<count>` too).
    short = [c for c in plan.sign_sweep if c not in sweep]
    for connections in short:
        result = await sign(connections, plan.sweep_seconds)
        sweep[connections] = rps(result)
        sweep_latency[connections] = ms(result, "p99")
        run.raw[f"sign_c{connections}"] = _load_summary(result)
    run.series["sign_vs_connections"] = [
        {"connections": c, "rps": sweep[c], "p99_ms": sweep_latency[c]} for c in sorted(sweep)
    ]
    noop = run.figure("noop")
    value = rps(main)
    run.add(
        Figure(
            "sign",
            f"signPetition sustained ({plan.sign_seconds:g} s, {plan.connections} conns)",
            value,
            "req/s",
            ratio(value, noop.value if noop else None),
            "noop",
            "≥ 2000/s and ≥ 0.50× noop",
            _both(at_least(value, 2000), at_least(ratio(value, noop.value if noop else None), 0.5)),
            note=cpu_note(main),
        )
    )
    run.add(Figure("sign_p50", "signPetition p50 latency", ms(main, "p50"), "ms"))
    p99 = ms(main, "p99")
    run.add(
        Figure(
            "sign_p99",
            "signPetition p99 latency",
            p99,
            "ms",
            target="≤ 250 ms",
            met=at_most(p99, 250),
        )
    )
    wide_rps, wide_p99 = rps(wide), ms(wide, "p99")
    run.add(
        Figure(
            f"sign_c{WIDE_CONNECTIONS}",
            f"signPetition sustained at {WIDE_CONNECTIONS} connections ({plan.sign_seconds:g} s)",
            wide_rps,
            "req/s",
            ratio(wide_rps, noop.value if noop else None),
            "noop",
            f"≥ {WIDE_TARGET}/s, p99 ≤ {WIDE_P99_MS} ms",
            _both(at_least(wide_rps, WIDE_TARGET), at_most(wide_p99, WIDE_P99_MS)),
            note=f"p50 {ms(wide, 'p50'):.1f} ms, p99 {wide_p99:.0f} ms; {cpu_note(wide)}",
        )
    )
    for connections in short:
        run.add(
            Figure(
                f"sign_c{connections}",
                f"signPetition at {connections} connections ({plan.sweep_seconds:g} s)",
                sweep[connections],
                "req/s",
                ratio(sweep[connections], noop.value if noop else None),
                "noop",
                note=f"p99 {sweep_latency[connections]:.0f} ms",
            )
        )
    # Correctness: every acknowledged signature stored once, counters equal to the rows.
    # First let the writes settle: requests cut off by the end of a wrk run may still be
    # committing (the server does not cancel a request whose client went away).
    counters = await settled_counters(ctx.deployment.database_url, pk)
    names = await seed.signer_names(ctx.deployment.database_url, pk)
    report, problems = account(runs, names)
    report["counters"] = counters.__dict__
    answer = await httpclient.graphql(
        ctx.urls[-1],
        "query($id: ID!) { node(id: $id) { ... on Petition { signatureCount } } }",
        {"id": global_id},
    )
    served = ((answer.get("data") or {}).get("node") or {}).get("signatureCount")
    report["served_count"] = served
    if not (
        counters.signature_count
        == counters.rows
        == counters.max_number
        == counters.distinct_numbers
        == counters.last_signature_number
        == counters.distinct_emails
    ):
        problems.append(f"counters differ from rows: {counters}")
    if served != counters.rows:
        problems.append(f"signatureCount served {served}, rows {counters.rows}")
    code, out, err = await ctx.deployment.command("check-counts")
    report["check_counts"] = {"exit": code, "output": (out + err).strip()[-500:]}
    if code != 0:
        problems.append(f"petitions check-counts exit {code}: {(out + err).strip()[-300:]}")
    run.raw["sign_accounting"] = report
    note = (
        f"{report['acknowledged']} acked, {report['stored']} stored, "
        f"{report['stored_unacknowledged']} stored unacked of {report['unanswered']} unanswered"
    )
    _exactness(
        run,
        "sign_exact",
        "signing exact (no lost/duplicate; count = rows)",
        note,
        problems,
        "signing",
    )
    if ctx.confirmation:
        await signing_confirmed(ctx)


async def signing_confirmed(ctx: Context) -> None:
    """The same signing load with confirmation mode on: every signature stored PENDING with
    its mail in the outbox (in the batch's transaction), a mailer sending the outbox to an SMTP
    sink in this process. Then the deployment goes back to its own settings."""
    run, plan, deployment = ctx.run, ctx.plan, ctx.deployment
    sink = confirmation.SmtpSink() if confirmation.SmtpSink.available() else None
    if sink is not None:
        sink.start()
        smtp_note = f"SMTP: aiosmtpd sink on 127.0.0.1:{sink.port} (in the bench process)"
    else:  # the mails wait in the outbox: signing is measured all the same
        smtp_note = "aiosmtpd not installed: SMTP at a closed port, every mail waits in the outbox"
    smtp_port = sink.port if sink is not None else free_port()
    deployment.extra_env = confirmation.confirmation_env(smtp_port)
    runs: list[dict[str, Any]] = []
    drain: dict[str, Any] = {}
    try:
        await deployment.restart()
        global_id, pk = await deployment.create_petition(CONFIRM_SLUG)

        async def sign(number: int, seconds: float) -> dict[str, Any]:
            workload = sign_workload(global_id, CONFIRM_RUNS + number, ctx.email_tag, confirm=True)
            result = await ctx.closed(
                ctx.urls, workload, connections=plan.connections, duration=seconds, warmup=0.0
            )
            result["run"] = CONFIRM_RUNS + number
            runs.append(result)
            return result

        began = time.monotonic()
        own = resource.getrusage(resource.RUSAGE_SELF)
        await sign(1, 1.0 if plan.quick else 2.0)  # warm-up, accounted too
        main = await sign(2, plan.sign_seconds)
        _healthy_load("signing, confirmation mode", main)
        load_end = time.monotonic()
        delivered_at_end = sink.messages if sink is not None else 0
        counters = await settled_counters(deployment.database_url, pk)
        answer = await httpclient.graphql(
            ctx.urls[-1],
            "query($id: ID!) { node(id: $id) { ... on Petition { signatureCount } } }",
            {"id": global_id},
        )
        served = ((answer.get("data") or {}).get("node") or {}).get("signatureCount")
        code, out, err = await deployment.command("check-counts")
        # The mailer's time, from the end of the load, to empty the outbox of the petition's
        # mails (none goes without an SMTP server: then nothing to wait for).
        waiting = await confirmation.waiting_mails(deployment.database_url, pk)
        limit = (MAIL_DRAIN / 2 if plan.quick else MAIL_DRAIN) if sink is not None else 0.0
        while waiting and time.monotonic() - load_end < limit:
            await asyncio.sleep(0.5)
            waiting = await confirmation.waiting_mails(deployment.database_url, pk)
        mine = resource.getrusage(resource.RUSAGE_SELF)
        drain = {
            # This process's CPU, the sink's thread included: near 1.0, the sink is the limit.
            "bench_process_cores": round(
                (mine.ru_utime + mine.ru_stime - own.ru_utime - own.ru_stime)
                / (time.monotonic() - began),
                3,
            ),
            "load_seconds": round(load_end - began, 2),
            "delivered_during_load": delivered_at_end,
            "drain_seconds": round(time.monotonic() - load_end, 2),
            "drain_limit": limit,
            "waiting_after_drain": waiting,
        }
    finally:
        # Back to the deployment's own settings: the mailer stops (what it has not sent waits
        # in the outbox), and the processes after it have none, so the outbox holds still.
        deployment.extra_env = {}
        await deployment.restart()
        if sink is not None:
            sink.stop()
    stored = await confirmation.stored_signatures(deployment.database_url, pk)
    queued = await confirmation.queued_mails(deployment.database_url, pk)
    messages, recipients, first_at, last_at = (
        sink.snapshot() if sink is not None else (0, Counter[str](), None, None)
    )
    report, problems = confirmation.account(runs, stored)
    mails, mail_problems = confirmation.check_mails(stored, queued, recipients)
    problems += mail_problems
    pending = sum(1 for s in stored if s.status == "PENDING")
    numbered = sum(1 for s in stored if s.number is not None)
    if pending != len(stored):
        problems.append(f"{len(stored) - pending} of {len(stored)} stored rows are not PENDING")
    if numbered:
        problems.append(f"{numbered} pending row(s) hold a number")
    if counters.signature_count != 0 or counters.last_signature_number != 0:
        problems.append(
            f"signature_count {counters.signature_count}, last_signature_number "
            f"{counters.last_signature_number}: pending signatures counted"
        )
    if counters.distinct_emails != counters.rows or counters.rows != len(stored):
        problems.append(
            f"{counters.rows} rows ({len(stored)} read after), "
            f"{counters.distinct_emails} distinct emails"
        )
    if served != 0:
        problems.append(f"signatureCount served {served}, not 0")
    if code != 0:
        problems.append(f"petitions check-counts exit {code}: {(out + err).strip()[-300:]}")
    # Mails per second: over the whole time the mailer had (signing and draining), up to the
    # latest delivery; and while draining alone.
    delivered = mails["delivered"]
    rate = (
        delivered / (last_at - began)
        if delivered and last_at is not None and last_at > began
        else None
    )
    after_load = delivered - drain.get("delivered_during_load", 0)
    drain_rate = (
        after_load / (last_at - load_end)
        if after_load > 0 and last_at is not None and last_at > load_end
        else None
    )
    mails.update(
        {
            "sink_messages": messages,
            "per_second": rate,
            "per_second_draining": drain_rate,
            "first_delivery_after_s": None if first_at is None else round(first_at - began, 3),
            "smtp": smtp_note,
            **drain,
        }
    )
    report.update(
        counters=counters.__dict__,
        served_count=served,
        check_counts={"exit": code, "output": (out + err).strip()[-500:]},
        mails=mails,
    )
    run.raw["sign_confirm"] = _load_summary(main)
    run.raw["sign_confirm_accounting"] = report
    off = run.figure("sign")
    value = rps(main)
    run.add(
        Figure(
            "sign_confirm",
            f"signPetition, confirmation mode ({plan.sign_seconds:g} s, {plan.connections} conns)",
            value,
            "req/s",
            ratio(value, off.value if off else None),
            "sign",
            note=f"{cpu_note(main)}; {smtp_note}",
        )
    )
    off_p99 = run.figure("sign_p99")
    run.add(
        Figure(
            "sign_confirm_p99",
            "signPetition p99 latency, confirmation mode",
            ms(main, "p99"),
            "ms",
            ratio(ms(main, "p99"), off_p99.value if off_p99 else None),
            "sign p99",
            note=f"p50 {ms(main, 'p50'):.1f} ms",
        )
    )
    mail_note = (
        f"{delivered:,} delivered, {mails['waiting']:,} waiting in the outbox "
        f"{drain.get('drain_seconds', 0):g} s after the load"
        + (f" ({drain_rate:,.0f}/s while draining)" if drain_rate else "")
        + (
            f"; bench process with the sink: {drain.get('bench_process_cores', 0):.2f} cores"
            if sink is not None
            else ""
        )
        + (f", {mails['given_up']} given up" if mails["given_up"] else "")
    )
    run.add(
        Figure(
            "sign_confirm_mails",
            "confirmation mails delivered per second",
            rate if sink is not None else None,
            "mails/s",
            note=mail_note if sink is not None else f"{mail_note}; {smtp_note}",
        )
    )
    note = (
        f"{report['acknowledged']} acked, {report['stored']} stored PENDING, "
        f"{report['stored_unacknowledged']} stored unacked of {report['unanswered']} "
        f"unanswered; one mail each: {delivered} delivered + {mails['waiting']} waiting"
    )
    _exactness(
        run,
        "sign_confirm_exact",
        "confirmation mode exact (all pending, uncounted; one mail each)",
        note,
        problems,
        "signing, confirmation mode",
    )


def _exactness(run: Run, key: str, label: str, note: str, problems: list[str], phase: str) -> None:
    """A correctness figure: "ok" with `note`, or FAIL with the problems, each failing the run."""
    exact = not problems
    run.add(
        Figure(
            key,
            label,
            1.0 if exact else 0.0,
            "ok" if exact else "FAIL",
            target="exact",
            met=exact,
            note=note if exact else "; ".join(problems),
        )
    )
    for problem in problems:
        run.fail(f"{phase}: {problem}")


async def settled_counters(url: str, pk: int, within: float = 15.0) -> seed.Counters:
    """The petition's counters once two reads 0.5 s apart agree (or `within` s pass)."""
    counters = await seed.counters(url, pk)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        again = await seed.counters(url, pk)
        if again == counters:
            break
        counters = again
    return counters


def _both(*checks: bool | None) -> bool | None:
    if any(check is None for check in checks):
        return None
    return all(bool(check) for check in checks)


async def seed_deep(ctx: Context) -> None:
    """Seed before the service starts (no process holds a stale view of the rows)."""
    total = ctx.plan.seed_depth + 10
    started = time.monotonic()
    ctx.deep_pk = await seed.seed_deep_petition(ctx.deployment.database_url, DEEP_SLUG, total)
    ctx.deep_total = total
    ctx.run.raw["seed"] = {
        "signatures": total,
        "seconds": round(time.monotonic() - started, 2),
    }


async def _probe(url: str, workload: Workload) -> tuple[int, bytes, str]:
    """One request as the load will send it: its status, body and X-Cache header ("-" when
    the service sends none). A fixed request is sent twice and the second answer kept (the
    load repeats it); a varying one is sent once, with a nonce of its own."""
    nonce = f"probe-{uuid.uuid4().hex[:8]}"
    path = with_nonce(workload.path, nonce)
    body = with_nonce(workload.body, nonce).encode()
    connection = httpclient.Connection(url)
    try:
        async with asyncio.timeout(30):
            if not workload.vary:
                await connection.request(workload.method, path, body)
            status, answer = await connection.request(workload.method, path, body)
    finally:
        connection.close()
    return status, answer, connection.header(b"x-cache") or "-"


VARIANTS = (
    (False, "", "identical requests"),
    (True, "_uncached", "distinct requests"),
)


async def reads(ctx: Context) -> None:
    """The widget's count read, POST and GET; identical requests (what a result cache
    answers) and distinct ones (what it cannot: as every write drops the cached answer)."""
    run = ctx.run
    variables = {"slug": DEEP_SLUG}
    expected = {"data": {"petition": {"signatureCount": ctx.deep_total}}}
    bare = ctx.base_rps()
    for key, label, build in (
        ("count_post", "count read, POST", graphql_post),
        ("count_get", "count read, GET", graphql_get),
    ):
        for vary, suffix, how in VARIANTS:
            workload = build(COUNT_QUERY, variables, vary=vary)
            for url in ctx.urls:
                status, body, cache = await _probe(url, workload)
                if status != 200 or json.loads(body) != expected:
                    raise BenchError(f"{label} wrong: {status} {body[:200]!r}")
            result = await ctx.closed(ctx.urls, workload)
            _healthy_load(key + suffix, result)
            run.raw[key + suffix] = {**_load_summary(result), "x_cache": cache}
            share = ratio(rps(result), bare)
            run.add(
                Figure(
                    key + suffix,
                    f"{label}, {how}",
                    rps(result),
                    "req/s",
                    share,
                    "bare",
                    "≥ 0.50× bare",
                    at_least(share, 0.5),
                    note=f"X-Cache {cache}; p99 {ms(result, 'p99'):.1f} ms; {cpu_note(result)}",
                )
            )


def _page_variables(ctx: Context, depth: int) -> dict[str, Any]:
    variables: dict[str, Any] = {"slug": DEEP_SLUG}
    if depth:
        variables["after"] = page_cursor(ctx.deep_total - depth + 1)
    return variables


async def _check_page(ctx: Context, workload: Workload, depth: int) -> str:
    status, body, cache = await _probe(ctx.urls[0], workload)
    try:
        edges = json.loads(body)["data"]["petition"]["signatures"]["edges"]
        names = [edge["node"]["name"] for edge in edges]
    except (KeyError, TypeError, ValueError):
        raise BenchError(f"page at depth {depth} broken: {status} {body[:300]!r}") from None
    top = ctx.deep_total - depth
    wanted = [f"Seed Signer{n}" for n in range(top, top - 10, -1)]
    if names != wanted:
        raise BenchError(
            f"page at depth {depth}: got {names[:3]}…, wanted {wanted[:3]}… "
            "(has the cursor format changed? bench/phases.py page_cursor)"
        )
    return cache


async def pages(ctx: Context) -> None:
    """Pages of 10 signers by depth. The depth panel uses distinct requests (the database's
    work); the first and the deepest page are also measured with identical requests."""
    run, plan = ctx.run, ctx.plan
    deepest = plan.seed_depth
    points: dict[tuple[int, bool], dict[str, Any]] = {}
    caches: dict[tuple[int, bool], str] = {}
    runs = [(depth, True) for depth in sorted({0, deepest, *plan.page_depths})]
    runs += [(0, False), (deepest, False)]
    for depth, vary in runs:
        workload = graphql_post(PAGE_QUERY, _page_variables(ctx, depth), vary=vary)
        caches[depth, vary] = await _check_page(ctx, workload, depth)
        key_run = depth in (0, deepest)
        result = await ctx.closed(
            ctx.urls,
            workload,
            duration=plan.http_seconds if key_run else plan.panel_seconds,
        )
        _healthy_load(f"page {depth}", result)
        points[depth, vary] = result
        run.raw[f"page_{depth}{'_uncached' if vary else ''}"] = {
            **_load_summary(result),
            "x_cache": caches[depth, vary],
        }
    run.series["page_vs_depth"] = [
        {
            "depth": d,
            "rps": rps(points[d, True]),
            "p50_ms": ms(points[d, True], "p50"),
            "p99_ms": ms(points[d, True], "p99"),
            "ms_per_request": 1000 / rps(points[d, True]) if rps(points[d, True]) else math.nan,
        }
        for d, vary in sorted(points)
        if vary
    ]
    for vary, suffix, how in VARIANTS:
        first, deep = points[0, vary], points[deepest, vary]
        share = ratio(rps(first), ctx.base_rps())
        run.add(
            Figure(
                "page_first" + suffix,
                f"first page of 10 signers, {how}",
                rps(first),
                "req/s",
                share,
                "bare",
                "≥ 0.25× bare",
                at_least(share, 0.25),
                note=f"X-Cache {caches[0, vary]}; p99 {ms(first, 'p99'):.1f} ms; "
                + cpu_note(first),
            )
        )
        slower = ratio(rps(first), rps(deep))  # time per page, deep over first
        run.add(
            Figure(
                "page_deep" + suffix,
                f"page {deepest:,} deep, {how}",
                rps(deep),
                "req/s",
                slower,
                "first page time",
                "time ≤ 1.20× first page",
                at_most(slower, 1.2),
                note=f"X-Cache {caches[deepest, vary]}; p99 {ms(deep, 'p99'):.1f} ms; "
                f"ratio = deep time / first time; {cpu_note(deep)}",
            )
        )
