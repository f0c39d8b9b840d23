"""The Python load generator, run as its own process: `python -m bench.pyload SPEC.json`.

Modes:
- `closed`: C connections, each sending its next request as soon as the last is answered,
  for `duration` seconds after `warmup`; in-flight requests are awaited at the end, so every
  request's outcome is known (exact accounting for signing).
- `paced`: an open-loop writer: request i is due at start + i / rate; a pool of connections
  takes them in turn. Records, per successful sign, (k, returned count, ack time): the fan-out
  and names phases compare those with what subscribers saw (and when it was sent).
- `readers`: C connections reading one petition's count and its first page in turn, each
  request distinct (a nonce), from `start_at` for `duration` seconds, checking every answer:
  a connection's count never goes backwards, nor its first page's newest signature; a page
  lists consecutive signature numbers (from the cursors), newest first, with no gap or repeat,
  and at least as many as the count in the same answer; a number names one signer only.
  Reports the problems found and every number → name seen (the spike checks those against
  the stored rows).

Prints one JSON object on stdout. Time is `time.monotonic()`, which is system-wide on Linux,
so other processes' timestamps compare with it."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.httpclient import Connection, HTTPError
from bench.workload import (
    CODE_IN,
    CONFIRM_ACK,
    COUNT_IN,
    COUNT_QUERY,
    NONCE,
    PACED_NAME,
    PAGE_QUERY,
    SIGNED_NAME,
    Workload,
    graphql_post,
    sign_body,
    signer,
    with_nonce,
)

REQUEST_LIMIT = 30.0  # seconds any single request may take before it counts as lost


def percentiles(values: list[float], points: tuple[float, ...]) -> dict[str, float]:
    """Nearest-rank percentiles of `values`, keyed "p50", "p99", "p99.9" …"""
    if not values:
        return {f"p{p:g}": float("nan") for p in points}
    ordered = sorted(values)
    top = len(ordered) - 1
    return {f"p{p:g}": ordered[min(top, round(p / 100 * top))] for p in points}


def curve(values: list[float]) -> list[float]:
    """The 0th, 0.5th … 100th percentiles, the form `wrk` reports too (for merging)."""
    if not values:
        return []
    ordered = sorted(values)
    top = len(ordered) - 1
    return [ordered[min(top, round(i / 200 * top))] for i in range(201)]


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.measured = 0
        self.non2xx = 0
        self.graphql_errors = 0
        self.transport_errors = 0
        self.codes: dict[str, int] = {}


async def _closed_connection(
    url: str,
    workload: Workload,
    thread: int,
    measure_from: float,
    end: float,
    tally: Tally,
    threads: dict[int, dict[str, Any]],
) -> None:
    connection = Connection(url)
    record: dict[str, Any] = {
        "id": thread,
        "sent": 0,
        "answered": 0,
        "ok": 0,
        "refused": 0,
        "acked": [],
    }
    threads[thread] = record
    static_body = workload.body.encode()
    # Confirmation mode names nobody in its answer: what acknowledges is `needsConfirmation`.
    acknowledged = CONFIRM_ACK if workload.confirm else SIGNED_NAME
    try:
        for k in range(10_000_000):
            now = time.monotonic()
            if now >= end:
                break
            path = workload.path
            if workload.kind == "sign":
                first, last, email = signer(workload, thread, k)
                body = sign_body(workload.petition_id, first, last, email, workload.confirm)
            elif workload.vary:
                nonce = f"{thread}-{k}"
                body = with_nonce(workload.body, nonce).encode()
                path = with_nonce(workload.path, nonce)
            else:
                body = static_body
            record["sent"] += 1
            try:
                async with asyncio.timeout(REQUEST_LIMIT):
                    status, answer = await connection.request(workload.method, path, body)
            except (HTTPError, OSError, TimeoutError):
                tally.transport_errors += 1
                connection.close()
                await asyncio.sleep(0.05)
                continue
            done = time.monotonic()
            record["answered"] += 1
            if now >= measure_from and done <= end:
                tally.measured += 1
                tally.latencies.append(done - now)
            if status // 100 != 2:
                tally.non2xx += 1
            if workload.kind == "sign":
                if status == 200 and acknowledged.search(answer):
                    record["ok"] += 1
                    record["acked"].append(k)
                else:
                    record["refused"] += 1
                    for code in CODE_IN.findall(answer):
                        tally.codes[code.decode()] = tally.codes.get(code.decode(), 0) + 1
            elif b'"errors"' in answer:
                tally.graphql_errors += 1
    finally:
        connection.close()


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    workload = Workload.from_json(spec["workload"])
    urls: list[str] = spec["urls"]
    connections: int = spec["connections"]
    start = time.monotonic()
    measure_from = start + spec.get("warmup", 0.0)
    end = measure_from + spec["duration"]
    tally = Tally()
    threads: dict[int, dict[str, Any]] = {}
    first = spec.get("first_thread", 0)
    async with asyncio.timeout(spec["duration"] + spec.get("warmup", 0.0) + REQUEST_LIMIT + 10):
        await asyncio.gather(
            *(
                _closed_connection(
                    urls[i % len(urls)], workload, first + i, measure_from, end, tally, threads
                )
                for i in range(connections)
            )
        )
    finished = time.monotonic()
    elapsed = max(1e-9, min(finished, end) - measure_from)
    lat = [x * 1e6 for x in tally.latencies]
    result = {
        "tool": "python",
        "requests": tally.measured,
        "duration_s": elapsed,
        "rps": tally.measured / elapsed,
        "non2xx": tally.non2xx,
        "graphql_errors": tally.graphql_errors,
        "errors": {"transport": tally.transport_errors},
        "refusal_codes": tally.codes,
        "latency_us": {
            "mean": sum(lat) / len(lat) if lat else float("nan"),
            "max": max(lat) if lat else float("nan"),
            **percentiles(lat, (50, 90, 99, 99.9)),
        },
        "curve_us": curve(lat),
        "threads": sorted(threads.values(), key=lambda t: t["id"]),
    }
    result["latency_us"]["p999"] = result["latency_us"].pop("p99.9")
    return result


async def paced(spec: dict[str, Any]) -> dict[str, Any]:
    """Sign at `rate`/s for `duration` s with names "Bench S<k>", k = 0, 1, 2 …"""
    urls: list[str] = spec["urls"]
    rate: float = spec["rate"]
    duration: float = spec["duration"]
    petition_id: str = spec["petition_id"]
    tag: str = spec["email_tag"]
    total = int(rate * duration)
    pool = max(1, int(spec.get("connections", 32)))  # also the most signs in flight at once
    # `start_at`: a `time.monotonic()` moment agreed with other processes (the spike's readers).
    start = float(spec.get("start_at", time.monotonic() + 0.05))
    cursor = iter(range(total))
    stop_issuing = start + duration + 1.0
    skipped = [0]
    last_sent = [start]
    acks: list[tuple[int, int, float, float]] = []
    latencies: list[float] = []
    failures = {"refused": 0, "transport": 0, "non2xx": 0}
    codes: dict[str, int] = {}

    async def worker(index: int) -> None:
        connection = Connection(urls[index % len(urls)])
        try:
            for k in cursor:
                due = start + k / rate
                if time.monotonic() > stop_issuing:
                    skipped[0] += 1
                    continue  # behind schedule past the end: the rate was not achievable
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = sign_body(petition_id, "Bench", f"S{k}", f"{tag}-{k}@example.org")
                sent = time.monotonic()
                last_sent[0] = max(last_sent[0], sent)
                try:
                    async with asyncio.timeout(REQUEST_LIMIT):
                        status, answer = await connection.request("POST", "/graphql", body)
                except (HTTPError, OSError, TimeoutError):
                    failures["transport"] += 1
                    connection.close()
                    continue
                acked = time.monotonic()
                if status != 200:
                    failures["non2xx"] += 1
                    continue
                count = COUNT_IN.search(answer)
                if PACED_NAME.search(answer) and count:
                    acks.append((k, int(count.group(1)), acked, sent))
                    latencies.append(acked - sent)
                else:
                    failures["refused"] += 1
                    for code in CODE_IN.findall(answer):
                        codes[code.decode()] = codes.get(code.decode(), 0) + 1
        finally:
            connection.close()

    async with asyncio.timeout(duration * 4 + REQUEST_LIMIT + 10):
        await asyncio.gather(*(worker(i) for i in range(pool)))
    elapsed = time.monotonic() - start
    lat = [x * 1e6 for x in latencies]
    return {
        "tool": "python-paced",
        "planned": total,
        "ok": len(acks),
        "skipped_behind_schedule": skipped[0],
        "failures": failures,
        "refusal_codes": codes,
        "elapsed_s": elapsed,
        # Writes taken per second of sending: a server that keeps up lets the writer send on
        # schedule (the rate holds); one that does not ties up the pool, and sending slips.
        "achieved_rate": len(acks) / max(last_sent[0] - start, duration * 0.5, 1e-9),
        "latency_us": percentiles(lat, (50, 99)),
        "acks": acks,
    }


def cursor_number(cursor: object) -> int | None:
    """The signature number a signature cursor holds ("signature@<number>", base64url)."""
    if not isinstance(cursor, str):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    kind, _, number = text.partition("@")
    return int(number) if kind == "signature" and number.isdigit() else None


PAGE_SIZE = 10  # PAGE_QUERY asks for `first: 10`


class ReadCheck:
    """What the readers of one process saw, and what was wrong with it."""

    def __init__(self) -> None:
        self.problems: dict[str, int] = {}
        self.examples: list[str] = []
        self.seen: dict[int, str] = {}  # signature number -> the name pages showed for it
        self.count_behind_page = 0  # a count below a page this connection had already seen
        self.failed = 0  # answers that were errors (not 200, or GraphQL errors): not checked
        self.max_count = 0
        self.max_top = 0
        self.checked = 0

    def bad(self, kind: str, example: str) -> None:
        self.problems[kind] = self.problems.get(kind, 0) + 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {example}")


class _Reader:
    """One connection's reads and the order its answers must keep."""

    def __init__(self, index: int, url: str) -> None:
        self.index = index
        self.url = url
        self.last_count = 0
        self.last_top = 0

    def check(self, page: bool, status: int, answer: bytes, check: ReadCheck) -> None:
        check.checked += 1
        where = f"connection {self.index}"
        try:
            decoded = json.loads(answer)
        except ValueError:
            decoded = None
        if status != 200 or (isinstance(decoded, dict) and decoded.get("errors")):
            check.failed += 1
            if len(check.examples) < 10:
                check.examples.append(f"error answer: {where}: {status} {answer[:200]!r}")
            return
        if not isinstance(decoded, dict):
            check.bad("unreadable answer", f"{where}: {status} {answer[:200]!r}")
            return
        try:
            petition = decoded["data"]["petition"]
            count = int(petition["signatureCount"])
            edges = petition["signatures"]["edges"] if page else []
            numbers = [cursor_number(edge["cursor"]) for edge in edges]
            names = [str(edge["node"]["name"]) for edge in edges]
        except (KeyError, TypeError, ValueError):
            check.bad("unreadable answer", f"{where}: {status} {answer[:200]!r}")
            return
        if count < self.last_count:
            check.bad("count went backwards", f"{where}: {self.last_count} then {count}")
        self.last_count = max(self.last_count, count)
        check.max_count = max(check.max_count, count)
        if not page:
            if count < self.last_top:
                check.count_behind_page += 1
            return
        if any(number is None for number in numbers):
            check.bad("cursor without a signature number", f"{where}: {edges[:2]}")
            return
        top = (numbers[0] or 0) if numbers else 0
        wanted = list(range(top, max(top - PAGE_SIZE, 0), -1))
        if numbers != wanted:
            check.bad("page with a gap or a repeat", f"{where}: numbers {numbers}")
        if top < count:
            check.bad("page behind its own count", f"{where}: count {count}, newest #{top}")
        if top < self.last_top:
            check.bad("first page went backwards", f"{where}: newest #{self.last_top}, then #{top}")
        self.last_top = max(self.last_top, top)
        check.max_top = max(check.max_top, top)
        for number, name in zip(numbers, names, strict=True):
            assert number is not None
            known = check.seen.setdefault(number, name)
            if known != name:
                check.bad("one number, two names", f"#{number}: {known!r} and {name!r}")


