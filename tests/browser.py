"""The real app in real Chromium: a `streamlit run` server on a free port and a Playwright page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from explorer.server import SUMMARY_PROCESSES

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerURL(str):
    """The server's address; `pid` is its process."""

    pid: int


@contextmanager
def streamlit_server(env: dict[str, str], serve: bool = False) -> Iterator[ServerURL]:
    """`streamlit run app.py`, or with `serve` the hosting command, `python -m explorer serve`."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"streamlit-{port}.log", "w")  # noqa: SIM115 (closed below)
    start = ["explorer", "serve"] if serve else ["streamlit", "run", "app.py"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *start, "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        # a real server has its summary processes, whatever the test process was told (conftest)
        cwd=ROOT, env={**os.environ, "EXPLORER_SUMMARY_PROCESSES": str(SUMMARY_PROCESSES), **env}, stdout=log,
        stderr=subprocess.STDOUT)
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"streamlit did not start; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


PROJECTOR = {"width": 1280, "height": 720}


COOKIE = "cnn_explorer_visitor"


_chromium: list = []  # (playwright, browser): one Chromium per test module, a fresh context per page


def _browser():
    """The shared Chromium, launched on first use (and again if it crashed); closed by close_chromium."""
    from playwright.sync_api import sync_playwright

    if _chromium and not _chromium[1].is_connected():
        close_chromium()
    if not _chromium:
        playwright = sync_playwright().start()
        _chromium[:] = [playwright, playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])]
    return _chromium[1]


def close_chromium() -> None:
    """End the shared Chromium (conftest calls this after each test module)."""
    if _chromium:
        playwright, browser = _chromium
        _chromium.clear()
        try:
            browser.close()
        finally:
            playwright.stop()


@contextmanager
def chromium_page(viewport: dict[str, int] | None = None, visitor_token: str | None = None) -> Iterator:
    """A page in a fresh browser context (its own cookies and storage) of the module's Chromium; with
    `visitor_token`, a returning visitor whose cookie the app set before."""
    context = _browser().new_context(viewport=viewport or PROJECTOR)
    if visitor_token:
        context.add_cookies([{"name": COOKIE, "value": visitor_token, "domain": "127.0.0.1", "path": "/"}])
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


def wait_idle(page) -> None:
    page.wait_for_selector(IDLE, timeout=60_000)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=60_000)


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def in_first_screen(locator, height: int = PROJECTOR["height"]) -> bool:
    """The element is drawn and its bottom edge is inside the first screen, without scrolling."""
    box = locator.bounding_box()
    return box is not None and box["height"] > 0 and box["y"] >= 0 and box["y"] + box["height"] <= height
