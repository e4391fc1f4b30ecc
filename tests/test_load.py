"""A class on one 2-core server (tests/loadtest.py): 30 sessions, half changing knobs and half watching runs,
while one run trains; ten runs queued from ten sessions; and beside them the shared-server issue's attacks.
Targets from that issue."""

import asyncio
import tempfile
import time
from pathlib import Path

from tests.browser import streamlit_server
from tests.conftest import write_dataset
from tests.loadtest import CLASS_SERVER, Figures, Session, _rss_mb, flood_configs, kill_helpers, run


def test_thirty_sessions_while_a_run_trains_and_attackers_try_to_bring_the_server_down():
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        data = write_dataset(Path(tmp) / "data", n_train=512, n_test=200)
        env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": str(data), **CLASS_SERVER}
        with streamlit_server(env, serve=True) as url:
            figures = asyncio.run(run(url, url.pid, home, sessions=30, seconds=60, attacks=True))
    print(figures)
    # the shared-server issue's targets, with every attack beside the class (README: about twice the margin)
    assert figures["exceptions"] == []  # no page showed anyone a traceback
    assert figures["health_p95_s"] < 0.5
    assert figures["knob_changes"] > 200 and figures["knob_wrong"] == 0  # each change showed its new figures
    assert figures["knob_p95_s"] < 2.0
    assert figures["watcher_refreshes"] > 100
    assert figures["first_page_s"] and max(figures["first_page_s"]) < 5.0
    assert figures["training_steps_meanwhile"] > 0  # the run trained all along
    assert figures["queue_positions"] == list(range(1, 11))  # each visitor saw their place in the queue
    assert figures["queued_statuses"] == ["done"] * 10 and figures["started_in_order"]
    # the attacks: a Train URL never blocks its page (it measures elsewhere, then leaves the measurement)
    assert figures["train_url_pages"] > 5 and figures["train_url_max_s"] < 5.0
    assert figures["train_url_measuring_said"] > 0
    assert figures["flood_configs"] > 50 and figures["flood_wrong"] == 0  # each a new network, summarized
    assert figures["inside_vgg_views"] >= 3  # VGG-11's views are computed (out of the server), not refused
    assert figures["flood_runs_accepted"] == 10 and figures["other_address_accepted"]  # cookies reset nothing
    # a student clicking Train both in a loop, another clearing their cookie before each click: the quotas held
    assert figures["train_both_clicks"] > 10 and figures["flipped_cookies"] > 10
    assert figures["most_active_per_visitor"] == 2 and figures["most_active_per_address"] == 10
    assert figures["server_rss_mb_max"] < 2048
    assert figures["server_rss_mb_after"] - figures["server_rss_mb_half"] < 200  # and it levels off


def test_helpers_killed_during_a_config_flood_cost_the_server_no_memory():
    """Two tabs open a new network every moment for 30 s while every helper process is killed every 10 s:
    each config is still summarized right, and the server's own memory ends within 50 MB of where it began.
    (It kept 164-186 MB more when a killed summary process made the server trace in its own interpreter.)"""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        data = write_dataset(Path(tmp) / "data", n_train=512, n_test=200)
        env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": str(data), **CLASS_SERVER}
        with streamlit_server(env, serve=True) as url:
            async def flood() -> tuple[float, Figures, int]:
                async with Session(url, "a" * 32) as s:  # the pages' own first costs, before measuring
                    await s.open("explore", "model=resnet18")
                    await s.open("inside", "model=lenet")
                await asyncio.sleep(3)
                before, figures, until = _rss_mb(url.pid), Figures(), time.monotonic() + 30
                killed, *_ = await asyncio.gather(kill_helpers(url.pid, until, 10),
                                                  *(flood_configs(url, i, until, figures) for i in range(2)))
                return before, figures, killed

            before, figures, killed = asyncio.run(flood())
            after = _rss_mb(url.pid)
    print(f"server {before:.0f} -> {after:.0f} MB, {len(figures.flood_configs)} configs, {killed} helpers killed")
    assert killed >= 4 and len(figures.flood_configs) > 50 and figures.flood_wrong == 0
    assert after - before < 50
