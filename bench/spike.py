"""The mixed spike: one petition asked for 1,000 signatures/s (open loop, at most 256 in
flight) while readers fetch its first page and its count in turn as fast as they can, every
request distinct (a nonce the operation does not declare: the result cache answers none).
Signing must not starve behind the readers; the reads must stay exact and keep at least half
the rate they have with no signing.

On a petition of its own (10 signatures first, so that every first page is full): the readers
alone, then the readers and the writer together, each `plan.spike_seconds` long. The readers
are `bench.pyload` processes in `readers` mode, checking every answer (a connection's count
and newest signer never go backwards; a first page lists consecutive signature numbers, from
its cursors, newest first, and at least as many as the count beside it); the writer is
`bench.pyload` in paced mode, one connection per signature in flight. Both start at one agreed
`time.monotonic()` moment. Afterwards every number → name a page showed is compared with the
stored rows, every acknowledged signature must be stored once, and the counters equal rows."""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from bench import httpclient, seed
from bench.fanout import writes_problems
from bench.load import merge_curves
from bench.phases import Context, _exactness, settled_counters
from bench.procs import BenchError, machine_busy_seconds
from bench.results import Figure, at_least, ratio
from bench.workload import PACED_NAME, sign_body

SPIKE_SLUG = "bench-spike"
PREFILL = 10  # signatures before the readers start: a full first page from the first read
PREFILL_K = 2_000_000_000  # their "Bench S<k>" (the writer's k count from 0)
STARTUP = 1.5  # seconds the load processes have to start before the agreed moment
# Seconds the readers go on after their measured window while signing: the paced writer sends
# up to 1 s late, and its last signatures should meet readers too (checked, not measured).
LINGER = 2.5
SIGN_SHARE = 0.95  # of the asked rate, taken
READ_SHARE = 0.5  # of the reads alone, kept while signing


async def _prefill(url: str, petition: str, tag: str) -> None:
    connection = httpclient.Connection(url)
    try:
        async with asyncio.timeout(60):
            for k in range(PREFILL_K, PREFILL_K + PREFILL):
                body = sign_body(petition, "Bench", f"S{k}", f"{tag}-{k}@example.org")
                status, answer = await connection.request("POST", "/graphql", body)
                if status != 200 or not PACED_NAME.search(answer):
                    raise BenchError(f"spike: a first signature failed: {status} {answer[:200]!r}")
    finally:
        connection.close()


