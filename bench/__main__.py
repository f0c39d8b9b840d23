"""`python -m bench [--quick] [--backend sqlite|postgres|both] [--out DIR]`

Starts every server as a real process on 127.0.0.1 (a baseline app, and the service on
SQLite, or on PostgreSQL + Redis as two processes), drives load from other processes, prints
a table of figures with their ratios to baselines measured in the same run, and writes JSON
and a PNG. Exits non-zero only when the benchmark itself breaks (a server fails, a phase
cannot run, a correctness check fails), never because a speed target is missed."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import exports, fanout, metrics_cost, peer, phases, report, safety, spike, surfaces
from bench.load import Loader, LoadTool
from bench.plan import FULL, QUICK, Plan
from bench.procs import BENCH_ROOT, BenchError, Processes, Service
from bench.results import Run
from bench.service import Deployment

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CI run: small, about 75 s")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--out", type=Path, default=BENCH_ROOT / "bench" / "results")
    parser.add_argument(
        "--load",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="HTTP load generator (auto: wrk when on PATH, else the Python one)",
    )
    parser.add_argument(
        "--service",
        type=Path,
        default=None,
        help="run server.main() from this checkout instead of the installed `petitions`",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PETITIONS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a server where the benchmark may create and drop databases",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("PETITIONS_BENCH_REDIS_URL", DEFAULT_REDIS)
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated phases to leave out: "
        "baselines,signing,metrics,confirmation,reads,spike,safety,exports,pages,peer,"
        "surfaces,fanout,names "
        "(confirmation: signing with confirmation mode on, e.g. against a --service that has "
        "none)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Lua)")
    return parser.parse_args(argv)


Phase = Callable[[phases.Context], Awaitable[None]]


async def run_backend(backend: str, plan: Plan, tool: LoadTool, args: argparse.Namespace) -> Run:
    run = Run(backend)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"petitions-bench-{backend}-"))
    procs = Processes(workdir)
    service = Service(args.service.resolve() if args.service else None)
    deployment = Deployment(
        backend, procs, service, postgres_admin_url=args.postgres_url, redis_url=args.redis_url
    )
    loader = Loader(procs, tool, service.env({}))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(f"\n== {backend}: working in {workdir}", flush=True)
    try:
        baselines = []
        for index in range(deployment.process_count):  # as many processes as the service
            database = workdir / f"baseline-{index}.sqlite3"
            baselines.append(
                await procs.start_server(
                    f"baseline-{index}",
                    [sys.executable, "-m", "bench.baseline", "--port", "{port}"],
                    env=service.env(
                        {
                            "PETITIONS_DATABASE_URL": f"sqlite://{database}",
                            "PETITIONS_BROADCAST_URL": "memory://",
                            "PETITIONS_CHANNEL_PREFIX": f"bench-baseline-{uuid.uuid4().hex[:8]}",
                        }
                    ),
                    cwd=service.cwd,
                )
            )
        await deployment.prepare()
        ctx = phases.Context(
            plan,
            loader,
            deployment,
            baselines,
            run,
            uuid.uuid4().hex[:8],
            confirmation="confirmation" not in skip,
        )
        if {"pages", "reads", "surfaces", "peer"} - skip:
            await _phase(run, "seed", phases.seed_deep, ctx, deployment)
        await deployment.start()
        run.deployment = {**deployment.describe(), "baseline_processes": len(baselines)}
        steps: list[tuple[str, str, Phase]] = [
            ("baselines", "baselines", phases.baselines),
            ("signing", "signing", phases.signing),
            ("metrics", "metrics on vs off", metrics_cost.metrics),
            ("reads", "count reads", phases.reads),
            ("spike", "mixed spike", spike.spike),
            ("safety", "refusals", safety.refusals),
            ("safety", "spam filter", safety.spam_filter),
            ("exports", "exports", exports.exports),
            ("pages", "pages", phases.pages),
            ("peer", "peer: PostGraphile", peer.compare),
            ("surfaces", "surfaces", surfaces.pages),
        ]
        for size in plan.fanout_sizes:
            steps.append(("fanout", f"fan-out {size:,}", _fanout_of(size)))
        steps.append(("names", "names", fanout.names))
        if plan.bare_again and "baselines" not in skip:
            steps.append(("baselines", "bare again", phases.bare_again))
        for group, name, step in steps:
            if group in skip:
                continue
            if not await _phase(run, name, step, ctx, deployment):
                break
    except BenchError as error:
        run.broken.append(str(error))
    except Exception:
        run.broken.append(traceback.format_exc())
    finally:
        try:
            await deployment.stop()
        finally:
            await procs.close()
            try:
                await deployment.cleanup()
            except Exception as error:
                print(f"could not drop the benchmark database: {error}", file=sys.stderr)
            if args.keep or run.broken or run.failures:
                print(f"logs kept in {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    run.seconds = time.monotonic() - started
    return run


def _fanout_of(size: int) -> Phase:
    async def step(ctx: phases.Context) -> None:
        await fanout.fanout(ctx, size)

    return step


async def _phase(
    run: Run, name: str, step: Phase, ctx: phases.Context, deployment: Deployment
) -> bool:
    """Run one phase and print its rows; False when the service is gone (stop there)."""
    began = time.monotonic()
    known = len(run.figures)
    print(f"-- {name} …", flush=True)
    deployment.scan_logs()  # only what this phase makes the service log
    try:
        await step(ctx)
    except BenchError as error:
        run.broken.append(f"{name}: {error}")
        print(f"   BROKEN: {error}", flush=True)
    except Exception:
        run.broken.append(f"{name}: {traceback.format_exc()}")
        print(f"   BROKEN:\n{traceback.format_exc()}", flush=True)
    for figure in run.figures[known:]:
        ratio = f"  ({figure.ratio:.2f}× {figure.ratio_of})" if figure.ratio is not None else ""
        value = "—" if figure.value is None else f"{figure.value:,.1f} {figure.unit}"
        print(f"   {figure.label}: {value}{ratio}", flush=True)
    findings = deployment.scan_logs()
    if findings:
        run.server_log[name] = findings
        for message, count in sorted(findings.items(), key=lambda item: -item[1])[:5]:
            print(f"   server log: {count}× {message}", flush=True)
    print(f"   ({time.monotonic() - began:.1f} s)", flush=True)
    try:
        deployment.check_alive()
    except BenchError as error:
        run.broken.append(str(error))
        return False
    return True


async def main_async(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    tool = LoadTool.choose(args.load)
    info = report.machine()
    title = report.header(info, tool.describe(), plan.quick)
    print(title, flush=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    runs: list[Run] = []
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    budget = 600 if plan.quick else 7200
    async with asyncio.timeout(budget * len(backends)):
        for backend in backends:
            runs.append(await run_backend(backend, plan, tool, args))
    print("\n" + title + "\n")
    print(report.table(runs))
    name = f"bench-{report.stamp()}-{args.backend}{'-quick' if plan.quick else ''}"
    data = {
        "machine": info,
        "title": title,
        "plan": plan.to_json(),
        "load_tool": tool.describe(),
        "runs": [run.to_json() for run in runs],
    }
    json_path = args.out / f"{name}.json"
    report.write_json(json_path, report.clean_nan(data))
    print(f"\nJSON: {json_path}")
    png_path = args.out / f"{name}.png"
    if report.plot(png_path, runs, title):
        print(f"PNG:  {png_path}")
    else:
        print("PNG:  skipped (matplotlib is not installed: pip install -e '.[bench]')")
    seconds = sum(run.seconds for run in runs)
    print(f"took {seconds:.0f} s")
    failed = [run for run in runs if run.failures or run.broken]
    if failed:
        print("the benchmark broke: see CORRECTNESS FAILURE / BROKEN above", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(main_async(args))
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
