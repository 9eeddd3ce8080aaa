"""Nothing lost, nothing silently wrong: each case of the robustness review (numbered by the item of
its list, 1 to 8; the channels' own cases, item 7, are in tests/channels/test_refusals.py; malformed
CIFAR batches and the WikiText md5 are in tests/federated/data) gets one line naming the file, key or
argument, exit status 2 for refused input, and never touches a user's results."""

import errno
import json
import os
import time
from pathlib import Path

import pytest
import torch

from federated.cli import main
from federated.outputs import RunDirectory

TINY = ["data.name=digits", "model.name=linear", "clients.num_clients=2", "rounds=4", "checkpoint_every=2"]


def _run(out: Path, *extra: str) -> int:
    return main(["run", *TINY, *extra, "--out", str(out), "--quiet"])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "run"
    assert _run(out) == 0
    return out


# ---------------------------------------------------------------------- 1 a run is never overwritten
def test_1_a_second_run_into_a_run_directory_is_refused(finished, capsys):
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    assert _run(finished, "seed=1") == 2
    err = _one_line(capsys)
    assert "--resume" in err and "--overwrite" in err and str(finished) in err
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before
    assert _run(finished, "seed=1", "--overwrite") == 0  # replacing it is a choice
    assert json.loads((finished / "summary.json").read_text())["status"] == "finished"


# ----------------------------------------------------------------- 2 a damaged checkpoint is refused
def test_2_a_checkpoint_with_flipped_bytes_is_refused(finished, capsys):
    path = finished / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    weight = torch.load(path, weights_only=True)["model"]["linear.weight"]
    at = data.find(weight.numpy().tobytes()[:16])
    assert at > 0
    data[at + 5] ^= 0xFF  # inside the tensor: torch.load would read it without a word
    path.write_bytes(bytes(data))
    (finished / "summary.json").unlink()
    history = (finished / "history.jsonl").read_bytes()
    assert main(["run", "--resume", str(finished), "--quiet"]) == 2
    assert "CRC-32" in _one_line(capsys)
    assert (finished / "history.jsonl").read_bytes() == history


# --------------------------------------------------------- 3 a checkpoint that is not a regular file
@pytest.mark.parametrize("kind", ["directory", "dangling link"])
def test_3_a_checkpoint_that_is_not_a_file_is_refused_and_the_history_kept(finished, capsys, kind):
    path = finished / "checkpoint.pt"
    path.unlink()
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(finished / "nowhere.pt")
    (finished / "summary.json").unlink()
    history = (finished / "history.jsonl").read_bytes()
    assert main(["run", "--resume", str(finished), "--quiet"]) == 2
    assert "not a regular file" in _one_line(capsys)
    assert (finished / "history.jsonl").read_bytes() == history


# ------------------------------------------------------------------------------ 4 bounded inputs
def test_4_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\nseed: *a8\n")
    started = time.perf_counter()
    assert main(["run", str(tmp_path / "bomb.yaml")]) == 2
    assert time.perf_counter() - started < 5
    assert "anchors or aliases" in _one_line(capsys)
    assert main(["run", *TINY, "seed=&x 3", "--out", str(tmp_path / "r")]) == 2
    assert "anchors or aliases" in _one_line(capsys)


def test_4_a_huge_grid_is_refused_before_it_is_built(tmp_path, capsys):
    started = time.perf_counter()
    assert (
        main(["sweep", "configs/digits_laser.yaml", "--grid", "seed=range:300000000", "--out", str(tmp_path)])
        == 2
    )
    assert time.perf_counter() - started < 5 and "--max-points" in _one_line(capsys)


def test_4_messages_show_values_bounded(capsys):
    assert main(["run", *TINY, "compressor.name=" + "x" * 100_000]) == 2
    assert len(_one_line(capsys)) < 600


# ---------------------------------------------------------------------------- 5 no tracebacks
def test_5_a_damaged_summary_does_not_stop_a_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    (out / "summary.json").write_text("{not json")
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_5_bad_yaml_in_an_override_is_one_line_and_stays_local_in_a_sweep(tmp_path, capsys):
    assert main(["run", *TINY, "seed=[1", "--out", str(tmp_path / "r")]) == 2
    assert "seed" in _one_line(capsys)
    code = main(
        [
            "sweep",
            "configs/digits_laser.yaml",
            "rounds=2",
            "--grid",
            "seed=0,[1",
            "--out",
            str(tmp_path / "s"),
            "--quiet",
        ]
    )
    assert code == 2  # the refused point is reported; the other ran
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())["points"]
    assert {p["status"] for p in manifest.values()} == {"finished", "bad_input"}


