"""End to end in Debian's Chromium: train on small generated data, watch it live, stop, inspect the run."""

import pytest

from tests.browser import chromium_page, in_first_screen, need_chromium, shot, streamlit_server, wait_idle
from tests.conftest import write_dataset

pytestmark = pytest.mark.browser

CHART_POINTS = """() => {
  const plot = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
  return plot && plot._fullData ? plot._fullData.reduce((n, t) => n + (t._length || 0), 0) : 0;
}"""


def choose(page, box: str, option: str) -> None:
    page.get_by_role("combobox", name=box).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_role("spinbutton", name=label)
    field.fill(str(value))
    field.press("Enter")
    wait_idle(page)


def test_train_live_stop_and_see_the_confusion_matrix(tmp_path):
    need_chromium()
    data = write_dataset(tmp_path / "data")
    env = {"EXPLORER_HOME": str(tmp_path / "home"), "EXPLORER_DATA_DIR": str(data), "EXPLORER_THREADS": "1"}
    from playwright.sync_api import expect

    with streamlit_server(env) as url, chromium_page() as page:
        page.goto(f"{url}/train")  # the first request of a fresh server goes straight to a page
        wait_idle(page)
        expect(page.get_by_test_id("stSidebarNavLink")).to_have_text(
            ["searchExplore", "compare_arrowsCompare", "model_trainingTrain", "historyRuns", "visibilityInside",
             "schoolLessons", "assignmentExercises", "scatter_plotClass board", "menu_bookCatalog"],
            use_inner_text=False)
        choose(page, "Architecture", "LeNet")
        choose(page, "Preset", "lenet-bn (d2l 7.5.4)")
        set_number(page, "Epochs", 200)
        set_number(page, "Batch size", 8)
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_text("running")).to_be_visible()
        seen = []
        for _ in range(60):  # the fragment redraws about every second while the run is live
            page.wait_for_timeout(500)
            n = page.evaluate(CHART_POINTS)
            if n and (not seen or n > seen[-1]):
                seen.append(n)
            if len(seen) >= 3:
                break
        assert len(seen) >= 3, f"the chart did not update twice: {seen}"
        expect(page.get_by_test_id("stProgress")).to_be_visible()
        shot(page, "train-live", full_page=False)  # first: a failed check below leaves its picture
        stop = page.get_by_test_id("stMain").get_by_role("button", name="Stop")
        for element in (page.get_by_test_id("stProgress"), stop, page.get_by_test_id("stPlotlyChart").first):
            # at 1280x720, without scrolling
            assert in_first_screen(element), element
        page.get_by_test_id("stMain").get_by_role("button", name="Stop").click()
        expect(page.get_by_text("stopped")).to_be_visible(timeout=30_000)
        assert "run=" in page.url

        set_number(page, "Epochs", 2)
        set_number(page, "Batch size", 64)
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_text("· done")).to_be_visible(timeout=60_000)

        page.goto(f"{url}/runs")
        wait_idle(page)
        expect(page.get_by_text("Confusion matrix (test set)")).to_be_visible()
        expect(page.get_by_text("What batch normalization learned")).to_be_visible()
        assert page.get_by_test_id("stException").count() == 0
        shot(page, "runs-detail")
