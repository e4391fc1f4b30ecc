"""Every page at a projector's 1280x720 in Debian's Chromium: what is on the first screen, and what is painted.

Screenshots of every page at 1280x720 and 1920x1080 land in test-artifacts/ (the viewport, as a lecturer
sees it).
"""

import io
import re

import numpy as np
import pytest

from explorer import registry
from explorer.identity import Visitor, visitor_id
from explorer.training.recipes import TrainSettings
from explorer.training.runs import RunManager
from tests.browser import ARTIFACTS, chromium_page, in_first_screen, need_chromium, shot, streamlit_server, wait_idle
from tests.conftest import write_dataset

pytestmark = pytest.mark.browser

TOKEN = "5eed" * 8  # the returning student's cookie; the fixture's run is theirs
SIZES = ({"width": 1280, "height": 720}, {"width": 1920, "height": 1080})
PAGES = {
    "explore": "/?model=vgg11-small",
    "explore-charts": "/?model=resnet18&view=Charts",
    "explore-diagram": "/?model=resnet34&view=Diagram",
    "compare": "/compare?a.model=resnet18&b.model=resnet18&b.blocks=%5B3%2C4%2C6%2C3%5D",
    "train": "/train",
    "runs": "/runs",
    "catalog": "/catalog",
    "inside": "/inside?model=resnet18&image=7",
    "lessons": "/lessons?lesson=resnet",
    "explore-present": "/?model=densenet&view=Diagram&present=1",
    "inside-present": "/inside?model=googlenet&image=7&stage=2&unit=3,4&present=1",
}

# the confusion matrix by its title: Runs draws other heatmaps too (a run's layer dynamics), in any order
HEATMAP = """() => {
  const plot = [...document.querySelectorAll('.js-plotly-plot')]
    .find(p => p._fullData && p._fullData[0].type === 'heatmap'
               && (p._fullLayout.title.text || '').includes('Confusion matrix'));
  if (!plot) return null;
  const t = plot._fullData[0];
  return {rows: t.z.length, cols: t.z[0].length, ytype: plot._fullLayout.yaxis.type,
          xtype: plot._fullLayout.xaxis.type, y: [...t.y], total: t.z.flat().reduce((a, b) => a + b, 0)};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose store already holds one finished LeNet-BN run on small generated data."""
    need_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    data = str(write_dataset(tmp_path_factory.mktemp("data")))
    home = tmp_path_factory.mktemp("home")
    manager = RunManager(home, threads=1, data_dir=data)
    run_id = manager.start("lenet-bn", registry.get("lenet-bn").config,
                           TrainSettings(lr=0.5, epochs=2, batch_size=32), Visitor(visitor_id(TOKEN)))
    assert manager.wait(run_id, timeout=120).status == "done"
    manager.shutdown()
    env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": data, "EXPLORER_THREADS": "1"}
    with streamlit_server(env) as url:
        yield url, run_id


def painted_fraction(png: bytes) -> float:
    """Share of pixels that are not (near) white: an empty plot area is almost all white."""
    from PIL import Image

    pixels = Image.open(io.BytesIO(png)).convert("L").tobytes()  # one byte a pixel
    return sum(p < 235 for p in pixels) / len(pixels)


def test_screenshots_of_every_page_at_projector_sizes(server):
    url, _ = server
    for size in SIZES:
        with chromium_page(size, TOKEN) as page:
            for name, path in PAGES.items():
                page.goto(url + path)
                wait_idle(page)
                page.wait_for_timeout(800)  # Plotly draws after the script run ends
                assert page.get_by_test_id("stException").count() == 0, name
                shot(page, f"{name}-{size['width']}x{size['height']}", full_page=False)


