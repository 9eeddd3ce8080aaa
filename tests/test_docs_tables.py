"""The documented tables are generated from their data (docs/tables.py): every table with data in
docs/data/ is as the script writes it, the data stays within its size budget and layout, every
typed table carries its mark, the specs' commands make the specs' rows, the collector refuses what
it must, and the formatting of a small synthetic set of runs is exactly the expected Markdown (its
intervals computed by hand from scipy's t quantiles)."""

import importlib.util
import json
import math
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scipy.stats import t as student_t

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


T = _load("docs_tables", ROOT / "docs" / "tables.py")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# what summary.json records of the machine (federated.reproducible.environment(), in part)
HERE = {"torch": "2.13.0", "kernel_fingerprint": "f00d", "cpu": "Test CPU"}


# ------------------------------------------------------------------------- synthetic runs
def _nest(flat: dict) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        *sections, last = key.split(".")
        node = tree
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return tree


def write_run(folder: Path, config: dict, summary: dict, rows: list[dict]) -> Path:
    """A run directory as `laser run` writes it (config.yaml from a flat dict, summary.json, history)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(_nest(config), sort_keys=False))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def synthetic_run(
    folder: Path,
    compressor: str,
    channel: str,
    seed: int,
    accuracy: float | None,
    *,
    uses: int = 28_298,
    noise: float = 0.0,
    rounds: int = 10,
    environment: dict | None = HERE,
    data: str = "digits",
    pad: int = 0,
) -> Path:
    """One synthetic run: finished with ``accuracy``, or (None) diverged in round 7."""
    config = {
        "seed": seed,
        "rounds": rounds,
        "data.name": data,
        "data.root": f"/somewhere/{seed}",  # how a run ran: ignored when runs are grouped
        "compressor.name": compressor,
        "channel.name": channel,
        "power.energy": 100.0,
    }
    done = rounds if accuracy is not None else 7
    rows = [{"round": r, "train_loss": 1.0, "channel_uses": uses, "pad": "x" * pad} for r in range(done)]
    for r in rows[4::5]:
        r["test_accuracy"] = accuracy if accuracy is not None else 0.1
    summary = {
        "rounds": done,
        "test_accuracy": accuracy if accuracy is not None else 0.1,
        "channel_uses_total": uses * done,
        "noise_var_mean": noise,
        "status": "finished" if accuracy is not None else "diverged",
        "wall_time_s": 1.5 + seed,
    }
    if accuracy is None:
        summary["error"] = "round 7: the training loss is not finite (NaN or inf); the run stopped here"
    if environment is not None:
        summary["environment"] = environment
    return write_run(folder, config, summary, rows)


SPEC = T.Table(
    name="synthetic",
    files=("page.md",),
    caption="Synthetic runs.",
    where={"data.name": "digits"},
    rows=(
        T.Row("noiseless", "noiseless", {"compressor.name": "zsgd", "channel.name": "noiseless"}),
        T.Row("laser", "LASER", {"compressor.name": "laser", "channel.name": "awgn"}),
        T.Row("zsgd", "Z-SGD", {"compressor.name": "zsgd", "channel.name": "awgn"}),
    ),
    columns=(
        *T.ACCURACY_COLUMNS,
        T.Column("real channel uses per round", "mean", "channel_uses"),
        T.Column("mean per-entry noise variance", "mean", "noise_var"),
    ),
    commands=("laser sweep synthetic.yaml --grid seed=0,1,2 --out runs/synthetic",),
    paired=(T.Paired("noiseless", "laser"), T.Paired("laser", "zsgd")),
    spread="test_accuracy",
)
ACCURACIES = {  # row: (compressor, channel, accuracies of seeds 0, 1, 2 (None: diverged), uses, noise)
    "noiseless": ("zsgd", "noiseless", (0.90, 0.95, 1.00), 28_298, (0.0, 0.0, 0.0)),
    "laser": ("laser", "awgn", (0.80, 0.84, 0.88), 2_024, (3.7e-4, 3.9e-4, 3.5e-4)),
    "zsgd": ("zsgd", "awgn", (0.70, 0.76, None), 28_298, (2.0e-3, 2.2e-3, 0.0)),
}
MANIFEST = {
    "commit": COMMIT,
    "packages": {"torch": "2.13.0"},
    "machine": {"cpu_model": "Test CPU", "cores": 2},
    "kernel_fingerprint": "abcd",
    "commands": list(SPEC.commands),
}


def synthetic_sweep(root: Path, environment: dict | None = HERE) -> Path:
    for row, (compressor, channel, accuracies, uses, noises) in ACCURACIES.items():
        for seed, (accuracy, noise) in enumerate(zip(accuracies, noises)):
            folder = root / row / f"seed={seed}"
            synthetic_run(
                folder, compressor, channel, seed, accuracy, uses=uses, noise=noise, environment=environment
            )
    return root


def synthetic_records(tmp_path: Path) -> list:
    sweep = synthetic_sweep(tmp_path / "sweep")
    return [T.read_record(p, p.relative_to(sweep).as_posix()) for p in T.find_runs(sweep)]


EXPECTED = """\
<!-- generated by `python docs/tables.py` from docs/data/synthetic/ and its spec in docs/tables.py: edit those, not these lines -->

