"""Links in Debian's Chromium: on your own machine your CLI runs are yours in the app; on a class server a run's
link opens it read-only for anyone; a link to a run that is not there says so and keeps its URL; presentation
mode at 1280x720 cuts no label, button or input."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from explorer import registry
from explorer.identity import Visitor, visitor_id
from explorer.training.recipes import TrainSettings
from explorer.training.runs import RunManager
from explorer.training.store import RunStore
from tests.browser import ROOT, chromium_page, need_chromium, shot, streamlit_server, wait_idle
from tests.conftest import write_dataset

pytestmark = pytest.mark.browser

ALICE = "a1ce" * 8  # the lecturer's browser on the class server


def wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def main_text(page) -> str:
    return page.get_by_test_id("stMain").inner_text()


def test_a_cli_run_is_seen_stopped_and_deleted_from_the_app_on_your_own_machine(tmp_path):
    from playwright.sync_api import expect

    need_chromium()
    data, home = write_dataset(tmp_path / "data"), tmp_path / "home"
    env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": str(data), "EXPLORER_THREADS": "1"}
    cli = subprocess.Popen([sys.executable, "-m", "explorer", "train", "lenet-bn", "--preset", "quick", "--epochs",
                            "200", "--batch-size", "8", "--name", "from my terminal"],
                           cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        store = RunStore(home / "runs.sqlite")
        wait_until(lambda: home.joinpath("runs.sqlite").exists() and any(r.status == "running" for r in store.list()))
        run_id = store.list()[0].id
        with streamlit_server(env) as url, chromium_page() as page:
            page.goto(f"{url}/runs")  # the machine's owner: every run in the data directory is theirs
            wait_idle(page)
            expect(page.get_by_role("heading", name="from my terminal · quick preset · running")).to_be_visible()
            assert "A shared run" not in main_text(page)

            page.goto(f"{url}/train?run={run_id}")
            wait_idle(page)
            assert "A shared run" not in main_text(page)
            page.get_by_test_id("stMain").get_by_role("button", name="Stop").click()
            expect(page.get_by_role("heading", name="from my terminal · quick preset · stopped")).to_be_visible(
                timeout=30_000)
            # stopped before its end: the CLI's status says it did not train to its result
            assert cli.wait(timeout=30) == 1 and f"run {run_id} stopped" in cli.stdout.read()

            page.goto(f"{url}/inside?run={run_id}&image=3")
            wait_idle(page)
            assert "lenet-bn trained with the quick preset (stopped" in main_text(page)

            page.goto(f"{url}/runs?run={run_id}")
            wait_idle(page)
            page.get_by_role("button", name="Delete this run").click()
            wait_idle(page)
            expect(page.get_by_text("its curves and its weights for good?")).to_be_visible()
            assert store.get(run_id) is not None  # asked first
            page.get_by_role("button", name="Yes, delete it").click()
            wait_idle(page)
            expect(page.get_by_text(f"Deleted from my terminal (run {run_id}).")).to_be_visible()
            assert store.get(run_id) is None
    finally:
        cli.kill()


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """A class server (EXPLORER_SHARED=1) whose store holds one finished run of Alice's."""
    need_chromium()
    data = str(write_dataset(tmp_path_factory.mktemp("data")))
    home = tmp_path_factory.mktemp("home")
    manager = RunManager(home, threads=1, data_dir=data)
    run_id = manager.start("lenet-bn", registry.get("lenet-bn").config, TrainSettings(lr=0.5, epochs=2, batch_size=32),
                           Visitor(visitor_id(ALICE)), preset="book", name="lecture demo")
    assert manager.wait(run_id, timeout=120).status == "done"
    manager.shutdown()
    env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": data, "EXPLORER_THREADS": "1", "EXPLORER_SHARED": "1"}
    with streamlit_server(env) as url:
        yield url, run_id


