"""Fashion-MNIST loading: where it is looked for, and clear errors for bad files."""

import gzip

import pytest
import torch
import torchvision.transforms.functional as TF

from explorer.training.data import CLASS_NAMES, FILES, DataError, find_data_dir, load_data, read_idx, write_idx
from explorer.training.pipeline import prepare
from tests.conftest import DEBIAN_DATA, write_dataset


def test_reads_gzip_and_raw_idx(tmp_path):
    for gz in (True, False):
        d = write_dataset(tmp_path / str(gz), n_train=30, n_test=20, gz=gz)
        data = load_data(str(d))
        assert data.train_images.shape == (30, 28, 28) and data.train_images.dtype == torch.uint8
        assert data.test_labels.tolist() == [i % 10 for i in range(20)]
        assert data.train_labels.dtype == torch.int64


def test_user_directory_comes_first(tmp_path, monkeypatch):
    d = write_dataset(tmp_path / "mine", n_train=10, n_test=10)
    assert find_data_dir(str(d)) == d
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(d))
    assert find_data_dir() == d


def test_missing_data_says_how_to_get_it(no_debian_data, tmp_path):
    with pytest.raises(DataError) as err:
        find_data_dir(str(tmp_path))
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "python -m explorer data download" in message
    assert "--data-dir" in message and "EXPLORER_DATA_DIR" in message


@pytest.mark.parametrize("damage, expected", [
    (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "bad magic number"),
    (lambda raw: raw[:-100], "truncated"),
    (lambda raw: raw[:6], "truncated header"),
    (lambda raw: b"", "bad magic number"),
])
def test_corrupt_files_are_named(tmp_path, damage, expected):
    d = write_dataset(tmp_path / "d", n_train=20, n_test=10, gz=False)
    path = d / FILES["train_images"]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=expected) as err:
        load_data(str(d))
    assert str(path) in str(err.value)


def test_broken_gzip_is_named(tmp_path):
    d = write_dataset(tmp_path / "d", n_train=20, n_test=10)
    path = d / (FILES["test_labels"] + ".gz")
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_counts_and_labels_are_checked(tmp_path):
    d = write_dataset(tmp_path / "d", n_train=20, n_test=10)
    write_idx(d / (FILES["train_labels"] + ".gz"), torch.zeros(19, dtype=torch.uint8))
    with pytest.raises(DataError, match="20 images but 19 labels"):
        load_data(str(d))
    write_idx(d / (FILES["train_labels"] + ".gz"), torch.full((20,), 12, dtype=torch.uint8))
    with pytest.raises(DataError, match="label 12"):
        load_data(str(d))


def test_resize_matches_torchvision_resize_and_to_tensor():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    for size in (96, 224, 20):
        expected = TF.resize(x.float() / 255, [size, size], antialias=True)
        assert torch.allclose(prepare(x, size, channels_last=False), expected, atol=1e-6)
    assert torch.equal(prepare(x, 28, channels_last=False), x.float() / 255)


@pytest.mark.realdata
@pytest.mark.skipif(not DEBIAN_DATA.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    data = load_data(str(DEBIAN_DATA))
    assert data.train_images.shape == (60_000, 28, 28) and data.test_images.shape == (10_000, 28, 28)
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10
    assert len(CLASS_NAMES) == 10
    with gzip.open(DEBIAN_DATA / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read(4) == b"\x00\x00\x08\x01"


def test_sizes_come_from_the_headers(tmp_path):
    from explorer.training.data import dataset_sizes

    data = write_dataset(tmp_path / "d", n_train=321, n_test=45)
    assert dataset_sizes(str(data)) == (321, 45)
