"""What an operator watches: the process's figures, in Prometheus' terms (prometheus-client).

Recording is off until `enable()` (the server calls it when `PETITIONS_METRICS_TOKEN` is set):
until then every function here returns at its first line, so a process nobody scrapes pays
nothing. With `PROMETHEUS_MULTIPROC_DIR` set before `enable()` (`petitions serve --workers N`
sets it), each worker writes its figures to files there and `render()` adds them up, which is
why prometheus-client is imported by `enable()`, not before: it picks its storage on import.

This module imports nothing of the project's, so that models, subscriptions, schema and
serving may all record into it."""

from __future__ import annotations

import os
from typing import Any

# Buckets for request times: most answers take well under a millisecond to a few.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500)

_on = False
_metrics: dict[str, Any] = {}
_children: dict[tuple[str, str, str], Any] = {}  # (metric, *labels): prometheus-client's child


def enable() -> None:
    """Start recording (once per process; again is harmless)."""
    global _on
    if _on:
        return
    from prometheus_client import Counter, Gauge, Histogram

    shared = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    _metrics.update(
        signatures=Counter(
            "petitions_signatures_total",
            "Signatures taken, by the status stored (valid, pending, quarantined) or refused "
            "(already_signed, petition_closed, not_found)",
            ["status"],
        ),
        comments=Counter(
            "petitions_comments_total", "Comments taken, by the status given", ["status"]
        ),
        requests=Counter(
            "petitions_graphql_requests_total",
            "GraphQL requests over HTTP, by root field and how they were answered",
            ["operation", "path"],
        ),
        seconds=Histogram(
            "petitions_graphql_request_seconds",
            "Time to answer a GraphQL request over HTTP",
            ["operation", "path"],
            buckets=SECONDS,
        ),
        websockets=Gauge(
            "petitions_websockets_open",
            "Websockets open on /graphql",
            multiprocess_mode="livesum",
        ),
        subscriptions=Gauge(
            "petitions_subscriptions_open",
            "Subscriptions running, by root field",
            ["field"],
            multiprocess_mode="livesum",
        ),
        batch=Histogram(
            "petitions_writer_batch_size",
            "Signatures written in one transaction by the group-commit writer",
            buckets=BATCH_SIZES,
        ),
        broadcast=Gauge(
            "petitions_broadcast_up",
            "1 while the broadcast backend is connected and answering (the lowest of all "
            "processes)",
            multiprocess_mode="livemin" if shared else "all",
        ),
        refused=Counter(
            "petitions_refused_total",
            "Requests refused: over a document limit (limit), over a rate limit (rate), or "
            "with a body too large (body)",
            ["reason"],
        ),
    )
    for reason in ("limit", "rate", "body"):  # present from the start, at 0
        _child("refused", reason)
    _on = True


def enabled() -> bool:
    return _on


def _child(name: str, first: str = "", second: str = "") -> Any:
    """The labelled child of a metric, kept: prometheus-client's `labels()` takes a lock and
    builds a key each time, which the hot paths need not pay."""
    key = (name, first, second)
    child = _children.get(key)
    if child is None:
        metric = _metrics[name]
        labels = [label for label in (first, second) if label]
        child = _children[key] = metric.labels(*labels) if labels else metric
    return child


def signature(status: str, count: int = 1) -> None:
    if _on:
        _child("signatures", status).inc(count)


def comment(status: str) -> None:
    if _on:
        _child("comments", status).inc()


def request(operation: str, path: str, seconds: float) -> None:
    if _on:
        _child("requests", operation, path).inc()
        _child("seconds", operation, path).observe(seconds)


def websockets(change: int) -> None:
    if _on:
        _child("websockets").inc(change)


def subscriptions(field: str, change: int) -> None:
    if _on:
        _child("subscriptions", field).inc(change)


def writer_batch(size: int) -> None:
    if _on:
        _child("batch").observe(size)


def broadcast(up: bool) -> None:
    if _on:
        _child("broadcast").set(1 if up else 0)


def refused(reason: str) -> None:
    if _on:
        _child("refused", reason).inc()


def render() -> tuple[bytes, str]:
    """The figures in Prometheus' text format (0.0.4), and its content type: this process's, or, in
    multiprocess mode, every worker's added up."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client import generate_latest as text
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return text(registry), CONTENT_TYPE_PLAIN_0_0_4  # what every Prometheus reads
