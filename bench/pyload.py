"""The Python load generator, run as its own process: `python -m bench.pyload SPEC.json`.

Modes:
- `closed`: C connections, each sending its next request as soon as the last is answered,
  for `duration` seconds after `warmup`; in-flight requests are awaited at the end, so every
  request's outcome is known (exact accounting for signing).
- `paced`: an open-loop writer: request i is due at start + i / rate; a pool of connections
  takes them in turn. Records, per successful sign, (k, returned count, ack time): the fan-out
  and names phases compare those with what subscribers saw (and when it was sent).

Prints one JSON object on stdout. Time is `time.monotonic()`, which is system-wide on Linux,
so other processes' timestamps compare with it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.httpclient import Connection, HTTPError
from bench.workload import (
    CODE_IN,
    CONFIRM_ACK,
    COUNT_IN,
    PACED_NAME,
    SIGNED_NAME,
    Workload,
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
    pool = max(1, int(spec.get("connections", 32)))
    start = time.monotonic() + 0.05
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("spec", type=Path, help="a JSON file describing the load")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    if spec["mode"] not in ("closed", "paced"):
        raise SystemExit(f"unknown mode {spec['mode']!r}")
    work = closed_loop(spec) if spec["mode"] == "closed" else paced(spec)
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
