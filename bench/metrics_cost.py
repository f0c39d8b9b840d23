"""What the service's Prometheus metrics cost signing: "signing with metrics on stays within 10 %
of its speed with them off (median of paired runs)".

Two more instances of the deployment (same backend, process count and settings), each on a
fresh database of its own (SQLite: a new file; PostgreSQL: a new database, migrated), so the
main deployment's petitions and figures stay untouched: one with `PETITIONS_METRICS_TOKEN`
unset (recording off, no `/metrics`), one with it set (recording on). Both stay up, and only
one is loaded at a time: a warm-up run each, then pairs of signing runs, off then on, each a
fresh `signPetition` workload at `plan.connections`. The figure is the median of the per-pair
ratios on ÷ off (neighbouring runs share the machine's state of the moment).

Then the "on" instance is checked: `GET /metrics` with the token answers 200, and its
`petitions_signatures_total{status="valid"}` (summed over the instance's processes: each
process serves its own figures) equals the rows stored, which are every signature the "on" runs
acknowledged plus at most the requests left unanswered (wrk cuts its last requests, which the
server may still commit); without the token, or with a wrong one, 401; and the "off" instance
has no `/metrics` at all."""

from __future__ import annotations

import asyncio
import copy
import itertools
import statistics
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import httpclient, seed
from bench.load import ms, rps
from bench.phases import (
    Context,
    _exactness,
    _healthy_load,
    _load_summary,
    account,
    cpu_note,
    settled_counters,
)
from bench.procs import BenchError, Processes
from bench.results import Figure, at_least
from bench.service import Deployment
from bench.workload import sign_workload

TOKEN = "bench-metrics-token"
SLUG = "bench-metrics"
PAIRS = 5  # full run: 5 × 2 runs of plan.sweep_seconds (6 s): about 80 s in all
QUICK_PAIRS = 1
TARGET = 0.90  # metrics on: at least 0.90× the signing rate with them off
OFF = "off"
ON = "on"