async def _read_connection(
    bodies: tuple[tuple[str, str], tuple[str, str]],
    reader: _Reader,
    start: float,
    end: float,
    stop: float,
    tally: Tally,
    check: ReadCheck,
    kinds: list[int],
) -> None:
    """Count and first page in turn (this connection starts with one or the other), each
    with a nonce of its own, until `stop`; reads answered within [start, end] are measured."""
    connection = Connection(reader.url)
    try:
        for k in range(100_000_000):
            now = time.monotonic()
            if now >= stop:
                break
            page = (k + reader.index) % 2
            prefix, suffix = bodies[page]
            body = (prefix + f"{reader.index}-{k}" + suffix).encode()
            try:
                async with asyncio.timeout(REQUEST_LIMIT):
                    status, answer = await connection.request("POST", "/graphql", body)
            except (HTTPError, OSError, TimeoutError):
                tally.transport_errors += 1
                connection.close()
                await asyncio.sleep(0.05)
                continue
            done = time.monotonic()
            if status // 100 != 2:
                tally.non2xx += 1
            reader.check(bool(page), status, answer, check)
            if now >= start and done <= end:
                tally.measured += 1
                tally.latencies.append(done - now)
                kinds[page] += 1
    finally:
        connection.close()


async def readers(spec: dict[str, Any]) -> dict[str, Any]:
    """`connections` readers of petition `slug`, measured from `start_at` for `duration`
    seconds. They start reading at once and go on `linger` seconds after (a writer's late
    requests still meet readers): reads outside the window are checked, not measured."""
    urls: list[str] = spec["urls"]
    connections: int = spec["connections"]
    variables = {"slug": spec["slug"]}
    count_body, page_body = (
        graphql_post(query, variables, vary=True).body.partition(NONCE)
        for query in (COUNT_QUERY, PAGE_QUERY)
    )
    bodies = ((count_body[0], count_body[2]), (page_body[0], page_body[2]))
    start = float(spec.get("start_at", time.monotonic()))
    end = start + spec["duration"]
    stop = end + float(spec.get("linger", 0.0))
    tally, check = Tally(), ReadCheck()
    kinds = [0, 0]  # measured count reads, page reads
    first = spec.get("first_connection", 0)
    began = time.monotonic()
    tasks = [
        _read_connection(
            bodies, _Reader(first + i, urls[i % len(urls)]), start, end, stop, tally, check, kinds
        )
        for i in range(connections)
    ]
    async with asyncio.timeout(stop - time.monotonic() + REQUEST_LIMIT + 10):
        await asyncio.gather(*tasks)
    mine = resource.getrusage(resource.RUSAGE_SELF)
    lat = [x * 1e6 for x in tally.latencies]
    return {
        "tool": "python-readers",
        "connections": connections,
        "requests": tally.measured,
        "duration_s": spec["duration"],
        "rps": tally.measured / spec["duration"],
        "count_reads": kinds[0],
        "page_reads": kinds[1],
        "non2xx": tally.non2xx,
        "errors": {"transport": tally.transport_errors},
        "latency_us": percentiles(lat, (50, 99)),
        "curve_us": curve(lat),
        "checked": check.checked,
        "problems": check.problems,
        "examples": check.examples,
        "count_behind_page": check.count_behind_page,
        "failed": check.failed,
        "max_count": check.max_count,
        "max_top": check.max_top,
        "seen": {str(number): name for number, name in check.seen.items()},
        # This process's CPU over its whole life (starting, warming up and checking included).
        "cpu_s": mine.ru_utime + mine.ru_stime,
        "wall_s": time.monotonic() - began,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("spec", type=Path, help="a JSON file describing the load")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    modes = {"closed": closed_loop, "paced": paced, "readers": readers}
    if spec["mode"] not in modes:
        raise SystemExit(f"unknown mode {spec['mode']!r}")
    work = modes[spec["mode"]](spec)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
