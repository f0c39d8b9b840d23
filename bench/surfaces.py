"""The surfaces' figures: the petition page's and the embed's HTML, answered from the page
cache (identical requests: what a crowd opening a shared link sends), against the bare route;
the widget's weight as a site owner's visitors download it (gzipped)."""

from __future__ import annotations

import gzip
import re

from bench import httpclient
from bench.load import ms, rps
from bench.phases import DEEP_SLUG, Context, _healthy_load, _load_summary, _probe, cpu_note
from bench.procs import BenchError
from bench.results import Figure, at_least, at_most, ratio
from bench.workload import Workload

_COUNT = re.compile(rb'data-petition="count"[^>]*>\s*(\d+)')
WIDGET_BUDGET_KB = 30.0


async def pages(ctx: Context) -> None:
    run, bare = ctx.run, ctx.base_rps()
    for key, label, path in (
        ("html_page", "petition page HTML /p/<slug>, identical requests", f"/p/{DEEP_SLUG}"),
        ("html_embed", "embed HTML /embed/<slug>, identical requests", f"/embed/{DEEP_SLUG}"),
    ):
        workload = Workload("static", "GET", path, "")
        for url in ctx.urls:
            status, body, _ = await _probe(url, workload)
            count = _COUNT.search(body)
            if status != 200 or count is None or int(count.group(1)) != ctx.deep_total:
                raise BenchError(f"{label} wrong: {status} {body[:300]!r}")
        result = await ctx.closed(ctx.urls, workload)
        _healthy_load(key, result)
        run.raw[key] = _load_summary(result)
        share = ratio(rps(result), bare)
        run.add(
            Figure(
                key,
                label,
                rps(result),
                "req/s",
                share,
                "bare",
                "≥ 0.50× bare",
                at_least(share, 0.5),
                note=f"p99 {ms(result, 'p99'):.1f} ms; {cpu_note(result)}",
            )
        )
    loaded = await _widget_files(ctx.urls[0])
    size = sum(len(gzip.compress(body, 9)) for body in loaded.values()) / 1024
    run.add(
        Figure(
            "widget_gzip",
            "widget.js and what it loads, gzipped",
            size,
            "KB",
            target=f"< {WIDGET_BUDGET_KB:.0f} KB",
            met=at_most(size, WIDGET_BUDGET_KB),
            note=f"{', '.join(loaded)}; {sum(map(len, loaded.values())) / 1024:.1f} KB plain",
        )
    )


_IMPORT = re.compile(rb"""(?:import\(|from )[^"'`;]*?["'`]([^"'`]+\.js)["'`]""")


async def _widget_files(url: str) -> dict[str, bytes]:
    """/widget.js and every script it imports from the service, followed through imports
    (paths are resolved by file name under /static/, as the widget's loader does)."""
    loaded: dict[str, bytes] = {}
    waiting = ["/widget.js"]
    while waiting:
        path = waiting.pop()
        status, body = await httpclient.get(url, path)
        if status != 200:
            raise BenchError(f"{path}: {status} {body[:200]!r}")
        loaded[path] = body
        for found in _IMPORT.findall(body):
            name = "/static/" + found.decode().rsplit("/", 1)[-1]
            if name not in loaded and name not in waiting:
                waiting.append(name)
    if "/static/counter.js" not in loaded:
        raise BenchError(f"/widget.js loads no counter: {sorted(loaded)}")
    return loaded
