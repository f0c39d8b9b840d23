"""The pages, the embed, the widget and the dashboard, as a browser without JavaScript (and a
crawler, and a third-party site) receives them."""

from __future__ import annotations

import gzip
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

import models
from server import create_app
from tests.factories import create_petition, sign
from tests.test_api import SEED_NAMES

DEMO = f"/p/{models.DEMO_SLUG}"
NEWEST_TEN = SEED_NAMES
WIDGET_BUDGET = 30 * 1024


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.text, self.parent = tag, attrs, "", parent


class Page(HTMLParser):
    """Just enough of a DOM: every element with its attributes and its text."""

    VOID = {"meta", "link", "input", "br", "img", "hr", "source"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        parent = self._open[-1] if self._open else None
        element = Element(tag, {name: value or "" for name, value in attrs}, parent)
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data):
        for element in self._open:
            element.text += data

    def all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements with these attributes (`data_petition` is `data-petition`)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag) and all(e.attrs.get(k) == v for k, v in wanted.items())
        ]

    def one(self, **attrs: str) -> Element:
        found = self.all(**attrs)
        assert len(found) == 1, (attrs, len(found))
        return found[0]

    def petition(self, name: str) -> Element:
        return self.one(data_petition=name)

    def names(self) -> list[str]:
        return [li.text.strip() for li in self.items("signers")]

    def items(self, name: str) -> list[Element]:
        """The `li` of the list `[data-petition=name]`."""
        parent = self.petition(name)
        return [e for e in self.elements if e.tag == "li" and e.parent is parent]

    def meta(self, key: str) -> str | None:
        for element in self.elements:
            if element.tag == "meta" and key in (
                element.attrs.get("property"),
                element.attrs.get("name"),
            ):
                return element.attrs["content"]
        return None


def csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split("; ")}


@pytest.fixture
async def demo(settings, app):
    async with models.open_database(settings.database_url):
        return await models.load_demo()


async def test_the_demo_page_reads_without_javascript(http, demo):
    response = await http.get(DEMO)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Page(response.text)
    text = response.text
    h1 = [e for e in page.elements if e.tag == "h1"]
    assert h1[0].text == "Amazon: Stop Making Facial Recognition Tech Used For Racial Profiling"
    assert "Photo credit: Wallpaper Flare" in text
    assert "<img" not in text  # the demo has no image: its credit only
    assert "Jeff Bezos, CEO of Amazon" in text
    assert "Stop producing facial recognition software" in text
    assert "IBM’s lead" in text  # the body
    assert "Dear Mr. Bezos," in text  # the letter
    assert page.petition("count").text == "241"
    assert page.petition("count").attrs["aria-live"] == "polite"
    assert page.names() == NEWEST_TEN
    comments = page.items("comments")
    assert [c.text.split()[0:2] for c in comments] == [["Clark", "Kent"]]  # the spam is not shown
    assert "Oliver out" not in text
    progress = page.petition("progress")
    assert progress.tag == "progress"
    assert progress.attrs["value"] == "241"


async def test_the_forms_have_the_contract_names_labels_and_no_browser_checks(http, demo):
    page = Page((await http.get(DEMO)).text)

    sign_form = page.petition("sign-form")
    assert sign_form.tag == "form"
    assert "novalidate" in sign_form.attrs
    inputs = {e.attrs["name"]: e for e in page.elements if e.attrs.get("name")}
    for name in ("firstName", "lastName", "email", "country", "comment", "showName"):
        element = inputs[name]
        assert page.all(tag="label", **{"for": element.attrs["id"]}), name
    assert inputs["showName"].attrs["type"] == "checkbox"
    assert "checked" in inputs["showName"].attrs
    assert "GB" in [e.attrs.get("value") for e in page.elements if e.tag == "option"]
    comment_form = page.petition("comment-form")
    assert comment_form.tag == "form"
    assert "novalidate" in comment_form.attrs
    names = [e.attrs.get("name") for e in page.elements if e.tag in {"input", "textarea"}]
    assert {"authorName", "body"} <= set(names)
    assert names.count("email") == 2


async def test_open_graph_and_twitter_cards(http, demo):
    page = Page((await http.get(DEMO)).text)

    assert page.meta("og:title") == (
        "Amazon: Stop Making Facial Recognition Tech Used For Racial Profiling"
    )
    assert page.meta("og:description") == (
        "Stop producing facial recognition software that contributes to racial injustice."
    )
    assert page.meta("twitter:card") == "summary"
    assert page.meta("og:image") is None  # no image
    assert page.meta("og:url") is None  # no PETITIONS_PUBLIC_URL