async def metrics(ctx: Context) -> None:
    plan, run = ctx.plan, ctx.run
    pairs = QUICK_PAIRS if plan.quick else PAIRS
    seconds = plan.sweep_seconds
    instances: dict[str, Deployment] = {}
    began = time.monotonic()
    try:
        # Side by side, started together ("": unset, whatever os.environ says).
        started = await asyncio.gather(
            _instance(ctx, OFF, ""), _instance(ctx, ON, TOKEN), return_exceptions=True
        )
        for name, instance in zip((OFF, ON), started, strict=True):
            if isinstance(instance, Deployment):
                instances[name] = instance
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        setup = time.monotonic() - began
        petitions = {
            name: await instance.create_petition(f"{SLUG}-{name}")
            for name, instance in instances.items()
        }
        runs: dict[str, list[dict[str, Any]]] = {OFF: [], ON: []}
        raw: list[dict[str, Any]] = []
        numbers = itertools.count(1)

        async def sign(name: str, duration: float, pair: int | None) -> dict[str, Any]:
            instance, number = instances[name], next(numbers)
            workload = sign_workload(petitions[name][0], number, ctx.email_tag)
            # Context.closed with this instance's servers: their CPU, their liveness.
            own = copy.copy(ctx)
            own.deployment = instance
            result = await own.closed(
                instance.urls,
                workload,
                connections=plan.connections,
                duration=duration,
                warmup=0.0,  # wrk's warm-up is a run of its own nobody accounts for
            )
            _healthy_load(f"signing, metrics {name}", result)
            result["run"] = number
            runs[name].append(result)
            raw.append(
                {
                    "metrics": name,
                    "pair": pair,  # None: the warm-up
                    "run": number,
                    "rps": rps(result),
                    "p50_ms": ms(result, "p50"),
                    "p99_ms": ms(result, "p99"),
                    "requests": result["requests"],
                    "cpu": result.get("cpu", {}),
                }
            )
            return result

        warmup = 1.0 if plan.quick else 2.0
        for name in (OFF, ON):
            await sign(name, warmup, None)  # accounted too: the "on" count includes it
        pairs_done: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for pair in range(1, pairs + 1):
            off = await sign(OFF, seconds, pair)
            on = await sign(ON, seconds, pair)
            pairs_done.append((off, on))
        checks = await _check(ctx, instances, petitions[ON][1], runs[ON])
    finally:
        stopped = await asyncio.gather(
            *(_retire(ctx, name, instance) for name, instance in instances.items()),
            return_exceptions=True,
        )
        for error in stopped:
            if isinstance(error, BaseException):
                raise error
    ratios = [rps(on) / rps(off) for off, on in pairs_done if rps(off) > 0]
    # The same per server CPU-second: what metrics cost the server, less the machine's noise
    # (a neighbour taking the cores slows both req/s and the server's CPU alike).
    per_cpu = [_per_cpu(on) / _per_cpu(off) for off, on in pairs_done if _per_cpu(off) > 0]
    cpu_ratio = statistics.median(per_cpu) if per_cpu else None
    value = statistics.median(ratios) if ratios else None
    median_off = statistics.median(rps(off) for off, _ in pairs_done)
    median_on = statistics.median(rps(on) for _, on in pairs_done)
    p99_off = statistics.median(ms(off, "p99") for off, _ in pairs_done)
    p99_on = statistics.median(ms(on, "p99") for _, on in pairs_done)
    run.raw["metrics_cost"] = {
        "pairs": pairs,
        "seconds": seconds,
        "connections": plan.connections,
        "instances": {name: instance.describe() for name, instance in instances.items()},
        "setup_seconds": round(setup, 2),
        "seconds_in_all": round(time.monotonic() - began, 2),
        "runs": raw,
        "pair_ratios": ratios,
        "median_pair_ratio": value,
        "median_rps_off": median_off,
        "median_rps_on": median_on,
        "ratio_of_medians": median_on / median_off if median_off else None,
        "pair_ratios_per_server_cpu": per_cpu,
        "median_pair_ratio_per_server_cpu": cpu_ratio,
        "last_on": _load_summary(pairs_done[-1][1]),
        "check": checks["report"],
    }
    run.add(
        Figure(
            "metrics_cost",
            f"signPetition, metrics on vs off ({pairs} pair{'s' if pairs > 1 else ''} of "
            f"{seconds:g} s, {plan.connections} conns)",
            value,
            "share",
            value,
            "metrics off",
            f"≥ {TARGET:.2f}× off",
            at_least(value, TARGET),
            note=(
                f"median of the {len(ratios)} per-pair ratios on ÷ off (runs off, on, off, on, "
                f"…; ratio of the medians {median_on / median_off if median_off else 0:.2f}); "
                f"median {median_off:,.0f}/s off, {median_on:,.0f}/s on; p99 {p99_off:.0f} ms "
                f"off, {p99_on:.0f} ms on; per server CPU-second "
                + (f"{cpu_ratio:.2f}× off" if cpu_ratio is not None else "n/a")
                + f"; last on run's {cpu_note(pairs_done[-1][1])}"
            ),
        )
    )
    _exactness(
        run,
        "metrics_exact",
        "metrics exact (/metrics valid signatures = rows; 401 without token)",
        checks["note"],
        checks["problems"],
        "metrics",
    )


def _per_cpu(result: dict[str, Any]) -> float:
    """Signatures answered per second of server CPU (0 when unknown)."""
    cores = float((result.get("cpu") or {}).get("server_cores") or 0.0)
    return rps(result) / cores if cores > 0 else 0.0


async def _instance(ctx: Context, name: str, token: str) -> Deployment:
    """A deployment like the main one, on a database of its own, its logs in a directory of its
    own; its processes are the main `Processes`' children too (killed at the end whatever
    happens)."""
    main = ctx.deployment
    workdir = main.procs.workdir / f"metrics-{name}"
    workdir.mkdir(exist_ok=True)
    instance = Deployment(
        main.backend,
        Processes(workdir, main.procs.children),  # the same list: `close()` sees them
        main.service,
        postgres_admin_url=main.postgres_admin_url,
        redis_url=main.redis_url,
        extra_env={**main.extra_env, "PETITIONS_METRICS_TOKEN": token},
    )
    try:
        await instance.prepare()
        await instance.start()
    except BaseException:
        await instance.stop()
        await instance.cleanup()
        raise
    return instance