def test_the_main_result_is_on_the_first_screen(server):
    from playwright.sync_api import expect

    url, _ = server
    with chromium_page() as page:
        page.goto(f"{url}/?model=vgg11-small")
        wait_idle(page)
        metrics = page.get_by_test_id("stMetricValue")
        expect(metrics).to_have_count(4)
        assert all(in_first_screen(metrics.nth(i)) for i in range(4))
        for label in page.get_by_test_id("stMetricLabel").all():  # no label cut to "training memory (batch..."
            assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), label.inner_text()
        table = page.get_by_test_id("stMain").get_by_test_id("stDataFrame").first
        assert table.bounding_box()["y"] + 200 < 720  # the layer table's first rows are on screen

        page.goto(f"{url}/compare")
        wait_idle(page)
        totals = page.get_by_test_id("stMain").get_by_test_id("stDataFrame").first
        expect(totals).to_be_visible()
        assert in_first_screen(totals)  # the totals, whole

        page.goto(f"{url}/train")
        wait_idle(page)
        expect(page.get_by_text("Estimated: about")).to_be_visible(timeout=60_000)  # measured in a process
        assert in_first_screen(page.get_by_role("button", name="Start training"))

        # the claim, its cost and its measured effect at once; in a lecturer's presentation mode too, where rows
        # are taller (7.5's longer names fit there, with the sidebar closed; beside an open sidebar they scroll)
        for lesson, mode in (("resnet", ""), ("resnet", "&present=1"), ("batchnorm", "&present=1")):
            page.goto(f"{url}/lessons?lesson={lesson}{mode}")
            wait_idle(page)
            tables = page.get_by_test_id("stMain").get_by_test_id("stDataFrame")
            expect(tables).to_have_count(2)
            assert all(in_first_screen(tables.nth(i)) for i in range(2))
            for i in range(2):  # every column and row whole, no scrolling
                grid = tables.nth(i).locator(".dvn-scroller")
                assert grid.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), (lesson, mode)
                assert grid.evaluate("e => e.scrollHeight <= e.clientHeight + 1"), (lesson, mode)
            assert in_first_screen(page.get_by_role("button", name="Train both"))
        expect(page.get_by_role("heading", name="7.5 Batch normalization: a steadier deep network")).to_be_visible()


@pytest.mark.parametrize("name", ["lenet", "vgg11", "resnet34", "googlenet", "densenet"])
def test_a_whole_diagram_fits_the_screen(server, name):
    from playwright.sync_api import expect

    url, _ = server
    with chromium_page() as page:
        page.goto(f"{url}/?model={name}&view=Diagram")
        wait_idle(page)
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        chart = page.get_by_test_id("stPlotlyChart").first
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        box = chart.bounding_box()
        assert box["height"] <= 600 and box["width"] <= 1280, box
        assert in_first_screen(chart), box  # after scrolling to it, all of it at once
        boxes = chart.locator(".shapelayer path").count()
        labels = chart.locator(".annotation-text").count()
        assert boxes >= 8 and labels >= 8  # boxes and their labels are painted, not an empty frame
        assert painted_fraction(chart.screenshot()) > 0.03


def test_the_confusion_matrix_is_painted(server):
    url, _ = server
    with chromium_page(visitor_token=TOKEN) as page:
        page.goto(f"{url}/runs")
        wait_idle(page)
        page.wait_for_function(HEATMAP, timeout=60_000)
        heatmap = page.evaluate(HEATMAP)
        assert heatmap is not None, "no heatmap drawn"
        assert (heatmap["rows"], heatmap["cols"]) == (10, 10) and heatmap["total"] == 200
        assert heatmap["ytype"] == "category" and heatmap["xtype"] == "category"
        assert heatmap["y"][0] == "t-shirt"
        plot = page.locator(".js-plotly-plot", has=page.get_by_text("Confusion matrix (test set)")).first
        plot.scroll_into_view_if_needed()
        area = plot.locator(".nsewdrag").first.bounding_box()  # the plot area, without axes and colour bar
        from PIL import Image

        image = Image.open(io.BytesIO(page.screenshot(clip=area))).convert("RGB")
        cell_w, cell_h = image.width / 10, image.height / 10
        diagonal = [image.getpixel((int((i + 0.5) * cell_w), int((i + 0.3) * cell_h))) for i in range(10)]
        blue = [p for p in diagonal if p[2] > p[0] + 40]  # "Blues": a cell with counts is clearly blue
        assert len(blue) >= 8, f"the heatmap's diagonal cells are not painted: {diagonal}"


def test_a_reopened_run_url_shows_that_runs_model(server):
    url, run_id = server
    heading = f"lenet-bn {run_id} · quick preset · done"
    with chromium_page(visitor_token=TOKEN) as page:  # a new session: only the URL
        page.goto(f"{url}/train?run={run_id}")
        wait_idle(page)
        page.get_by_role("heading", name=heading).wait_for()
        from playwright.sync_api import expect

        expect(page.get_by_role("combobox", name="Preset")).to_have_value("lenet-bn (d2l 7.5.4)")
        expect(page.get_by_role("combobox", name="Architecture")).to_have_value("LeNet")
        assert page.get_by_role("spinbutton", name="Epochs").input_value() == "2"
        assert page.get_by_role("spinbutton", name="Batch size").input_value() == "32"
        assert page.get_by_role("button", name="Delete").count() == 0
        # another browser's read-only view of the same link: tests/test_browser_links.py, on a class server


def test_a_hostile_url_draws_no_link_and_no_image(server):
    from playwright.sync_api import expect

    url, _ = server
    with chromium_page() as page:
        page.goto(f"{url}/?model=vgg11-small&ratio=[CLICK HERE](http://example.invalid/x)"
                  "&resolution=![x](http://example.invalid/t.png)")
        wait_idle(page)
        expect(page.get_by_text("CLICK HERE").first).to_be_visible()
        assert page.locator("a[href*='example.invalid']").count() == 0
        assert page.locator("img[src*='example.invalid']").count() == 0


