"""CIFAR files read back exactly, the restricted unpickler, downloads from file:// archives, and the
augmentation against a per-image reference."""

import dataclasses
import hashlib
import io
import os
import pickle
import sys
import tarfile

import numpy as np
import pytest
import torch

from federated.data import cifar
from federated.data.cifar import (
    CIFAR_MEAN,
    CIFAR_STD,
    augment,
    download_cifar,
    load_cifar,
    normalize,
)
from federated.data.errors import DataError


def _trusted_load(path):
    with open(path, "rb") as file:
        return pickle.load(file, encoding="bytes")  # our own fixture file: plain pickle is fine here


# --- reading ------------------------------------------------------------------------------------------


def test_cifar10_pixels_are_channel_major_and_labels_match(tmp_path, write_cifar):
    root = write_cifar(tmp_path, "cifar10", num_train=50, num_test=20)
    folder = root / "cifar-10-batches-py"
    test_batch = _trusted_load(folder / "test_batch")
    test_batch[b"data"][:] = 0
    test_batch[b"data"][3, 2 * 1024 + 5 * 32 + 7] = 200  # blue plane, row 5, column 7 of image 3
    (folder / "test_batch").write_bytes(pickle.dumps(test_batch, protocol=4))  # a Python 3 pickle too

    data = load_cifar(root, "cifar10", download=False)
    assert data.num_classes == 10
    assert data.x_train.shape == (50, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.x_test.shape == (20, 3, 32, 32) and data.y_test.dtype == torch.int64
    assert data.x_test[3, 2, 5, 7] == 200 and data.x_test.sum() == 200

    batches = [_trusted_load(folder / f"data_batch_{k}") for k in range(1, 6)]
    raw = np.concatenate([b[b"data"] for b in batches])
    k, c, i, j = 17, 1, 30, 4
    assert data.x_train[k, c, i, j] == raw[k, c * 1024 + i * 32 + j]
    assert np.array_equal(data.x_train.reshape(50, -1).numpy(), raw)
    assert data.y_train.tolist() == [label for b in batches for label in b[b"labels"]]
    assert data.y_test.tolist() == test_batch[b"labels"]


def test_cifar100_uses_fine_labels(tmp_path, write_cifar):
    root = write_cifar(tmp_path, "cifar100", num_train=30, num_test=10)
    data = load_cifar(root, "cifar100", download=False)
    raw = _trusted_load(root / "cifar-100-python" / "train")
    assert data.num_classes == 100 and data.x_train.shape == (30, 3, 32, 32)
    assert data.y_train.tolist() == raw[b"fine_labels"] != raw[b"coarse_labels"]
    assert np.array_equal(data.x_train.reshape(30, -1).numpy(), raw[b"data"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({b"data": np.zeros((10, 3071), np.uint8)}, "uint8 array"),
        ({b"data": np.zeros((10, 3072), np.float32)}, "uint8 array"),
        ({b"labels": [0] * 9}, "must hold 10 integers"),
        ({b"labels": [10] * 10}, "must hold 10 integers"),
        ({b"fine_labels": [0] * 10}, "expected a dict"),
    ],
)
def test_malformed_batch_is_a_data_error_naming_the_file(tmp_path, write_cifar, change, message):
    root = write_cifar(tmp_path, "cifar10", num_train=50, num_test=10)
    path = root / "cifar-10-batches-py" / "test_batch"
    batch = {
        key: value
        for key, value in _trusted_load(path).items()
        if b"fine_labels" not in change or key != b"labels"
    }
    path.write_bytes(pickle.dumps({**batch, **change}, protocol=4))
    with pytest.raises(DataError, match=f"test_batch.*{message}"):
        load_cifar(root, "cifar10", download=False)


class _Exploit:
    def __reduce__(self):
        return os.system, ("true",)


def test_unpickler_refuses_code_without_running_it(tmp_path, write_cifar, monkeypatch):
    root = write_cifar(tmp_path, "cifar10", num_train=50, num_test=10)
    path = root / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}, protocol=4))
    calls = []
    monkeypatch.setattr(sys.modules[os.system.__module__], "system", lambda *args: calls.append(args))
    with pytest.raises(DataError, match=r"data_batch_1.*refusing to load the global \w+\.system"):
        load_cifar(root, "cifar10", download=False)
    assert calls == []
    pickle.loads(path.read_bytes())  # a plain unpickler would have run it (the patched one)
    assert calls == [("true",)]


# --- downloading --------------------------------------------------------------------------------------


def _tar_gz(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _cifar_archive(tmp_path, write_cifar, name="cifar10"):
    source = write_cifar(tmp_path / "source", name, num_train=50, num_test=10)
    folder = cifar._LAYOUTS[name].folder
    members = {f"{folder}/{p.name}": p.read_bytes() for p in sorted((source / folder).iterdir())}
    archive = _tar_gz(tmp_path / "archive.tar.gz", members)
    return archive, hashlib.md5(archive.read_bytes()).hexdigest(), source


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_download_from_file_url_unpacks_the_archive(tmp_path, write_cifar, monkeypatch, name):
    archive, md5, source = _cifar_archive(tmp_path, write_cifar, name)
    layout = cifar._LAYOUTS[name]
    monkeypatch.setitem(cifar._LAYOUTS, name, dataclasses.replace(layout, url=archive.as_uri(), md5=md5))
    root = tmp_path / "data"
    data = load_cifar(root, name, download=True)
    expected = load_cifar(source, name, download=False)
    assert torch.equal(data.x_train, expected.x_train) and torch.equal(data.y_test, expected.y_test)
    assert sorted(p.name for p in root.iterdir()) == [layout.folder]  # no archive or scratch left


def test_wrong_md5_raises_and_leaves_nothing(tmp_path, write_cifar):
    archive, _, _ = _cifar_archive(tmp_path, write_cifar)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="MD5"):
        download_cifar(root, "cifar10", url=archive.as_uri(), md5="0" * 32)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("member", ["../evil", "/tmp/evil", "cifar-10-batches-py/../../evil"])
