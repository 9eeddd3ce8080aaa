import io
import pickle
import random
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    """A fixed-seed generator: every test draws its randomness from one of these."""
    return torch.Generator().manual_seed(1234)


# --- small datasets in the real on-disk formats (federated/data/cifar.py, federated/data/text.py) ---

_CIFAR_FILES = {  # name: (folder, train files, test file, number of (fine) classes)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{k}" for k in range(1, 6)], "test_batch", 10),
    "cifar100": ("cifar-100-python", ["train"], "test", 100),
}


class _Python2Pickler(pickle._Pickler):
    """Writes ``str`` and ``bytes`` as Python 2 strings (``SHORT_BINSTRING``/``BINSTRING``), as the
    cPickle that wrote the CIFAR archives did, instead of Python 3's ``_codecs.encode`` calls."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_python2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_python2_string
    dispatch[bytes] = save_python2_string


def _dump_python2(obj: object, path) -> None:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    # the archives were pickled by NumPy 1.x, which names ndarray's rebuild function this way
    path.write_bytes(buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


def write_cifar_files(root, name: str = "cifar10", num_train: int = 500, num_test: int = 100):
    """Write ``root/<folder>/...`` pickles laid out as the official CIFAR archive (dicts with bytes
    keys, ``b"data"`` uint8 ``[n, 3072]`` channel-major, protocol 2). Deterministic; each class is a
    noisy copy of its own random prototype image, so a short training run can learn it."""
    folder, train_files, test_file, num_classes = _CIFAR_FILES[name]
    rng = np.random.default_rng(0 if name == "cifar10" else 1)
    prototypes = rng.integers(0, 256, (num_classes, 3072))
    path = Path(root) / folder
    path.mkdir(parents=True, exist_ok=True)

    def batch(n: int, label: str) -> dict:
        labels = rng.integers(0, num_classes, n)
        data = (prototypes[labels] + rng.integers(0, 256, (n, 3072))) // 2
        content = {
            b"batch_label": label.encode(),
            b"data": data.astype(np.uint8),
            b"filenames": [f"image_{label[-6:]}_{k}.png".encode() for k in range(n)],
        }
        if name == "cifar10":
            content[b"labels"] = labels.tolist()
        else:
            content[b"fine_labels"] = labels.tolist()
            content[b"coarse_labels"] = (labels // 5).tolist()
        return content

    for k, n in enumerate(np.array_split(np.arange(num_train), len(train_files))):
        label = f"training batch {k + 1} of {len(train_files)}" if name == "cifar10" else "training"
        _dump_python2(batch(len(n), label), path / train_files[k])
    _dump_python2(
        batch(num_test, "testing batch 1 of 1" if name == "cifar10" else "testing"), path / test_file
    )
    if name == "cifar10":
        _dump_python2(
            {
                b"label_names": [f"class{c}".encode() for c in range(10)],
                b"num_cases_per_batch": 10000,
                b"num_vis": 3072,
            },
            path / "batches.meta",
        )
    else:
        _dump_python2(
            {
                b"fine_label_names": [f"fine{c}".encode() for c in range(100)],
                b"coarse_label_names": [f"coarse{c}".encode() for c in range(20)],
            },
            path / "meta",
        )
    return Path(root)


_WORDS = (
    "the",
    "of",
    "and",
    "in",
    "was",
    "to",
    "a",
    "game",
    "season",
    "river",
    "album",
    "first",
    "Valkyria",
    "Senjō",
    "1 @,@ 000",
    "2 @.@ 5",
    "north @-@ east",
    "(",
    ")",
    "'s",
    "–",
    "song",
)


def _wikitext_article(rng: random.Random) -> str:
    def paragraph() -> str:
        sentences = [
            " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 16))).capitalize() + " ."
            for _ in range(rng.randint(2, 5))
        ]
        return " " + " ".join(sentences) + " \n"

    title = " ".join(rng.choice(_WORDS[7:14]) for _ in range(2)).title()
    lines = [" \n", f" = {title} = \n", " \n", paragraph(), " \n"]
    for section in range(rng.randint(1, 2)):
        lines += [f" = = Section {section + 1} = = \n", " \n", paragraph(), paragraph()]
    return "".join(lines)


def write_wikitext_files(root, num_train_articles: int = 20, num_eval_articles: int = 4):
    """Write ``root/wikitext-103-raw/wiki.{train,valid,test}.raw``: a few KB of deterministic
    WikiText-like text (`` = Title = `` headings, `` @-@ `` joins, one space before each line)."""
    rng = random.Random(0)
    path = Path(root) / "wikitext-103-raw"
    path.mkdir(parents=True, exist_ok=True)
    for split, count in (
        ("train", num_train_articles),
        ("valid", num_eval_articles),
        ("test", num_eval_articles),
    ):
        text = "".join(_wikitext_article(rng) for _ in range(count))
        (path / f"wiki.{split}.raw").write_text(text, encoding="utf-8", newline="")
    return Path(root)


@pytest.fixture
def write_cifar():
    """``write_cifar(root, name="cifar10", num_train=500, num_test=100) -> root``: CIFAR files in the
    official layout (see :func:`write_cifar_files`)."""
    return write_cifar_files


@pytest.fixture
def write_wikitext():
    """``write_wikitext(root, num_train_articles=20, num_eval_articles=4) -> root``: WikiText-103 raw
    files in the official layout (see :func:`write_wikitext_files`)."""
    return write_wikitext_files