def test_the_conv_arch_editor_shows_both_columns_and_adds_complete_rows(server):
    from playwright.sync_api import expect

    url, _ = server
    with chromium_page() as page:
        page.goto(f"{url}/?model=vgg11")
        wait_idle(page)
        editor = page.get_by_test_id("stSidebar").get_by_test_id("stDataFrame").first
        editor.scroll_into_view_if_needed()
        sidebar = page.get_by_test_id("stSidebar").bounding_box()
        box = editor.bounding_box()
        assert box["x"] + box["width"] <= sidebar["x"] + sidebar["width"]  # both columns inside the sidebar
        assert editor.locator(".dvn-scroller").evaluate("e => e.scrollWidth <= e.clientWidth")  # none cut off
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("128.81 M")
        editor.hover()
        page.get_by_role("button", name="Add row").first.click()
        page.keyboard.press("Escape")
        wait_idle(page)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text("28.70 M")  # a sixth block, (1, 64)
        assert page.get_by_test_id("stSidebar").get_by_test_id("stAlert").count() == 0  # no "fill in" flash
        expect(page).to_have_url(re.compile(r"conv_arch=.*1%2C\+64"))

        page.goto(f"{url}/compare?a.model=vgg11&b.model=vgg11-small")  # two editors in one sidebar
        wait_idle(page)
        editors = page.get_by_test_id("stSidebar").get_by_test_id("stDataFrame")
        expect(editors).to_have_count(2)
        for editor in editors.all():  # 64, 128, 256, 512: every digit shown, no column scrolled away
            assert editor.locator(".dvn-scroller").evaluate("e => e.scrollWidth <= e.clientWidth")


def test_the_inside_page_paints_a_runs_feature_maps_with_the_prediction_on_the_first_screen(server):
    from PIL import Image, ImageStat
    from playwright.sync_api import expect

    url, run_id = server
    with chromium_page(visitor_token=TOKEN) as page:
        page.goto(f"{url}/inside?run={run_id}&image=7")
        wait_idle(page)
        page.wait_for_timeout(800)
        main = page.get_by_test_id("stMain")
        assert page.get_by_test_id("stException").count() == 0
        images = main.locator("img")
        assert images.count() >= 6  # the input, its saliency, the kernels, a grid per convolutional stage
        for i in range(images.count()):
            img = images.nth(i)
            img.scroll_into_view_if_needed()
            assert img.evaluate("e => e.complete && e.naturalWidth > 0")
            spread = ImageStat.Stat(Image.open(io.BytesIO(img.screenshot())).convert("L")).stddev[0]
            assert spread > 5, f"image {i} is blank"  # painted, not a uniform box
        main.locator("h1").scroll_into_view_if_needed()  # back to the top of Streamlit's scrolling area
        page.wait_for_timeout(300)
        shot(page, "inside-run-1280x720", full_page=False)
        assert in_first_screen(images.first)
        assert in_first_screen(main.locator(".js-plotly-plot").first)  # the prediction beside it
        page.goto(f"{url}/inside?run={run_id}&image=7&present=1")  # larger type on a projector
        wait_idle(page)
        expect(main.locator(".js-plotly-plot").first.locator(".ytick")).to_have_count(10)  # every class named

        # One stage up close: a click on a unit of the 8x8 map moves the box of what it sees on the input.
        page.goto(f"{url}/inside?run={run_id}&image=7&stage=4&unit=0,0")
        wait_idle(page)
        cells = main.locator(".js-plotly-plot").nth(1).locator("g.hm image")
        cells.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        box = cells.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 1.5 / 8, box["y"] + box["height"] * 6.5 / 8)  # row 6, col 1
        wait_idle(page)
        expect(page).to_have_url(re.compile(r"unit=6%2C1"))
        expect(main.get_by_text("Unit (6, 1) of stage 4 sees")).to_be_visible()
        beside_map = main.get_by_test_id("stHorizontalBlock").filter(has=page.locator("g.hm")).first
        field = beside_map.locator("img").last
        field.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        pixels = np.asarray(Image.open(io.BytesIO(field.screenshot())).convert("RGB")).astype(int)
        orange = (abs(pixels - [255, 140, 0]).sum(axis=2) < 60)
        rows, cols = np.nonzero(orange)
        assert orange.sum() > 200, "no box drawn"
        # LeNet-BN's second conv at 28 pixels: unit (6, 1) of 8x8 sees 14x14 pixels centred at (22.75, 5.25)
        assert rows.mean() > 0.6 * pixels.shape[0] and cols.mean() < 0.4 * pixels.shape[1]
        shot(page, "inside-unit-1280x720", full_page=False)
