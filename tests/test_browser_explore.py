"""End to end in Debian's Chromium: explore, share a URL, compare, and how fast a knob redraws."""

import re
import statistics
import time

import pytest

from explorer.models.vgg import VGGConfig
from explorer.summary import summarize
from explorer.views.tables import human
from tests.browser import ARTIFACTS, chromium_page, need_chromium, shot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_server({"EXPLORER_HOME": str(tmp_path_factory.mktemp("home"))}) as url:
        yield url


def params_value(page) -> str:
    return page.get_by_test_id("stMetricValue").first.inner_text()


def test_pick_vgg_change_ratio_share_and_compare(server):
    from playwright.sync_api import expect

    with chromium_page() as page:
        page.goto(f"{server}/?model=resnet18")
        wait_idle(page)
        expect(page.get_by_role("heading", name="resnet18")).to_be_visible()
        page.get_by_role("combobox", name="Architecture").click()
        page.get_by_role("option", name="VGG", exact=True).click()
        wait_idle(page)
        expect(page.get_by_role("heading", name="vgg11")).to_be_visible()
        before = params_value(page)
        assert before == "128.81 M"
        ratio = page.get_by_role("spinbutton", name="ratio")
        ratio.fill("4")
        ratio.press("Enter")
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("43.09 M")
        wait_idle(page)
        expect(page).to_have_url(re.compile(r"ratio=4"))
        shot(page, "explore-vgg-ratio4")
        shared = page.url

        # how long a knob change takes to redraw, measured in the browser (server time is part of it)
        timings = []
        for value in (8, 2, 16, 4, 8, 2):  # each differs from the one before, so the shown count changes
            expected = human(summarize(VGGConfig(ratio=value)).totals.params)
            start = time.perf_counter()
            ratio.fill(str(value))
            ratio.press("Enter")
            expect(page.get_by_test_id("stMetricValue").first).to_have_text(expected, timeout=10_000)
            timings.append((time.perf_counter() - start) * 1000)
            wait_idle(page)
        (ARTIFACTS / "knob-latency.txt").write_text(
            f"knob change to redrawn page in Chromium: median {statistics.median(timings):.0f} ms over "
            f"{len(timings)} changes ({', '.join(f'{t:.0f}' for t in timings)})\n")

    with chromium_page() as page:  # a new visitor opens the shared URL
        page.goto(shared)
        wait_idle(page)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("43.09 M")
        expect(page.get_by_role("spinbutton", name="ratio")).to_have_value("4")

        page.goto(f"{server}/compare?a.model=resnet18&b.model=resnet18&b.blocks=%5B3%2C4%2C6%2C3%5D")
        wait_idle(page)
        expect(page.get_by_text("Stage by stage")).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        assert page.get_by_test_id("stException").count() == 0
        shot(page, "compare-resnet18-vs-34")


def test_an_impossible_config_shows_a_message_not_a_traceback(server):
    from playwright.sync_api import expect

    with chromium_page() as page:
        page.goto(f"{server}/?model=vgg11-small")
        wait_idle(page)
        resolution = page.get_by_role("spinbutton", name="resolution")
        resolution.fill("16")
        resolution.press("Enter")
        expect(page.get_by_text("use a resolution of at least 32")).to_be_visible()
        assert page.get_by_test_id("stException").count() == 0
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("43.09 M")
        page.get_by_role("radio", name="Charts").click()
        expect(page.get_by_test_id("stPlotlyChart")).to_have_count(3)
        page.get_by_role("radio", name="Diagram").click()
        expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)
        assert page.locator(".shapelayer path").count() >= 10  # the last valid network's boxes, drawn
        expect(page).to_have_url(re.compile(r"view=Diagram"))
        page.get_by_role("radio", name="Code").click()
        expect(page.get_by_text("def vgg_block").first).to_be_visible()
        shot(page, "explore-error")
