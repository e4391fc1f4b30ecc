"""A lesson's Train both in Debian's Chromium, on a machine held busy: the pair is queued at once, its
progress is shown beside the lesson, and once it has trained the lesson's table and sentence are made from the
student's own runs."""

import pytest

from tests.browser import chromium_page, in_first_screen, need_chromium, shot, streamlit_server, wait_idle
from tests.conftest import write_dataset
from tests.test_busy import cpu_hogs

pytestmark = pytest.mark.browser


def test_train_both_on_a_busy_machine_queues_the_pair_and_shows_its_own_sentence(tmp_path):
    from playwright.sync_api import expect

    need_chromium()
    data = write_dataset(tmp_path / "data")
    env = {"EXPLORER_HOME": str(tmp_path / "home"), "EXPLORER_DATA_DIR": str(data), "EXPLORER_THREADS": "1",
           "EXPLORER_SHARED": "1"}  # a class server, with its time limit and quotas
    with streamlit_server(env) as url, chromium_page() as page:
        page.goto(f"{url}/lessons?lesson=lenet")
        wait_idle(page)
        with cpu_hogs(4):  # the class is busy: the click is still accepted, never refused for the load
            page.get_by_role("button", name="Train both").click()
            wait_idle(page)
            main = page.get_by_test_id("stMain")
            expect(main.get_by_test_id("stAlert")).to_have_count(0)  # no refusal
            assert "run=" in page.url and "vs=" in page.url
            bars = main.get_by_test_id("stProgress")
            expect(bars).to_have_count(2)  # each run's phase or progress, near the button: on the first screen
            assert all(in_first_screen(bars.nth(i)) for i in range(2))
        shot(page, "lesson-train-both-busy-1280x720", full_page=False)
        expect(main.get_by_role("heading", name="What your pair did")).to_be_visible(timeout=180_000)
        expect(main.get_by_text('"lr 0.9, the book\'s"', exact=False).last).to_be_visible()
        mine = main.get_by_test_id("stDataFrame").nth(2)  # beside the kept measurement's table: the pair's own
        expect(mine).to_be_visible()
        expect(main.get_by_test_id("stProgress").first).to_contain_text("done")
        text = main.inner_text()
        assert text.count("reached") >= 2 and "points above" in text or "both reached" in text
        shot(page, "lesson-pair-done-1280x720", full_page=True)