def test_members_outside_the_root_are_refused(tmp_path, member):
    archive = _tar_gz(tmp_path / "bad.tar.gz", {"cifar-10-batches-py/test_batch": b"x", member: b"x"})
    root = tmp_path / "a" / "data"
    with pytest.raises(DataError, match="refusing to unpack"):
        download_cifar(
            root, "cifar10", url=archive.as_uri(), md5=hashlib.md5(archive.read_bytes()).hexdigest()
        )
    assert list(root.iterdir()) == [] and not (tmp_path / "a" / "evil").exists()


def test_missing_data_without_download_names_directory_and_url(tmp_path):
    with pytest.raises(DataError) as error:
        load_cifar(tmp_path, "cifar100", download=False)
    assert str(tmp_path / "cifar-100-python") in str(error.value)
    assert cifar.CIFAR100_URL in str(error.value)


def test_unreachable_url_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        download_cifar(tmp_path, "cifar10", url=(tmp_path / "absent.tar.gz").as_uri())
    assert list(tmp_path.iterdir()) == []


# --- augmentation -------------------------------------------------------------------------------------


def _reference(image, top: int, left: int, flip: bool):
    """torchvision's order, one image: zero-pad by 4, crop at (top, left), maybe flip, normalise."""
    padded = torch.zeros(3, 40, 40, dtype=torch.uint8)
    padded[:, 4:36, 4:36] = image
    window = padded[:, top : top + 32, left : left + 32]
    return normalize((window.flip(-1) if flip else window)[None])[0]


def test_normalize_matches_the_formula():
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=torch.float64).view(3, 1, 1)
    torch.testing.assert_close(normalize(x).double(), (x.double() / 255 - mean) / std, rtol=0, atol=1e-6)


def test_every_augmented_image_is_one_normalised_window(generator):
    x = torch.randint(1, 256, (24, 3, 32, 32), generator=generator, dtype=torch.uint8)
    out = augment(x, generator)
    for image, result in zip(x, out):
        matches = [
            (top, left, flip)
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
            if torch.equal(_reference(image, top, left, flip), result)
        ]
        assert len(matches) == 1


def _decode_offsets(out):
    """Offsets of augmented copies of an image whose pixel (i, j) holds (i + 1, j + 1, 0): the centre
    pixel (16, 16) of the window comes from image row top + 12 and column left + 12 (left + 11 when
    flipped, since the output column 16 is then the window's column 15)."""
    pixels = torch.round(
        out * torch.tensor(CIFAR_STD).view(3, 1, 1) * 255 + torch.tensor(CIFAR_MEAN).view(3, 1, 1) * 255
    ).long()
    flip = pixels[:, 1, 16, 17] < pixels[:, 1, 16, 16]
    top = pixels[:, 0, 16, 16] - 1 - 12
    left = pixels[:, 1, 16, 16] - 1 - 12 + flip.long()
    return top, left, flip


def test_offsets_are_uniform_on_0_to_8_and_flips_half(generator):
    n = 4096
    steps = torch.arange(1, 33, dtype=torch.uint8)
    image = torch.stack(
        [steps[:, None].expand(32, 32), steps[None, :].expand(32, 32), torch.zeros(32, 32, dtype=torch.uint8)]
    )
    top, left, flip = _decode_offsets(augment(image.expand(n, 3, 32, 32), generator))
    p = 1 / 9
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9  # nothing outside 0..8
        assert (counts - n * p).abs().max() < 5 * (n * p * (1 - p)) ** 0.5  # 5 sigma: ~100 of 455
    assert abs(flip.double().mean() - 0.5) < 5 * 0.5 / n**0.5  # 5 sigma: 0.039


def test_augment_uses_only_its_generator():
    x = torch.randint(0, 256, (16, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    torch.manual_seed(0)
    first = augment(x, torch.Generator().manual_seed(5))
    torch.manual_seed(1)
    state = torch.get_rng_state()
    second = augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(first, second) and torch.equal(torch.get_rng_state(), state)


def test_a_failed_download_does_not_suggest_the_download_it_just_tried(tmp_path, monkeypatch):
    layout = cifar._LAYOUTS["cifar10"]
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    monkeypatch.setitem(cifar._LAYOUTS, "cifar10", dataclasses.replace(layout, url=missing))
    with pytest.raises(DataError) as error:
        load_cifar(tmp_path / "data", "cifar10", download=True)
    message = str(error.value)
    assert "nowhere.tar.gz" in message and "download=true" not in message.lower()
    with pytest.raises(DataError) as error:  # not tried: the download is the first suggestion
        load_cifar(tmp_path / "data", "cifar10", download=False)
    assert "data.download=true" in str(error.value)
