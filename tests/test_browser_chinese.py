"""中文 in Debian's Chromium at 1280x720: every page's navigation and headings in Chinese, the English pages'
first-screen guarantees kept, no label cut, and Chinese glyphs painted (not the missing-glyph box).

Screenshots land in test-artifacts/ (zh-PAGE-1280x720.png)."""

import pytest

from tests.browser import chromium_page, in_first_screen, need_chromium, shot, streamlit_server, wait_idle
from tests.conftest import write_dataset

pytestmark = pytest.mark.browser

# each link's icon (a ligature's name) and its title
NAVIGATION = ["search探索", "compare_arrows比较", "model_training训练", "history运行记录", "visibility内部",
              "school课程", "assignment练习", "scatter_plot班级看板", "menu_book目录"]
PAGES = {
    "explore": ("/?model=vgg11-small&lang=zh", "vgg11-small"),
    "compare": ("/compare?lang=zh", "A vgg11 对比 B vgg11-small"),
    "train": ("/train?model=lenet&lang=zh", "在 Fashion-MNIST 上训练"),
    "runs": ("/runs?lang=zh", "运行记录"),
    "inside": ("/inside?model=lenet&image=3&lang=zh", "网络内部"),
    "lessons": ("/lessons?lesson=resnet&lang=zh", "7.6 ResNet：捷径让梯度保持下去"),
    "exercises": ("/exercises?exercise=zh-7.6-3&lang=zh", "练习 zh-7.6-3"),
    "board": ("/board?lang=zh", "班级看板"),
    "catalog": ("/catalog?lang=zh", "CNN Explorer"),
}

# Draws one character in the page's own font on a canvas: how many pixels it inks, and whether they differ
# from what the same font draws for a code point no font has (the missing-glyph box, "tofu").
GLYPH = """([text]) => {
  const font = getComputedStyle(document.querySelector('h1')).fontFamily;
  const ink = (s) => {
    const c = document.createElement('canvas'); c.width = 64; c.height = 64;
    const g = c.getContext('2d'); g.font = `48px ${font}`; g.fillStyle = '#000'; g.fillText(s, 4, 52);
    return Array.from(g.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3));
  };
  const glyph = ink(text), missing = ink('\\u{10FFFD}');
  return {inked: glyph.filter(a => a > 128).length,
          differs: glyph.some((a, i) => Math.abs(a - missing[i]) > 64)};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_chromium()
    data = str(write_dataset(tmp_path_factory.mktemp("data")))
    env = {"EXPLORER_HOME": str(tmp_path_factory.mktemp("home")), "EXPLORER_DATA_DIR": data,
           "EXPLORER_THREADS": "1"}
    with streamlit_server(env) as url:
        yield url


def test_every_page_in_chinese_at_1280x720(server):
    from playwright.sync_api import expect

    with chromium_page() as page:
        for name, (path, title) in PAGES.items():
            page.goto(server + path)
            wait_idle(page)
            page.wait_for_timeout(800)
            assert page.get_by_test_id("stException").count() == 0, name
            expect(page.get_by_test_id("stSidebarNavLink")).to_have_text(NAVIGATION, use_inner_text=False)
            expect(page.get_by_role("heading", level=1).first).to_have_text(title)
            shot(page, f"zh-{name}-1280x720", full_page=False)
            assert "lang=zh" in page.url, name  # a bookmark of any page keeps the language


def test_chinese_glyphs_are_painted_not_boxes(server):
    with chromium_page() as page:
        page.goto(server + "/?lang=zh")
        wait_idle(page)
        for text in ("参", "训", "汇"):
            glyph = page.evaluate(GLYPH, [text])
            assert glyph["inked"] > 150 and glyph["differs"], (text, glyph)


def test_the_first_screen_holds_in_chinese(server):
    from playwright.sync_api import expect

    with chromium_page() as page:
        page.goto(server + "/?model=vgg11-small&lang=zh")
        wait_idle(page)
        metrics = page.get_by_test_id("stMetricValue")
        expect(metrics).to_have_count(4)
        assert all(in_first_screen(metrics.nth(i)) for i in range(4))
        labels = page.get_by_test_id("stMetricLabel")
        assert labels.first.inner_text() == "参数"
        for label in labels.all():  # no label cut short: Chinese is wider per character
            assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), label.inner_text()
        table = page.get_by_test_id("stMain").get_by_test_id("stDataFrame").first
        assert table.bounding_box()["y"] + 200 < 720

        page.goto(server + "/train?model=lenet&lang=zh")
        wait_idle(page)
        expect(page.get_by_text("预计：")).to_be_visible(timeout=60_000)  # measured in a process
        assert in_first_screen(page.get_by_role("button", name="开始训练"))

        for lesson in ("resnet", "batchnorm"):  # both lessons' tables whole: every column and row, no scrolling
            for mode in ("", "&present=1"):       # in presentation mode too, where rows are taller
                page.goto(server + f"/lessons?lesson={lesson}&lang=zh{mode}")
                wait_idle(page)
                tables = page.get_by_test_id("stMain").get_by_test_id("stDataFrame")
                expect(tables).to_have_count(2)
                for i in range(2):
                    grid = tables.nth(i).locator(".dvn-scroller")
                    sizes = "e => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]"
                    assert grid.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), grid.evaluate(sizes)
                    assert grid.evaluate("e => e.scrollHeight <= e.clientHeight + 1"), (lesson, mode, grid.evaluate(
                        sizes))
                    assert in_first_screen(tables.nth(i))

        page.goto(server + "/?model=densenet&view=Diagram&present=1&lang=zh")  # presentation mode, Chinese
        wait_idle(page)
        chart = page.get_by_test_id("stPlotlyChart").first
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        assert in_first_screen(chart)
        assert chart.locator(".annotation-text", has_text="输入").count() >= 1  # the input box, in Chinese


def test_the_switch_changes_the_language_and_it_holds_across_pages(server):
    from playwright.sync_api import expect

    with chromium_page() as page:
        page.goto(server + "/")
        wait_idle(page)
        expect(page.get_by_test_id("stMetricLabel").first).to_have_text("parameters")
        page.get_by_test_id("stSidebar").get_by_text("中文", exact=True).click()
        wait_idle(page)
        expect(page.get_by_test_id("stMetricLabel").first).to_have_text("参数")
        page.get_by_test_id("stSidebarNavLink").filter(has_text="课程").click()
        wait_idle(page)
        expect(page.get_by_role("heading", level=1).first).to_have_text("6.6 LeNet：基线")


@pytest.mark.parametrize("lang, exercise, question, link", [
    ("zh", "zh-7.6-4", "批量规范化层、激活层、卷积层", "训练：批量规范化、ReLU、卷积"),
    ("en", "en-8.6-3", "bottleneck block", "Compare basic blocks (ResNet-34) with bottleneck blocks (ResNet-50)")])
def test_an_exercise_shows_its_question_and_links_on_the_first_screen(server, lang, exercise, question, link):
    """A student opening an exercise's link sees the question and its one-click setups without scrolling."""
    with chromium_page() as page:
        page.goto(f"{server}/exercises?exercise={exercise}&lang={lang}")
        wait_idle(page)
        main = page.get_by_test_id("stMain")
        asked = main.get_by_text(question).first
        setup = main.get_by_role("link", name=link).first
        assert in_first_screen(asked) and in_first_screen(setup)
        shot(page, f"{lang}-exercise-{exercise}-1280x720", full_page=False)
        setup.click()
        wait_idle(page)
        assert ("compare" in page.url or "train" in page.url) and page.get_by_test_id("stException").count() == 0
