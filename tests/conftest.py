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
from pathlib import Path

import pytest
import streamlit.config
import torch

from explorer.training.data import FILES, write_idx

DEBIAN_DATA = Path("/usr/share/datasets/fashion-mnist")

# module -> its tests that only the full suite runs ("*": all of them), with why
SLOW: dict[str, str | set[str]] = {
    "test_load": "*",     # 30 sessions against a real class server, minutes
    "test_busy": "*",     # CPU hogs and a stopped worker, a minute
    "test_ray": "*",      # a local Ray instance
    "test_faults": "*",   # kills, full disks and restarts of real processes
    "test_properties": "*",  # thousands of generated configs
}
FAST_PROPERTY_EXAMPLES = "30"  # the property tests' examples in the fast tier (the full suite: 5,000 each)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all", action="store_true", default=False,
                     help="the whole suite, as CI runs it: slow, browser and realdata tests too")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: only in the full suite (python -m pytest --all)")
    if not _full(config):
        os.environ.setdefault("EXPLORER_PROPERTY_EXAMPLES", FAST_PROPERTY_EXAMPLES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        slow = SLOW.get(item.module.__name__.rsplit(".", 1)[-1], set())
        if slow == "*" or item.originalname in slow:
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