def test_5_a_damaged_mnist1d_cache_is_rebuilt(tmp_path):
    from federated.config import load_config
    from federated.data.datasets import load_mnist1d

    config = load_config(None, [f"data.root={tmp_path}", "data.num_samples=200"]).data
    first = load_mnist1d(config)
    cache = next(tmp_path.glob("mnist1d_*.npz"))
    cache.write_bytes(cache.read_bytes()[:100])  # truncated
    again = load_mnist1d(config)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)


@pytest.mark.parametrize("damage", ["missing key", "wrong shape", "wrong round", "far round"])
def test_5_and_6_a_hand_made_checkpoint_is_refused(finished, capsys, damage):
    path = finished / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    if damage == "missing key":
        del state["optimizer"]
    elif damage == "wrong shape":
        state["model"]["linear.weight"] = torch.zeros(3, 3)
    else:
        state["round"] = -50 if damage == "wrong round" else 10**6
    torch.save(state, path)
    (finished / "summary.json").unlink()
    history = (finished / "history.jsonl").read_bytes()
    assert main(["run", "--resume", str(finished), "--quiet"]) == 2
    err = _one_line(capsys)
    assert str(path) in err and ("optimizer" in err or "linear.weight" in err or "round" in err)
    assert (finished / "history.jsonl").read_bytes() == history


def test_5_a_sweep_record_of_another_shape_is_kept_aside(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.json").write_text("[1, 2, 3]")
    assert main(["sweep", "configs/digits_laser.yaml", "rounds=2", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "sweep.json").read_text())["points"]
    assert len(list(out.glob("sweep.json.unreadable-*"))) == 1


# ----------------------------------------------------------------------- 6 refused, not accepted
@pytest.mark.parametrize(
    "override, key",
    [
        ("rounds=1000000000000", "rounds"),
        ("data.num_samples=100000000000", "num_samples"),
        ("model.width=1000000000", "model"),
    ],
)
def test_6_sizes_that_cannot_fit_are_refused_up_front(tmp_path, capsys, override, key):
    assert main(["run", "data.name=mnist1d", "model.name=mlp", override, "--out", str(tmp_path / "r")]) == 2
    err = _one_line(capsys)
    assert key in err
    if key == "model":
        assert "GB" in err  # the estimate is named


def test_6_equal_grid_values_are_one_point_and_nan_targets_are_refused(tmp_path, capsys):
    from federated.experiments.plan import plan_sweep

    points = plan_sweep(["configs/digits_laser.yaml"], ["seed=0,0.0,1"], tmp_path)
    assert [p.path.name for p in points] == ["seed=0", "seed=1"]
    assert "seed=0.0" in capsys.readouterr().err
    assert main(["sweep", "configs/digits_laser.yaml", "--target", "nan", "--out", str(tmp_path)]) == 2
    assert "--target" in _one_line(capsys)


# ------------------------------------------------------------------------------ 8 clear messages
def test_8_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    run = RunDirectory(tmp_path / "run", {"seed": 0})
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as error:
        run.finish({"status": "finished"})
    assert "summary.json" in str(error.value.filename)
    monkeypatch.undo()
    assert not list((tmp_path / "run").glob(".*.tmp"))  # the temporary file is gone


def test_8_an_unreadable_checkpoint_says_so(finished, capsys):
    (finished / "checkpoint.pt").write_bytes((finished / "checkpoint.pt").read_bytes()[:200])
    (finished / "summary.json").unlink()
    assert main(["run", "--resume", str(finished), "--quiet"]) == 2
    err = _one_line(capsys)
    assert "cannot read the checkpoint" in err and "index out of range" not in err


def test_8_a_bad_plot_axis_blames_the_axis(finished, capsys):
    assert main(["plot", str(finished.parent), "--x", "bogus.key"]) == 2
    assert "--x" in _one_line(capsys)


def test_8_a_refused_archive_member_names_the_url_not_the_download(tmp_path):
    import tarfile

    from federated.data.archives import unpack
    from federated.data.errors import DataError

    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (tmp_path / "root").mkdir()
    with pytest.raises(DataError) as error:
        unpack(archive, tmp_path / "root", "cifar-10-batches-py", source="https://example.org/cifar.tar.gz")
    assert "https://example.org/cifar.tar.gz" in str(error.value) and "neither a zip" not in str(error.value)
