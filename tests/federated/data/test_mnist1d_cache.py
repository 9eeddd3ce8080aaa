"""The MNIST-1D cache (federated/data/datasets.py): a cache path that is a directory is one clear
line naming it, with no temporary file left behind (issue 27, item 5); a cache made by another
mnist1d version, with other settings or by another recipe is never read (issue 28)."""

import json
import os
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from federated.cli import main
from federated.config import load_config
from federated.data import datasets
from federated.data.datasets import load_mnist1d
from federated.data.errors import DataError

SAMPLES = 200  # the smallest run that takes a second to generate
NAME = f"mnist1d_n{SAMPLES}_test0.2.npz"


def _config(root: Path):
    return load_config(None, [f"data.root={root}", f"data.num_samples={SAMPLES}"]).data


@pytest.fixture(scope="module")
def record() -> dict:
    """What a cache made now must record: the recipe, the mnist1d version, every generation argument
    but the package's download address (its defaults, with this sample count and split)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    del args["url"]
    args.update(num_samples=SAMPLES, train_split=0.8)
    return {"recipe": 1, "mnist1d": metadata.version("mnist1d"), "args": args}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, np.ndarray]:
    """The arrays of a cache generated now, in a folder of its own."""
    root = tmp_path_factory.mktemp("reference")
    load_mnist1d(_config(root))
    with np.load(root / NAME, allow_pickle=False) as raw:
        return {key: raw[key] for key in ("x", "y", "x_test", "y_test")}


def _write_cache(path: Path, arrays: dict[str, np.ndarray], record: dict | None) -> None:
    """A cache in the format load_mnist1d writes (``record``: its settings; None: an older cache,
    without them), holding other data than the real: reversed signals, shifted labels."""
    fake = {"x": arrays["x"][:, ::-1], "y": (arrays["y"] + 1) % 10}
    fake |= {"x_test": arrays["x_test"][:, ::-1], "y_test": (arrays["y_test"] + 1) % 10}
    settings = {} if record is None else {"settings": np.array(json.dumps(record, sort_keys=True))}
    np.savez(path, **fake, **settings)


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != NAME)


# ----------------------------------------------------------------------- a cache path that is a directory
def test_a_cache_path_that_is_a_directory_is_refused_naming_it(tmp_path):
    """It used to generate the data, then fail with "Is a directory" naming the temporary file
    (.mnist1d_n200_test0.2.<pid>.npz), which it left behind."""
    (tmp_path / NAME).mkdir()
    with pytest.raises(DataError, match=rf"^the MNIST-1D cache {tmp_path / NAME} is a directory: remove"):
        load_mnist1d(_config(tmp_path))
    assert _leftovers(tmp_path) == []


def test_a_data_root_that_is_a_file_is_refused_before_generating(tmp_path):
    """It used to generate the data, then fail to make the folder ("File exists")."""
    root = tmp_path / "data"
    root.write_text("not a folder")
    with pytest.raises(DataError, match=rf"^data.root {root} is not a directory"):
        load_mnist1d(_config(root))
    assert root.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_laser_run_with_a_cache_path_that_is_a_directory_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "data"
    (root / NAME).mkdir(parents=True)
    argv = [
        "run",
        "data.name=mnist1d",
        f"data.num_samples={SAMPLES}",
        f"data.root={root}",
        "model.name=linear",
    ]
    assert main([*argv, "clients.num_clients=2", "rounds=1", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"the MNIST-1D cache {root / NAME} is a directory" in err, err
    assert _leftovers(root) == []


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A full disk half-way through the cache: the error is the disk's, the folder as it was."""

    def half_written(file, **arrays):
        if isinstance(file, (str, os.PathLike)):
            file = open(file, "wb")  # closed below
        file.write(b"PK\x03\x04 half")
        file.close()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datasets.np, "savez", half_written)
    with pytest.raises(OSError, match="No space left on device"):
        load_mnist1d(_config(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ----------------------------------------------------------------------- caches made otherwise (issue 28)
@pytest.mark.parametrize(
    "change, reason",
    [
        ({"mnist1d": "0.0.1"}, r"made by mnist1d 0\.0\.1, not "),
        ({"args": {"num_samples": 300}}, r"made with other settings \(num_samples 300"),
        ({"args": {"train_split": 0.5}}, r"made with other settings \(.*train_split 0\.5\)"),
        ({"recipe": 0}, r"made by another recipe \(0, this is 1\)"),
        (None, r"made without a record of its mnist1d version and settings \(an older cache\)"),
    ],
    ids=["another mnist1d version", "other sample count", "other split", "another recipe", "no record"],
)
def test_a_cache_made_otherwise_is_never_read(tmp_path, capsys, reference, record, change, reason):
    """The file name keys only the sample count and test fraction; such a cache (say, renamed or
    written by another mnist1d) used to be read as if it were this one. It is generated again (a
    cache is a copy, never the source: regenerating is what a user expects, and costs seconds), and
    the new one records what made it."""
    arrays = reference
    if change is None:
        made = None
    else:
        made = json.loads(json.dumps(record))
        for key, value in change.items():
            made[key] = {**made[key], **value} if isinstance(value, dict) else value
    _write_cache(tmp_path / NAME, arrays, made)
    data = load_mnist1d(_config(tmp_path))
    out = capsys.readouterr().out
    assert out.count(f"generating MNIST-1D ({SAMPLES} samples)") == 1 and re.search(reason, out), out
    with np.load(tmp_path / NAME, allow_pickle=False) as raw:
        for key in ("x", "y", "x_test", "y_test"):
            assert np.array_equal(raw[key], arrays[key]), key  # the real data, bit for bit
        assert json.loads(str(raw["settings"])) == record
    assert torch.equal(data.y_train, torch.as_tensor(arrays["y"]))
    assert _leftovers(tmp_path) == []


def test_a_cache_made_by_this_version_with_these_settings_is_read(tmp_path, capsys, reference, record):
    """Not generated again: what it holds is what the run gets (here, the altered copy)."""
    load_mnist1d(_config(tmp_path))
    with np.load(tmp_path / NAME, allow_pickle=False) as raw:
        assert json.loads(str(raw["settings"])) == record  # what it records
    capsys.readouterr()
    _write_cache(tmp_path / NAME, reference, record)
    data = load_mnist1d(_config(tmp_path))
    assert "generating" not in capsys.readouterr().out
    assert torch.equal(data.y_train, torch.as_tensor((reference["y"] + 1) % 10))
