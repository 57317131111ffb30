"""Check the built documentation site in headless Chromium (run by `make docs-check` and CI).

Serves ``build/site`` on a local port, opens every page with Chromium (``--dump-dom``, the
DOM after the page's scripts ran) and checks: the page loads with a title; every link
inside the site leads to a file that exists, and an anchor to an element that exists; every
image is present and non-empty; the pages that show figures show them all; no page loads a
script, stylesheet or font from the network (the site must render offline, and a browser
waiting on an unreachable font server hangs). A screenshot of each page goes to
``build/docs-screenshots/``. A Chromium call that hangs is retried once, then reported as a
problem. Exits 1 listing the problems.

Usage: python tools/check_site.py [site_dir] [screenshot_dir]
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

ROOT = Path(__file__).resolve().parents[1]
# pages that must show this many images at least (the figures of the site)
FIGURES = {"postestimation.html": 5, "examples.html": 4}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.resources: list[str] = []  # what the page loads: scripts, stylesheets, preconnects
        self.ids: set[str] = set()
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "script" and attrs.get("src"):
            self.resources.append(attrs["src"])
        if tag == "link" and attrs.get("href") and attrs.get("rel") in ("stylesheet", "preconnect", "preload"):
            self.resources.append(attrs["href"])
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args, **kwargs) -> None:  # no request log on the console
        pass


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


BROWSER_TIMEOUT_S = 120


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    """``command``'s output; None when it runs past ``timeout``, after killing its whole
    process group (Chromium's helper processes would outlive the browser's own)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _browser(binary: str, *args: str) -> subprocess.CompletedProcess | None:
    """Run headless Chromium; None when it hangs twice in a row (each try gets 120 s)."""
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    for _ in range(2):
        done = _run([binary, *flags, *args], BROWSER_TIMEOUT_S)
        if done is not None:
            return done
    return None


def check(site: Path, shots: Path) -> list[str]:
    binary = chromium()
    if binary is None:
        return ["no Chromium found (Debian: apt-get install chromium)"]
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = socketserver.TCPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    pages = sorted(p.relative_to(site).as_posix() for p in site.glob("*.html") if p.name != "404.html")
    try:
        for name in pages:
            url = urljoin(base, name)
            done = _browser(binary, "--dump-dom", url)
            if done is None:
                problems.append(f"{name}: Chromium hung twice on --dump-dom ({BROWSER_TIMEOUT_S} s each)")
                continue
            page = _parse(done.stdout)
            if done.returncode != 0 or not page.title.strip() or "404" in page.title:
                problems.append(f"{name}: did not load (rc {done.returncode}, title {page.title!r})")
                continue
            shot = shots / (Path(name).stem + ".png")
            if _browser(binary, f"--screenshot={shot}", "--window-size=1280,1600", url) is None:
                problems.append(f"{name}: Chromium hung twice taking the screenshot ({BROWSER_TIMEOUT_S} s each)")
            for resource in page.resources:
                if urlparse(resource).scheme in ("http", "https") and not resource.startswith(base):
                    problems.append(f"{name}: loads {resource} from the network; the site must render offline")
            for href in page.links:
                problems += _check_link(site, name, href, base)
            images = [src for src in page.images if not src.startswith("data:")]
            for src in images:
                target = site / unquote(urlparse(urljoin(name, src)).path)
                if urlparse(src).scheme in ("http", "https") and not src.startswith(base):
                    continue
                if not target.is_file() or target.stat().st_size == 0:
                    problems.append(f"{name}: image {src} is missing or empty")
            wanted = FIGURES.get(name, 0)
            figures = [s for s in images if "figures/" in s]
            if len(figures) < wanted:
                problems.append(f"{name}: shows {len(figures)} figures, expected at least {wanted}")
    finally:
        server.shutdown()
        server.server_close()
    return problems


def _check_link(site: Path, name: str, href: str, base: str) -> list[str]:
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https", "mailto") or href.startswith("javascript:"):
        return []
    target_path = unquote(urlparse(urljoin(name, href)).path).lstrip("/") or name
    target = site / target_path
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return [f"{name}: broken link {href} (no {target_path})"]
    if parsed.fragment and target.suffix == ".html":
        ids = _parse(target.read_text(encoding="utf-8")).ids
        if parsed.fragment not in ids:
            return [f"{name}: broken anchor {href}"]
    return []


def main() -> int:
    site = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site"
    shots = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "build" / "docs-screenshots"
    if not (site / "index.html").is_file():
        print(f"no site at {site}: run `make docs` first")
        return 1
    problems = check(site, shots)
    for problem in problems:
        print(problem)
    pages = len(list(site.glob("*.html")))
    print(f"checked {pages} pages in headless Chromium: {len(problems)} problem(s); screenshots in {shots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
