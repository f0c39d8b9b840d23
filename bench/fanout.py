"""Live updates under load: N idle `signatureCount` subscribers while signatures arrive at a
steady rate (delay per write, memory per subscriber), and `signatureAdded` subscribers that
must each receive every name once, in order.

Subscribers live in several `bench.wsworker` processes; the writer is a `bench.pyload`
process. Server memory is read from /proc before and after the subscribers connect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench import httpclient, seed
from bench.phases import Context, settled_counters
from bench.procs import (
    BENCH_ROOT,
    BenchError,
    cpu_seconds,
    fd_hard_limit,
    machine_busy_seconds,
)
from bench.results import Figure, at_least, at_most, ratio
from bench.workload import sign_body

PROBE_K = 999_999_999  # the barrier signature of the names phase
FD_RESERVE = 200  # descriptors a server needs besides its subscribers' sockets
IDLE_CPU = 0.2  # below this share of a core, a server is not busy delivering anything
RATE_SHARE = 0.95  # of the writer's asked rate, taken while the subscribers listen


class CpuWindow:
    """Cores used by the servers, the subscriber processes and the writer over a window."""

    def __init__(self, ctx: Context, workers: Workers) -> None:
        self.ctx, self.workers = ctx, workers
        self.began = time.monotonic()
        self.server = ctx.deployment.cpu_seconds()
        self.clients = workers.cpu_seconds()
        self.children = _children_cpu()
        self.machine = machine_busy_seconds()

    def done(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.began, 1e-9)
        return {
            "server_cores": (self.ctx.deployment.cpu_seconds() - self.server) / wall,
            "subscriber_cores": (self.workers.cpu_seconds() - self.clients) / wall,
            "writer_cores": (_children_cpu() - self.children) / wall,
            "machine_cores": (machine_busy_seconds() - self.machine) / wall,
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_text(cpu: dict[str, float]) -> str:
    ours = sum(value for key, value in cpu.items() if key != "machine_cores")
    return (
        f"cpu while writing: server {cpu['server_cores']:.2f}, subscribers "
        f"{cpu['subscriber_cores']:.2f}, writer {cpu['writer_cores']:.2f}, other "
        f"{max(0.0, cpu['machine_cores'] - ours):.2f} cores"
    )


@dataclass
class Workers:
    """Several wsworker processes holding `n` subscribers between them."""

    ctx: Context
    mode: str
    petition: str
    n: int
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self, within: float = 30.0) -> dict[str, Any]:
        """Spawn the workers; each connection may take `within` s, and none starts after
        the deadline (30 s + 1 s per 150 subscribers)."""
        count = max(1, min(4, math.ceil(self.n / 250)))
        shares = [self.n // count + (1 if i < self.n % count else 0) for i in range(count)]
        ports = ",".join(str(p) for p in self.ctx.deployment.ports)
        deadline = 30 + self.n / 150
        for index, share in enumerate(shares):
            process = await self.ctx.deployment.procs.spawn(
                [
                    sys.executable,
                    "-m",
                    "bench.wsworker",
                    "--ports",
                    ports,
                    "--petition",
                    self.petition,
                    "--mode",
                    self.mode,
                    "-n",
                    str(share),
                    "--connect-within",
                    str(within),
                    "--connect-deadline",
                    str(deadline),
                ],
                env=self.ctx.deployment.service.env({}),
                cwd=BENCH_ROOT,
                log=self.ctx.deployment.procs.workdir / f"wsworker-{self.mode}-{index}.log",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self.processes.append(process)
        ready = await self._read_all(deadline + within + 30)
        return {
            "wanted": self.n,
            "connected": sum(r["connected"] for r in ready),
            "failed": sum(r["failed"] for r in ready),
            "timed_out": sum(r["timed_out"] for r in ready),
            "not_started": sum(r["not_started"] for r in ready),
            "failures": [f for r in ready for f in r["failures"]][:5],
            "seconds": max(r["seconds"] for r in ready),
        }

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    async def _read_all(self, within: float) -> list[dict[str, Any]]:
        async def one(process: asyncio.subprocess.Process) -> dict[str, Any]:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if not line:
                raise BenchError(f"a wsworker exited ({process.returncode}); see its log")
            answer: dict[str, Any] = json.loads(line)
            return answer

        try:
            async with asyncio.timeout(within):
                return list(await asyncio.gather(*(one(p) for p in self.processes)))
        except TimeoutError:
            raise BenchError(f"wsworkers did not answer within {within:.0f} s") from None

    async def ask(self, command: dict[str, Any], within: float = 60) -> list[dict[str, Any]]:
        line = (json.dumps(command) + "\n").encode()
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(line)
            await process.stdin.drain()
        return await self._read_all(within)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(Exception):
                    process.stdin.write(b'{"cmd": "quit"}\n')
                    await process.stdin.drain()
        for process in self.processes:
            await self.ctx.deployment.procs.stop(process, grace=10)
        self.processes = []


def writes_problems(counters: seed.Counters, writer: dict[str, Any], *, extra: int) -> list[str]:
    """The paced writer's signatures against the rows: every acknowledged one stored, and
    no more stored than were acknowledged or left without an answer (timed out at the
    writer, perhaps committed later); `extra` rows were written otherwise (the barrier)."""
    problems = []
    ok, unknown = int(writer["ok"]), int(writer["failures"]["transport"])
    rows = counters.rows - extra
    if not ok <= rows <= ok + unknown:
        problems.append(f"{rows} rows for {ok} acknowledged and {unknown} unanswered signs")
    if not (
        counters.signature_count
        == counters.rows
        == counters.last_signature_number
        == counters.max_number
        == counters.distinct_numbers
        == counters.distinct_emails
    ):
        problems.append(f"counters differ from rows: {counters}")
    return problems


def writer_pool(rate: float) -> int:
    """Connections for the paced writer: enough to keep its rate while each sign takes up
    to a second (an open-loop writer: signers do not wait for each other)."""
    return max(32, min(512, int(rate)))


def _both(*checks: bool | None) -> bool | None:
    if any(check is None for check in checks):
        return None
    return all(bool(check) for check in checks)


def _percentile(histogram: dict[int, int], point: float) -> float:
    total = sum(histogram.values())
    if not total:
        return math.nan
    goal = point / 100 * total
    running = 0
    for bucket in sorted(histogram):
        running += histogram[bucket]
        if running >= goal:
            return float(bucket)
    return float(max(histogram))


async def _sign_once(url: str, petition: str, k: int, tag: str) -> dict[str, Any]:
    connection = httpclient.Connection(url)
    try:
        async with asyncio.timeout(30):
            status, body = await connection.request(
                "POST", "/graphql", sign_body(petition, "Bench", f"S{k}", f"{tag}-{k}@example.org")
            )
    finally:
        connection.close()
    if status != 200:
        raise BenchError(f"probe sign failed: {status} {body[:200]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


async def _poll(
    workers: Workers, command: dict[str, Any], key: str, goal: int, within: float
) -> tuple[int, float]:
    """Ask for status until `key` sums to `goal` or `within` s pass: (reached, seconds)."""
    started = time.monotonic()
    reached = 0
    for _ in range(100_000):
        answers = await workers.ask(command)
        reached = sum(a[key] for a in answers)
        if reached >= goal or time.monotonic() - started > within:
            break
        await asyncio.sleep(0.1)
    return reached, time.monotonic() - started


async def fanout(ctx: Context, wanted: int) -> None:
    """`wanted` idle signatureCount subscribers; sign at the plan's rate; delays and memory."""
    run, plan, deployment = ctx.run, ctx.plan, ctx.deployment
    per_process = fd_hard_limit() - FD_RESERVE
    n = min(wanted, per_process * deployment.process_count)
    capped = n < wanted
    await deployment.restart()  # fresh processes: memory per subscriber from a clean slate
    petition, pk = await deployment.create_petition(f"bench-fanout-{wanted}")
    await asyncio.sleep(0.5)
    rss_before = deployment.rss_kb()
    workers = Workers(ctx, "count", petition, n)
    record: dict[str, Any] = {"wanted": wanted, "subscribers": n, "capped_by_fd_limit": capped}
    try:
        ready = await workers.start()
        record["connect"] = ready
        deployment.check_alive()
        await asyncio.sleep(1.0)
        rss_after = deployment.rss_kb()
        connected = ready["connected"]
        per_sub = (rss_after - rss_before) / connected if connected else math.nan
        record.update(rss_before_kb=rss_before, rss_after_kb=rss_after, kb_per_subscriber=per_sub)
        window = CpuWindow(ctx, workers)
        writer = await ctx.loader.paced(
            {
                "urls": deployment.urls,
                "rate": plan.fanout_rate,
                "duration": plan.fanout_seconds,
                "petition_id": petition,
                "email_tag": f"{ctx.email_tag}-fan{wanted}",
                "connections": writer_pool(plan.fanout_rate),
            }
        )
        record["cpu"] = window.done()
        deployment.check_alive()
        acks = writer.pop("acks")
        record["writer"] = writer
        # The true final count: requests that timed out at the writer may still commit.
        counters = await settled_counters(deployment.database_url, pk)
        final = counters.signature_count
        reached, waited = await _poll(
            workers, {"cmd": "status", "count": final}, "at_least", connected, plan.fanout_drain
        )
        idle = await deployment.busy() if reached < connected else math.nan
        record["drain"] = {
            "final_count": final,
            "holding_final": reached,
            "seconds": waited,
            "server_cpu_after": idle,
        }
        measured = await workers.ask({"cmd": "measure", "acks": acks, "final": final}, within=120)
        deployment.check_alive()
    finally:
        await workers.close()
    histogram: dict[int, int] = {}
    from_send: dict[int, int] = {}
    for answer in measured:
        for bucket, count in answer["histogram"].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
        for bucket, count in answer["histogram_from_send"].items():
            from_send[int(bucket)] = from_send.get(int(bucket), 0) + count
    missed = sum(a["missed"] for a in measured)
    stale = sum(a["stale"] for a in measured)
    errors: dict[str, int] = {}
    for answer in measured:
        for key, value in answer["errors"].items():
            errors[key] = errors.get(key, 0) + value
    p50, p99 = _percentile(histogram, 50), _percentile(histogram, 99)
    send_p99 = _percentile(from_send, 99)
    record.update(
        delay_ms={"p50": p50, "p99": p99, "max": max(histogram, default=math.nan)},
        delay_from_send_ms={"p50": _percentile(from_send, 50), "p99": send_p99},
        samples=sum(histogram.values()),
        missed=missed,
        stale=stale,
        errors=errors,
        messages=sum(a["messages"] for a in measured),
    )
    record["counters"] = counters.__dict__
    run.raw[f"fanout_{wanted}"] = record
    run.series.setdefault("fanout", []).append(
        {
            "subscribers": connected,
            "p50_ms": p50,
            "p99_ms": p99,
            "from_send_p99_ms": send_p99,
            "kb_per_subscriber": per_sub,
            "rss_after_mb": rss_after / 1024,
        }
    )
    label = f"fan-out {wanted:,}"
    shown = p99 if p99 < 1e6 else math.inf
    shown_send = send_p99 if send_p99 < 1e6 else math.inf
    rate = float(writer["achieved_rate"])
    taken = ratio(rate, plan.fanout_rate)
    rate_held = rate >= RATE_SHARE * plan.fanout_rate
    everyone = connected == n
    note = (
        f"p50 {p50:.0f} ms; {connected:,}/{n:,} connected in {ready['seconds']:.0f} s"
        f" ({ready['timed_out']} timed out, {ready['not_started']} not started in time)"
    )
    if capped:
        note += f"; CAPPED at {n:,} by the fd hard limit {fd_hard_limit():,} per process"
    if stale or missed:
        note += f"; {stale} stale subscriber(s), {missed} write(s) never seen"
    run.add(
        Figure(
            f"fanout_{wanted}_p99",
            f"{label}: count delay p99 after ack",
            shown,
            "ms",
            target=f"≤ 1000 ms, rate held, all connected ({plan.fanout_rate:g} signs/s)",
            met=_both(at_most(shown, 1000), rate_held, everyone),
            note=note,
        )
    )
    run.add(
        Figure(
            f"fanout_{wanted}_send_p99",
            f"{label}: count delay p99 after send",
            shown_send,
            "ms",
            note="upper bound: includes the sign request's own latency",
        )
    )
    run.add(
        Figure(
            f"fanout_{wanted}_rate",
            f"{label}: signatures/s taken meanwhile",
            rate,
            "req/s",
            taken,
            f"{plan.fanout_rate:g}/s asked",
            f"≥ {RATE_SHARE:.2f}× asked",
            at_least(taken, RATE_SHARE),
            note=f"{writer['ok']} signs, p50 {writer['latency_us']['p50'] / 1000:.0f} ms, "
            f"p99 {writer['latency_us']['p99'] / 1000:.0f} ms; {cpu_text(record['cpu'])}",
        )
    )
    run.add(
        Figure(
            f"fanout_{wanted}_mem",
            f"{label}: server memory per subscriber",
            per_sub,
            "KB",
            target="≤ 40 KB",
            met=at_most(per_sub, 40),
            note=f"RSS {rss_before / 1024:.0f} → {rss_after / 1024:.0f} MB",
        )
    )
    if ready["failed"]:
        run.fail(
            f"fan-out {wanted}: {ready['failed']} subscriber(s) refused or dropped while "
            f"connecting: {ready['failures'][:2]}"
        )
    if stale and record["drain"]["server_cpu_after"] < IDLE_CPU:
        # Not late: the server sat idle while they still lacked the final count.
        run.fail(
            f"fan-out {wanted}: {stale} subscriber(s) never received the final count "
            f"{final} ({plan.fanout_drain:g} s after the writes, server idle; "
            f"{errors or 'no error'})"
        )
    if errors:
        run.fail(f"fan-out {wanted}: subscriptions ended by the server: {errors}")
    for problem in writes_problems(counters, writer, extra=0):
        run.fail(f"fan-out {wanted}: {problem}")