async def _retire(ctx: Context, name: str, instance: Deployment) -> None:
    """Stop the instance, keep what it logged beside the main deployment's, drop its database."""
    try:
        await instance.stop()
        findings = instance.scan_logs()
        if findings:
            ctx.run.server_log[f"metrics ({name} instance)"] = findings
            for message, count in sorted(findings.items(), key=lambda item: -item[1])[:5]:
                print(f"   server log (metrics {name}): {count}× {message}", flush=True)
    finally:
        await instance.cleanup()


async def _get(url: str, target: str, token: str | None) -> tuple[int, bytes]:
    connection = httpclient.Connection(url)
    headers = f"Authorization: Bearer {token}\r\n".encode() if token is not None else b""
    try:
        async with asyncio.timeout(30):
            return await connection.request("GET", target, headers=headers)
    finally:
        connection.close()


def signature_samples(text: str) -> dict[str, float]:
    """`petitions_signatures_total` by status, from Prometheus' text format."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "petitions_signatures_total":
                status = sample.labels.get("status", "")
                found[status] = found.get(status, 0.0) + sample.value
    return found


async def _check(
    ctx: Context, instances: dict[str, Deployment], pk: int, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The "on" instance's /metrics against its stored rows and acknowledged signatures."""
    on = instances[ON]
    counters = await settled_counters(on.database_url, pk)  # cut-off requests still committing
    names = await seed.signer_names(on.database_url, pk)
    report, problems = account(runs, names)
    counted: dict[str, float] = {}
    statuses: dict[str, dict[str, int]] = {}
    for server in on.servers:
        status, body = await _get(server.url, "/metrics", TOKEN)
        if status == 404:
            raise BenchError(
                f"{server.name}: GET /metrics 404 with PETITIONS_METRICS_TOKEN set: a service "
                "without metrics (an older --service?); --skip metrics"
            )
        bare, _ = await _get(server.url, "/metrics", None)
        wrong, _ = await _get(server.url, "/metrics", TOKEN + "-wrong")
        statuses[server.name] = {"token": status, "none": bare, "wrong": wrong}
        if status != 200:
            problems.append(f"{server.name}: GET /metrics with the token answered {status}")
        else:
            try:
                for key, value in signature_samples(body.decode()).items():
                    counted[key] = counted.get(key, 0.0) + value
            except ValueError as error:
                problems.append(f"{server.name}: /metrics is not Prometheus text: {error}")
        if bare != 401:
            problems.append(f"{server.name}: GET /metrics without a token answered {bare}")
        if wrong != 401:
            problems.append(f"{server.name}: GET /metrics with a wrong token answered {wrong}")
    for server in instances[OFF].servers:
        status, _ = await _get(server.url, "/metrics", TOKEN)
        statuses[server.name + " (off)"] = {"token": status}
        if status != 404:
            problems.append(f"{server.name}: metrics off, yet GET /metrics answered {status}")
    valid = int(counted.get("valid", 0))
    acked, unanswered = int(report["acknowledged"]), int(report["unanswered"])
    others = {k: v for k, v in counted.items() if k != "valid" and v}
    if valid != counters.rows or valid != counters.signature_count:
        problems.append(
            f'petitions_signatures_total{{status="valid"}} {valid}, rows {counters.rows}, '
            f"signature_count {counters.signature_count}"
        )
    if not acked <= valid <= acked + unanswered:
        problems.append(
            f'petitions_signatures_total{{status="valid"}} {valid}, acknowledged {acked} '
            f"(+ {unanswered} unanswered)"
        )
    if others:
        problems.append(f"signatures counted under other statuses: {others}")
    report.update(
        metric_valid=valid,
        metric_by_status=counted,
        counters=counters.__dict__,
        http_status=statuses,
    )
    note = (
        f'petitions_signatures_total{{status="valid"}} {valid:,} = rows; acknowledged '
        f"{acked:,} in the on runs, {valid - acked} more stored of {unanswered} cut off; "
        "401 without token or with a wrong one; 404 with metrics off"
    )
    return {"report": report, "problems": problems, "note": note}
