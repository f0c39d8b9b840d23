"""The faces of the service in a real browser: the petition page, the embed, the widget on
another site, and the dashboard, driven as a person would, against `petitions serve --demo`.

Written from the contract (`data-petition` attributes, input names, URLs), not from web/. Run
with `-s` to see the measured lags from a signature to each surface.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Locator,
    Page,
    Response,
    expect,
)

from tests.browser import (
    BLOCK_WEBSOCKETS,
    DEMO_COUNT,
    DEMO_SLUG,
    DEMO_TITLE,
    Service,
    ThirdPartySite,
    axe_script,
    count_reads,
    embed_frame,
    launched_chromium,
    news_page,
    running_service,
    third_party_site,
)
from tests.conftest import ADMIN_TOKEN
from tests.processes import PETITIONS

pytestmark = pytest.mark.asyncio(loop_scope="module")

COUNT = '[data-petition="count"]'
SIGNERS = '[data-petition="signers"] li'
PAGE = f"/p/{DEMO_SLUG}"
EMBED = f"/embed/{DEMO_SLUG}"
DASHBOARD = f"/dashboard/{DEMO_SLUG}"
LIVE = 1.5  # s: "within a second of a signature", and a little for the browser's own polling
POLLED = 6.5  # s: "polls ... at least every 5 s", and the answer's way back
RETURN = 10  # s: "reconnect by themselves within 10 s of the service's return"

PETITION = """
query Petition($slug: String!) { petition(slug: $slug) { id signatureCount } }
"""

SIGNER_NAMES = """
query Signers($slug: String!, $after: String) {
  petition(slug: $slug) {
    signatures(first: 100, after: $after) {
      edges { node { name } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input) { errors { field message code } petition { signatureCount } }
}
"""

ADD_COMMENT = """
mutation Comment($input: AddCommentInput!) {
  addComment(input: $input) { status errors { field code message } }
}
"""


# -- fixtures --------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def demo_database(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the demo petition, loaded once; each server starts on a copy."""
    path = tmp_path_factory.mktemp("demo") / "petitions.sqlite3"
    shutil.copyfile(migrated_sqlite, path)
    env = {**os.environ, "PETITIONS_DATABASE_URL": f"sqlite://{path}"}
    subprocess.run([PETITIONS, "demo"], env=env, check=True, capture_output=True, timeout=60)
    return path


def copy_of(database: Path, folder: Path) -> Path:
    copy = folder / "petitions.sqlite3"
    shutil.copyfile(database, copy)
    return copy


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_service(
    browser: Browser, demo_database: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """One server for the tests that only read (paging, no JavaScript, axe): the demo as is."""
    database = copy_of(demo_database, tmp_path_factory.mktemp("shared"))
    async with running_service(database) as service:
        yield service


@pytest.fixture
def database(browser: Browser, demo_database: Path, tmp_path: Path) -> Path:
    """This test's own copy of the demo database (for a server that this test changes)."""
    return copy_of(demo_database, tmp_path)


@pytest_asyncio.fixture(loop_scope="module")
async def service(database: Path) -> AsyncIterator[Service]:
    async with running_service(database) as service:
        yield service


@pytest.fixture(scope="session")
def axe() -> Path:
    """axe-core's script, looked for before any browser or server is started."""
    return axe_script()


@pytest.fixture
def site() -> Iterator[ThirdPartySite]:
    with third_party_site() as site:
        yield site


class Contexts:
    """Browser contexts (one a person), closed at the end of the test; what their pages
    complained of in the console is printed (shown with a failure, or with `-s`)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[BrowserContext] = []
        self.problems: list[str] = []

    async def new(self, **options: Any) -> BrowserContext:
        context = await self.browser.new_context(**options)
        context.on("console", self._console)
        context.on("response", self._response)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))
        self.opened.append(context)
        return context

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text} ({message.location.get('url')})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            request = response.request
            self.problems.append(f"HTTP {response.status}: {request.method} {response.url}")

    async def page(self, url: str, **options: Any) -> Page:
        page = await (await self.new(**options)).new_page()
        await page.goto(url)
        return page

    async def close(self) -> None:
        for context in self.opened:
            await context.close()
        if self.problems:
            print("\n".join(["browser console:", *self.problems]))


@pytest_asyncio.fixture(loop_scope="module")
async def contexts(browser: Browser) -> AsyncIterator[Contexts]:
    contexts = Contexts(browser)
    yield contexts
    await contexts.close()


# -- what a person does ----------------------------------------------------------------------


async def fill_sign_form(
    page: Page, *, first_name: str, last_name: str, email: str, country: str
) -> None:
    form = page.locator('[data-petition="sign-form"]')
    await form.locator('[name="firstName"]').fill(first_name)
    await form.locator('[name="lastName"]').fill(last_name)
    await form.locator('[name="email"]').fill(email)
    field = form.locator('[name="country"]')
    if await field.evaluate("element => element.tagName") == "SELECT":
        values: list[str] = await field.locator("option").evaluate_all(
            "options => options.map(option => option.value)"
        )
        await field.select_option(next(v for v in values if v.upper() == country.upper()))
    else:
        await field.fill(country)


async def press_sign(page: Page) -> None:
    form = page.locator('[data-petition="sign-form"]')
    await form.get_by_role("button", name=re.compile("sign", re.IGNORECASE)).click()


def usable_link(page: Page, name: str) -> Locator:
    """The `older`/`newer` link when a person can follow it (the contract: absent or disabled
    at either end)."""
    return page.locator(
        f'[data-petition="{name}"]:is(a[href], button:not([disabled])):not([aria-disabled="true"])'
    ).filter(visible=True)


def surfaces_on_news(news: Page) -> dict[str, Locator]:
    return {
        "embed": news.frame_locator("iframe").locator(COUNT),
        "widget": news.locator("petition-counter").locator(COUNT),
    }


async def wait_for_counts(
    pages: dict[str, Page], news: Page, value: int, timeout: float
) -> dict[str, float]:
    """The monotonic time each surface (named pages, and the news page's embed and widget)
    first read `value`."""
    embed = await embed_frame(news)
    waits = {name: count_reads(page, value, timeout=timeout) for name, page in pages.items()}
    waits["embed"] = count_reads(embed, value, timeout=timeout)
    waits["widget"] = count_reads(news, value, host="petition-counter", timeout=timeout)
    times = await asyncio.gather(*waits.values())
    return dict(zip(waits, times, strict=True))


def report(what: str, times: dict[str, float], since: float) -> dict[str, float]:
    lags = {name: at - since for name, at in times.items()}
    print(f"\n{what}: " + ", ".join(f"{name} {lag:.2f} s" for name, lag in lags.items()))
    return lags


async def petition_id(service: Service) -> str:
    data = await service.graphql(PETITION, {"slug": DEMO_SLUG})
    return str(data["petition"]["id"])


async def signature_count(service: Service) -> int:
    data = await service.graphql(PETITION, {"slug": DEMO_SLUG})
    return int(data["petition"]["signatureCount"])


async def sign_through_api(service: Service, number: int, country: str | None = None) -> int:
    data = await service.graphql(
        SIGN,
        {
            "input": {
                "petitionId": await petition_id(service),
                "firstName": "Grace",
                "lastName": f"Hopper {number}",
                "email": f"grace.{number}@example.org",
                "country": country,
            }
        },
    )
    assert data["signPetition"]["errors"] == []
    return int(data["signPetition"]["petition"]["signatureCount"])


async def signer_names(service: Service) -> list[str]:
    """Every signer's public name, newest first, as the API lists them."""
    names: list[str] = []
    after = None
    while True:
        data = await service.graphql(SIGNER_NAMES, {"slug": DEMO_SLUG, "after": after})
        signatures = data["petition"]["signatures"]
        names += [edge["node"]["name"] for edge in signatures["edges"]]
        if not signatures["pageInfo"]["hasNextPage"]:
            return names
        after = signatures["pageInfo"]["endCursor"]


# -- signing ---------------------------------------------------------------------------------


async def test_a_signature_through_the_form_moves_the_count_on_every_surface(
    service: Service,
    site: ThirdPartySite,
    contexts: Contexts,
    record_property: Any,
) -> None:
    # given: the signer's page, another reader's page, and a newspaper on another origin with
    # the widget and the embed; each person in a browser context of their own
    site.pages["/news.html"] = news_page(service.url, DEMO_SLUG)
    signer = await contexts.page(service.url + PAGE)
    reader = await contexts.page(service.url + PAGE)
    news = await contexts.page(site.url + "/news.html")
    dashboard = await contexts.page(service.url + DASHBOARD)
    await dashboard.locator('input[name="token"]').fill(ADMIN_TOKEN)
    await dashboard.locator('input[name="token"]').press("Enter")
    counts = {
        "signer's page": signer.locator(COUNT),
        "page": reader.locator(COUNT),
        "dashboard": dashboard.locator(COUNT),
        **surfaces_on_news(news),
    }
    for count in counts.values():
        await expect(count).to_have_text(str(DEMO_COUNT))
    newest = {  # the embed's and the widget's newest five signers
        "embed": news.frame_locator("iframe").locator(SIGNERS),
        "widget": news.locator("petition-counter").locator(SIGNERS),
    }
    for signers in newest.values():
        await expect(signers).to_have_count(5)
        await expect(signers.first).to_contain_text("Peter Kelly")  # the demo's newest

    # when
    await fill_sign_form(
        signer, first_name="Ada", last_name="Lovelace", email="ada@example.org", country="GB"
    )
    surfaces = asyncio.ensure_future(
        wait_for_counts(
            {"page": reader, "signer's page": signer, "dashboard": dashboard},
            news,
            DEMO_COUNT + 1,
            10,
        )
    )
    try:
        pressed_at = time.monotonic()
        await press_sign(signer)
        signed = signer.locator('[data-petition="sign-result"][data-outcome="signed"]')
        await signed.wait_for()
        answered_at = time.monotonic()
        times = await surfaces
    finally:
        surfaces.cancel()

    # then
    print(f"\nthe form's answer shown {answered_at - pressed_at:.2f} s after pressing sign")
    lags = report("count lag", times, since=answered_at)
    report("count lag from pressing sign", times, since=pressed_at)
    record_property("count_lag", lags)
    for count in counts.values():
        await expect(count).to_have_text(str(DEMO_COUNT + 1))
    assert all(lag <= LIVE for lag in lags.values()), lags
    assert await signature_count(service) == DEMO_COUNT + 1
    for signers in newest.values():
        await expect(signers.first).to_contain_text("Ada Lovelace", timeout=LIVE * 1000)
        await expect(signers).to_have_count(5)
        await expect(signers.nth(1)).to_contain_text("Peter Kelly")


async def test_a_refused_signature_shows_each_error_next_to_its_field(
    service: Service, contexts: Contexts
) -> None:
    # given: what the service answers to this signature
    refused = {"firstName": "Ada", "lastName": "", "email": "ada.lovelace@", "country": "GB"}
    answer = await service.graphql(
        SIGN, {"input": {"petitionId": await petition_id(service), **refused}}
    )
    blamed = {error["field"] for error in answer["signPetition"]["errors"]}
    assert {"lastName", "email"} <= blamed, answer
    page = await contexts.page(service.url + PAGE)
    await expect(page.locator(COUNT)).to_have_text(str(DEMO_COUNT))

    # when
    await fill_sign_form(
        page,
        first_name=refused["firstName"],
        last_name=refused["lastName"],
        email=refused["email"],
        country=refused["country"],
    )
    await press_sign(page)

    # then
    result = page.locator('[data-petition="sign-result"]')
    await expect(result).to_have_attribute("data-outcome", "refused")
    for name in sorted(blamed):
        error = page.locator(f'[data-error-for="{name}"]')
        await expect(error).to_be_visible()
        await expect(error).to_have_text(re.compile(r"\S"))
        print(f"{name}: {await error.inner_text()!r}")
        await expect_next_to(error, page.locator(f'[data-petition="sign-form"] [name="{name}"]'))
    for name in {"firstName", "country"} - blamed:
        await expect_no_error(page, name)
    await expect(page.locator(COUNT)).to_have_text(str(DEMO_COUNT))
    assert await signature_count(service) == DEMO_COUNT

    # and when the person puts it right, the errors go and the signature counts
    await fill_sign_form(
        page, first_name="Ada", last_name="Lovelace", email="ada@example.org", country="GB"
    )
    await press_sign(page)
    await expect(result).to_have_attribute("data-outcome", "signed")
    for name in blamed:
        await expect_no_error(page, name)
    await expect(page.locator(COUNT)).to_have_text(str(DEMO_COUNT + 1))


async def expect_next_to(error: Locator, field: Locator) -> None:
    """The error sits by its field: within 120 px of it, above, below or beside."""
    error_box, field_box = await error.bounding_box(), await field.bounding_box()
    assert error_box is not None
    assert field_box is not None
    gap_y = max(
        0.0,
        error_box["y"] - (field_box["y"] + field_box["height"]),
        field_box["y"] - (error_box["y"] + error_box["height"]),
    )
    assert gap_y <= 120, (error_box, field_box)


async def expect_no_error(page: Page, name: str) -> None:
    shown = page.locator(f'[data-error-for="{name}"]').filter(visible=True)
    for text in await shown.all_inner_texts():
        assert not text.strip(), f"{name}: {text!r}"


# -- reading ---------------------------------------------------------------------------------


async def test_the_signers_page_through_older_and_back_through_newer(
    shared_service: Service, contexts: Contexts
) -> None:
    names = await signer_names(shared_service)
    assert len(names) == len(set(names)) == DEMO_COUNT  # the demo's names are all different
    page = await contexts.page(shared_service.url + PAGE)
    signers = page.locator(SIGNERS)
    starts = list(range(0, DEMO_COUNT, 10))

    async def expect_page_at(start: int) -> list[str]:
        expected = names[start : start + 10]
        await expect(signers.first).to_contain_text(expected[0])
        await expect(signers).to_have_count(len(expected))
        texts = await signers.all_inner_texts()
        for text, name in zip(texts, expected, strict=True):
            assert name in text, (start, texts, expected)
        return expected

    # newest first, ten a page, to the end through `older`
    seen = await expect_page_at(0)
    await expect(usable_link(page, "newer")).to_have_count(0)
    for start in starts[1:]:
        await usable_link(page, "older").click()
        seen += await expect_page_at(start)
    await expect(usable_link(page, "older")).to_have_count(0)
    assert seen == names
    assert len(set(seen)) == DEMO_COUNT

    # and back to the newest through `newer`
    for start in reversed(starts[:-1]):
        await usable_link(page, "newer").click()
        await expect_page_at(start)
    await expect(usable_link(page, "newer")).to_have_count(0)


async def test_the_page_reads_without_javascript(
    shared_service: Service, contexts: Contexts
) -> None:
    names = await signer_names(shared_service)
    page = await contexts.page(shared_service.url + PAGE, java_script_enabled=False)

    await expect(page.get_by_role("heading", name=DEMO_TITLE)).to_be_visible()
    await expect(page.locator(COUNT)).to_have_text(str(DEMO_COUNT))
    signers = page.locator(SIGNERS)
    await expect(signers).to_have_count(10)
    for text, name in zip(await signers.all_inner_texts(), names[:10], strict=True):
        assert name in text
    await expect(page.locator('[data-petition="sign-form"]')).to_be_visible()

    await usable_link(page, "older").click()  # a plain link: the next ten, from the server
    await expect(signers.first).to_contain_text(names[10])
    await expect(signers).to_have_count(10)


# -- staying live ----------------------------------------------------------------------------


async def test_without_websockets_the_count_follows_by_polling(
    service: Service, site: ThirdPartySite, contexts: Contexts, record_property: Any
) -> None:
    # given: a browser whose websockets all fail, as behind a proxy that refuses them
    site.pages["/news.html"] = news_page(service.url, DEMO_SLUG)
    context = await contexts.new()
    await context.add_init_script(BLOCK_WEBSOCKETS)
    page, news = await context.new_page(), await context.new_page()
    real_websockets: list[str] = []
    for each in (page, news):
        each.on("websocket", lambda websocket: real_websockets.append(websocket.url))
    await page.goto(service.url + PAGE)
    await news.goto(site.url + "/news.html")
    for count in [page.locator(COUNT), *surfaces_on_news(news).values()]:
        await expect(count).to_have_text(str(DEMO_COUNT))

    # when
    signed_at = time.monotonic()
    assert await sign_through_api(service, 1) == DEMO_COUNT + 1

    # then
    times = await wait_for_counts({"page": page}, news, DEMO_COUNT + 1, timeout=POLLED)
    lags = report("count lag without websockets", times, since=signed_at)
    record_property("count_lag_polling", lags)
    assert real_websockets == []  # the count came by polling
    frames: dict[str, Page | Frame] = {"page": page, "embed": await embed_frame(news), "news": news}
    tried = {
        name: await where.evaluate("window.__blockedWebSockets || 0")
        for name, where in frames.items()
    }
    print(f"websockets tried, all failed: {tried}")


async def test_after_a_restart_the_widget_and_the_page_reconnect(
    service: Service, site: ThirdPartySite, contexts: Contexts, record_property: Any
) -> None:
    # given
    site.pages["/news.html"] = news_page(service.url, DEMO_SLUG)
    page = await contexts.page(service.url + PAGE)
    news = await contexts.page(site.url + "/news.html")
    for count in [page.locator(COUNT), *surfaces_on_news(news).values()]:
        await expect(count).to_have_text(str(DEMO_COUNT))

    # when: an operator restarts the service (same port, same database), and someone signs
    # (uvicorn re-raises the signal once its graceful shutdown is done)
    assert await service.stop() in {0, -signal.SIGTERM}, service.output()
    await service.start()
    returned_at = time.monotonic()
    assert await sign_through_api(service, 1) == DEMO_COUNT + 1

    # then
    times = await wait_for_counts({"page": page}, news, DEMO_COUNT + 1, timeout=RETURN + 1)
    lags = report("count after a restart, from the return", times, since=returned_at)
    record_property("count_lag_restart", lags)
    assert all(lag <= RETURN + 1 for lag in lags.values()), lags


# -- the dashboard ---------------------------------------------------------------------------

HELD_FIRST = (
    "Facial recognition misidentifies people of colour far more often; Amazon should stop "
    "selling it to police departments until the law catches up."
)
HELD_LATER = (
    "IBM walked away from facial recognition. Amazon can too, and should say so publicly "
    "before more people are wrongly charged."
)


async def test_the_dashboard_shows_the_figures_and_moderates_the_queue(
    database: Path, contexts: Contexts
) -> None:
    async with running_service(database, PETITIONS_COMMENT_MODERATION="pre") as service:
        # given: signatures from two countries, and a comment held for a moderator
        for number, country in enumerate(["GB", "FR", "GB"], start=1):
            await sign_through_api(service, number, country)
        assert await add_comment(service, "Rosa Parks", HELD_FIRST) == "HELD"
        page = await contexts.page(service.url + PAGE)
        comments = page.locator('[data-petition="comments"] li')
        await expect(comments.filter(has_text="Wow, this for information!")).to_have_count(1)
        await expect(comments.filter(has_text=HELD_FIRST)).to_have_count(0)

        # when: an admin opens the dashboard and gives the token
        dashboard = await contexts.page(service.url + DASHBOARD)
        await dashboard.locator('input[name="token"]').fill(ADMIN_TOKEN)
        await dashboard.locator('input[name="token"]').press("Enter")

        # then: the figures
        await expect(dashboard.locator(COUNT)).to_have_text(str(DEMO_COUNT + 3))
        countries = dashboard.locator('[data-petition="countries"] li[data-country][data-count]')
        await expect(countries).to_have_count(2)
        listed = await countries.evaluate_all(
            "items => items.map(item => [item.dataset.country.toUpperCase(), item.dataset.count])"
        )
        assert listed == [["GB", "2"], ["FR", "1"]]
        chart = dashboard.locator('[data-petition="chart"]')
        await expect(chart).to_be_visible()
        drawn = await chart.evaluate(
            "chart => ['svg', 'canvas'].includes(chart.localName)"
            " || chart.querySelector('svg, canvas') !== null"
        )
        assert drawn, await chart.evaluate("chart => chart.outerHTML.slice(0, 300)")

        # and the count is live
        await sign_through_api(service, 4)
        await expect(dashboard.locator(COUNT)).to_have_text(str(DEMO_COUNT + 4))

        # when: the admin publishes the held comment
        queue = dashboard.locator('[data-petition="queue"] li')
        held = queue.filter(has_text=HELD_FIRST)
        await expect(queue).to_have_count(1)
        await expect(held).to_have_count(1)
        for action in ("publish", "spam", "hide"):
            await expect(held.locator(f'[data-action="{action}"]')).to_be_visible()
        await held.locator('[data-action="publish"]').click()

        # then: it leaves the queue, and a comment held meanwhile arrives in it, live
        await expect(held).to_have_count(0)
        assert await add_comment(service, "Joy Buolamwini", HELD_LATER) == "HELD"
        await expect(queue.filter(has_text=HELD_LATER)).to_have_count(1)

        # and the petition page shows the published comment after the older ones, not the held
        await page.reload()
        await expect(comments.last).to_contain_text(HELD_FIRST)
        await expect(comments.first).to_contain_text("Wow, this for information!")
        await expect(comments.filter(has_text=HELD_LATER)).to_have_count(0)


async def add_comment(service: Service, author: str, body: str) -> str:
    data = await service.graphql(
        ADD_COMMENT,
        {
            "input": {
                "petitionId": await petition_id(service),
                "authorName": author,
                "email": f"{author.split()[0].lower()}@example.org",
                "body": body,
            }
        },
    )
    assert data["addComment"]["errors"] == [], data
    return str(data["addComment"]["status"])


# -- accessibility ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PAGE, EMBED, DASHBOARD], ids=["page", "embed", "dashboard"])
async def test_no_serious_or_critical_axe_violation(
    axe: Path, shared_service: Service, contexts: Contexts, path: str
) -> None:
    # axe is injected as an inline script, which the pages' CSP rightly forbids
    page = await contexts.page(shared_service.url + path, bypass_csp=True)
    if path == DASHBOARD:
        await page.locator('input[name="token"]').fill(ADMIN_TOKEN)
        await page.locator('input[name="token"]').press("Enter")
    await expect(page.locator(COUNT)).to_have_text(re.compile(r"^\d+$"))

    await page.add_script_tag(path=axe)
    results = await page.evaluate("axe.run()")

    violations = results["violations"]
    print(f"\naxe on {path}: {len(results['passes'])} rules passed, {len(violations)} violated")
    for violation in violations:
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        print(f"{violation['impact']}: {violation['id']} ({violation['help']}) at {targets}")
    grave = [v["id"] for v in violations if v["impact"] in {"serious", "critical"}]
    assert grave == [], grave
