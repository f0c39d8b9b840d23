"""The baselines every figure is divided by: `python -m bench.baseline --port P`.

It runs the service's own `petitions serve` code path (`server.main`: same uvicorn options,
same lifespan, middleware, context and result cache, its own throwaway SQLite file from
PETITIONS_DATABASE_URL), with two changes made through `server.create_app`:

- the `/graphql` app (the service's `GraphQLApp` instance) gets a trivial schema instead:
  `query { hello }` and `mutation { noop }`, built with the service schema's own class,
  extensions (masking, parser and validation caches, …) and config, so that "a trivial
  mutation through the same stack" costs everything the service's stack costs except the
  service's own work;
- `POST /bare` is answered by a bare Starlette app (one JSON route, no middleware of ours):
  the cost of HTTP, uvicorn and Starlette alone.

Taking the app from `create_app` and the server from `server.main` keeps the baseline honest
while the service changes: whatever the service adds to its stack, the baseline has too."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL

import server
from schema import make_schema


@strawberry.type
class TrivialQuery:
    @strawberry.field
    def hello(self) -> str:
        return "world"


@strawberry.type
class TrivialMutation:
    @strawberry.mutation
    def noop(self) -> bool:
        return True


def trivial_schema() -> strawberry.Schema:
    """A schema with the service's schema class, extensions and config, and nothing else."""
    real = make_schema()
    schema_class: Any = type(real)
    return schema_class(  # type: ignore[no-any-return]
        query=TrivialQuery,
        mutation=TrivialMutation,
        extensions=list(real.extensions),
        config=real.config,
    )


async def bare(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})


BARE = Starlette(routes=[Route("/bare", bare, methods=["POST"])])


class WithBareRoute:
    """`/bare` to the bare Starlette app; everything else (lifespan too) to the service's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bare":
            await BARE(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def baseline_app(settings: server.Settings | None = None) -> Any:
    app = _service_create_app(settings)
    schema = trivial_schema()
    swapped = 0
    for route in getattr(app, "routes", []):
        endpoint = getattr(route, "endpoint", None)
        if isinstance(endpoint, GraphQL):
            endpoint.schema = schema
            swapped += 1
    if not swapped:
        raise SystemExit("bench.baseline: no strawberry GraphQL route found in create_app()")
    return WithBareRoute(app)


_service_create_app = server.create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server.create_app = baseline_app
    return server.main(["serve", "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
