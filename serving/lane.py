"""The hot path's own lane: a plain `/graphql` request skips the middleware that has nothing to
do for it.

Every count a widget reads, every page and every signature is a POST (or GET) to `/graphql`
from a client that sent no `Origin` (a server-side fetch, a same-origin page) with a body of
known length. For those, CORS adds nothing, the body limit is one comparison, and Starlette's
error and exception layers and its router only pass the request along: six awaits deep, about
a tenth of a computed count's time. Anything else (a cross-origin request, a chunked body, a
deployment behind trusted proxies, every other path) takes the full stack as before."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

import models


class Service(Starlette):
    """Starlette, with `/graphql`'s plain requests sent straight to `graphql`."""

    def __init__(
        self, *, graphql: ASGIApp, max_body_bytes: int, lane: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.graphql = graphql
        self.max_body_bytes = max_body_bytes
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lane and scope["type"] == "http" and self._plain(scope):
            scope["app"] = self
            async with models.activate(scope["state"]["database"]):
                await self.graphql(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _plain(self, scope: Scope) -> bool:
        """A GET, or a POST whose Content-Length is within the limit, to /graphql, without
        `Origin`."""
        if scope["path"] != "/graphql":
            return False
        method = scope["method"]
        length = None
        for name, value in scope["headers"]:
            if name == b"origin":
                return False
            if name == b"content-length":
                length = value
        if method == "GET":
            return length is None
        if method != "POST" or length is None or not length.isdigit():
            return False
        return int(length) <= self.max_body_bytes