Synthetic runs.

| run | test accuracy (%), mean ± 95% CI | per seed (0, 1, 2) | sd | seeds (diverged) | real channel uses per round | mean per-entry noise variance |
|---|---|---|---|---|---|---|
| noiseless | 95.0 ± 12.4 | 90.0, 95.0, 100.0 | 5.0 | 3 | 28,298 | 0 |
| LASER | 84.0 ± 9.9 | 80.0, 84.0, 88.0 | 4.0 | 3 | 2,024 | 3.7e-4 |
| Z-SGD | 73.0 ± 38.1 | 70.0, 76.0, diverged | 4.2 | 3 (1 diverged: round 7) | 28,298 | 2.1e-3 |

| paired by seed (same seed: same data split and initialisation) | seeds | mean difference | 95% interval (paired t, n - 1 df) | excludes 0 |
|---|---|---|---|---|
| noiseless − LASER, test accuracy (points) | 0, 1, 2 | +11.0 | [+8.5, +13.5] | yes |
| LASER − Z-SGD, test accuracy (points) | 0, 1 (left out: 2) | +9.0 | [-3.7, +21.7] | no |

How much one seed varies (test accuracy, points): the sd over the seeds is 5.0 (noiseless), 4.0 (LASER), 4.2 (Z-SGD); one more run lands within the mean ± 24.8 (noiseless), 19.9 (LASER), 66.0 (Z-SGD) 95% of the time (the prediction interval t · sd · √(1 + 1/n), √(n + 1) times as wide as the interval of the mean).

Data: `docs/data/synthetic/`, 9 runs made at commit 0123456, torch 2.13.0, Test CPU (2 cores), kernel fingerprint abcd. `python docs/reproduce.py --table synthetic` re-runs a sample of them and compares.

