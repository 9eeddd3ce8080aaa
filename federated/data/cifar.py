"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): the official python-pickle files, downloaded once into a
data root, and the paper's augmentation as batched tensor ops.

Layout read (the archives' own, as torchvision also reads it)::

    root/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch    (b"data", b"labels")
    root/cifar-100-python/train, test                                     (b"data", b"fine_labels")

Each file is a pickled dict whose ``b"data"`` is a uint8 array ``[n, 3072]``: per image the red,
green and blue 32x32 planes, each row-major, so ``data.reshape(n, 3, 32, 32)`` is ``[n, C, H, W]``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from federated.data.archives import fetch, unpack
from federated.data.errors import DataError

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CIFAR100_MD5",
    "CIFAR100_URL",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CifarArrays",
    "augment",
    "download_cifar",
    "load_cifar",
    "normalize",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # per channel, of pixels scaled to [0, 1]; the paper uses
CIFAR_STD = (0.2023, 0.1994, 0.2010)  # these for both CIFAR-10 and CIFAR-100
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
PADDING = 4  # RandomCrop(32, padding=4)
SIZE = 32


@dataclass(frozen=True)
class _Layout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    url: str
    md5: str


_LAYOUTS = {
    "cifar10": _Layout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{k}" for k in range(1, 6)),
        ("test_batch",),
        b"labels",
        10,
        CIFAR10_URL,
        CIFAR10_MD5,
    ),
    "cifar100": _Layout(
        "cifar-100-python", ("train",), ("test",), b"fine_labels", 100, CIFAR100_URL, CIFAR100_MD5
    ),
}


@dataclass(frozen=True)
class CifarArrays:
    """Raw images and labels: ``x_*`` uint8 ``[N, 3, 32, 32]``, ``y_*`` int64 ``[N]``."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int


# ndarray.__reduce__ names this function numpy.core.multiarray._reconstruct in the archives (pickled by
# NumPy 1.x) and numpy._core.multiarray._reconstruct under NumPy 2; both mean the same function.
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, bytes and NumPy arrays, and nothing that could run code."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: CIFAR files hold only NumPy arrays, "
                "lists and bytes"
            ) from None


def _read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as file:
            batch = _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise DataError(f"{path} is not a CIFAR batch: {err}") from err
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{path} is not a CIFAR batch: expected a dict with b'data' and {label_key!r}")
    data = batch[b"data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * SIZE * SIZE
    ):
        raise DataError(
            f"{path}: b'data' must be a uint8 array [n, 3072], got "
            f"{getattr(data, 'dtype', type(data))} {getattr(data, 'shape', '')}"
        )
    labels = np.asarray(batch[label_key])
    if (
        labels.shape != (len(data),)
        or labels.dtype.kind not in "iu"
        or (labels.size and (labels.min() < 0 or labels.max() >= num_classes))
    ):
        raise DataError(f"{path}: {label_key!r} must hold {len(data)} integers in [0, {num_classes})")
    return data.reshape(-1, 3, SIZE, SIZE), labels.astype(np.int64)


def _instructions(root: Path, layout: _Layout, tried: bool = False) -> str:
    archive = layout.url.rsplit("/", 1)[-1]
    fetch_it = "" if tried else f"Set data.download=true (download=True in Python) to fetch {layout.url}, or "
    by_hand = f"on a machine with internet run `curl -LO {layout.url}` (MD5 {layout.md5})"
    return (
        f"Expected {', '.join(layout.train_files + layout.test_files)} in {root / layout.folder}. "
        f"{fetch_it}{by_hand[0].upper() + by_hand[1:] if tried else by_hand}, copy {archive} to {root} "
        f"and run `tar -xzf {archive} -C {root}`."
    )


def download_cifar(
    root: str | Path, name: Literal["cifar10", "cifar100"], url: str | None = None, md5: str | None = None
) -> None:
    """Download the official archive of ``name`` (or ``url``, checked against ``md5``; both default
    to the official ones) and unpack it into ``root``. Failures raise :class:`DataError`."""
    root, layout = Path(root), _LAYOUTS[name]
    source = url or layout.url
    archive = fetch(source, root, md5 or layout.md5, _instructions(root, layout, tried=True))
    try:
        unpack(archive, root, layout.folder, source=source)
    finally:
        archive.unlink(missing_ok=True)


def load_cifar(root: str | Path, name: Literal["cifar10", "cifar100"], download: bool = False) -> CifarArrays:
    """CIFAR-10 (50k/10k, 10 classes) or CIFAR-100 (50k/10k, 100 fine classes) from ``root``,
    downloaded first if its files are missing and ``download`` is true.

    Raises :class:`DataError` when the files are missing (and not downloaded) or one is malformed
    (naming the file).
    """
    root, layout = Path(root), _LAYOUTS[name]
    folder = root / layout.folder
    if not all((folder / file).is_file() for file in layout.train_files + layout.test_files):
        if not download:
            raise DataError(f"{name} not found. {_instructions(root, layout)}")
        download_cifar(root, name)

    def read(files: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        batches = [_read_batch(folder / file, layout.label_key, layout.num_classes) for file in files]
        return (
            torch.from_numpy(np.concatenate([x for x, _ in batches])),
            torch.from_numpy(np.concatenate([y for _, y in batches])),
        )

    x_train, y_train = read(layout.train_files)
    x_test, y_test = read(layout.test_files)
    return CifarArrays(x_train, y_train, x_test, y_test, layout.num_classes)


def normalize(x: Tensor) -> Tensor:
    """``(x / 255 - mean) / std`` per channel: uint8 ``[B, 3, H, W]`` to float32, as torchvision's
    ``ToTensor`` then ``Normalize(CIFAR_MEAN, CIFAR_STD)``.

    >>> normalize(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten()
    tensor([2.5141, 2.5968, 2.7537])
    """
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(3, 1, 1)
    return x.float().div(255).sub(mean).div(std)


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Per image, a random 32x32 crop of the image zero-padded by 4 pixels (offsets uniform in
    0..8 on each axis) and a horizontal flip with probability 1/2, then :func:`normalize`: the
    semantics of torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``, batched.

    ``x`` is uint8 ``[B, 3, 32, 32]``; the result float32 ``[B, 3, 32, 32]`` on ``x.device``. All
    randomness is drawn from ``generator``, on ``generator.device``.

    >>> out = augment(torch.zeros(5, 3, 32, 32, dtype=torch.uint8), torch.Generator().manual_seed(0))
    >>> out.shape, out.dtype
    (torch.Size([5, 3, 32, 32]), torch.float32)
    """
    B = x.shape[0]
    span = 2 * PADDING + 1
    top, left = torch.randint(0, span, (2, B), generator=generator, device=generator.device).to(x.device)
    flip = (torch.rand(B, generator=generator, device=generator.device) < 0.5).to(x.device)
    padded = x.new_zeros(B, 3, SIZE + 2 * PADDING, SIZE + 2 * PADDING)
    padded[:, :, PADDING : PADDING + SIZE, PADDING : PADDING + SIZE] = x
    steps = torch.arange(SIZE, device=x.device)
    rows = top[:, None] + steps  # (B, 32)
    cols = left[:, None] + torch.where(flip[:, None], steps.flip(0), steps)  # (B, 32), reversed if flipped
    width = padded.shape[-1]
    crop = padded.gather(2, rows[:, None, :, None].expand(B, 3, SIZE, width))  # (B, 3, 32, 40)
    crop = crop.gather(3, cols[:, None, None, :].expand(B, 3, SIZE, SIZE))  # (B, 3, 32, 32)
    return normalize(crop)
