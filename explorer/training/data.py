"""Fashion-MNIST (the book's data) or the original MNIST digits, as uint8 tensors, read from IDX files we
validate ourselves. Both are four IDX files of 28x28 grey images in ten classes.

Found in this order: a directory the user names (argument, or EXPLORER_DATA_DIR for Fashion-MNIST and
EXPLORER_MNIST_DIR for MNIST), Debian's package `dataset-fashion-mnist` (Debian packages no MNIST), then the
cache torchvision's downloader fills (`python -m explorer data download [--dataset mnist]`). Debian
recompressed its .gz files, so their checksums differ from torchvision's list: we read IDX directly.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.errors import ConfigError
from explorer.i18n import N_

CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
               "ankle boot")
DIGITS = tuple(str(d) for d in range(10))
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """A data set the runs can train on: its classes, the variable that names its directory, where Debian
    packages it and torchvision's name for it (its downloader's folder too)."""

    name: str
    title: str
    classes: tuple[str, ...]
    env: str
    debian: bool          # packaged by Debian (dataset-fashion-mnist), in DEBIAN_DIR
    torchvision: str
    mirrors: bool         # an image means the same mirrored left-right (clothes do, digits do not)


DATASETS = {"fashion-mnist": Dataset("fashion-mnist", "Fashion-MNIST", CLASS_NAMES, "EXPLORER_DATA_DIR", True,
                                     "FashionMNIST", mirrors=True),
            "mnist": Dataset("mnist", "MNIST", DIGITS, "EXPLORER_MNIST_DIR", False, "MNIST",
                             mirrors=False)}
DEFAULT_DATASET = "fashion-mnist"  # the book's


def dataset(name: str) -> Dataset:
    """The data set called `name`; ConfigError (naming the choices) for any other."""
    if name not in DATASETS:
        raise ConfigError("dataset", "must be one of {choices}, not {value!r}", choices=", ".join(DATASETS),
                          value=str(name)[:40])
    return DATASETS[name]


def class_names(name: str = DEFAULT_DATASET) -> tuple[str, ...]:
    """What a data set's labels 0-9 name."""
    return dataset(name).classes
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08
MAX_IDX_BYTES = 64 * 2**20  # Fashion-MNIST's largest file holds 47 MB: a header claiming more is refused unread


class DataError(ConfigError):
    """Missing, truncated or corrupt data files; the message names the file and how to fix it."""

    def __init__(self, template: str, /, **values: object) -> None:
        super().__init__("data_dir", template, **values)


@dataclass(frozen=True)
class ImageData:
    train_images: torch.Tensor  # (60000, 28, 28) uint8
    train_labels: torch.Tensor  # (60000,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: Path


HOW_TO_GET = N_("Get it in one of three ways: "
                "1) apt-get install dataset-fashion-mnist (Debian, offline-friendly); "
                "2) python -m explorer data download (needs the internet; uses torchvision's downloader); "
                "3) put the four IDX files (train-images-idx3-ubyte[.gz] ...) in a directory and pass --data-dir "
                "DIR or set EXPLORER_DATA_DIR.")
HOW_TO_GET_MNIST = N_("Get it in one of two ways: "
                      "1) python -m explorer data download --dataset mnist (needs the internet; uses torchvision's "
                      "downloader); "
                      "2) put the four IDX files (train-images-idx3-ubyte[.gz] ...) in a directory and pass "
                      "--data-dir DIR or set EXPLORER_MNIST_DIR.")


