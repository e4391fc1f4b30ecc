"""The original MNIST digits beside Fashion-MNIST (the chapter's exercise zh-6.6-3 / en-7.6-3): found by its own
variable, trained on, shown with its own classes, and never mirrored."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explorer import exercises, registry
from explorer.errors import ConfigError
from explorer.training.data import DIGITS, FILES, DataError, find_data_dir, load_data, write_idx
from explorer.training.pipeline import augment
from explorer.training.recipes import TrainSettings, preset
from explorer.training.runs import RunManager
from explorer.views.inside_service import describe_subject, mistakes
from explorer.views.runviews import confusion_heatmap, per_class_accuracy, run_title
from tests.conftest import make_images, write_dataset
from tests.test_app_train import train_page

LENET_BN = registry.get("lenet-bn").config
SEVEN = 7  # every label of the digits below: a run that read them predicts nothing else


def write_sevens(directory: Path, n_train: int = 256, n_test: int = 64) -> Path:
    """IDX files whose every image is a 7: unlike the Fashion-MNIST fixture's ten classes, so that a run
    shows which files it read."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 2), ("test", n_test, 3)):
        labels = torch.full((n,), SEVEN, dtype=torch.uint8)
        write_idx(directory / FILES[f"{split}_images"], make_images(labels, seed))
        write_idx(directory / FILES[f"{split}_labels"], labels)
    return directory


@pytest.fixture
def digits(tmp_path, monkeypatch) -> str:
    path = write_sevens(tmp_path / "mnist")
    monkeypatch.setenv("EXPLORER_MNIST_DIR", str(path))
    return str(path)


def test_mnist_is_found_by_its_own_variable_and_a_missing_copy_says_how_to_get_it(digits, tmp_path, monkeypatch,
                                                                                  no_debian_data):
    fashion = write_dataset(tmp_path / "fashion")
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(fashion))
    assert find_data_dir(None, "mnist") == Path(digits)
    assert find_data_dir(None) == fashion  # Fashion-MNIST's variable names Fashion-MNIST's files only
    assert set(load_data(None, "mnist").test_labels.tolist()) == {SEVEN}
    monkeypatch.delenv("EXPLORER_MNIST_DIR")
    with pytest.raises(DataError) as err:
        find_data_dir(None, "mnist")
    assert err.value.message.startswith("MNIST was not found") and "EXPLORER_MNIST_DIR" in err.value.message
    assert "dataset-fashion-mnist" not in err.value.message  # Debian packages no MNIST: not offered as a way
    with pytest.raises(ConfigError) as err:
        find_data_dir(None, "cifar10")
    assert err.value.knob == "dataset"


def test_digits_are_never_mirrored_nor_tested_with_their_mirror():
    with pytest.raises(ConfigError) as err:
        TrainSettings(lr=0.1, epochs=1, batch_size=8, dataset="mnist", tta=True)
    assert err.value.knob == "tta"
    fast = preset("lenet-bn", "fast", dataset="mnist").settings
    assert fast.dataset == "mnist" and fast.augment and not fast.tta  # the recipe's shifts, no mirrored test pass
    assert preset("lenet-bn", "fast").settings.tta  # Fashion-MNIST's clothes keep it
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28).repeat(50, 1, 1, 1)
    kept = augment(x, torch.Generator().manual_seed(0), shift=0, flip=False)
    assert torch.equal(kept, x)
    flipped = augment(x, torch.Generator().manual_seed(0), shift=0)
    assert any(torch.equal(a, b.flip(-1)) for a, b in zip(flipped, x, strict=True))  # clothes are flipped


def test_a_run_on_mnist_reads_the_digits_and_names_them(digits, tiny_data, tmp_path):
    manager = RunManager(tmp_path / "home", threads=1, data_dir=tiny_data)  # its data_dir is Fashion-MNIST's
    try:
        settings = TrainSettings(lr=0.5, epochs=1, batch_size=32, dataset="mnist")
        view = manager.wait(manager.start("lenet-bn", LENET_BN, settings), timeout=120)
        r = view.record
        assert r.status == "done" and r.dataset == "mnist"
        assert [sum(row) for row in r.confusion] == [64 if k == SEVEN else 0 for k in range(10)]  # only sevens
        assert tuple(confusion_heatmap(r.confusion, r.dataset).data[0].x) == DIGITS
        assert per_class_accuracy(r.confusion, r.dataset).iloc[:, 0].tolist() == list(DIGITS)
        assert "trained on MNIST" in describe_subject(manager, r.id)
        assert r.label.endswith(" · MNIST") and "MNIST" in run_title(r)  # every list, legend and heading says so
        assert set(mistakes(manager, r.id)["true"]) <= {"7"}
    finally:
        manager.shutdown()


def test_the_cli_trains_on_the_directory_it_names(tmp_path, tiny_data):
    digits = write_sevens(tmp_path / "digits")
    out = subprocess.run([sys.executable, "-m", "explorer", "train", "lenet-bn", "--preset", "quick", "--epochs", "1",
                          "--train-subset", "128", "--dataset", "mnist", "--data-dir", str(digits),
                          "--home", str(tmp_path / "home")], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent.parent,
                         env={**os.environ, "EXPLORER_THREADS": "1", "EXPLORER_DATA_DIR": tiny_data})
    assert out.returncode == 0, out.stderr
    assert " done: " in out.stdout
    from explorer.training.store import RunStore

    (record,) = RunStore(tmp_path / "home" / "runs.sqlite").list()
    assert record.dataset == "mnist" and sum(record.confusion[SEVEN]) == 64


@pytest.fixture
def page_env(tmp_path, monkeypatch, tiny_data):
    """The app's run manager on a store and Fashion-MNIST copy of this test's own (closed after it)."""
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXPLORER_DATA_DIR", tiny_data)
    monkeypatch.setenv("EXPLORER_THREADS", "1")


def test_the_train_page_opens_on_the_data_set_its_link_names(page_env, digits):
    at = train_page(dataset="mnist")
    assert at.title[0].value == "Train on MNIST" and at.selectbox(key="t.dataset").value == "mnist"
    assert at.query_params["dataset"] == "mnist"
    assert not [w.value for w in at.warning if "dataset" in w.value]  # a parameter of the page, not a knob
    at.selectbox(key="t.dataset").set_value("fashion-mnist").run()
    assert at.title[0].value == "Train on Fashion-MNIST" and "dataset" not in at.query_params  # the book's: no word
    at = train_page(dataset="cifar10")  # never silently another: said, and kept in the URL
    assert at.title[0].value == "Train on Fashion-MNIST" and at.query_params["dataset"] == "cifar10"
    assert any("cifar10" in w.value for w in at.warning)


def test_the_mnist_exercise_opens_train_on_mnist():
    for id in ("zh-6.6-3", "en-7.6-3"):
        e = exercises.get(id)
        assert e.page == "train" and e.extra == {"dataset": "mnist"} and e.coverage == "answered", id