```bash
laser sweep synthetic.yaml --grid seed=0,1,2 --out runs/synthetic
```"""  # noqa: E501 (Markdown lines as written)


# --------------------------------------------------------------------------- formatting
def test_the_t_quantiles_are_scipys():
    """The intervals of EXPECTED, computed by hand: t_{0.975,2} = 4.3027 (3 seeds), t_{0.975,1} = 12.706."""
    assert T.t975(3) == pytest.approx(4.3026527297, abs=1e-9)  # the tables' t_{0.975, 2} and t_{0.975, 1}
    assert T.t975(2) == pytest.approx(12.7062047362, abs=1e-9)
    assert T.t975(3) == float(student_t.ppf(0.975, 2))
    # noiseless: sd 5 points, half-width 4.3027 * 5 / sqrt(3) = 12.42;
    # prediction 4.3027 * 5 * sqrt(4/3) = 24.84
    s = T.stats([0.90, 0.95, 1.00])
    assert (s.sd, s.half, s.predict) == pytest.approx((0.05, 0.1242069, 0.2484138), abs=1e-7)
    # Z-SGD: seeds 70, 76: sd 4.243, half-width 12.706 * 4.243 / sqrt(2) = 38.12, prediction 66.02
    s = T.stats([0.70, 0.76])
    assert (s.sd, s.half, s.predict) == pytest.approx((0.0424264, 0.3811861, 0.6602338), abs=1e-7)
    # paired differences 10, 11, 12 points: mean 11, half-width 4.3027 / sqrt(3) = 2.484 -> [8.52, 13.48]
    s = T.stats([0.10, 0.11, 0.12])
    assert (s.mean - s.half, s.mean + s.half) == pytest.approx((0.0851586, 0.1348414), abs=1e-7)
    # 10 and 8 points: mean 9, half-width 12.706 * sqrt(2) / sqrt(2) = 12.706 -> [-3.71, 21.71]
    s = T.stats([0.10, 0.08])
    assert (s.mean - s.half, s.mean + s.half) == pytest.approx((-0.0370620, 0.2170620), abs=1e-7)


def test_a_synthetic_table_renders_as_expected(tmp_path):
    """Three rows, one diverged seed (left out of the mean and of the pairing, counted with its
    round), two paired comparisons (one excludes 0, one does not), the spread sentence."""
    assert T.render(SPEC, MANIFEST, synthetic_records(tmp_path)) == EXPECTED


def test_one_finished_seed_and_none(tmp_path):
    records = synthetic_records(tmp_path)
    for r in records:  # Z-SGD: seed 0 diverges too, then seed 1 as well
        if r.config["compressor.name"] == "zsgd" and r.config["channel.name"] == "awgn":
            r.summary["status"] = "diverged" if r.seed in (0, 2) else "finished"
    line = next(x for x in T.render(SPEC, MANIFEST, records).splitlines() if x.startswith("| Z-SGD"))
    assert line.startswith("| Z-SGD | 76.0 (one seed) | diverged, 76.0, diverged | - | 3 (2 diverged: round")
    for r in records:
        if r.config["compressor.name"] == "zsgd" and r.config["channel.name"] == "awgn":
            r.summary["status"] = "diverged"
    text = T.render(SPEC, MANIFEST, records)
    assert "| Z-SGD | diverged (3/3) | diverged, diverged, diverged | - |" in text
    assert "| LASER − Z-SGD, test accuracy (points) | - (left out: 0, 1, 2) | - | - | - |" in text


def test_runs_of_a_row_must_differ_in_the_seed_only(tmp_path):
    records = synthetic_records(tmp_path)
    next(r for r in records if r.config["compressor.name"] == "laser").config["power.energy"] = 10.0
    with pytest.raises(T.TableError, match="row laser: .* differ in more than the seed .*power.energy"):
        T.render(SPEC, MANIFEST, records)


# ------------------------------------------------------------------ writing and checking
def _page(root: Path, body: str = "typed numbers\n") -> Path:
    page = root / "page.md"
    page.write_text(
        f"# A page\n\ntext above\n\n<!-- table:synthetic -->\n{body}<!-- /table:synthetic -->\n\ntext below\n"
    )
    return page


def test_the_check_names_a_table_whose_file_differs(tmp_path):
    data = tmp_path / "data"
    T.collect(
        "synthetic",
        [synthetic_sweep(tmp_path / "sweep")],
        data_root=data,
        spec=SPEC,
        commit=COMMIT,
        log=lambda *_: None,
    )
    page = _page(tmp_path)
    tables = {"synthetic": SPEC}
    texts, written, no_data = T.expected_files(tmp_path, data, tables)
    assert no_data == [] and written == {page: ["synthetic"]}
    assert T.check(texts, written) == ["synthetic"]  # still typed
    page.write_text(texts[page])
    assert T.check(*T.expected_files(tmp_path, data, tables)[:2]) == []
    text = page.read_text()
    assert text.startswith("# A page\n\ntext above\n\n<!-- table:synthetic -->\n\n<!-- generated")
    assert text.endswith("```\n\n<!-- /table:synthetic -->\n\ntext below\n")
    page.write_text(text.replace("84.0 ± 9.9", "84.1 ± 9.9"))  # a number typed over
    assert T.check(*T.expected_files(tmp_path, data, tables)[:2]) == ["synthetic"]
    summary = data / "synthetic" / "records" / "sweep" / "laser" / "seed=0" / "summary.json"
    page.write_text(text)
    summary.write_text(summary.read_text().replace('"test_accuracy": 0.8,', '"test_accuracy": 0.81,'))
    assert T.check(*T.expected_files(tmp_path, data, tables)[:2]) == ["synthetic"]  # data changed under it


def test_a_table_without_data_is_left_as_typed_and_stray_markers_are_refused(tmp_path):
    page = _page(tmp_path)
    texts, written, no_data = T.expected_files(tmp_path, tmp_path / "data", {"synthetic": SPEC})
    assert texts[page] == page.read_text() and written == {} and no_data == ["synthetic"]
    page.write_text(page.read_text() + "<!-- table:nosuch -->\n<!-- /table:nosuch -->\n")
    with pytest.raises(T.TableError, match="page.md: a marker of table nosuch"):
        T.expected_files(tmp_path, tmp_path / "data", {"synthetic": SPEC})


def _tables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "docs" / "tables.py"), *args], cwd=ROOT, capture_output=True, text=True
    )


def test_every_table_with_data_is_as_written():
    """`python docs/tables.py --check`: no table of the docs differs from its data, and the data
    folder keeps its layout and budget (a number cannot change without its data)."""
    texts, written, _ = T.expected_files()
    assert T.check(texts, written) == []
    assert T.data_problems() == []


def test_the_check_command_fails_naming_the_table(tmp_path):
    """`--check` against data whose table differs from README.md's: exit 1 and the table's name;
    README.md itself untouched."""
    sweep = tmp_path / "headline"
    rows = {"noiseless": ("zsgd", "noiseless"), "laser": ("laser", "awgn"), "zsgd": ("zsgd", "awgn")}
    for row, (compressor, channel) in rows.items():
        for seed in range(3):
            synthetic_run(
                sweep / row / f"seed={seed}", compressor, channel, seed, 0.8, rounds=600, data="mnist1d"
            )
    T.collect("headline", [sweep], data_root=tmp_path / "data", commit=COMMIT, log=lambda *_: None)
    before = (ROOT / "README.md").read_text()
    result = _tables("--check", "--data", str(tmp_path / "data"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "table headline: README.md differs" in result.stdout
    assert (ROOT / "README.md").read_text() == before


# ----------------------------------------------------------------------- the data folder
def test_the_data_folder_layout_can_fail(tmp_path):
    data = tmp_path / "data"
    T.collect(
        "synthetic",
        [synthetic_sweep(tmp_path / "sweep")],
        data_root=data,
        spec=SPEC,
        commit=COMMIT,
        log=lambda *_: None,
    )
    assert T.data_problems(data) == []
    record = data / "synthetic" / "records" / "sweep" / "laser" / "seed=0"
    (record / "checkpoint.pt").write_bytes(b"\0" * 10)
    (record / "history.jsonl").write_text("x" * T.HISTORY_WHOLE_LIMIT)
    (data / "other").mkdir()
    problems = "\n".join(T.data_problems(data))
    assert "checkpoint.pt: not a file a record keeps" in problems
    assert "a whole history of 50000 bytes" in problems
    assert "other: no manifest.json" in problems


def test_the_size_budget():
    assert T.BUDGET_BYTES <= 20_000_000
    size = sum(p.stat().st_size for p in T.DATA.rglob("*") if p.is_file()) if T.DATA.is_dir() else 0
    assert size <= T.BUDGET_BYTES, f"docs/data holds {size / 1e6:.1f} MB, over its budget"


def test_collect_copies_small_records_and_writes_the_manifest(tmp_path):
    sweep = synthetic_sweep(
        tmp_path / "sweep-a", environment={"torch": "2.13.0", "kernel_fingerprint": "f00d"}
    )
    # a long history keeps its evaluation rows and its last row; a run the table does not use stays out
    synthetic_run(
        sweep / "laser" / "seed=0",
        "laser",
        "awgn",
        0,
        0.80,
        uses=2_024,
        noise=3.7e-4,
        pad=6_000,  # 10 rows of 6 kB: over the 50 kB limit
        environment={"torch": "2.13.0", "kernel_fingerprint": "f00d"},
    )
    synthetic_run(
        sweep / "other",
        "laser",
        "awgn",
        0,
        0.5,
        data="mnist1d",
        environment={"torch": "2.13.0", "kernel_fingerprint": "f00d"},
    )
    logged: list[str] = []
    folder = T.collect(
        "synthetic",
        [sweep],
        data_root=tmp_path / "data",
        spec=SPEC,
        commit=COMMIT,
        commands=["laser sweep x"],
        log=logged.append,
    )
    assert "1 run(s) the table does not use left out, e.g. sweep-a/other" in logged[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["commit"] == COMMIT and manifest["commit_source"] == "given"
    assert manifest["commands"] == ["laser sweep x"] and manifest["kernel_fingerprint"] == "f00d"
    assert manifest["fingerprint_source"] == "runs"
    assert set(manifest["packages"]) == set(T.PACKAGES) and manifest["machine"]["cores"] >= 1
    assert len(manifest["runs"]) == 9 and manifest["runs"]["sweep-a/laser/seed=0"]["history"] == "evaluations"
    long = folder / "records" / "sweep-a" / "laser" / "seed=0"
    assert sorted(p.name for p in long.iterdir()) == ["config.yaml", "history.eval.jsonl", "summary.json"]
    rows = T.read_rows(long / "history.eval.jsonl")
    assert [r["round"] for r in rows] == [4, 9]  # the evaluations (rounds 4 and 9; the last round is one)
    short = folder / "records" / "sweep-a" / "laser" / "seed=1"
    assert (short / "history.jsonl").read_bytes() == (
        sweep / "laser" / "seed=1" / "history.jsonl"
    ).read_bytes()
    assert T.data_problems(tmp_path / "data") == []
    assert T.evaluation_rows([{"round": 0}, {"round": 1, "test_accuracy": 0.5}, {"round": 2}]) == [
        {"round": 1, "test_accuracy": 0.5},
        {"round": 2},
    ]


def test_collect_refuses_to_overwrite_or_mix(tmp_path):
    data = tmp_path / "data"
    here = {"torch": "2.13.0", "kernel_fingerprint": "f00d"}
    there = {"torch": "2.13.0", "kernel_fingerprint": "beef"}
    first = synthetic_sweep(tmp_path / "a", environment=here)
    kwargs = {"data_root": data, "spec": SPEC, "log": lambda *_: None}
    T.collect("synthetic", [first], commit=COMMIT, **kwargs)
    manifest = (data / "synthetic" / "manifest.json").read_bytes()
    with pytest.raises(T.TableError, match="already holds data; --append .* --replace"):
        T.collect("synthetic", [first], commit=COMMIT, **kwargs)
    with pytest.raises(T.TableError, match="--append: .* is already recorded"):
        T.collect("synthetic", [first], commit=COMMIT, append=True, **kwargs)
    other_machine = synthetic_sweep(tmp_path / "b", environment=there)
    with pytest.raises(T.TableError, match="another machine or torch .*kernel_fingerprint"):
        T.collect("synthetic", [other_machine], commit=COMMIT, append=True, **kwargs)
    same_machine = synthetic_sweep(tmp_path / "c", environment=here)
    with pytest.raises(T.TableError, match="runs of commit 0123456, these are of fedcba9"):
        T.collect("synthetic", [same_machine], commit="fedcba9" + "0" * 33, append=True, **kwargs)
    assert (data / "synthetic" / "manifest.json").read_bytes() == manifest  # nothing written
    T.collect("synthetic", [same_machine], commit=COMMIT, append=True, **kwargs)
    assert len(json.loads((data / "synthetic" / "manifest.json").read_text())["runs"]) == 18
    T.collect("synthetic", [other_machine], commit=COMMIT, replace=True, **kwargs)
    replaced = json.loads((data / "synthetic" / "manifest.json").read_text())
    assert sorted({name.split("/")[0] for name in replaced["runs"]}) == ["b"]
    assert sorted(p.name for p in (data / "synthetic" / "records").iterdir()) == ["b"]
    # one collection of two machines' runs, an unfinished run, a sweep folder of no runs
    synthetic_run(tmp_path / "d" / "x", "laser", "awgn", 5, 0.8, environment=there)
    with pytest.raises(T.TableError, match="runs of different machines or settings"):
        T.collect("synthetic", [first, tmp_path / "d"], commit=COMMIT, replace=True, **kwargs)
    (first / "laser" / "seed=0" / "summary.json").unlink()
    with pytest.raises(T.TableError, match="neither finished nor diverged, e.g. a/laser/seed=0"):
        T.collect("synthetic", [first], commit=COMMIT, replace=True, **kwargs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(T.TableError, match="SWEEP_DIR .*empty: no run directory"):
        T.collect("synthetic", [tmp_path / "empty"], commit=COMMIT, replace=True, **kwargs)


def test_collect_refuses_uncommitted_code_unless_told(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "git_state", lambda repo=None: (COMMIT, ["laser/ota.py"]))
    sweep = synthetic_sweep(tmp_path / "sweep", environment=None)  # runs that record no machine
    kwargs = {"data_root": tmp_path / "data", "spec": SPEC, "log": lambda *_: None}
    with pytest.raises(T.TableError, match="--commit: laser/ota.py differ from HEAD 0123456"):
        T.collect("synthetic", [sweep], **kwargs)
    T.collect("synthetic", [sweep], allow_dirty=True, **kwargs)
    manifest = json.loads((tmp_path / "data" / "synthetic" / "manifest.json").read_text())
    assert manifest["commit"] == COMMIT and manifest["dirty"] == ["laser/ota.py"]
    # the runs record no environment: the collector's machine stands in, measured in a fresh process
    assert manifest["environment"] is None
    assert manifest["fingerprint_source"] == "collector" and len(manifest["kernel_fingerprint"]) == 16
    assert manifest["collector_environment"]["kernel_fingerprint"] == manifest["kernel_fingerprint"]


def test_collect_refuses_runs_older_than_their_commit(tmp_path, monkeypatch):
    """Runs record no commit: one whose summary.json predates the commit named was made at another."""
    made = T.commit_time(ROOT, "HEAD")  # a real commit's time, where git is there
    assert made is None or made > 1.7e9
    assert T.commit_time(ROOT, "f" * 40) is None  # a commit git does not know: no check
    sweep = synthetic_sweep(tmp_path / "sweep")
    monkeypatch.setattr(T, "commit_time", lambda repo, commit: 4e9)  # a commit made in 2096
    with pytest.raises(T.TableError, match="--commit: 9 run\\(s\\) ended before commit 0123456 was made"):
        T.collect(
            "synthetic", [sweep], data_root=tmp_path / "data", spec=SPEC, commit=COMMIT, log=lambda *_: None
        )
    monkeypatch.setattr(T, "commit_time", lambda repo, commit: 1e9)  # 2001
    T.collect(
        "synthetic", [sweep], data_root=tmp_path / "data", spec=SPEC, commit=COMMIT, log=lambda *_: None
    )


def test_collect_bad_input_is_one_line_and_exit_2(tmp_path):
    result = _tables("--data", str(tmp_path / "data"), "collect", "nosuch", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("tables.py: TABLE nosuch: not a table of docs/tables.py")
    result = _tables("--data", str(tmp_path / "data"), "collect", "headline", str(tmp_path / "missing"))
    assert (
        result.returncode == 2
        and "SWEEP_DIR" in result.stderr
        and "missing: not a directory" in result.stderr
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="no git checkout")
def test_records_would_be_committed():
    """git ignores every folder named runs/: the records live under records/, which it keeps."""
    probe = T.DATA / "headline" / T.RECORDS / "headline" / "mnist1d_laser" / "seed=0" / "summary.json"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", str(probe.relative_to(ROOT))], cwd=ROOT
    )
    assert ignored.returncode == 1
    assert T._ignored(ROOT, ROOT / "docs" / "data" / "t" / "runs" / "x" / "summary.json")


# ---------------------------------------------------------------------- the specs and docs
def _sweep_points(command: str, out: Path) -> list[dict]:
    """The flattened resolved configs of a spec's `laser sweep` command's points."""
    from federated.config import config_to_dict, load_config
    from federated.experiments.plan import plan_sweep

    words = shlex.split(command)
    assert words[:2] == ["laser", "sweep"], command
    configs, overrides, grid, i = [], [], [], 2
    while i < len(words):
        if words[i] in ("--grid", "--jobs", "--out"):
            if words[i] == "--grid":
                grid.append(words[i + 1])
            i += 2
            continue
        (configs if words[i].endswith(".yaml") else overrides).append(words[i])
        i += 1
    points = plan_sweep([str(ROOT / c) for c in configs], grid, out, overrides)
    return [T._flatten(config_to_dict(load_config(p.config_path, list(p.overrides)))) for p in points]


@pytest.mark.parametrize("name", sorted(T.TABLES))
def test_each_specs_commands_make_its_rows(name, tmp_path):
    """Every point of the spec's commands fits exactly one of its rows, and every row gets its seeds."""
    table = T.TABLES[name]
    seeds: dict[str, list] = {row.id: [] for row in table.rows}
    for command in table.commands:
        for config in _sweep_points(command, tmp_path):
            assert T.matches(config, table.where), (name, config)
            fits = [row.id for row in table.rows if T.matches(config, row.where)]
            assert len(fits) == 1, (name, fits)
            seeds[fits[0]].append(config["seed"])
    assert all(sorted(s) == list(table.seeds) for s in seeds.values()), seeds