def cache_dir() -> Path:
    """Where `python -m explorer data download` puts torchvision's copy."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnn-explorer"


def candidate_dirs(data_dir: str | os.PathLike | None = None, name: str = DEFAULT_DATASET) -> list[Path]:
    ds = dataset(name)
    named = data_dir or os.environ.get(ds.env)
    dirs = [Path(named).expanduser()] if named else []
    return dirs + ([DEBIAN_DIR] if ds.debian else []) + [cache_dir() / ds.torchvision / "raw"]


def find_data_dir(data_dir: str | os.PathLike | None = None, name: str = DEFAULT_DATASET) -> Path:
    """The directory a user named, which must hold all four files; else the first that does, or a DataError
    saying the ways to get them."""
    ds = dataset(name)
    dirs = candidate_dirs(data_dir, name)
    named = data_dir or os.environ.get(ds.env)
    how = HOW_TO_GET if ds.debian else HOW_TO_GET_MNIST
    if named:  # a directory the user named is used or reported, never silently replaced by another copy
        d = Path(named).expanduser()
        if not d.is_dir():
            raise DataError("{path} is not a directory", path=str(named))
        missing = [name for name in FILES.values() if _file(d, name) is None]
        if missing:
            raise DataError("{path} lacks {missing} (or .gz), and a directory you name is not replaced by another "
                            "copy. {how}", path=str(d), missing=", ".join(missing), how=how)
        return d
    for d in dirs:
        if all(_file(d, file) is not None for file in FILES.values()):
            return d
    raise DataError("{dataset} was not found (looked in {dirs}). {how}", dataset=ds.title,
                    dirs=", ".join(map(str, dirs)), how=how)




def load_data(data_dir: str | None = None, name: str = DEFAULT_DATASET) -> ImageData:
    """All four arrays of a data set, validated: magic numbers, dimensions, counts and label range. Kept per
    directory found (not per argument: None means whatever EXPLORER_DATA_DIR or the system copy names now)."""
    return _load(find_data_dir(data_dir, name))


@functools.lru_cache(maxsize=4)
def _load(d: Path) -> ImageData:
    arrays = {key: read_idx(_file(d, name)) for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dim() != 3 or images.shape[1:] != (28, 28):
            raise DataError("{path}: expected 28x28 images, got {shape}", path=str(_file(d, FILES[split + "_images"])),
                            shape=tuple(images.shape))
        if labels.dim() != 1:
            raise DataError("{path}: expected one label per image", path=str(_file(d, FILES[split + "_labels"])))
        if len(images) != len(labels):
            raise DataError("{split}: {images} images but {labels} labels in {path}", split=split, images=len(images),
                            labels=len(labels), path=str(d))
        if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
            raise DataError("{path}: label {label} is not one of the ten classes (0-9)",
                            path=str(_file(d, FILES[split + "_labels"])), label=int(labels.max()))
        arrays[f"{split}_labels"] = labels.long()
    return ImageData(source=d, **arrays)


load_data.cache_clear = _load.cache_clear  # a test that changes a directory's files reads them anew


def dataset_sizes(data_dir: str | None = None, name: str = DEFAULT_DATASET) -> tuple[int, int]:
    """(training, test) image counts from the label files' headers: what an estimate needs, without
    loading the data into the caller (a server's page process)."""
    d = find_data_dir(data_dir, name)
    (train,), _ = _read(_file(d, FILES["train_labels"]), header_only=True)
    (test,), _ = _read(_file(d, FILES["test_labels"]), header_only=True)
    return train, test


def read_idx(path: Path) -> torch.Tensor:
    """One IDX file of unsigned bytes (gzip or raw) as a uint8 tensor, with its header checked before the
    data is read: a header that claims more than MAX_IDX_BYTES is refused without allocating it."""
    dims, data = _read(path)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(dims)


def _read(path: Path, header_only: bool = False) -> tuple[tuple[int, ...], bytes]:
    """The dimensions an IDX file's header declares, checked, and (unless `header_only`) its data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != _UBYTE or not 1 <= magic[3] <= 3:
                raise DataError("{path}: not an IDX file of unsigned bytes (bad magic number {magic})",
                                path=str(path), magic=magic.hex() or "empty")
            ndim = magic[3]
            head = f.read(4 * ndim)
            if len(head) < 4 * ndim:
                raise DataError("{path}: truncated header", path=str(path))
            dims = struct.unpack(f">{ndim}I", head)
            count = 1
            for dim in dims:
                count *= dim
            if count > MAX_IDX_BYTES:
                raise DataError("{path}: its header claims {dims} ({count:,} bytes), more than any MNIST or "
                                "Fashion-MNIST file; the file is neither or is corrupt", path=str(path), dims=dims,
                                count=count)
            if header_only:
                return dims, b""
            data = f.read(count + 1)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; bad deflate data a zlib.error
        raise DataError("{path}: cannot read ({error}); the file is corrupt or truncated", path=str(path),
                        error=str(err)) from None
    if len(data) != count:
        raise DataError("{path}: truncated or padded: header says {dims} ({count} bytes of data), file has {has}",
                        path=str(path), dims=dims, count=count, has=len(data) if len(data) <= count else N_("more"))
    return dims, data


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as IDX (gzip when the name ends in .gz): for tests and small fixtures."""
    data = bytes([0, 0, _UBYTE, array.dim()]) + struct.pack(f">{array.dim()}I", *array.shape)
    data += array.to(torch.uint8).contiguous().numpy().tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(data)


def download(root: Path | None = None, name: str = DEFAULT_DATASET) -> Path:
    """Fetch a data set with torchvision's downloader into the cache (needs the internet)."""
    import torchvision.datasets

    ds = dataset(name)
    root = root or cache_dir()
    for train in (True, False):
        getattr(torchvision.datasets, ds.torchvision)(str(root), train=train, download=True)
    return root / ds.torchvision / "raw"


def _file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
