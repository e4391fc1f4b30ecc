"""Shared fixtures: small, learnable Fashion-MNIST-shaped IDX files written by the tests themselves; and the
two tiers of the suite.

`python -m pytest` runs the fast tier: the engine, the pages through AppTest, summaries, a few property
examples; about two minutes on a 2-core machine. `python -m pytest --all` (what .ci/run runs) runs
everything: also the tests below marked `slow` (real training and fault injection, the load test, CPU hogs,
Ray, memory peaks at book sizes), the `browser` tests (Chromium) and the `realdata` ones (Debian's
Fashion-MNIST). Naming tests or a marker expression (`-m browser`) runs what was named. Which tests are slow is
said here, in one place, with why, from measured durations (`--durations=0` on the whole suite).
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest
import streamlit.config
import torch

from explorer.training.data import FILES, write_idx

DEBIAN_DATA = Path("/usr/share/datasets/fashion-mnist")

# module -> its tests that only the full suite runs ("*": all of them), with why
SLOW: dict[str, str | set[str]] = {
    "test_load": "*",        # 30 sessions against a real class server: 90 s
    "test_busy": "*",        # CPU hogs and a stopped worker: 45 s
    "test_ray": "*",         # a local Ray instance: 20 s
    "test_faults": "*",      # kills, full disks and restarts of real processes: 40 s
    "test_properties": "*",  # 5,000 generated configs each: 60 s
    "test_summary": {"test_summaries_free_their_networks_and_the_cache_levels_off",  # 300 configs: 15 s
                     "test_the_memory_estimate_is_within_25_percent_of_a_real_peak_at_book_settings"},  # 30 s
    "test_cli": {"test_train_and_runs_commands", "test_ctrl_c_of_train_stops_the_run_cleanly",  # real runs: 28 s
                 "test_bench_train_prints_the_ceilings_both_pipelines_efficiency_and_ratio",
                 "test_bench_speedrun_trains_each_seed_in_a_fresh_process_and_its_table_and_sentence_come_from_it",
                 "test_invalid_config_exits_2_with_one_line"},
    "test_training": {"test_a_run_over_the_time_limit_is_refused_with_advice",  # real runs, 2-3 s each: the
                      "test_a_restart_marks_running_runs_interrupted_and_keeps_the_rest",  # fast tier keeps
                      "test_queue_order_positions_and_stop",  # a dozen others
                      "test_a_run_records_the_measured_rates_and_the_format_they_chose",
                      "test_a_run_whose_compile_pays_trains_compiled_and_reads_its_layers_eager",  # a compile: 10 s
                      "test_the_eta_converges_to_the_real_remaining_time",
                      "test_a_healthy_run_is_not_flagged_and_a_dead_one_is_stored",
                      "test_admission_is_one_decision_however_many_start_at_once",
                      "test_a_dying_network_is_flagged_with_what_helps",
                      "test_a_failing_run_is_marked_failed_and_the_worker_lives_on",
                      "test_weights_load_safely", "test_a_started_run_says_what_it_is_doing_within_a_second",
                      "test_live_pages_share_one_read_of_a_runs_metrics_until_it_grows",
                      "test_the_test_pass_follows_the_training_batch", "test_the_queue_takes_turns_over_owners"},
    "test_store_size": "*",  # two real runs for each test
    "test_board": {"test_a_student_sees_the_shared_runs_an_admin_all_and_only_an_owner_shares"},  # 7 s of runs
    "test_app_train": {"test_start_watch_stop_and_inspect",  # real runs watched to their end: 25 s
                       "test_a_measurement_runs_out_of_the_server_and_blocks_no_other_visitors_page",
                       "test_the_fast_preset_says_what_it_changes_trains_with_its_recipe_and_reopens_as_fast",
                       "test_one_recipe_switch_at_a_time_trains_and_reopens_as_set",
                       "test_a_train_url_too_big_to_train_is_refused_without_building_or_timing_anything",
                       "test_a_run_whose_weights_went_missing_still_shows_and_can_be_deleted",
                       # the Train page measures the speedrun network's step for each preset: 7 s
                       "test_the_speedrun_preset_is_the_speedrun_networks_own_and_says_what_it_reached_here"},
    "test_inside": {"test_inspect_writes_painted_pngs_and_prints_the_prediction",  # a CLI process: 11 s
                    "test_ten_concurrent_fresh_vgg11_views_build_one_network_out_of_the_server_and_stay_under_2_gb"},
    "test_dynamics": {"test_the_cli_prints_a_runs_dynamics_one_row_per_report_and_layer"},  # three CLI processes
    "test_mnist": {"test_the_cli_trains_on_the_directory_it_names"},  # a CLI process training: 10 s
    "test_lessons": {"test_the_cli_lists_the_lessons_and_prints_one",  # three CLI processes
                     "test_a_lessons_runs_are_named_in_each_readers_language",  # a pair of real runs each
                     "test_a_visitors_finished_pair_is_read_in_the_kept_measurements_columns"},
    "test_app": {"test_streamlit_run_app_tunes_its_server_as_explorer_serve_does",  # a fresh interpreter: 7 s
                 "test_catalog_lists_every_model"},  # every catalog network summarized on one page: 6 s
}
# The exercises' catalog networks (VGG-16, ResNet-50, DenseNet-121, ...) share their family's code: the fast tier
# runs the per-network tests on the book's networks, and on these only where the test is their own check
EXERCISE_NETWORKS = {"vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "densenet121", "densenet169",
                     "densenet201", "densenet264"}
OWN_CHECKS = {"test_models", "test_summary"}  # the independent builds and the exact layer counts
# ResNet-50's and DenseNet-121's code with more blocks: their own checks too run in the full suite (20 s here)
DEEPEST = {"resnet101", "resnet152", "densenet169", "densenet201", "densenet264"}
FAST_PROPERTY_EXAMPLES = "30"  # the property tests' examples in the fast tier (the full suite: 5,000 each)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all", action="store_true", default=False,
                     help="the whole suite, as CI runs it: slow, browser and realdata tests too")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: only in the full suite (python -m pytest --all)")
    if not _full(config):
        os.environ.setdefault("EXPLORER_PROPERTY_EXAMPLES", FAST_PROPERTY_EXAMPLES)
    # no test reads or writes the developer's own runs (~/.cnn-explorer); a test that needs a home sets its own
    os.environ["EXPLORER_HOME"] = tempfile.mkdtemp(prefix="explorer-tests-")
    # AppTest runs the app in the test process: new configs are traced there, not in server processes (the
    # browser tests start real servers, which have them)
    os.environ.setdefault("EXPLORER_SUMMARY_PROCESSES", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        slow = SLOW.get(item.module.__name__.rsplit(".", 1)[-1], set())
        module = item.module.__name__.rsplit(".", 1)[-1]
        params = [v for v in getattr(getattr(item, "callspec", None), "params", {}).values() if isinstance(v, str)]
        exercise_network = any(v in DEEPEST for v in params) or (
            module not in OWN_CHECKS and any(v in EXERCISE_NETWORKS for v in params))
        if slow == "*" or item.originalname in slow or exercise_network:
            item.add_marker(pytest.mark.slow)
    if _full(config):
        return
    left = [item for item in items if any(item.get_closest_marker(m) for m in ("slow", "browser", "realdata"))]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if item not in left]


def _full(config: pytest.Config) -> bool:
    """The whole suite: --all, a marker expression, or tests named on the command line."""
    return bool(config.getoption("--all") or config.getoption("markexpr") or config.option.file_or_dir)

@pytest.fixture(autouse=True, scope="module")
def _chromium_closed_after_each_module():
    """The browser tests of a module share one Chromium; it ends with the module, and with it Playwright's
    event loop, which would refuse a later module's asyncio.run (the load test's)."""
    yield
    if "tests.browser" in sys.modules:
        sys.modules["tests.browser"].close_chromium()


@pytest.fixture(autouse=True)
def _server_closed_after_each_test():
    """The server's run manager is made from the environment of the test that first asks for it (a page, the
    CLI's serve); closed after it, so that the next test's environment makes its own. AppTest leaves the
    last page it ran as `__main__`; it is put back, or a later spawned child (the load test's prober) would
    import that page as its main module and run the app there, bare."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
    if (server := sys.modules.get("explorer.server")) is not None:
        server.close_server()


# The app shows visitors no tracebacks (.streamlit/config.toml); AppTest failures here should show theirs.
streamlit.config.set_option("client.showErrorDetails", "full")


def make_images(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Class k is a bright band at rows 2k..2k+4 on noise: easy to learn, not trivial."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (len(labels), 28, 28), generator=g, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):
        images[i, 2 * k + 3:2 * k + 7, 4:24] = 220
    return images


def write_dataset(directory: Path, n_train: int = 512, n_test: int = 200, gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        labels = torch.arange(n, dtype=torch.uint8) % 10
        write_idx(directory / (FILES[f"{split}_images"] + suffix), make_images(labels, seed))
        write_idx(directory / (FILES[f"{split}_labels"] + suffix), labels)
    return directory


@pytest.fixture
def tiny_data(tmp_path: Path) -> str:
    return str(write_dataset(tmp_path / "fashion"))


@pytest.fixture
def no_debian_data(monkeypatch, tmp_path):
    """Make the loader see no system copy and an empty cache."""
    monkeypatch.setattr("explorer.training.data.DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EXPLORER_DATA_DIR", raising=False)