async def names(ctx: Context) -> None:
    """`signatureAdded` subscribers must each receive every name once, in order."""
    run, plan, deployment = ctx.run, ctx.plan, ctx.deployment
    n = plan.names_subscribers
    await deployment.restart()  # fresh processes, as for each fan-out size
    petition, pk = await deployment.create_petition("bench-names")
    workers = Workers(ctx, "names", petition, n)
    record: dict[str, Any] = {"subscribers": n}
    try:
        ready = await workers.start()
        record["connect"] = ready
        connected = ready["connected"]
        # Barrier: one signature every subscriber must see before the measured writes start
        # (graphql-transport-ws does not acknowledge a subscribe).
        await asyncio.sleep(0.5)
        await _sign_once(deployment.urls[0], petition, PROBE_K, f"{ctx.email_tag}-probe")
        barrier, _ = await _poll(workers, {"cmd": "status", "names": 1}, "complete", connected, 15)
        record["barrier"] = barrier
        window = CpuWindow(ctx, workers)
        writer = await ctx.loader.paced(
            {
                "urls": deployment.urls,
                "rate": plan.names_rate,
                "duration": plan.names_seconds,
                "petition_id": petition,
                "email_tag": f"{ctx.email_tag}-names",
                "connections": writer_pool(plan.names_rate),
            }
        )
        record["cpu"] = window.done()
        deployment.check_alive()
        writer.pop("acks")
        record["writer"] = writer
        counters = await settled_counters(deployment.database_url, pk)
        total = counters.rows  # the barrier's and every committed write's name
        reached, waited = await _poll(
            workers, {"cmd": "status", "names": total}, "complete", connected, plan.names_drain
        )
        idle = await deployment.busy() if reached < connected else math.nan
        record["drain"] = {
            "names": total,
            "complete_or_cut_off": reached,
            "seconds": waited,
            "server_cpu_after": idle,
        }
        rows = await seed.signer_names(deployment.database_url, pk)
        numbers = {int(last[1:]): number for number, _, last in rows if last != f"S{PROBE_K}"}
        checked = await workers.ask(
            {"cmd": "names", "numbers": numbers, "ignore": [PROBE_K]}, within=120
        )
    finally:
        await workers.close()
    summary: dict[str, Any] = {}
    for answer in checked:
        for key, value in answer.items():
            if isinstance(value, int):
                summary[key] = summary.get(key, 0) + value
            elif isinstance(value, dict):
                merged = summary.setdefault(key, {})
                for k, v in value.items():
                    merged[k] = merged.get(k, 0) + v
    record["check"] = summary
    record["counters"] = counters.__dict__
    run.raw["names"] = record
    rate_held = writer["achieved_rate"] >= 0.9 * plan.names_rate
    perfect = summary["complete"] == n and connected == n and rate_held
    note = (
        f"{summary['complete']}/{n} complete; missing {summary['missing']}, "
        f"duplicates {summary['duplicates']}, out of order {summary['out_of_order']}, "
        f"gaps {summary['gaps']}, cut off {summary['cut_off']}, late {summary['late']}; "
        f"writes {writer['ok']} at {writer['achieved_rate']:.0f}/s of {plan.names_rate:g}/s"
        f"{'' if rate_held else ' (RATE NOT HELD)'}; {cpu_text(record['cpu'])}"
    )
    run.add(
        Figure(
            "names",
            f"names: {n:,} signatureAdded subscribers, each name once, in order",
            summary["complete"] / n if n else math.nan,
            "share",
            target="all",
            met=perfect,
            note=note,
        )
    )
    run.add(
        Figure(
            "names_missing",
            "names: missing (all subscribers)",
            float(summary["missing"]),
            "names",
            target="0",
            met=at_least(-summary["missing"], 0),
        )
    )
    broken = summary["duplicates"] + summary["out_of_order"] + summary["gaps"]
    if broken:
        run.fail(
            f"names: {summary['duplicates']} duplicate(s), {summary['out_of_order']} out of "
            f"order, {summary['gaps']} gap(s) (silently skipped names)"
        )
    if summary["late"] and record["drain"]["server_cpu_after"] < IDLE_CPU:
        run.fail(
            f"names: {summary['late']} subscriber(s) still missing names {plan.names_drain:g} s "
            "after the last write, with no error, while the server sat idle"
        )
    if ready["failed"]:
        run.fail(f"names: {ready['failed']} subscriber(s) refused while connecting")
    if barrier < connected:
        record["barrier_missed"] = connected - barrier  # slow, not broken: reported
    for problem in writes_problems(counters, writer, extra=1):
        run.fail(f"names: {problem}")
