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
    status, script = await httpclient.get(ctx.urls[0], "/widget.js")
    if status != 200 or b"petition-counter" not in script:
        raise BenchError(f"/widget.js wrong: {status} {script[:200]!r}")
    size = len(gzip.compress(script, 9)) / 1024
    run.add(
        Figure(
            "widget_gzip",
            "widget.js, gzipped (all the widget loads from the service)",
            size,
            "KB",
            target=f"< {WIDGET_BUDGET_KB:.0f} KB",
            met=at_most(size, WIDGET_BUDGET_KB),
            note=f"{len(script) / 1024:.1f} KB before compression",
        )
    )
