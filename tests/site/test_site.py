"""The site: builds with warnings as errors, links resolve, a real browser renders it (its Markdown: test_markdown.py)."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
import urllib.parse
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "_build" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# One worker builds the site once for all of these tests (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("site")


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site built once for these tests, exactly as `make site` builds it (-W -n)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(REPO), str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_site_builds_with_warnings_as_errors(built_site):
    assert (built_site / "index.html").exists()
    assert (built_site / "docs" / "index.html").exists()


def test_every_page_shows_the_packages_version(built_site):
    """The version comes from the installed package's metadata (pyproject.toml), on every page of the site."""
    version = metadata.version(metadata.packages_distributions()["pggit_chaos"][0])
    shown = f'<p class="site-version">pggit chaos handbook, version {version}</p>'
    # The top-level index.html only redirects to docs/index.html; every other page is the theme's.
    pages = [p for p in _pages(built_site) if p != built_site / "index.html"]
    missing = [p.relative_to(built_site).as_posix() for p in pages if shown not in p.read_text(encoding="utf-8")]
    assert len(pages) >= 10 and not missing, f"pages without the version {version}: {missing}"


class _LinksAndIds(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("link", "script", "img") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))


@functools.cache
def _parse(page: Path) -> _LinksAndIds:
    parser = _LinksAndIds()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _pages(built_site: Path) -> list[Path]:
    """The site's pages (the theme ships template fragments under _static/ that are not pages)."""
    return sorted(p for p in built_site.rglob("*.html") if "_static" not in p.relative_to(built_site).parts)


def test_internal_links_and_anchors_resolve(built_site):
    broken = []
    for page in _pages(built_site):
        for href in _parse(page).links:
            url = urllib.parse.urlsplit(href)
            if url.scheme or href.startswith("//") or href.startswith("mailto:"):
                continue
            target = page if not url.path else (page.parent / url.path).resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(built_site)}: {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in _parse(target).ids:
                broken.append(f"{page.relative_to(built_site)}: {href} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken)))


# ---------------------------------------------------------------------------
# A real browser
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def site_url(built_site):
    """The built site served over HTTP on a loopback port, for the browser."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class BrowserThread:
    """Chromium driven by Playwright on a thread of its own.

    Playwright's sync API keeps an event loop running on the thread that
    uses it; on the test thread that loop would collide with pytest-asyncio's.
    """

    def __init__(self, executable: str):
        import queue

        self._jobs: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, args=(executable,), daemon=True)
        self._thread.start()
        error = self._ready.get(timeout=120)
        if error:
            raise error

    def _serve(self, executable: str) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as p:
                chromium = p.chromium.launch(
                    executable_path=executable,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run"],
                )
                self._ready.put(None)
                while (job := self._jobs.get()) is not None:
                    func, reply = job
                    try:
                        reply.put((func(chromium), None))
                    except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
                        reply.put((None, exc))
                chromium.close()
        except BaseException as exc:  # noqa: BLE001
            self._ready.put(exc)

    def run(self, func):
        """Run ``func(browser)`` on the browser's thread; return its result or raise its error."""
        import queue

        reply: queue.Queue = queue.Queue()
        self._jobs.put((func, reply))
        result, error = reply.get(timeout=300)
        if error:
            raise error
        return result

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine: install Debian's package (apt-get install chromium) to run browser tests")
    pytest.importorskip("playwright.sync_api", reason="Playwright is part of the dev extra")
    session = BrowserThread(CHROMIUM)
    yield session
    session.close()


def _open(browser, url: str, wait_until: str = "networkidle"):
    """Open a page (in a context of its own, or in ``browser`` when that is a context) and collect what its
    console reports as errors (from its first request on)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A request cut short by navigation (the front page redirects at once) is not a failure.
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} ({req.failure})")
            if req.failure != "net::ERR_ABORTED" else None)
    page.on("response", lambda resp: errors.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
    page.goto(url, wait_until=wait_until)
    return page, errors


def test_every_page_loads_without_console_errors(browser, built_site, site_url):
    pages = [p.relative_to(built_site).as_posix() for p in _pages(built_site)]
    errors = browser.run(lambda b: _errors_loading(b, [f"{site_url}/{relative}" for relative in pages]))
    problems = {relative: found for relative, found in zip(pages, errors, strict=True) if found}
    assert not problems, f"console errors: {problems}"
    assert len(pages) >= 2


def _errors_loading(chromium, urls: list[str]) -> list[list[str]]:
    """Each page's console errors, once it is loaded and its network idle. The pages load side by side,
    each in a tab of its own with its own listeners: the browser waits out their idle periods together.
    The tabs share one browser context, as a reader's tabs do: a context per page (what ``new_page`` on the
    browser makes) gives each page a renderer and a profile of its own, which took three times the CPU."""
    context = chromium.new_context()
    try:
        opened = [_open(context, url, wait_until="commit") for url in urls]
        for page, _ in opened:
            page.wait_for_load_state("networkidle")
    finally:
        context.close()
    return [errors for _, errors in opened]


def _search_hits(chromium, url: str) -> tuple[int, list[str]]:
    page, errors = _open(chromium, url)
    page.wait_for_selector("ul.search li", timeout=15000)
    hits = page.locator("ul.search li").count()
    page.close()
    return hits, errors


def test_search_page_finds_trinity(browser, site_url):
    hits, errors = browser.run(lambda b: _search_hits(b, f"{site_url}/search.html?q=Trinity"))
    assert hits > 0
    assert not errors


def test_patterns_page_screenshot_is_kept(browser, built_site, site_url):
    target = "docs/testing/PATTERNS.html" if (built_site / "docs/testing/PATTERNS.html").exists() else "docs/index.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / ("PATTERNS.png" if "PATTERNS" in target else "index.png")

    def screenshot(chromium):
        page, errors = _open(chromium, f"{site_url}/{target}")
        page.screenshot(path=str(shot), full_page=True)
        page.close()
        return errors

    errors = browser.run(screenshot)
    assert shot.stat().st_size > 10_000
    assert not errors