def test_each_spec_has_one_region_in_its_files():
    for table in [*T.TABLES.values(), *T.BENCH_TABLES.values()]:
        for name in table.files:
            text = (ROOT / name).read_text(encoding="utf-8")
            assert T.markers(text).count(table.name) == 1, (table.name, name)
            assert T.region(text, table.name) is not None, (table.name, name)


def _markdown_tables(text: str) -> list[int]:
    """The line numbers of every Markdown table's header line."""
    lines = text.splitlines()
    return [
        i
        for i in range(len(lines) - 1)
        if lines[i].startswith("|")
        and (i == 0 or not lines[i - 1].startswith("|"))
        and set(lines[i + 1].replace("|", "").replace(" ", "")) <= set("-:")
    ]


@pytest.mark.parametrize("name", ["docs/results.md", "docs/performance.md", "README.md"])
def test_every_typed_table_carries_its_mark(name):
    """A table of results.md or performance.md (or the README's headline while it has no data) is
    generated (inside the region of a table with data) or marked as computed before the pin."""
    text = (ROOT / name).read_text(encoding="utf-8")
    generated = [
        T.region(text, table)
        for table in T.markers(text)
        if (T.load_table(table) is not None or T.load_bench(table) is not None)
        and T.region(text, table) is not None
    ]
    for region in generated:
        text = text.replace(region, "\n")
    lines = text.splitlines()
    found = _markdown_tables(text)
    if name == "README.md":  # only the headline's region is ours there
        start, end = (
            text[: text.index(m)].count("\n") for m in ("<!-- table:headline -->", "<!-- /table:headline -->")
        )
        found = [i for i in found if start < i < end]
    assert found or name == "README.md"
    unmarked = [lines[i] for i in found if not (lines[i - 1] == "" and lines[i - 2] == f"*{T.MARK}*")]
    assert not unmarked, unmarked