async def test_a_petition_with_an_image_and_a_public_url(settings, gql):
    async with LifespanManager(
        create_app(replace(settings, public_url="https://petitions.example.org"))
    ) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            from tests.conftest import GraphQLClient

            petition = await create_petition(
                GraphQLClient(http),
                imageUrl="https://images.example.net/face.jpg",
                imageCredit="A photographer",
                signatureGoal=500,
            )
            response = await http.get(f"/p/{petition['slug']}")

    page = Page(response.text)
    assert page.meta("og:image") == "https://images.example.net/face.jpg"
    assert page.meta("og:url") == f"https://petitions.example.org/p/{petition['slug']}"
    assert page.meta("twitter:card") == "summary_large_image"
    image = next(e for e in page.elements if e.tag == "img")
    assert image.attrs["src"] == "https://images.example.net/face.jpg"
    assert "Photo credit: A photographer" in response.text
    assert page.petition("goal").text == "500"
    assert csp(response)["img-src"] == "'self' https://images.example.net"


async def test_signers_page_ten_at_a_time_through_cursor_links(http, demo):
    seen: list[str] = []
    url: str | None = DEMO
    pages = 0
    while url:
        page = Page((await http.get(url)).text)
        names = page.names()
        assert len(names) == 10 or not page.all(data_petition="older")
        seen += names
        pages += 1
        older = page.all(data_petition="older")
        url = older[0].attrs["href"].split("#")[0] if older else None
        if pages == 1:
            assert not page.all(data_petition="newer")
        else:
            assert page.all(data_petition="newer")
    assert pages == 25
    assert len(seen) == len(set(seen)) == 241
    assert seen[:10] == NEWEST_TEN


async def test_newer_links_lead_back_to_the_first_page(http, demo):
    first = Page((await http.get(DEMO)).text)
    second_url = first.petition("older").attrs["href"].split("#")[0]
    second = Page((await http.get(second_url)).text)
    third = Page((await http.get(second.petition("older").attrs["href"].split("#")[0])).text)

    back = await http.get(third.petition("newer").attrs["href"].split("#")[0])
    assert Page(back.text).names() == second.names()
    top = await http.get(Page(back.text).petition("newer").attrs["href"].split("#")[0])
    assert top.status_code == 303
    assert top.headers["location"].startswith(DEMO)


async def test_a_cursor_that_is_not_one_answers_400(http, demo):
    response = await http.get(DEMO, params={"after": "not-a-cursor"})
    assert response.status_code == 400


async def test_unknown_and_draft_petitions_are_not_found(http, gql):
    draft = await create_petition(gql, status="DRAFT")

    for path in ("/p/no-such-petition", f"/p/{draft['slug']}", f"/embed/{draft['slug']}"):
        response = await http.get(path)
        assert response.status_code == 404, path
        assert "not found" in response.text.lower()
        assert "frame-ancestors" in csp(response)


