"""Fashion-MNIST as uint8 tensors, read from IDX files we validate ourselves.

Found in this order: a directory the user names (argument or EXPLORER_DATA_DIR), Debian's package
`dataset-fashion-mnist`, then the cache torchvision's downloader fills (`python -m explorer data download`).
Debian recompressed its .gz files, so their checksums differ from torchvision's list: we read IDX directly.
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
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
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
class FashionMNIST:
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


def cache_dir() -> Path:
    """Where `python -m explorer data download` puts torchvision's copy."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnn-explorer"


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    named = data_dir or os.environ.get("EXPLORER_DATA_DIR")
    dirs = [Path(named).expanduser()] if named else []
    return dirs + [DEBIAN_DIR, cache_dir() / "FashionMNIST" / "raw"]


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory a user named, which must hold all four files; else the first that does, or a DataError
    saying the three ways to get them."""
    dirs = candidate_dirs(data_dir)
    named = data_dir or os.environ.get("EXPLORER_DATA_DIR")
    if named:  # a directory the user named is used or reported, never silently replaced by another copy
        d = Path(named).expanduser()
        if not d.is_dir():
            raise DataError("{path} is not a directory", path=str(named))
        missing = [name for name in FILES.values() if _file(d, name) is None]
        if missing:
            raise DataError("{path} lacks {missing} (or .gz), and a directory you name is not replaced by another "
                            "copy. {how}", path=str(d), missing=", ".join(missing), how=HOW_TO_GET)
        return d
    for d in dirs:
        if all(_file(d, name) is not None for name in FILES.values()):
            return d
    raise DataError("Fashion-MNIST was not found (looked in {dirs}). {how}", dirs=", ".join(map(str, dirs)),
                    how=HOW_TO_GET)




def load_fashion_mnist(data_dir: str | None = None) -> FashionMNIST:
    """All four arrays, validated: magic numbers, dimensions, counts and label range. Kept per directory
    found (not per argument: None means whatever EXPLORER_DATA_DIR or the system copy names now)."""
    return _load(find_data_dir(data_dir))


@functools.lru_cache(maxsize=4)
def _load(d: Path) -> FashionMNIST:
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
            raise DataError("{path}: label {label} is not a Fashion-MNIST class (0-9)",
                            path=str(_file(d, FILES[split + "_labels"])), label=int(labels.max()))
        arrays[f"{split}_labels"] = labels.long()
    return FashionMNIST(source=d, **arrays)


load_fashion_mnist.cache_clear = _load.cache_clear  # a test that changes a directory's files reads them anew


def dataset_sizes(data_dir: str | None = None) -> tuple[int, int]:
    """(training, test) image counts from the label files' headers: what an estimate needs, without
    loading the data into the caller (a server's page process)."""
    d = find_data_dir(data_dir)
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
                raise DataError("{path}: its header claims {dims} ({count:,} bytes), more than any Fashion-MNIST "
                                "file; the file is not Fashion-MNIST or is corrupt", path=str(path), dims=dims,
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


def download(root: Path | None = None) -> Path:
    """Fetch Fashion-MNIST with torchvision's downloader into the cache (needs the internet)."""
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    root = root or cache_dir()
    TorchvisionFashionMNIST(str(root), train=True, download=True)
    TorchvisionFashionMNIST(str(root), train=False, download=True)
    return root / "FashionMNIST" / "raw"


def _file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
