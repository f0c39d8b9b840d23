"""HTTP load from other processes: `wrk` (preferred: far lighter than any Python client) or
the Python generator (`bench.pyload`) when wrk is absent or `--load python` is asked for."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import sys
from dataclasses import dataclass
from itertools import count
from typing import Any

from bench.procs import BENCH_ROOT, BenchError, Processes
from bench.workload import Workload, lua_script

_runs = count(1)


@dataclass(frozen=True)
class LoadTool:
    kind: str  # "wrk" | "python"
    wrk: str | None = None

    @classmethod
    def choose(cls, wanted: str) -> LoadTool:
        found = shutil.which("wrk")
        if wanted == "wrk":
            if found is None:
                raise BenchError("--load wrk, but no `wrk` on PATH (apt-get install -y wrk)")
            return cls("wrk", found)
        if wanted == "auto" and found is not None:
            return cls("wrk", found)
        return cls("python")

    def describe(self) -> str:
        return f"wrk ({self.wrk})" if self.kind == "wrk" else "python (bench.pyload, uvloop)"


def merge_curves(parts: list[tuple[int, list[float]]], points: tuple[float, ...]) -> list[float]:
    """Percentiles of several latency distributions, each given as its 0..100 % curve (201
    points) and its number of requests."""
    weighted: list[tuple[float, float]] = []
    for requests, curve in parts:
        if requests and curve:
            weighted += [(value, requests / len(curve)) for value in curve]
    if not weighted:
        return [math.nan for _ in points]
    weighted.sort()
    total = sum(weight for _, weight in weighted)
    found = []
    for point in points:
        goal = point / 100 * total
        running = 0.0
        value = weighted[-1][0]
        for candidate, weight in weighted:
            running += weight
            if running >= goal:
                value = candidate
                break
        found.append(value)
    return found


def _merge(results: list[dict[str, Any]], tool: str) -> dict[str, Any]:
    if len(results) == 1:
        return results[0]
    requests = sum(r["requests"] for r in results)
    parts = [(r["requests"], r["curve_us"]) for r in results]
    p50, p90, p99, p999 = merge_curves(parts, (50, 90, 99, 99.9))
    errors: dict[str, int] = {}
    for r in results:
        for key, value in r["errors"].items():
            errors[key] = errors.get(key, 0) + value
    return {
        "tool": tool,
        "requests": requests,
        "duration_s": max(r["duration_s"] for r in results),
        "rps": sum(r["rps"] for r in results),
        "non2xx": sum(r.get("non2xx", 0) for r in results),
        "errors": errors,
        "latency_us": {
            "mean": sum(r["latency_us"]["mean"] * r["requests"] for r in results)
            / max(requests, 1),
            "max": max(r["latency_us"]["max"] for r in results),
            "p50": p50,
            "p90": p90,
            "p99": p99,
            "p999": p999,
        },
        "curve_us": merge_curves(parts, tuple(i / 2 for i in range(201))),
        "threads": [t for r in results for t in r.get("threads", [])],
        "parts": len(results),
    }


class Loader:
    """Runs closed-loop load against one or more servers (connections split between them)."""

    def __init__(self, procs: Processes, tool: LoadTool, env: dict[str, str]) -> None:
        self.procs = procs
        self.tool = tool
        self.env = env

    async def closed(
        self,
        urls: list[str],
        workload: Workload,
        *,
        connections: int,
        duration: float,
        warmup: float = 0.0,
    ) -> dict[str, Any]:
        """`connections` connections sending `workload` back to back for `duration` s."""
        if self.tool.kind == "wrk":
            if warmup >= 1:  # wrk counts whole seconds: shorter warm-ups are left out
                await self._wrk(urls, workload, connections, warmup)
            return await self._wrk(urls, workload, connections, duration)
        return await self._python(urls, workload, connections, duration, warmup)

    async def _wrk(
        self, urls: list[str], workload: Workload, connections: int, duration: float
    ) -> dict[str, Any]:
        assert self.tool.wrk is not None
        seconds = max(1, round(duration))
        results = []
        runs = []
        share = max(1, connections // len(urls))
        for index, url in enumerate(urls):
            script = self.procs.workdir / f"wrk-{next(_runs)}.lua"
            script.write_text(lua_script(workload, first_thread=index * 1000))
            fixed = workload.kind == "static" and not workload.vary
            target = url + (workload.path if fixed else "/graphql")
            argv = [
                self.tool.wrk,
                "-t1",
                f"-c{share}",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "--latency",
                "-s",
                str(script),
                target,
            ]
            runs.append(argv)
        outputs = await asyncio.gather(*(self.procs.run(argv, limit=seconds + 60) for argv in runs))
        for code, out, err in outputs:
            line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
            if code != 0 or line is None:
                raise BenchError(f"wrk failed ({code}):\n{out[-2000:]}\n{err[-2000:]}")
            raw = json.loads(line[len("WRKJSON ") :])
            elapsed = raw["duration_us"] / 1e6
            results.append(
                {
                    "tool": "wrk",
                    "requests": raw["requests"],
                    "duration_s": elapsed,
                    "rps": raw["requests"] / max(elapsed, 1e-9),
                    "non2xx": raw["errors"]["status"],
                    "errors": raw["errors"],
                    "latency_us": raw["latency_us"],
                    "curve_us": [float(x) for x in raw["curve_us"]],
                    "threads": raw["threads"],
                }
            )
        return _merge(results, "wrk")

    async def _python(
        self,
        urls: list[str],
        workload: Workload,
        connections: int,
        duration: float,
        warmup: float,
    ) -> dict[str, Any]:
        spec = {
            "mode": "closed",
            "urls": urls,
            "workload": workload.to_json(),
            "connections": connections,
            "duration": duration,
            "warmup": warmup,
        }
        return await self.python_process(spec, limit=duration + warmup + 90)

    async def paced(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The paced writer (always Python: it must report each write's count and time)."""
        return await self.python_process({"mode": "paced", **spec}, limit=spec["duration"] * 4 + 90)

    async def python_process(self, spec: dict[str, Any], *, limit: float) -> dict[str, Any]:
        path = self.procs.workdir / f"load-{next(_runs)}.json"
        path.write_text(json.dumps(spec))
        code, out, err = await self.procs.run(
            [sys.executable, "-m", "bench.pyload", str(path)],
            env=self.env,
            cwd=BENCH_ROOT,
            limit=limit,
        )
        if code != 0 or not out.strip():
            raise BenchError(f"bench.pyload failed ({code}):\n{err[-3000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


def rps(result: dict[str, Any]) -> float:
    return float(result["rps"])


def ms(result: dict[str, Any], point: str) -> float:
    return float(result["latency_us"][point]) / 1000.0