def test_mkdocs_leaves_the_scripts_out():
    """docs/tables.py and docs/reproduce.py sit in docs_dir: mkdocs must not take them as pages."""
    config = (ROOT / "mkdocs.yml").read_text()
    assert "exclude_docs: |\n  *.py" in config


# ------------------------------------------------------------------------- benchmark tables
BENCH = T.BenchTable(
    name="bench",
    files=("page.md",),
    caption="A benchmark.",
    columns=(
        T.BenchColumn("K", "clients", "int"),
        T.BenchColumn("round (s)", "round_s", "f3"),
        T.BenchColumn("peak (MiB)", "peak_bytes", "mib"),
        T.BenchColumn("vs first", "ratio", "x"),
        T.BenchColumn("method", "method", "text"),
    ),
    command="python benchmarks/bench.py --json docs/data/benchmarks/bench.json",
)
BENCH_JSON = {
    "benchmark": "bench",
    "machine": {
        "cpu_model": "Some CPU",
        "cpus_usable": 2,
        "torch": "2.13.0+cpu",
        "torch_threads": 1,
        "loadavg_1m_at_start": 0.25,
    },
    "results": [
        {"clients": 100, "round_s": 0.5, "peak_bytes": 400 * 2**20, "ratio": 1.0, "method": "laser"},
        {"clients": 100000, "round_s": 0.51234, "peak_bytes": 401 * 2**20, "ratio": 1.02468, "method": None},
    ],
    "command": "python benchmarks/bench.py --json docs/data/benchmarks/bench.json",
    "code": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": []},
}


