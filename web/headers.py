"""The response headers of the pages: a Content-Security-Policy that allows what each page
loads and nothing more (no inline script or style anywhere), and who may frame it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.requests import Request

_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_COMMON = {
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Content-Type-Options": "nosniff",
}


def origin_of(url: str) -> str | None:
    """`https://host[:port]` of an absolute http(s) URL, None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


class Framing:
    """Who may frame which page: nobody the page and the dashboard; the embed, the origins of
    PETITIONS_ALLOWED_ORIGINS (anyone with `*`)."""

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        if "*" in allowed_origins:
            self.embed = "*"
        else:
            self.embed = " ".join(["'self'", *allowed_origins])


def page_headers(
    request: Request, *, frame_ancestors: str = "'none'", images: Sequence[str] = ()
) -> dict[str, str]:
    """Headers of a page: `frame_ancestors` a CSP source list ('none' adds X-Frame-Options:
    DENY for browsers without CSP 3), `images` origins of petition images beside the service's."""
    return dict(_headers(_host(request), frame_ancestors, tuple(images)))


def _host(request: Request) -> str:
    """The host the client asked for, when it looks like one (nothing a client sends goes
    into the policy unchecked); "" when not."""
    host = request.headers.get("host") or request.url.netloc
    return host if _HOST.fullmatch(host) else ""


@lru_cache(maxsize=256)
def _headers(
    host: str, frame_ancestors: str, images: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(["img-src 'self'", *images]),
            # CSP's 'self' covers ws: and wss: of the page's own host in current browsers,
            # not in every browser still in use
            f"connect-src 'self' ws://{host} wss://{host}" if host else "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )
    headers = {"Content-Security-Policy": csp, **_COMMON}
    if frame_ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return tuple(headers.items())


def raw_page_headers(
    request: Request, *, frame_ancestors: str = "'none'", images: Sequence[str] = ()
) -> tuple[tuple[bytes, bytes], ...]:
    """`page_headers` of a kept HTML page, encoded for ASGI, with its content type and
    caching (revalidate each time: the page is live, its ETag makes that cheap)."""
    return _raw_headers(_host(request), frame_ancestors, tuple(images))


@lru_cache(maxsize=256)
def _raw_headers(
    host: str, frame_ancestors: str, images: tuple[str, ...]
) -> tuple[tuple[bytes, bytes], ...]:
    named = [
        *_headers(host, frame_ancestors, images),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("Vary", "Accept-Encoding"),
    ]
    return tuple((name.lower().encode(), value.encode("latin-1")) for name, value in named)