def _merge_reads(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result of several reader processes; a number two of them saw with two names is a
    problem too."""
    seen: dict[str, str] = {}
    problems: dict[str, int] = {}
    examples: list[str] = []
    for part in parts:
        for kind, count in part["problems"].items():
            problems[kind] = problems.get(kind, 0) + count
        examples += part["examples"]
        for number, name in part["seen"].items():
            known = seen.setdefault(number, name)
            if known != name:
                problems["one number, two names"] = problems.get("one number, two names", 0) + 1
                examples.append(f"one number, two names: #{number}: {known!r} and {name!r}")
    requests = sum(p["requests"] for p in parts)
    p50, p99 = merge_curves([(p["requests"], p["curve_us"]) for p in parts], (50, 99))
    summed = (
        "requests",
        "rps",
        "count_reads",
        "page_reads",
        "non2xx",
        "checked",
        "failed",
        "count_behind_page",
        "cpu_s",
    )
    merged: dict[str, Any] = {key: sum(p[key] for p in parts) for key in summed}
    merged.update(
        requests=requests,
        processes=len(parts),
        connections=sum(p["connections"] for p in parts),
        duration_s=max(p["duration_s"] for p in parts),
        errors={"transport": sum(p["errors"]["transport"] for p in parts)},
        latency_us={"p50": p50, "p99": p99},
        problems=problems,
        examples=examples[:10],
        max_count=max(p["max_count"] for p in parts),
        max_top=max(p["max_top"] for p in parts),
        seen=seen,
        wall_s=max(p["wall_s"] for p in parts),
    )
    return merged


async def _readers(
    ctx: Context, start_at: float, seconds: float, linger: float = 0.0
) -> dict[str, Any]:
    """The plan's reader connections, split over its reader processes, from `start_at`."""
    plan = ctx.plan
    processes = max(1, min(plan.spike_reader_processes, plan.spike_readers))
    shares = [
        plan.spike_readers // processes + (1 if i < plan.spike_readers % processes else 0)
        for i in range(processes)
    ]
    firsts = [sum(shares[:i]) for i in range(processes)]
    urls = ctx.urls
    specs = [
        {
            "mode": "readers",
            # Connection i of the whole set reads from urls[i % len(urls)], whatever process.
            "urls": urls[first % len(urls) :] + urls[: first % len(urls)],
            "slug": SPIKE_SLUG,
            "connections": share,
            "first_connection": first,
            "start_at": start_at,
            "duration": seconds,
            "linger": linger,
        }
        for share, first in zip(shares, firsts, strict=True)
    ]
    limit = start_at - time.monotonic() + seconds + linger + 90
    parts = await asyncio.gather(*(ctx.loader.python_process(s, limit=limit) for s in specs))
    return _merge_reads(list(parts))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_text(cpu: dict[str, float], writer: bool = True) -> str:
    ours = cpu["server_cores"] + cpu["reader_cores"] + cpu["writer_cores"]
    return (
        f"cpu: server {cpu['server_cores']:.2f}, readers {cpu['reader_cores']:.2f}, "
        + (f"writer {cpu['writer_cores']:.2f}, " if writer else "")
        + f"other {max(0.0, cpu['machine_cores'] - ours):.2f} cores"
    )


async def _measured(ctx: Context, work: Any, readers_cpu: Any) -> tuple[Any, dict[str, float]]:
    """Await `work` and say how many cores each side used meanwhile."""
    server = ctx.deployment.cpu_seconds()
    children = _children_cpu()
    machine = machine_busy_seconds()
    began = time.monotonic()
    result = await work
    wall = max(time.monotonic() - began, 1e-9)
    load = _children_cpu() - children
    reader = float(readers_cpu(result))
    return result, {
        "server_cores": (ctx.deployment.cpu_seconds() - server) / wall,
        "reader_cores": reader / wall,
        "writer_cores": max(0.0, load - reader) / wall,
        "machine_cores": (machine_busy_seconds() - machine) / wall,
    }


def _writer_problems(writer: dict[str, Any], acks: list[Any], stored: list[str]) -> list[str]:
    """Every acknowledged signature stored once; none stored that was never sent; rows stored
    without an acknowledgement no more than the requests that went unanswered."""
    problems = []
    planned = int(writer["planned"])
    acked = [int(ack[0]) for ack in acks]
    ks: dict[int, int] = {}
    foreign = 0
    for last in stored:
        if not last.startswith("S") or not last[1:].isdigit():
            foreign += 1
            continue
        k = int(last[1:])
        ks[k] = ks.get(k, 0) + 1
    if len(set(acked)) != len(acked):
        problems.append(f"{len(acked) - len(set(acked))} signature(s) acknowledged twice")
    lost = [k for k in acked if k not in ks]
    if lost:
        problems.append(f"{len(lost)} acknowledged signature(s) are not stored (e.g. S{lost[0]})")
    twice = [k for k, n in ks.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} signature(s) stored more than once (e.g. S{twice[0]})")
    prefill = range(PREFILL_K, PREFILL_K + PREFILL)
    phantom = [k for k in ks if k >= planned and k not in prefill]
    if phantom or foreign:
        problems.append(f"{len(phantom) + foreign} stored signature(s) were never sent")
    missing_prefill = [k for k in prefill if k not in ks]
    if missing_prefill:
        problems.append(f"{len(missing_prefill)} of the first {PREFILL} signatures are not stored")
    unacked = len([k for k in ks if k < planned]) - len(set(acked))
    if unacked > int(writer["failures"]["transport"]):
        problems.append(
            f"{unacked} stored signature(s) were not acknowledged, but only "
            f"{writer['failures']['transport']} request(s) went unanswered"
        )
    return problems


async def spike(ctx: Context) -> None:
    run, plan, deployment = ctx.run, ctx.plan, ctx.deployment
    sqlite = deployment.backend == "sqlite"
    petition, pk = await deployment.create_petition(SPIKE_SLUG)
    await _prefill(ctx.urls[0], petition, f"{ctx.email_tag}-spike-first")
    seconds = plan.spike_seconds

    # Readers alone: what they reach with no signing.
    start_at = time.monotonic() + STARTUP
    alone, alone_cpu = await _measured(
        ctx, _readers(ctx, start_at, seconds), lambda result: result["cpu_s"]
    )
    deployment.check_alive()
    if not alone["requests"]:
        raise BenchError(f"spike: no read answered ({alone['examples'][:3]})")

    # Readers and the writer, from one moment.
    start_at = time.monotonic() + STARTUP
    writer_spec = {
        "urls": ctx.urls,
        "rate": plan.spike_rate,
        "duration": seconds,
        "petition_id": petition,
        "email_tag": f"{ctx.email_tag}-spike",
        "connections": plan.spike_in_flight,  # one sign in flight per connection
        "start_at": start_at,
    }
    both = asyncio.gather(_readers(ctx, start_at, seconds, LINGER), ctx.loader.paced(writer_spec))
    (during, writer), cpu = await _measured(ctx, both, lambda result: result[0]["cpu_s"])
    deployment.check_alive()
    acks = writer.pop("acks")
    # Beside the writer's own rate (taken per second of sending, as in fan-out): what it had
    # acknowledged within the readers' measured window.
    in_window = sum(1 for _, _, acked, _ in acks if start_at <= acked <= start_at + seconds)
    writer["acked_in_read_window"] = in_window

    # Exactness: what the readers saw, against the rows; the writer's signatures, stored once.
    counters = await settled_counters(deployment.database_url, pk)
    rows = await seed.signer_names(deployment.database_url, pk)
    names = {number: f"{first} {last}" for number, first, last in rows}
    problems: list[str] = []
    for label, reads in (("readers alone", alone), ("readers while signing", during)):
        if reads["problems"]:
            found = ", ".join(f"{n}× {kind}" for kind, n in sorted(reads["problems"].items()))
            wrong_answers = [e for e in reads["examples"] if not e.startswith("error answer")]
            problems.append(f"{label}: {found} (e.g. {'; '.join(wrong_answers[:2])})")
        wrong = [
            f"#{number} shown as {name!r}, stored as {names.get(int(number))!r}"
            for number, name in reads["seen"].items()
            if names.get(int(number)) != name
        ]
        if wrong:
            problems.append(
                f"{label}: {len(wrong)} signer(s) shown under a number the rows disagree with "
                f"(e.g. {wrong[0]})"
            )
    problems += _writer_problems(writer, acks, [last for _, _, last in rows])
    problems += writes_problems(counters, writer, extra=PREFILL)
    answer = await httpclient.graphql(
        ctx.urls[-1],
        "query($slug: String!) { petition(slug: $slug) { signatureCount } }",
        {"slug": SPIKE_SLUG},
    )
    served = ((answer.get("data") or {}).get("petition") or {}).get("signatureCount")
    if served != counters.rows:
        problems.append(f"signatureCount served {served}, rows {counters.rows}")
    code, out, err = await deployment.command("check-counts")
    if code != 0:
        problems.append(f"petitions check-counts exit {code}: {(out + err).strip()[-300:]}")

    for reads in (alone, during):
        reads["seen"] = len(reads["seen"])  # the JSON keeps how many, not which
    run.raw["spike"] = {
        "asked_rate": plan.spike_rate,
        "in_flight": plan.spike_in_flight,
        "seconds": seconds,
        "readers_alone": alone,
        "readers_alone_cpu": alone_cpu,
        "readers_while_signing": during,
        "writer": writer,
        "cpu": cpu,
        "counters": counters.__dict__,
        "served_count": served,
        "check_counts": {"exit": code, "output": (out + err).strip()[-500:]},
    }

    rate = float(writer["achieved_rate"])
    taken = ratio(rate, plan.spike_rate)
    sign_target = f"≥ {SIGN_SHARE:.2f}× asked"
    read_target = f"≥ {READ_SHARE:.2f}× alone"
    elsewhere = "" if sqlite else " (targets are for SQLite)"
    failures = writer["failures"]
    run.add(
        Figure(
            "spike_sign",
            f"spike: signatures/s taken, {plan.spike_rate:,.0f}/s asked "
            f"(≤ {plan.spike_in_flight} in flight) while {plan.spike_readers} conns read",
            rate,
            "req/s",
            taken,
            "asked",
            sign_target if sqlite else "",
            at_least(taken, SIGN_SHARE) if sqlite else None,
            note=f"{writer['ok']:,} of {writer['planned']:,} taken in {seconds:g} s, "
            f"{writer['skipped_behind_schedule']} never sent (behind schedule), "
            f"{failures['refused']} refused, {failures['non2xx']} non-2xx, "
            f"{failures['transport']} unanswered, {in_window / seconds:,.0f}/s acknowledged "
            f"within the readers' measured window; p50 {writer['latency_us']['p50'] / 1000:.0f} "
            f"ms, p99 {writer['latency_us']['p99'] / 1000:.0f} ms; {_cpu_text(cpu)}{elsewhere}",
        )
    )
    read_rate = float(during["rps"])
    kept = ratio(read_rate, float(alone["rps"]))
    run.add(
        Figure(
            "spike_reads",
            f"spike: reads/s while signing (first page and count in turn, {plan.spike_readers} "
            "conns, distinct requests)",
            read_rate,
            "req/s",
            kept,
            "alone",
            read_target if sqlite else "",
            at_least(kept, READ_SHARE) if sqlite else None,
            note=f"alone {alone['rps']:,.0f}/s (p99 {alone['latency_us']['p99'] / 1000:.0f} ms; "
            f"{_cpu_text(alone_cpu, writer=False)}); while signing p99 "
            f"{during['latency_us']['p99'] / 1000:.0f} ms, "
            f"{during['page_reads']:,} pages and {during['count_reads']:,} counts; "
            f"error answers {alone['failed'] + during['failed']}, "
            f"unanswered {alone['errors']['transport'] + during['errors']['transport']}"
            f"{elsewhere}",
        )
    )
    note = (
        f"{during['checked']:,} answers checked while signing ({alone['checked']:,} alone): "
        f"counts never back, pages consecutive and ≥ their count, {during['seen']:,} signers "
        f"as stored; {writer['ok']:,} acked, {counters.rows:,} rows = count; "
        f"a count below a page already seen: {during['count_behind_page']}×"
    )
    _exactness(run, "spike_exact", "spike: reads and writes exact", note, problems, "spike")
