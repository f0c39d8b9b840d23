"""The three surfaces: the petition page (`/p/<slug>`), the embeddable counter
(`/embed/<slug>`, and `/widget.js` for any site), and the dashboard (`/dashboard/<slug>`).

Pages are rendered on the server, complete without JavaScript; small ES modules in
web/static then keep them live. Rendered pages are kept in the result cache that keeps
GraphQL answers (`schema.cache.ResultCache`, under keys of their own), so the events that
drop a petition's answers in every process drop its pages too."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from schema import PetitionSchema, ResultCache

from . import data
from .assets import asset_response, load_assets
from .headers import Framing, origin_of, page_headers, raw_page_headers
from .render import render

SIGN_FIELDS = ("firstName", "lastName", "email", "country", "comment", "showName")
COMMENT_FIELDS = ("authorName", "email", "body")


@dataclass(frozen=True)
class KeptPage:
    """A rendered page as the page cache keeps it: plain and gzipped, each with its ETag, and
    the origins of the images it shows (its policy allows them)."""

    plain: bytes
    zipped: bytes
    etag: str
    zipped_etag: str
    images: tuple[str, ...]

    @classmethod
    def of(cls, html: str, images: Sequence[str]) -> KeptPage:
        plain = html.encode()
        tag = hashlib.blake2b(plain, digest_size=8).hexdigest()
        zipped = gzip.compress(plain, compresslevel=6, mtime=0)
        return cls(plain, zipped, f'"{tag}"', f'"{tag}-gz"', tuple(images))


@dataclass
class Outcome:
    """What became of a form posted without JavaScript, to render beside it."""

    form: str  # "sign" or "comment"
    outcome: str  # "signed", "refused" (sign-form); "published", "held", "refused" (comment)
    message: str
    errors: dict[str, str] = field(default_factory=dict)  # input name: message
    general: list[str] = field(default_factory=list)  # errors about no input of the form
    values: dict[str, str] = field(default_factory=dict)


class Surfaces:
    """The pages' routes, for server.py's table."""

    def __init__(
        self,
        schema: PetitionSchema,
        *,
        allowed_origins: Sequence[str] = ("*",),
        public_url: str | None = None,
    ) -> None:
        self.schema = schema
        self.framing = Framing(allowed_origins)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.assets = load_assets()

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/p/{slug}", self.page, methods=["GET", "POST"]),
            Route("/embed/{slug}", self.embed, methods=["GET"]),
            Route("/dashboard/{slug}", self.dashboard, methods=["GET"]),
            Route("/widget.js", self.widget, methods=["GET"]),
            Route("/static/{path:path}", self.static, methods=["GET"]),
        ]

    # The petition page

    async def page(self, request: Request) -> Response:
        slug: str = request.path_params["slug"]
        if request.method == "POST":
            return await self._posted(request, slug)
        query = request.query_params if request.scope["query_string"] else {}
        after = query.get("after")
        before = None if after else query.get("before")
        key = (
            b"Hp"
            + slug.encode()
            + (b"\0a" + after.encode() if after else b"")
            + (b"\0b" + before.encode() if before else b"")
        )
        cache: ResultCache[KeptPage] = request.state.pages
        if (kept := cache.get(key)) is not None:
            return self._kept(request, kept, "'none'")
        since = cache.changes.now
        answer = await self._read_page(request, slug, after=after, before=before)
        petition = answer.data.get("petition")
        if answer.failed and (after or before):  # a cursor that is not one of this list
            return self._bad_page(request, slug)
        if petition is None or answer.failed:
            return self._not_found(request)
        if before and not petition["signatures"]["pageInfo"]["hasPreviousPage"]:
            return RedirectResponse(f"/p/{quote(slug)}#signers", status_code=303)
        html = render("page.html", **self._page_values(petition, after=after, before=before))
        return self._fresh(request, cache, key, html, answer, since, "'none'", petition)

    async def _read_page(
        self, request: Request, slug: str, *, after: str | None = None, before: str | None = None
    ) -> data.Answer:
        window: dict[str, Any] = {"first": data.SIGNERS_PER_PAGE, "after": after}
        if before:
            window = {"last": data.SIGNERS_PER_PAGE, "before": before}
        return await data.run(self.schema, request, data.PAGE, {"slug": slug, **window})

    def _page_values(
        self,
        petition: dict[str, Any],
        *,
        after: str | None = None,
        before: str | None = None,
        outcome: Outcome | None = None,
    ) -> dict[str, Any]:
        signatures = petition["signatures"]
        info = signatures["pageInfo"]
        base = f"/p/{quote(petition['slug'])}"
        first_page = not info["hasPreviousPage"]
        return {
            "p": petition,
            "signers": [edge["node"] for edge in signatures["edges"]],
            "older": f"{base}?after={quote(info['endCursor'])}#signers"
            if info["hasNextPage"] and info["endCursor"]
            else None,
            "newer": f"{base}?before={quote(info['startCursor'])}#signers"
            if not first_page and info["startCursor"]
            else None,
            "live_signers": data.SIGNERS_PER_PAGE if first_page else 0,
            "comments": [edge["node"] for edge in petition["comments"]["edges"]],
            "url": f"{self.public_url}{base}" if self.public_url else None,
            "base": base,
            "outcome": outcome,
            "sign_fields": SIGN_FIELDS,
        }

    async def _posted(self, request: Request, slug: str) -> Response:
        """A form posted without JavaScript: the mutation, then the page with its outcome."""
        body = (await request.body()).decode("utf-8", "replace")
        form = {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}
        found = await data.run(self.schema, request, data.EMBED, {"slug": slug})
        petition = found.data.get("petition")
        if petition is None:
            return self._not_found(request)
        if form.get("form") == "comment":
            outcome = await self._comment(request, petition["id"], form)
        else:
            outcome = await self._sign(request, petition["id"], form)
        answer = await self._read_page(request, slug)
        petition = answer.data.get("petition")
        if petition is None:
            return self._not_found(request)
        html = render("page.html", **self._page_values(petition, outcome=outcome))
        status = 400 if outcome.outcome == "refused" else 200
        headers = page_headers(request, images=_image_origins(petition))
        return Response(html, status_code=status, headers=headers, media_type="text/html")

    async def _sign(self, request: Request, petition_id: str, form: dict[str, str]) -> Outcome:
        values = {name: form.get(name, "") for name in SIGN_FIELDS}
        values["showName"] = "true" if "showName" in form else ""
        signer = {
            "petitionId": petition_id,
            "firstName": values["firstName"],
            "lastName": values["lastName"],
            "email": values["email"],
            "country": values["country"] or None,
            "comment": values["comment"] or None,
            "showName": bool(values["showName"]),
        }
        answer = await data.run(self.schema, request, data.SIGN, {"input": signer})
        payload = answer.data.get("signPetition")
        if payload is None:
            return Outcome(
                "sign", "refused", "Something went wrong: please try again.", values=values
            )
        if payload["errors"]:
            return _refused("sign", payload["errors"], SIGN_FIELDS, values)
        if payload["needsConfirmation"]:
            message = (
                "Thank you! Check your email: follow the link we sent to count your signature."
            )
        else:
            message = "Thank you for signing! Your signature is counted."
        return Outcome("sign", "signed", message)

    async def _comment(self, request: Request, petition_id: str, form: dict[str, str]) -> Outcome:
        values = {name: form.get(name, "") for name in COMMENT_FIELDS}
        answer = await data.run(
            self.schema, request, data.COMMENT, {"input": {"petitionId": petition_id, **values}}
        )
        payload = answer.data.get("addComment")
        if payload is None:
            return Outcome(
                "comment", "refused", "Something went wrong: please try again.", values=values
            )
        if payload["errors"]:
            return _refused("comment", payload["errors"], COMMENT_FIELDS, values)
        if payload["status"] == "PUBLISHED":
            return Outcome("comment", "published", "Thank you: your comment is published.")
        return Outcome(
            "comment", "held", "Thank you: your comment will appear once a moderator has read it."
        )

    # The embed, the widget, the dashboard

    async def embed(self, request: Request) -> Response:
        slug: str = request.path_params["slug"]
        key = b"He" + slug.encode()
        cache: ResultCache[KeptPage] = request.state.pages
        framing = self.framing.embed
        if (kept := cache.get(key)) is not None:
            return self._kept(request, kept, framing)
        since = cache.changes.now
        answer = await data.run(self.schema, request, data.EMBED, {"slug": slug})
        petition = answer.data.get("petition")
        if petition is None or answer.failed:
            return self._not_found(request, framing)
        html = render(
            "embed.html",
            p=petition,
            signers=[edge["node"] for edge in petition["signatures"]["edges"]],
            live_signers=data.EMBED_SIGNERS,
        )
        return self._fresh(request, cache, key, html, answer, since, framing, None)

    async def widget(self, request: Request) -> Response:
        return asset_response(request, self.assets["widget.js"])

    async def dashboard(self, request: Request) -> Response:
        """A shell, the same for every slug (whether a draft exists is an admin's business):
        the figures are read with the token the admin types."""
        slug: str = request.path_params["slug"]
        headers = page_headers(request)
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cache-Control"] = "no-cache"
        html = render("dashboard.html", slug=slug)
        return Response(html, headers=headers, media_type="text/html")

    async def static(self, request: Request) -> Response:
        asset = self.assets.get(request.path_params["path"])
        if asset is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        return asset_response(request, asset)

    # Responses

    def _fresh(
        self,
        request: Request,
        cache: ResultCache[KeptPage],
        key: bytes,
        html: str,
        answer: data.Answer,
        since: int,
        framing: str,
        petition: dict[str, Any] | None,
    ) -> Response:
        """A page just rendered, offered to the page cache."""
        kept = KeptPage.of(html, _image_origins(petition))
        cache.put(key, kept, answer.reads, since)
        return self._kept(request, kept, framing, b"miss")

    def _kept(
        self, request: Request, kept: KeptPage, framing: str, x_cache: bytes = b"hit"
    ) -> Response:
        """A kept page, its headers encoded once per host, framing and images (the hot path
        of a shared link: no header is built per request)."""
        headers = request.headers
        zipped = "gzip" in headers.get("accept-encoding", "")
        etag = kept.zipped_etag if zipped else kept.etag
        raw = [
            *raw_page_headers(request, frame_ancestors=framing, images=kept.images),
            (b"etag", etag.encode()),
            (b"x-cache", x_cache),
        ]
        held = headers.get("if-none-match")
        if held is not None and etag in (tag.strip() for tag in held.split(",")):
            return _Encoded(304, raw)
        body = kept.zipped if zipped else kept.plain
        if zipped:
            raw.append((b"content-encoding", b"gzip"))
        raw.append((b"content-length", str(len(body)).encode()))
        return _Encoded(200, raw, body)

    def _not_found(self, request: Request, framing: str = "'none'") -> Response:
        headers = page_headers(request, frame_ancestors=framing)
        headers["Cache-Control"] = "no-cache"
        html = render("not_found.html")
        return Response(html, status_code=404, headers=headers, media_type="text/html")

    def _bad_page(self, request: Request, slug: str) -> Response:
        headers = page_headers(request)
        html = render("bad_page.html", base=f"/p/{quote(slug)}")
        return Response(html, status_code=400, headers=headers, media_type="text/html")


class _Encoded(Response):
    """A response whose headers are encoded already."""

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes = b""):
        self.status_code = status
        self.raw_headers = raw_headers
        self.body = body
        self.background = None


def _image_origins(petition: dict[str, Any] | None) -> list[str]:
    url = petition.get("imageUrl") if petition else None
    origin = origin_of(url) if url else None
    return [origin] if origin else []


def _refused(
    form: str, errors: list[dict[str, Any]], fields: Sequence[str], values: dict[str, str]
) -> Outcome:
    by_field: dict[str, str] = {}
    general: list[str] = []
    for error in errors:
        if error["field"] in fields and error["field"] not in by_field:
            by_field[error["field"]] = error["message"]
        else:
            general.append(error["message"])
    message = (
        "Your signature was not counted: please correct what is marked below."
        if form == "sign"
        else "Your comment was not posted: please correct what is marked below."
    )
    return Outcome(form, "refused", message, by_field, general, values)