def test_a_runs_link_opens_it_read_only_for_another_browser_on_a_class_server(class_server):
    from playwright.sync_api import expect

    url, run_id = class_server
    with chromium_page() as page:  # a student in a fresh browser, with the lecturer's links
        page.goto(f"{url}/train?run={run_id}")
        wait_idle(page)
        expect(page.get_by_role("heading", name="lecture demo · book preset · done")).to_be_visible()
        assert f"lenet-bn, run {run_id}. A shared run" in main_text(page)
        assert page.get_by_test_id("stMain").get_by_role("button", name="Stop").count() == 0

        page.goto(f"{url}/runs?run={run_id}")
        wait_idle(page)
        expect(page.get_by_role("heading", name="lecture demo · book preset · done")).to_be_visible()
        assert "A shared run: you can look at it" in main_text(page)
        assert page.get_by_text("Confusion matrix (test set)").count() == 1  # what it learned, drawn
        for action in ("Delete this run", "Download the weights (state_dict)", "Stop this run"):
            assert page.get_by_role("button", name=action).count() == 0, action
        assert page.url.endswith(f"run={run_id}")

        page.goto(f"{url}/inside?run={run_id}&image=40&stage=4&unit=5,7")
        wait_idle(page)
        text = main_text(page)
        assert "lecture demo: lenet-bn trained with the book preset (done, best test accuracy" in text, text
        assert f"run {run_id}" in text and "untrained" not in text
        assert "Someone else's run, opened from its link" in text  # told it is read-only, as Runs and Train say
        expect(page).to_have_url(re.compile(f"run={run_id}&image=40&stage=4&unit=5(%2C|,)7$"))
        shot(page, "inside-shared-link-1280x720", full_page=False)
        cookie = next(c for c in page.context.cookies() if c["name"] == "cnn_explorer_visitor")
        assert re.fullmatch(r"[0-9a-f]{32}", cookie["value"]) and cookie["sameSite"] == "Strict"
        assert not cookie["secure"]  # plain HTTP here; over HTTPS it is Secure
    with chromium_page(visitor_token=ALICE) as page:  # the lecturer's own browser acts on it
        page.goto(f"{url}/runs?run={run_id}")
        wait_idle(page)
        assert "A shared run" not in main_text(page)
        expect(page.get_by_role("button", name="Delete this run")).to_be_enabled()
        expect(page.get_by_role("button", name="Download the weights (state_dict)")).to_be_enabled()
        page.goto(f"{url}/inside?run={run_id}")
        wait_idle(page)
        assert "Someone else's run" not in main_text(page)


@pytest.mark.parametrize("path", ["/train", "/runs", "/inside"])
def test_an_unknown_run_says_so_and_keeps_the_url(class_server, path):
    from playwright.sync_api import expect

    url, _ = class_server
    with chromium_page() as page:
        page.goto(f"{url}{path}?run=0123456789ab")
        wait_idle(page)
        expect(page.get_by_test_id("stMain").get_by_text("There is no run 0123456789ab here")).to_be_visible()
        page.wait_for_timeout(500)
        assert page.url.endswith("?run=0123456789ab")


CUT = """() => [...document.querySelectorAll('[data-testid=stMain] *')]
  .filter(e => e.offsetParent !== null && e.innerText && e.innerText.trim()
    && !e.closest('[data-testid=stDataFrame], [data-testid=stPlotlyChart], [data-testid=stCode]'))
  .filter(e => { const s = getComputedStyle(e);
    return (s.textOverflow === 'ellipsis' || ['hidden', 'clip'].includes(s.overflowX))
      && e.scrollWidth > e.clientWidth + 1; })
  .map(e => e.innerText.trim().slice(0, 60))"""


def test_presentation_mode_at_1280_with_the_sidebar_open_cuts_nothing(class_server):
    url, _ = class_server
    with chromium_page() as page:
        for name, path in (("explore", "/?model=vgg11"), ("train", "/train?model=resnet18")):
            page.goto(f"{url}{path}&present=1")
            wait_idle(page)
            if page.get_by_test_id("stExpandSidebarButton").is_visible():  # presentation mode starts closed
                page.get_by_test_id("stExpandSidebarButton").click()
                wait_idle(page)
            page.wait_for_timeout(500)
            shot(page, f"{name}-present-sidebar-1280x720", full_page=False)
            assert page.evaluate(CUT) == [], name
            for field in page.get_by_test_id("stMain").get_by_test_id("stNumberInput").all():
                steps = field.get_by_test_id("stNumberInputStepDown").or_(field.get_by_test_id("stNumberInputStepUp"))
                assert steps.count() == 2, field.inner_text()  # its - and + are drawn
            if name == "explore":  # the last view's button, whole
                assert page.get_by_test_id("stMain").get_by_text("Code", exact=True).is_visible()