def _bench_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n<!-- table:bench -->\ntyped\n<!-- /table:bench -->\n")
    data = tmp_path / "data"
    (data / T.BENCHMARKS).mkdir(parents=True)
    (data / T.BENCHMARKS / "bench.json").write_text(json.dumps(BENCH_JSON))
    return page, data


def test_a_benchmark_table_is_written_from_its_json_and_checked(tmp_path):
    page, data = _bench_page(tmp_path)
    texts, written, no_data = T.expected_files(tmp_path, data, {}, {"bench": BENCH})
    assert written == {page: ["bench"]} and no_data == []
    body = T.region(texts[page], "bench")
    assert "| 100,000 | 0.512 | 401 | 1.02x | – |" in body and "| 100 | 0.500 | 400 | 1.00x | laser |" in body
    assert (
        "made by `python benchmarks/bench.py --json docs/data/benchmarks/bench.json` at commit 0123456"
        in body
    )
    assert "on Some CPU (2 cores usable, torch 2.13.0+cpu with 1 threads, load 0.25 at the start)" in body
    assert T.check(texts, written) == ["bench"]  # the page still holds the typed text
    page.write_text(texts[page])
    assert T.check(*T.expected_files(tmp_path, data, {}, {"bench": BENCH})[:2]) == []
    changed = {**BENCH_JSON, "results": [{**BENCH_JSON["results"][0], "round_s": 0.6}]}
    (data / T.BENCHMARKS / "bench.json").write_text(json.dumps(changed))  # the data moved under it
    assert T.check(*T.expected_files(tmp_path, data, {}, {"bench": BENCH})[:2]) == ["bench"]


