"""What safety costs: an over-limit document refused, and the spam filter judging comments.

A refused document should cost the server no more than parsing it: each request below carries
a document of its own (a nonce in a comment, so no cache of parsed documents can answer it),
over the alias limit, or over the token limit; its time in the server is divided by a trivial
query's (which goes through the same HTTP stack, parsed from a cache) plus the time this
process takes to parse that document. The spam filter is timed in this process, on
the comments of its own corpus, each against the text of the petition it was written for."""

from __future__ import annotations

import json
import math
import time
from contextlib import suppress
from typing import Any

from graphql import GraphQLError, parse

from bench.load import ms, rps
from bench.phases import Context, _probe, cpu_note
from bench.procs import BenchError
from bench.results import Figure, at_most
from bench.workload import NONCE, graphql_post

ALIASES = "# " + NONCE + "\n{ " + " ".join(f"a{n}: __typename" for n in range(31)) + " }"
TOKENS = "# " + NONCE + "\n{ " + " ".join(["__typename"] * 5_000) + " }"


def _healthy_status(name: str, result: dict[str, Any]) -> None:
    """Every answer a refusal (200 with errors), none a failure of the server."""
    if result["requests"] == 0:
        raise BenchError(f"{name}: no request was answered")
    if result.get("non2xx", 0):
        raise BenchError(f"{name}: {result['non2xx']} answers were not 200")


def _parse_seconds(document: str, times: int = 200) -> float:
    """Parsing one such document, each time a new text: what a refusal may cost."""
    began = time.perf_counter()
    for n in range(times):
        with suppress(GraphQLError):  # the token limit's refusal is parsing's end
            parse(document.replace(NONCE, f"parse-{n}"), max_tokens=5_000)
    return (time.perf_counter() - began) / times


async def refusals(ctx: Context) -> None:
    """A refused document's time in the server, divided by what a trivial query costs plus
    parsing the document. At most 2: the refusal costs its parsing and the HTTP stack, and on
    top only the judge's cheap passes (cost, depth, aliases, directives: about 0.2 ms for the
    31 aliases) and the collector's work on a syntax tree per request; nothing runs."""
    run = ctx.run
    hello = run.figure("hello")
    servers = len(ctx.urls)
    for key, label, document, connections in (
        ("refused_aliases", "refused: 31 aliases, distinct documents", ALIASES, None),
        # ~30 ms of parsing each: a few connections, or none is answered within a quick run
        ("refused_tokens", "refused: 5,002 tokens, distinct documents", TOKENS, 4),
    ):
        workload = graphql_post(document, vary=True)
        for url in ctx.urls:
            status, body, _ = await _probe(url, workload)
            answer = json.loads(body)
            if status != 200 or answer.get("data") is not None or not answer.get("errors"):
                raise BenchError(f"{label}: not refused: {status} {body[:200]!r}")
        options = {"connections": connections} if connections else {}
        result = await ctx.closed(ctx.urls, workload, **options)
        _healthy_status(key, result)
        run.raw[key] = {k: v for k, v in result.items() if k not in ("threads", "curve_us")}
        parsing = _parse_seconds(document)
        share = None
        if hello and hello.value and rps(result):
            share = (servers / rps(result)) / (servers / hello.value + parsing)
        run.add(
            Figure(
                key,
                label,
                rps(result),
                "req/s",
                share,
                "hello + parse",
                "time ≤ 2.0× hello + parse",
                at_most(share, 2.0),
                note=f"parse {parsing * 1000:.2f} ms; p99 {ms(result, 'p99'):.1f} ms; "
                + cpu_note(result),
            )
        )


async def spam_filter(ctx: Context) -> None:
    from models import spam
    from models.spam.corpus import examples as corpus

    examples = corpus()
    spam.judge("warm up", petition_text="the model loads once")
    times: list[float] = []
    for _ in range(3):
        for example in examples:
            began = time.perf_counter()
            spam.judge(example.text, petition_text=example.petition_text)
            times.append(time.perf_counter() - began)
    times.sort()
    per_second = len(times) / sum(times)
    p99 = times[math.ceil(0.99 * len(times)) - 1] * 1000
    worst = times[-1] * 1000
    ctx.run.add(
        Figure(
            "spam_rate",
            "spam filter: comments judged per second (one core)",
            per_second,
            "/s",
            note=f"{len(examples)} corpus comments × 3; max {worst:.2f} ms",
        )
    )
    ctx.run.add(
        Figure(
            "spam_p99",
            "spam filter: p99 time to judge one comment",
            p99,
            "ms",
            target="≤ 5 ms",
            met=at_most(p99, 5.0),
        )
    )