def test_a_second_visit_is_the_same_visitor_until_the_browser_is_forgotten(class_server):
    """No cookie injected: the one the app sets on the first visit makes the next visit the same owner, and
    "Forget this browser" (a lab PC) makes the next one a stranger to that run."""
    from playwright.sync_api import expect

    url, _ = class_server
    with chromium_page() as page:
        page.goto(f"{url}/train?model=lenet-bn")
        wait_idle(page)
        start = page.get_by_role("button", name="Start training")
        expect(start).to_be_enabled(timeout=60_000)  # once its estimate is measured
        start.click()
        expect(page).to_have_url(re.compile(r"run=[0-9a-f]{12}$"))
        run_id = page.url.rsplit("=", 1)[1]
        second = page.context.new_page()  # a later visit: a new session, the same browser
        second.goto(f"{url}/runs?run={run_id}")
        wait_idle(second)
        assert "A shared run" not in main_text(second)
        expect(second.get_by_role("button", name="Delete this run")).to_be_enabled()
        second.get_by_role("button", name="Forget this browser").click()
        wait_idle(second)
        expect(second.get_by_text("This browser no longer holds your identity")).to_be_visible()
        third = page.context.new_page()
        third.goto(f"{url}/runs?run={run_id}")
        wait_idle(third)
        assert "A shared run" in main_text(third)
        assert third.get_by_role("button", name="Delete this run").count() == 0


def test_explore_by_name_opens_explore_and_links_keep_the_language(class_server):
    """`/explore` (Explore's own name, typed or bookmarked) is Explore with its parameters, not Streamlit's
    "Page not found"; a page's links keep `lang`, so a link followed in Chinese opens in Chinese."""
    from playwright.sync_api import expect

    url, _ = class_server
    with chromium_page() as page:
        page.goto(f"{url}/explore?model=vgg11&lang=zh")
        wait_idle(page)
        page.wait_for_timeout(1000)  # Streamlit's dialog comes after the page has drawn
        assert "Page not found" not in page.content()
        expect(page.get_by_test_id("stMain").get_by_text("训练这个网络")).to_be_visible()
        assert "model=vgg11" in page.url and "lang=zh" in page.url
        link = page.get_by_test_id("stMain").get_by_role("link", name="训练这个网络")
        assert "lang=zh" in link.get_attribute("href")
        link.click()
        wait_idle(page)
        assert "/train" in page.url and "lang=zh" in page.url
        expect(page.get_by_role("heading", name="在 Fashion-MNIST 上训练")).to_be_visible()
        page.goto(f"{url}/?model=resnet18")  # the root is Explore at its own name, with the same parameters
        wait_idle(page)
        expect(page).to_have_url(re.compile(r"/explore\?model=resnet18"))
        page.wait_for_timeout(1000)
        assert "Page not found" not in page.content()


@pytest.mark.parametrize("trusted", [False, True])
def test_a_forwarding_header_is_a_quota_only_behind_a_proxy_the_host_names(tmp_path, trusted):
    """`python -m explorer serve` bound to loopback, as behind a proxy on the same host: a browser sending its
    own X-Forwarded-For (on the page and its websocket handshake) is counted at its connection's address
    unless the host set EXPLORER_TRUSTED_PROXY; then the address its proxy wrote counts."""
    from explorer.training.store import RunStore

    need_chromium()
    data = str(write_dataset(tmp_path / "data"))
    env = {"EXPLORER_HOME": str(tmp_path / "home"), "EXPLORER_DATA_DIR": data, "EXPLORER_THREADS": "1",
           "EXPLORER_SHARED": "1", **({"EXPLORER_TRUSTED_PROXY": "1"} if trusted else {})}
    with streamlit_server(env, serve=True) as url, chromium_page() as page:
        page.context.set_extra_http_headers({"X-Forwarded-For": "203.0.113.77"})
        page.goto(f"{url}/train?model=lenet")
        wait_idle(page)
        page.get_by_role("button", name="Start").click()
        wait_idle(page)
        runs = RunStore(tmp_path / "home" / "runs.sqlite").list()
        assert len(runs) == 1
        assert runs[0].address == ("203.0.113.77" if trusted else "loopback"), runs[0].address  # its connection