def test_a_benchmark_json_without_a_table_or_its_record_is_a_problem(tmp_path, monkeypatch):
    page, data = _bench_page(tmp_path)
    monkeypatch.setattr(T, "BENCH_TABLES", {"bench": BENCH})
    assert T.data_problems(data, repo=tmp_path) == []
    (data / T.BENCHMARKS / "other.json").write_text("{}")
    (data / T.BENCHMARKS / "bench.json").write_text(json.dumps({"results": BENCH_JSON["results"]}))
    problems = "\n".join(T.data_problems(data, repo=tmp_path))
    assert "other.json: not the JSON of a benchmark table (bench)" in problems
    assert "bench.json: no machine, command, code" in problems
    with pytest.raises(T.TableError, match="benchmarks/other has data but no spec"):
        T.expected_files(tmp_path, data, {}, {"bench": BENCH})


def test_reach_metrics_and_ratio_comparisons(tmp_path):
    """``reach:A:KEY`` reads KEY at the first row at accuracy A or more (None if never); a ratio pair
    is the geometric mean of the seeds' ratios, its interval a paired t on their logs."""
    air = {"fast": (1.0, 2.0, 4.0), "slow": (10.0, 40.0, 40.0)}  # ratios 10, 20, 10
    records = []
    for row, values in air.items():
        for seed, value in enumerate(values):
            rows = [
                {"round": 0, "test_accuracy": 0.5, "air_time_s_cum": value / 2},
                {"round": 1, "test_accuracy": 0.75, "air_time_s_cum": value},
                {"round": 2, "test_accuracy": 0.8, "air_time_s_cum": 2 * value},
            ]
            config = {"seed": seed, "rounds": 3, "data.name": "digits", "compressor.name": row}
            summary = {"rounds": 3, "test_accuracy": 0.8, "status": "finished"}
            folder = write_run(tmp_path / row / f"seed={seed}", config, summary, rows)
            records.append(T.read_record(folder, f"{row}/seed={seed}"))
    metric = T.METRICS["air_to_70"]
    assert [metric.of(r) for r in records[:3]] == [1.0, 2.0, 4.0]
    never = T.Record(
        "x", tmp_path, {}, {"status": "finished"}, [{"test_accuracy": 0.5, "air_time_s_cum": 1}], True
    )
    assert metric.of(never) is None
    seeds, left_out, d = T.paired(records[3:], records[:3], metric, "ratio")
    assert seeds == [0, 1, 2] and not left_out
    logs = [math.log(10), math.log(20), math.log(10)]
    assert math.exp(d.mean) == pytest.approx(math.exp(sum(logs) / 3))
    spec = T.Table(
        name="ratios",
        files=("page.md",),
        caption="Ratios.",
        where={"data.name": "digits"},
        rows=(
            T.Row("fast", "fast", {"compressor.name": "fast"}),
            T.Row("slow", "slow", {"compressor.name": "slow"}),
        ),
        columns=(T.Column("air time to 70% (s), per seed", "seeds", "air_to_70"),),
        commands=("laser sweep x.yaml",),
        paired=(T.Paired("slow", "fast", "air_to_70", kind="ratio"),),
    )
    text = T.render(spec, MANIFEST, records)
    assert "| slow / fast, air time to 70% (s) | 0, 1, 2 | 12.6x |" in text