async def test_every_page_sends_a_strict_policy(http, demo):
    page, embed, dashboard = [
        await http.get(path)
        for path in (DEMO, f"/embed/{models.DEMO_SLUG}", f"/dashboard/{models.DEMO_SLUG}")
    ]

    for response in (page, embed, dashboard):
        assert response.status_code == 200
        policy = csp(response)
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'"
        assert policy["img-src"] == "'self'"
        assert policy["connect-src"].startswith("'self'")
        assert policy["form-action"] == "'self'"
        assert policy["base-uri"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "referrer-policy" in response.headers
        assert "<script>" not in response.text
        assert " style=" not in response.text
        for script in re.findall(r"<script[^>]*>", response.text):
            assert "src=" in script
    for response in (page, dashboard):
        assert csp(response)["frame-ancestors"] == "'none'"
        assert response.headers["x-frame-options"] == "DENY"
    assert csp(embed)["frame-ancestors"] == "*"
    assert "x-frame-options" not in embed.headers
    assert page.headers["cache-control"] == "no-cache"


async def test_a_host_header_never_writes_the_policy(http, demo):
    response = await http.get(DEMO, headers={"Host": "evil.example; script-src *"})

    assert csp(response)["script-src"] == "'self'"
    assert csp(response)["connect-src"] == "'self'"


async def test_the_embed_may_be_framed_only_by_the_allowed_origins(settings, demo):
    allowed = replace(settings, allowed_origins=("https://a.example", "https://b.example"))
    async with LifespanManager(create_app(allowed)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            embed = await http.get(f"/embed/{models.DEMO_SLUG}")
            page = await http.get(DEMO)

    assert csp(embed)["frame-ancestors"] == "'self' https://a.example https://b.example"
    assert csp(page)["frame-ancestors"] == "'none'"


async def test_rendered_pages_are_kept_until_the_petition_changes(http, gql, demo):
    first = await http.get(DEMO)
    again = await http.get(DEMO, params={"utm_source": "newsletter"})
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.text == first.text
    unchanged = await http.get(DEMO, headers={"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304

    petition_id = Page(first.text).one(data_petition_live="").attrs["data-petition-id"]
    await sign(gql, petition_id, 1, firstName="Grace", lastName="Hopper")

    after = await http.get(DEMO)
    assert after.headers["x-cache"] == "miss"
    page = Page(after.text)
    assert page.petition("count").text == "242"
    assert page.names()[0] == "Grace Hopper"
    assert (await http.get(DEMO)).headers["x-cache"] == "hit"


async def test_kept_pages_are_served_gzipped_to_clients_that_take_it(http, demo):
    plain = await http.get(DEMO, headers={"Accept-Encoding": "identity"})
    zipped = await http.get(DEMO, headers={"Accept-Encoding": "gzip"})

    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert zipped.text == plain.text  # httpx decodes it
    assert zipped.headers["etag"] != plain.headers["etag"]


async def test_the_embed_shows_the_count_and_the_newest_five(http, demo):
    response = await http.get(f"/embed/{models.DEMO_SLUG}")

    page = Page(response.text)
    assert page.petition("count").text == "241"
    assert page.names() == NEWEST_TEN[:5]
    link = next(e for e in page.elements if e.tag == "a" and e.attrs.get("target") == "_blank")
    assert link.attrs["href"] == DEMO
    assert len(response.content) < 8_000  # small and light


async def test_widget_js_is_a_script_any_site_may_load_and_stays_small(http):
    response = await http.get("/widget.js", headers={"Accept-Encoding": "identity"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert response.headers["cache-control"] == "public, max-age=300"
    # everything it loads from the service, followed through its imports
    total, pending, seen = 0, ["/widget.js"], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        body = (await http.get(path, headers={"Accept-Encoding": "identity"})).content
        total += len(gzip.compress(body, compresslevel=9))
        for imported in re.findall(rb"""(?:import\(|from )[^"'`]*["'`]([^"'`]+\.js)""", body):
            name = imported.decode().rsplit("/", 1)[-1]
            pending.append(f"/static/{name}")
    assert {"/widget.js", "/static/counter.js", "/static/live.js"} <= seen
    assert total < WIDGET_BUDGET, total


async def test_static_files_are_gzipped_and_revalidated(http):
    response = await http.get("/static/live.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    again = await http.get(
        "/static/live.js",
        headers={"Accept-Encoding": "gzip", "If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304
    assert (await http.get("/static/nothing.js")).status_code == 404


async def test_signing_without_javascript(http, demo):
    form = {
        "form": "sign",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.org",
        "country": "GB",
        "comment": "",
        "showName": "true",
    }
    response = await http.post(DEMO, data=form)

    assert response.status_code == 200
    page = Page(response.text)
    assert page.petition("sign-result").attrs["data-outcome"] == "signed"
    assert page.petition("count").text == "242"
    assert page.names()[0] == "Ada Lovelace"

    again = await http.post(DEMO, data={**form, "firstName": ""})
    assert again.status_code == 400
    page = Page(again.text)
    assert page.petition("sign-result").attrs["data-outcome"] == "refused"
    assert page.one(data_error_for="firstName").text.strip()
    assert next(e for e in page.elements if e.attrs.get("name") == "email").attrs["value"] == (
        "ada@example.org"
    )  # what was typed stays


async def test_commenting_without_javascript(http, demo):
    response = await http.post(
        DEMO,
        data={
            "form": "comment",
            "authorName": "Lois Lane",
            "email": "lois@example.org",
            "body": "I signed, and so should you.",
        },
    )
    assert response.status_code == 200
    page = Page(response.text)
    assert page.petition("comment-result").attrs["data-outcome"] in {"published", "held"}

    refused = await http.post(
        DEMO, data={"form": "comment", "authorName": "", "email": "", "body": ""}
    )
    assert refused.status_code == 400
    assert Page(refused.text).all(data_error_for="body")


async def test_the_dashboard_asks_for_a_token(http):
    response = await http.get("/dashboard/anything")

    page = Page(response.text)
    token = page.one(name="token")
    assert token.attrs["type"] == "password"
    assert page.all(tag="label", **{"for": token.attrs["id"]})
    for name in ("count", "countries", "queue", "signers"):
        assert page.all(data_petition=name), name


def test_the_vendored_chart_library_is_shipped_with_its_licence():
    vendor = Path(__file__).parent.parent / "web" / "vendor"
    assert (vendor / "uPlot.iife.min.js").exists()
    assert (vendor / "LICENSE.uPlot").exists()
