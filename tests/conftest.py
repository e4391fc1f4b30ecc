"""Shared fixtures: small, learnable Fashion-MNIST-shaped IDX files written by the tests themselves."""

from pathlib import Path

import pytest
import streamlit.config
import torch

from explorer.training.data import FILES, write_idx

DEBIAN_DATA = Path("/usr/share/datasets/fashion-mnist")

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
