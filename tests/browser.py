"""What the real-browser tests need: Chromium and axe-core found (or the tests skipped, or failed
in CI), `petitions serve --demo` as a process that can be stopped and started again on its port,
and a third-party site on another origin that embeds the service.

Chromium: `PETITIONS_TEST_CHROMIUM`, else /usr/bin/chromium, else `chromium` on the PATH.
axe-core: `PETITIONS_TEST_AXE` (the path of axe.min.js), else .ci/node_modules/axe-core/axe.min.js.
Without one, its tests skip; with `PETITIONS_TEST_REQUIRE_BROWSER=1` (CI), they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from playwright.async_api import Browser, Frame, Page, async_playwright

from tests.conftest import ADMIN_TOKEN, free_port
from tests.processes import PETITIONS, service_env

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_BROWSER = os.environ.get("PETITIONS_TEST_REQUIRE_BROWSER", "") not in {"", "0"}
DEMO_SLUG = "amazon-stop-facial-recognition"
DEMO_TITLE = "Amazon: Stop Making Facial Recognition Tech Used For Racial Profiling"
DEMO_COUNT = 241


def unavailable(reason: str) -> NoReturn:
    """Skip on a laptop; fail where the browser tests are required (CI)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (PETITIONS_TEST_REQUIRE_BROWSER is set)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> Path | None:
    named = os.environ.get("PETITIONS_TEST_CHROMIUM")
    candidates = [named] if named else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def find_axe() -> Path | None:
    named = os.environ.get("PETITIONS_TEST_AXE")
    path = Path(named) if named else ROOT / ".ci/node_modules/axe-core/axe.min.js"
    return path if path.is_file() else None


def axe_script() -> Path:
    path = find_axe()
    if path is None:
        unavailable(
            "axe-core not found: `npm install --prefix <dir> axe-core` and set PETITIONS_TEST_AXE="
            "<dir>/node_modules/axe-core/axe.min.js (or install it under .ci/)"
        )
    return path


@asynccontextmanager
async def launched_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium driven by Playwright (Debian's, not a Playwright download)."""
    path = find_chromium()
    if path is None:
        named = os.environ.get("PETITIONS_TEST_CHROMIUM")
        where = f"no {named}" if named else "neither /usr/bin/chromium nor chromium on the PATH"
        unavailable(f"Chromium not found ({where}); set PETITIONS_TEST_CHROMIUM to its path")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(path))
        try:
            yield browser
        finally:
            await browser.close()


# -- the service, as a process ---------------------------------------------------------------


def _new_file(suffix: str) -> Path:
    descriptor, name = tempfile.mkstemp(prefix="petitions-", suffix=suffix)
    os.close(descriptor)
    return Path(name)


@dataclass
class Service:
    """`petitions serve --demo` on a port of its own and a SQLite file; `stop` and `start` again
    keep both, as an operator's restart does."""

    database: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    log: Path = field(default_factory=lambda: _new_file(".log"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def start(self) -> None:
        env = {
            **os.environ,
            **service_env(f"sqlite://{self.database}", "memory://", f"pages-{uuid.uuid4().hex}"),
            **self.extra_env,
        }
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                PETITIONS,
                "serve",
                "--demo",
                "--port",
                str(self.port),
                env=env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        async with httpx.AsyncClient(base_url=self.url) as client, asyncio.timeout(30):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"server exited early:\n{self.output()}")
                with suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(30):
            return await self.process.wait()

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, admin: bool = False
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@asynccontextmanager
async def running_service(database: Path, **env: str) -> AsyncIterator[Service]:
    service = Service(database, extra_env=env)
    try:
        await service.start()
        yield service
    finally:
        if service.process is not None and service.process.returncode is None:
            service.process.kill()
            await service.process.wait()
        service.log.unlink(missing_ok=True)


# -- a site on another origin ----------------------------------------------------------------


@dataclass
class ThirdPartySite:
    """A plain HTTP server on another port (another origin) serving the pages it is given."""

    pages: dict[str, str]
    url: str


@contextmanager
def third_party_site() -> Iterator[ThirdPartySite]:
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            html = pages.get(self.path)
            body = (html or "not found").encode()
            self.send_response(200 if html is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ThirdPartySite(pages, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def news_page(service_url: str, slug: str) -> str:
    """A newspaper's article embedding the petition both ways the contract offers."""
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Local news: a petition to Amazon</title></head>
<body>
<main>
<h1>Residents sign a petition to Amazon</h1>
<p>The count, live, from the petition service:</p>
<script src="{service_url}/widget.js" async></script>
<petition-counter petition="{slug}"></petition-counter>
<iframe title="Petition counter" src="{service_url}/embed/{slug}" width="420" height="420"></iframe>
</main>
</body>
</html>
"""


# -- the browser side ------------------------------------------------------------------------

# Replaces WebSocket with one that fails as a blocked handshake does: never open, an error,
# then a close with 1006; whatever URL it is given. Runs before the pages' scripts, in every frame.
BLOCK_WEBSOCKETS = """
(() => {
  class BlockedWebSocket extends EventTarget {
    static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
    CONNECTING = 0; OPEN = 1; CLOSING = 2; CLOSED = 3;
    constructor(url, protocols) {
      super();
      this.url = String(url); this.protocol = ""; this.extensions = "";
      this.binaryType = "blob"; this.bufferedAmount = 0; this.readyState = 0;
      this.onopen = null; this.onmessage = null; this.onerror = null; this.onclose = null;
      window.__blockedWebSockets = (window.__blockedWebSockets || 0) + 1;
      setTimeout(() => {
        this.readyState = 3;
        const error = new Event("error");
        this.onerror?.(error); this.dispatchEvent(error);
        const close = new CloseEvent("close", { code: 1006, reason: "", wasClean: false });
        this.onclose?.(close); this.dispatchEvent(close);
      }, 20);
    }
    send() { throw new DOMException("WebSocket is not open", "InvalidStateError"); }
    close() {}
  }
  window.WebSocket = BlockedWebSocket;
})();
"""

_COUNT_READS = """([value, host]) => {
  const root = host ? document.querySelector(host)?.shadowRoot : document;
  const count = root?.querySelector('[data-petition="count"]');
  return count != null && count.textContent.trim() === value;
}"""


async def count_reads(
    where: Page | Frame, value: int, *, host: str | None = None, timeout: float = 10
) -> float:
    """Wait until the `[data-petition="count"]` of a page or frame (inside the open shadow root
    of `host`, if given) reads `value`; returns the monotonic time it did (checked every 20 ms)."""
    await where.wait_for_function(
        _COUNT_READS, arg=[str(value), host], polling=20, timeout=timeout * 1000
    )
    return time.monotonic()


async def embed_frame(page: Page) -> Frame:
    """The frame of the page's `<iframe>` (the embed)."""
    handle = await page.locator("iframe").element_handle()
    frame = await handle.content_frame()
    assert frame is not None
    return frame
