"""The documented tables, generated from the runs' records in ``docs/data/`` instead of typed.

Each table is a small declarative spec (:data:`TABLES`): the runs it takes (config keys), how they
group into rows, its columns (a metric and a statistic), its paired comparisons and the commands
that make its runs. Its data lives in ``docs/data/<table>/`` (``docs/data/README.md`` has the
layout): every run's ``config.yaml``, ``summary.json`` and history (the whole ``history.jsonl`` when
it is under 50 kB, else its evaluation rows), and ``manifest.json`` (the commit, the packages, the
machine, the commands). The Markdown files hold each table between ``<!-- table:NAME -->`` and
``<!-- /table:NAME -->``; a table without data keeps what is typed there.

    python docs/tables.py              write every table that has data into its Markdown files
    python docs/tables.py --check      exit 1, naming the table, where a file differs from that
    python docs/tables.py list         the tables: files, data, the commands that make the runs
    python docs/tables.py collect TABLE SWEEP_DIR [SWEEP_DIR ...] [--command "laser sweep ..."]
                                       copy the runs' small records into docs/data/TABLE/

Statistics, over the seeds of a row: the mean, the sample sd, and the 95% Student-t interval of
the mean (mean +- t_{0.975, n-1} sd / sqrt(n)). A diverged run (it stopped on a non-finite loss)
has no metric: it is counted apart, with the round it stopped in. A paired comparison of two rows
takes the per-seed differences (the same seed: the same data split and initialisation; a seed
missing or diverged on either side is left out) and gives their mean and paired t-interval (n - 1
degrees of freedom of the n differences), and whether that interval excludes 0.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
RECORDS = "records"  # a table's run records (not "runs/": .gitignore leaves out every folder so named)
MANIFEST = "manifest.json"
WHOLE_HISTORY = "history.jsonl"
EVAL_HISTORY = "history.eval.jsonl"  # a long history's evaluation rows and its last row
HISTORY_WHOLE_LIMIT = 50_000  # bytes: a longer history.jsonl keeps its evaluation rows only
BUDGET_BYTES = 20_000_000  # docs/data in all
MARK = "Computed before ea0e64c; to be re-run by the results campaign."
EXIT_DIFFERS, EXIT_BAD_INPUT = 1, 2
# where and how a run ran, not what it computes (as federated.experiments.results): runs of a row
# may differ there
IGNORED_KEYS = frozenset(
    {
        "data.root",
        "data.download",
        "device",
        "checkpoint_every",
        "compile",
        "tensorboard",
        "clients.vectorize",
        "threads",
    }
)
# the code a run's numbers depend on: uncommitted changes there make HEAD the wrong commit to record
CODE_PATHS = ("channels", "laser", "federated", "pyproject.toml")
PACKAGES = ("torch", "numpy", "scipy", "sionna", "mnist1d", "laser-ota")
ENVIRONMENT_KEY = "environment"  # summary.json's record of federated.reproducible.environment()


class TableError(ValueError):
    """Bad input (a table, a folder, data that contradicts itself): one line naming the argument."""


# --------------------------------------------------------------------------------- the specs
@dataclass(frozen=True)
class Metric:
    """A number per run. ``source``: a ``summary.json`` key, ``per_round:KEY`` (a total over rounds
    divided by the rounds run), ``history:KEY`` (the last stored history row holding KEY) or
    ``reach:A:KEY`` (KEY in the first stored row whose test accuracy is at least A: what reaching A
    cost; None where the run never did).
    ``style``: ``percent`` (x 100, one decimal; differences in points), ``count`` (no decimals,
    thousands separated), ``sci`` (two significant digits, 3.7e-4) or ``fixed1`` (one decimal)."""

    source: str
    label: str
    style: str
    unit: str = ""  # of a difference, e.g. "points"
    # a diverged run's value too: the last one recorded before it stopped (a history key that tells
    # how it diverged, such as D^); otherwise only finished runs have a value
    diverged: bool = False

    def of(self, record: Record) -> float | None:
        """The run's value; None for a run that lacks it or did not finish (a diverged one too, unless
        the metric takes its last value)."""
        if record.status != "finished" and not (self.diverged and record.status == "diverged"):
            return None
        kind, _, key = self.source.rpartition(":")
        if kind == "history":
            value = next((r[key] for r in reversed(record.rows) if key in r), None)
        elif kind.startswith("reach:"):
            target = float(kind.partition(":")[2])
            value = next(
                (
                    r.get(key)
                    for r in record.rows
                    if _number(r.get("test_accuracy")) and r["test_accuracy"] >= target
                ),
                None,
            )
        elif kind == "per_round":
            total, rounds = record.summary.get(key), record.summary.get("rounds")
            value = total / rounds if _number(total) and _number(rounds) and rounds else None
        else:
            value = record.summary.get(key)
        return float(value) if _number(value) else None


METRICS = {
    "test_accuracy": Metric("test_accuracy", "test accuracy", "percent", "points"),
    "channel_uses": Metric("per_round:channel_uses_total", "real channel uses per round", "count"),
    "noise_var": Metric("noise_var_mean", "mean per-entry noise variance", "sci"),
    "active_clients": Metric("active_clients_mean", "clients heard per round", "fixed1"),
    "precond_mean": Metric("history:precond_mean", "final mean of D^", "sci", diverged=True),
    # physical units (channel.scenario)
    "air_time": Metric("per_round:air_time_s_total", "air time per round (s)", "sci"),
    "air_time_total": Metric("air_time_s_total", "air time of the run (s)", "sci"),
    "energy_j": Metric("per_round:energy_j_mean_total", "energy per round, mean client (J)", "sci"),
    "tx_power_dbm": Metric("tx_power_dbm_mean", "transmit power, mean client (dBm)", "fixed1"),
    "rx_snr_db": Metric("rx_snr_db_mean", "received SNR per use at the cap (dB)", "fixed1"),
    # what reaching 70% test accuracy cost (the first evaluation at or above it)
    "air_to_70": Metric("reach:0.7:air_time_s_cum", "air time to 70% (s)", "sci"),
    "energy_to_70": Metric("reach:0.7:energy_j_mean_cum", "energy to 70%, mean client (J)", "sci"),
    # privacy mode (privacy.clip)
    "privacy_epsilon": Metric("privacy_epsilon", "client-level epsilon of the run (delta 1e-5)", "sci"),
    "noise_multiplier": Metric("history:privacy_noise_multiplier", "noise multiplier, last round", "sci"),
    "energy_mean": Metric("per_round:energy_per_client_mean_total", "energy per round, mean client", "sci"),
}


@dataclass(frozen=True)
class Row:
    """One row: the runs whose config has every ``where`` value (``id`` names it on the command line
    of ``docs/reproduce.py``; ``label`` in the table)."""

    id: str
    label: str
    where: Mapping[str, object]


@dataclass(frozen=True)
class Column:
    """``show``: ``mean_ci`` (mean +- 95% half-width), ``mean``, ``sd``, ``seeds`` (each seed's value)
    of ``metric`` (a key of :data:`METRICS`), or ``runs`` (the seeds, and the diverged ones)."""

    header: str
    show: str
    metric: str | None = None


@dataclass(frozen=True)
class Paired:
    """Row ``a`` minus row ``b``, seed by seed, on ``metric``."""

    a: str
    b: str
    metric: str = "test_accuracy"
    label: str | None = None  # default: the rows' labels, "a − b"
    # difference (a - b), or ratio (a / b: the geometric mean of the seeds' ratios, its interval a
    # paired t on their logarithms), shown in a table of its own
    kind: str = "difference"


@dataclass(frozen=True)
class Table:
    """A generated table: ``files`` hold its markers; ``where`` selects its runs; ``commands`` make them."""

    name: str
    files: tuple[str, ...]
    caption: str
    where: Mapping[str, object]
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    commands: tuple[str, ...]
    metric: str = "test_accuracy"  # what docs/reproduce.py compares
    paired: tuple[Paired, ...] = ()
    spread: str | None = None  # a sentence on how much one seed varies, of this metric
    seeds: tuple[int, ...] = (0, 1, 2)
    row_header: str = "run"


ACCURACY_COLUMNS = (
    Column("test accuracy (%), mean ± 95% CI", "mean_ci", "test_accuracy"),
    Column("per seed", "seeds", "test_accuracy"),
    Column("sd", "sd", "test_accuracy"),
    Column("seeds (diverged)", "runs"),
)
# the physical-units results (configs/mnist1d_laser_umi.yaml): the clients' maximum powers swept
UMI_POWERS_DBM = (-10, 0, 10, 17, 23)
UMI_METHODS = (("laser", "LASER"), ("zsgd", "Z-SGD"))


def _umi_rows() -> tuple[Row, ...]:
    return tuple(
        Row(
            f"{method}_n{antennas}_{power}dbm".replace("-", "m"),
            f"{label}, N = {antennas}, {power} dBm",
            {"compressor.name": method, "channel.rx_antennas": antennas, "power.max_dbm": power},
        )
        for antennas in (1, 16)
        for method, label in UMI_METHODS
        for power in UMI_POWERS_DBM
    )


# the small-scale channels of the UMi cell compared (table umi_clusters): id, label, config values
UMI_CHANNELS = (
    ("rayleigh", "Rayleigh", {"channel.name": "rayleigh"}),
    ("clusters", "clusters, 3 km/h", {"channel.name": "scenario", "channel.speed_mps": 3 / 3.6}),
    ("static", "clusters, static", {"channel.name": "scenario", "channel.speed_mps": 0.0}),
)


def _umi_cluster_rows() -> tuple[Row, ...]:
    return tuple(
        Row(
            f"{method}_n{antennas}_{channel}",
            f"{label}, N = {antennas}, {name}",
            {"compressor.name": method, "channel.rx_antennas": antennas, **where},
        )
        for antennas in (1, 16)
        for method, label in UMI_METHODS
        for channel, name, where in UMI_CHANNELS
    )


# privacy from the channel's noise (table privacy_epsilon): the channels, and the run's target epsilon
# (None: the channel's noise alone at the config's energy)
PRIVACY_TARGETS = (None, 1000.0, 100.0, 10.0, 1.0)
PRIVACY_CHANNELS = (
    ("awgn", "AWGN, E = 100", (None, 10000.0, 3000.0, *PRIVACY_TARGETS[1:])),
    ("rayleigh", "Rayleigh truncated, E = 1000", PRIVACY_TARGETS),
)


def _privacy_cell(channel: str, target: float | None) -> str:
    """A privacy cell's id without its method: the channel and the target (or the channel's noise)."""
    return f"{channel}_" + ("channel" if target is None else f"eps{target:g}")


# analog against digital on one footing (tables nr_links and nr_shannon): the methods and links, and
# the powers
NR_POWERS_DBM = (-10, 0, 10, 23)
NR_METHODS = (
    ("laser", "LASER", {"compressor.name": "laser"}),
    ("zsgd", "Z-SGD", {"compressor.name": "zsgd"}),
    ("topk_nr", "top-k, NR", {"compressor.name": "topk", "digital.link": "nr"}),
    ("qsgd_nr", "QSGD, NR", {"compressor.name": "qsgd", "digital.link": "nr"}),
)
NR_SHANNON_METHODS = (
    ("topk_shannon", "top-k, Shannon", {"compressor.name": "topk", "digital.link": "shannon"}),
    ("qsgd_shannon", "QSGD, Shannon", {"compressor.name": "qsgd", "digital.link": "shannon"}),
)


def _nr_rows(methods: tuple[tuple[str, str, dict], ...]) -> tuple[Row, ...]:
    return tuple(
        Row(
            f"{method}_{power}dbm".replace("-", "m"),
            f"{label}, {power} dBm",
            {**where, "power.max_dbm": power},
        )
        for power in NR_POWERS_DBM
        for method, label, where in methods
    )


def _nr_paired() -> tuple[Paired, ...]:
    """Each other row against LASER at its power: accuracy (difference), and the air time and energy
    to 70% (ratios)."""
    pairs: list[Paired] = []
    for power in NR_POWERS_DBM:
        at = f"{power}dbm".replace("-", "m")
        for method, _, _ in NR_METHODS[1:]:
            pairs.append(Paired(f"{method}_{at}", f"laser_{at}"))
            pairs.append(Paired(f"{method}_{at}", f"laser_{at}", "air_to_70", kind="ratio"))
            pairs.append(Paired(f"{method}_{at}", f"laser_{at}", "energy_to_70", kind="ratio"))
    return tuple(pairs)


NR_WHERE = {"data.name": "mnist1d", "rounds": 600, "channel.scenario": "umi", "channel.shared_draws": True}
NR_COLUMNS = (
    Column("test accuracy (%), mean ± 95% CI", "mean_ci", "test_accuracy"),
    Column("seeds (diverged)", "runs"),
    Column("clients heard per round", "mean", "active_clients"),
    Column("air time per round (s)", "mean", "air_time"),
    Column("energy per round, mean client (J)", "mean", "energy_j"),
    Column("air time to 70% (s), per seed", "seeds", "air_to_70"),
    Column("energy to 70% (J), per seed", "seeds", "energy_to_70"),
)


def _versus(cell: str) -> Paired:
    """LASER's row of ``cell`` minus Z-SGD's (the ids :func:`_per_method` gives)."""
    return Paired(f"laser_{cell}", f"zsgd_{cell}")


def _per_method(cell: str, label: str, where: Mapping[str, object]) -> tuple[Row, ...]:
    """One row per method (LASER, Z-SGD): ids ``{method}_{cell}``, labels ``{method's label}, {label}``."""
    return tuple(
        Row(f"{method}_{cell}", f"{name}, {label}", {"compressor.name": method, **where})
        for method, name in UMI_METHODS
    )


def _clipped(channel: str, target: float | None, **more: object) -> dict[str, object]:
    """A privacy-mode cell's settings: clip 1 over ``channel``, the run's target epsilon (None: the
    channel's noise alone), and ``more``."""
    return {"channel.name": channel, "privacy.clip": 1.0, "privacy.target_epsilon": target, **more}


NOISELESS = {"channel.name": "noiseless", "privacy.clip": None}  # the privacy tables' references


def _privacy_rows() -> tuple[Row, ...]:
    rows = _per_method("noiseless", "noiseless, no clip", NOISELESS)
    for channel, name, targets in PRIVACY_CHANNELS:
        for target in targets:
            label = "the channel's noise alone" if target is None else f"target epsilon {target:g}"
            rows += _per_method(_privacy_cell(channel, target), f"{name}, {label}", _clipped(channel, target))
    return rows


# the clip's cut kept in error feedback (table privacy_keep_clipped): LASER over AWGN, lost or kept
def _keep_rows() -> tuple[Row, ...]:
    rows = []
    for target in (None, 1000.0):
        noise = "the channel's noise alone" if target is None else f"target epsilon {target:g}"
        for keep, what in ((False, "lost"), (True, "kept")):
            rows.append(
                Row(
                    f"{what}_{_privacy_cell('awgn', target)}",
                    f"LASER, AWGN, {noise}, clipped-off part {what}",
                    {
                        "compressor.name": "laser",
                        **_clipped("awgn", target, **{"privacy.keep_clipped": keep}),
                    },
                )
            )
    return tuple(rows)


# Flower-style central DP against the channel's noise (table privacy_central), at equal epsilon
CENTRAL_TARGETS = (1000.0, 3000.0)
CENTRAL = {"channel.name": "noiseless", "privacy.mechanism": "central"}


def _central_rows() -> tuple[Row, ...]:
    rows: tuple[Row, ...] = ()
    for target in CENTRAL_TARGETS:
        rows += _per_method(
            f"channel_eps{target:g}",
            f"epsilon {target:g}, the channel's noise (AWGN), per-block clip",
            _clipped("awgn", target, **{"privacy.mechanism": "channel"}),
        )
        rows += _per_method(
            f"central_eps{target:g}",
            f"epsilon {target:g}, central DP (noiseless link, the server's noise), flat clip",
            {**_clipped("noiseless", target), **CENTRAL},
        )
    return rows


# the clip swept (table privacy_clip): AWGN, epsilon 1,000
PRIVACY_CLIPS = (0.5, 1.0, 2.0, 4.0)


def _clip_cell(clip: float) -> str:
    """The clip sweep's cell id: ``clip0_5``, ``clip1``, ..."""
    return f"clip{clip:g}".replace(".", "_")


def _clip_rows() -> tuple[Row, ...]:
    rows: tuple[Row, ...] = ()
    for clip in PRIVACY_CLIPS:
        rows += _per_method(
            _clip_cell(clip),
            f"clip {clip:g}",
            {"channel.name": "awgn", "privacy.clip": clip, "privacy.target_epsilon": 1000.0},
        )
    return rows


# the larger population (table privacy_population): K = 1,000 clients, 50 a round, 40 samples each
POPULATION = "clients.num_clients=1000 clients.per_round=50 data.num_samples=50000 clients.vectorize=auto"
POPULATION_WHERE = {
    "data.name": "mnist1d",
    "rounds": 600,
    "clients.num_clients": 1000,
    "clients.per_round": 50,
}
POISSON = {"clients.sampling": "poisson"}
# the population's privacy cells: (channel, target epsilon)
POPULATION_CELLS = (("awgn", 10.0),)
POPULATION_CHANNELS = {"awgn": "AWGN", "rayleigh": "Rayleigh truncated"}
PRIVACY_COLUMNS = (
    Column("test accuracy (%), mean ± 95% CI", "mean_ci", "test_accuracy"),
    Column("per seed", "seeds", "test_accuracy"),
    Column("seeds (diverged)", "runs"),
    Column("epsilon of the run", "mean", "privacy_epsilon"),
    Column("noise multiplier, last round", "mean", "noise_multiplier"),
    Column("energy per round, mean client", "mean", "energy_mean"),
)


MNIST1D_600 = {"data.name": "mnist1d", "rounds": 600, "model.name": "cnn"}  # the 600-round MNIST-1D tables

# the shared settings of each single-cell table, as in docs/results.md's commands ($B and $P there)
LOCAL = "configs/mnist1d_local_adam_scaling.yaml optimizer.momentum=0 rounds=100 eval_every=50"

TABLES = {
    table.name: table
    for table in (
        Table(
            name="headline",
            files=("README.md",),
            caption=(
                "The same three configurations over seeds 0, 1, 2 (600 rounds each; the command below). "
                "Accuracy: the mean ± the half-width of the 95% Student-t interval over the seeds, and each "
                "seed's value; channel uses and noise variance: the mean over the seeds."
            ),
            where=MNIST1D_600,
            rows=(
                Row("noiseless", "noiseless SGD", {"compressor.name": "zsgd", "channel.name": "noiseless"}),
                Row(
                    "laser",
                    "LASER, energy 100",
                    {"compressor.name": "laser", "channel.name": "awgn", "power.energy": 100},
                ),
                Row(
                    "zsgd",
                    "Z-SGD, energy 100",
                    {"compressor.name": "zsgd", "channel.name": "awgn", "power.energy": 100},
                ),
            ),
            columns=(
                *ACCURACY_COLUMNS,
                Column("real channel uses per round", "mean", "channel_uses"),
                Column("mean per-entry noise variance", "mean", "noise_var"),
            ),
            paired=(Paired("laser", "zsgd", label="LASER − Z-SGD"),),
            spread="test_accuracy",
            commands=(
                "laser sweep configs/mnist1d_noiseless.yaml configs/mnist1d_laser.yaml "
                "configs/mnist1d_zsgd.yaml --grid seed=0,1,2 --jobs 2 --out runs/headline",
            ),
        ),
        Table(
            name="antennas_n64",
            files=("docs/results.md",),
            caption=(
                "Re-run with the instruction-set pin: LASER, Rayleigh fading with perfect inversion, "
                "N = 64 receive antennas, the matched beamformer, E = 100 (the table's cell 83.7 ± 1.7)."
            ),
            where={"data.name": "mnist1d", "rounds": 600},
            rows=(
                Row(
                    "laser_n64_e100",
                    "LASER, perfect inversion, N = 64, matched, E = 100",
                    {
                        "compressor.name": "laser",
                        "channel.name": "rayleigh",
                        "channel.power_control": "inversion",
                        "channel.rx_antennas": 64,
                        "channel.beamformer": "matched",
                        "power.energy": 100,
                    },
                ),
            ),
            columns=(*ACCURACY_COLUMNS, Column("clients heard per round", "mean", "active_clients")),
            commands=(
                "laser sweep configs/mnist1d_laser_rayleigh.yaml compressor.name=laser "
                "channel.rx_antennas=64 channel.beamformer=matched power.energy=100 --grid seed=0,1,2 "
                "--jobs 2 --out runs/antennas-n64",
            ),
            row_header="cell",
        ),
        Table(
            name="local_iid_h1",
            files=("docs/results.md",),
            caption=(
                "Re-run with the instruction-set pin: IID data, H = 1, LASER, E = 1, 100 FedAvg rounds "
                "(the table's cell 25.9 ± 3.2)."
            ),
            where={"data.name": "mnist1d", "rounds": 100},
            rows=(
                Row(
                    "laser_iid_h1_e1",
                    "IID, H = 1, LASER, E = 1",
                    {
                        "compressor.name": "laser",
                        "channel.name": "awgn",
                        "data.partition": "iid",
                        "clients.local_steps": 1,
                        "precond.name": "none",
                        "power.energy": 1,
                    },
                ),
            ),
            columns=ACCURACY_COLUMNS,
            commands=(
                f"laser sweep {LOCAL} precond.name=none clients.lr=0.1 data.partition=iid "
                "compressor.name=laser clients.local_steps=1 power.energy=1 --grid seed=0,1,2 --jobs 2 "
                "--out runs/local-iid-h1",
            ),
            row_header="cell",
        ),
        Table(
            name="local_adam_e1",
            files=("docs/results.md",),
            caption=(
                "Re-run with the instruction-set pin: the Adam-type scaling, IID, H = 5, LASER, E = 1, 100 "
                "FedAvg rounds (the table's cell: 10.2, one seed, 2/3 diverged, D^ 1.3e+06). D^: the last "
                "recorded `precond_mean` of each run, a diverged one's in the last round before it stopped, "
                "and their mean over the seeds."
            ),
            where={"data.name": "mnist1d", "rounds": 100},
            rows=(
                Row(
                    "adam_e1",
                    "adam, client lr 0.001, LASER, E = 1",
                    {
                        "compressor.name": "laser",
                        "channel.name": "awgn",
                        "precond.name": "adam",
                        "clients.local_steps": 5,
                        "power.energy": 1,
                    },
                ),
            ),
            columns=(
                *ACCURACY_COLUMNS,
                Column("final mean of D^", "mean", "precond_mean"),
                Column("D^ per seed", "seeds", "precond_mean"),
            ),
            commands=(
                f"laser sweep {LOCAL} clients.local_steps=5 clients.lr=0.001 precond.name=adam "
                "compressor.name=laser power.energy=1 --grid seed=0,1,2 --jobs 2 --out runs/local-adam-e1",
            ),
            row_header="cell",
        ),
        Table(
            name="umi_power",
            files=("docs/results.md",),
            caption=(
                "Physical units (`configs/mnist1d_laser_umi.yaml`): one UMi sector of 16 clients (3GPP TR "
                "38.901 through Sionna; each seed its own drop), Rayleigh block fading, 3GPP open-loop "
                "power control (P0 = -80 dBm per resource block, alpha = 0.8) capped at the maximum power "
                "P_max of the row, truncated inversion (silent in a fade whose received SNR per use at the "
                "cap is below -10 dB), 3.5 GHz, 30 kHz subcarriers, 51 resource blocks (20 MHz channel), "
                "one DMRS symbol a slot, noise figure 5 dB, N receive antennas with the matched "
                "beamformer; 600 rounds, seeds 0, 1, 2. Transmit power: the mean client's over the air "
                "time; received SNR: per channel use at the cap, over the fading's mean, the mean client's."
            ),
            where={"data.name": "mnist1d", "rounds": 600, "channel.scenario": "umi"},
            rows=_umi_rows(),
            columns=(
                Column("test accuracy (%), mean ± 95% CI", "mean_ci", "test_accuracy"),
                Column("seeds (diverged)", "runs"),
                Column("clients heard per round", "mean", "active_clients"),
                Column("received SNR per use at the cap (dB)", "mean", "rx_snr_db"),
                Column("transmit power, mean client (dBm)", "mean", "tx_power_dbm"),
                Column("energy per round, mean client (J)", "mean", "energy_j"),
                Column("air time per round (s)", "mean", "air_time"),
            ),
            paired=tuple(_versus(f"n{n}_{p}dbm".replace("-", "m")) for n in (1, 16) for p in UMI_POWERS_DBM),
            commands=(
                "laser sweep configs/mnist1d_laser_umi.yaml --grid compressor.name=laser,zsgd "
                "--grid power.max_dbm=-10,0,10,17,23 --grid channel.rx_antennas=1,16 --grid seed=0,1,2 "
                "--jobs 2 --out runs/umi",
            ),
            row_header="cell",
        ),
        Table(
            name="umi_clusters",
            files=("docs/results.md",),
            caption=(
                "The small-scale channel of the UMi cell (`configs/mnist1d_laser_umi.yaml` at P_max = "
                "10 dBm: the same drops, caps, truncation and carrier as the table above): the project's "
                "Rayleigh block fading (independent from round to round, independent antennas) against "
                "the drop's own TR 38.901 clusters (`channel.name: scenario`; each client's clusters fixed "
                "for the run, the rounds 1 s apart with the clients at 3 km/h, or static, and the "
                "antennas' correlation from the clusters' angles). N receive antennas with the matched "
                "beamformer; 600 rounds, seeds 0, 1, 2 (each seed its own drop, the same in every row)."
            ),
            where={"data.name": "mnist1d", "rounds": 600, "channel.scenario": "umi", "power.max_dbm": 10},
            rows=_umi_cluster_rows(),
            columns=(
                Column("test accuracy (%), mean ± 95% CI", "mean_ci", "test_accuracy"),
                Column("per seed", "seeds", "test_accuracy"),
                Column("seeds (diverged)", "runs"),
                Column("clients heard per round", "mean", "active_clients"),
                Column("noise variance per entry", "mean", "noise_var"),
                Column("transmit power, mean client (dBm)", "mean", "tx_power_dbm"),
            ),
            paired=tuple(
                Paired(f"{method}_n{n}_{channel}", f"{method}_n{n}_rayleigh")
                for n in (1, 16)
                for method, _ in UMI_METHODS
                for channel in ("clusters", "static")
            ),
            commands=(
                "laser sweep configs/mnist1d_laser_umi.yaml --grid channel.name=rayleigh,scenario "
                "--grid compressor.name=laser,zsgd --grid channel.rx_antennas=1,16 --grid seed=0,1,2 "
                "--jobs 2 --out runs/clusters",
                "laser sweep configs/mnist1d_laser_umi.yaml channel.name=scenario channel.speed_mps=0 "
                "--grid compressor.name=laser,zsgd --grid channel.rx_antennas=1,16 --grid seed=0,1,2 "
                "--jobs 2 --out runs/clusters_static",
            ),
            row_header="cell",
        ),
        Table(
            name="nr_links",
            files=("docs/results.md",),
            caption=(
                "Analog against digital on one footing (docs/physics.md, section 15): the UMi cell of "
                "`configs/mnist1d_laser_umi.yaml` (16 clients, each seed its own drop; Rayleigh block "
                "fading, open-loop power control capped at P_max, 51 resource blocks at 30 kHz), every "
                "round's channel shared by all methods of a seed (`channel.shared_draws`). LASER and "
                "Z-SGD over the air (truncated inversion, the whole band at once); top-k (1%, error "
                "feedback) and QSGD (8 levels) digital over 5G NR PUSCH links, 3 resource blocks each by "
                "OFDMA (`configs/mnist1d_topk_umi.yaml`: link adaptation for 10% BLER, up to 3 HARQ "
                "retransmissions, no soft combining). 600 rounds, evaluated every 25, seeds 0, 1, 2. Air "
                "time: the round's (digital: the slowest client's); to 70%: the cumulative air time and "
                "mean client's energy at the first evaluation at 70% test accuracy or more."
            ),
            where=NR_WHERE,
            rows=_nr_rows(NR_METHODS),
            columns=NR_COLUMNS,
            paired=_nr_paired(),
            commands=(
                "laser sweep configs/mnist1d_laser_umi.yaml channel.shared_draws=true eval_every=25 "
                "--grid compressor.name=laser,zsgd --grid power.max_dbm=-10,0,10,23 --grid seed=0,1,2 "
                "--jobs 2 --out runs/nr",
                "laser sweep configs/mnist1d_topk_umi.yaml eval_every=25 --grid compressor.name=topk,qsgd "
                "--grid digital.link=nr --grid power.max_dbm=-10,0,10,23 --grid seed=0,1,2 --jobs 2 "
                "--out runs/nr",
            ),
            row_header="cell",
        ),
        Table(
            name="nr_shannon",
            files=("docs/results.md",),
            caption=(
                "The same cell, seeds and channels as the table above, top-k and QSGD at the Shannon "
                "rate of the same OFDMA shares (error-free, the air time not rounded to slots), serving "
                "the clients the NR link would (`digital.link: shannon`): the ideal digital link."
            ),
            where=NR_WHERE,
            rows=_nr_rows(NR_SHANNON_METHODS),
            columns=NR_COLUMNS,
            commands=(
                "laser sweep configs/mnist1d_topk_umi.yaml eval_every=25 --grid compressor.name=topk,qsgd "
                "--grid digital.link=shannon --grid power.max_dbm=-10,0,10,23 --grid seed=0,1,2 --jobs 2 "
                "--out runs/nr_shannon",
            ),
            row_header="cell",
        ),
        Table(
            name="privacy_epsilon",
            files=("docs/results.md",),
            caption=(
                "Privacy from the channel's own noise (`privacy.clip: 1`, docs/physics.md section 14): "
                "MNIST-1D, 16 clients, every client in every round (no amplification by sampling: the "
                "server sees who takes part), each client's transmitted signal clipped to norm 1 (LASER: "
                "its factor; Z-SGD: its gradient), the scale fixed from the clip, the energy and the "
                "channel. AWGN at energy 100 a round (`configs/mnist1d_laser.yaml`), or Rayleigh with "
                "truncated inversion (threshold 0.1) at energy 1000 (`configs/mnist1d_laser_truncated."
                "yaml`); with a target epsilon the clients lower their energy until the channel's noise "
                "alone meets it over the 600 rounds (Koda et al.; no artificial noise). Epsilon: "
                "client-level, add/remove, delta 1e-5, RDP accountant, over the 600 rounds. Seeds 0, 1, 2."
            ),
            where=MNIST1D_600,
            rows=_privacy_rows(),
            columns=PRIVACY_COLUMNS,
            paired=tuple(
                _versus(_privacy_cell(channel, target))
                for channel, _, targets in PRIVACY_CHANNELS
                for target in targets
            ),
            commands=(
                "laser sweep configs/mnist1d_laser.yaml configs/mnist1d_laser_truncated.yaml privacy.clip=1 "
                "--grid compressor.name=laser,zsgd --grid privacy.target_epsilon=1,10,100,1000 "
                "--grid seed=0,1,2 --jobs 2 --out runs/privacy_target",
                "laser sweep configs/mnist1d_laser.yaml privacy.clip=1 --grid compressor.name=laser,zsgd "
                "--grid privacy.target_epsilon=3000,10000 --grid seed=0,1,2 --jobs 2 "
                "--out runs/privacy_target_mid",
                "laser sweep configs/mnist1d_laser.yaml configs/mnist1d_laser_truncated.yaml privacy.clip=1 "
                "--grid compressor.name=laser,zsgd --grid seed=0,1,2 --jobs 2 --out runs/privacy_channel",
                "laser sweep configs/mnist1d_noiseless.yaml --grid compressor.name=laser,zsgd "
                "--grid seed=0,1,2 --jobs 2 --out runs/privacy_noiseless",
            ),
            row_header="cell",
        ),
        Table(
            name="privacy_population",
            files=("docs/results.md",),
            caption=(
                "A larger population: MNIST-1D split over K = 1,000 clients (50,000 samples generated, "
                "40 training samples a client), 50 expected a round. In privacy mode the clients sample "
                "themselves (Poisson, q = 0.05, hidden from the server: the pass goes over the whole "
                "population, the server divides by the expected count), each clips what it transmits to "
                "norm 1, and the clients lower their energy (AWGN, 100 a round) until the channel's noise "
                "alone meets epsilon 10 over the 600 rounds (RDP, Poisson-subsampled Gaussians, delta "
                "1e-5). The "
                "clip-only rows send at energy 1e8 (a noise multiplier of 1e-4: the accuracy lost is the "
                "clip's). The noiseless rows take 50 clients uniformly, without clip. Seeds 0, 1, 2."
            ),
            where=POPULATION_WHERE,
            rows=(
                *_per_method("noiseless", "noiseless, no clip, 50 of 1,000 uniformly", NOISELESS),
                *_per_method(
                    "clip_only",
                    "clip 1, energy 1e8 (no noise to speak of), Poisson q = 0.05",
                    _clipped("awgn", None, **{"power.energy": 1e8}, **POISSON),
                ),
                *(
                    row
                    for channel, target in POPULATION_CELLS
                    for row in _per_method(
                        _privacy_cell(channel, target),
                        f"{POPULATION_CHANNELS[channel]}, target epsilon {target:g}, Poisson q = 0.05",
                        _clipped(channel, target, **POISSON),
                    )
                ),
            ),
            columns=PRIVACY_COLUMNS,
            paired=(
                _versus("noiseless"),
                _versus("clip_only"),
                *(_versus(_privacy_cell(channel, target)) for channel, target in POPULATION_CELLS),
            ),
            commands=(
                f"laser sweep configs/mnist1d_laser.yaml privacy.clip=1 {POPULATION} "
                "clients.sampling=poisson --grid compressor.name=laser,zsgd --grid privacy.target_epsilon=10 "
                "--grid seed=0,1,2 --jobs 2 --out runs/privacy_k1000",
                f"laser sweep configs/mnist1d_noiseless.yaml {POPULATION} "
                "--grid compressor.name=laser,zsgd --grid seed=0,1,2 --jobs 2 "
                "--out runs/privacy_k1000_noiseless",
                f"laser sweep configs/mnist1d_laser.yaml privacy.clip=1 {POPULATION} "
                "clients.sampling=poisson power.energy=1e8 --grid compressor.name=laser,zsgd "
                "--grid seed=0,1,2 --jobs 2 --out runs/privacy_k1000_clip_only",
            ),
            row_header="cell",
        ),
        Table(
            name="privacy_keep_clipped",
            files=("docs/results.md",),
            caption=(
                "LASER's clipped-off part lost (the default) or kept in its error feedback "
                "(`privacy.keep_clipped: true`): MNIST-1D, 16 clients, clip 1, AWGN at energy 100, the "
                "channel's noise alone or a target epsilon of 1,000 (RDP, delta 1e-5, 600 rounds). The "
                "transmission, and so the accounting, is the same either way. Seeds 0, 1, 2."
            ),
            where=MNIST1D_600,
            rows=_keep_rows(),
            columns=PRIVACY_COLUMNS,
            paired=(
                Paired("kept_awgn_channel", "lost_awgn_channel"),
                Paired("kept_awgn_eps1000", "lost_awgn_eps1000"),
            ),
            commands=(
                "laser sweep configs/mnist1d_laser.yaml privacy.clip=1 compressor.name=laser "
                "--grid privacy.keep_clipped=false,true --grid privacy.target_epsilon=1000 --grid seed=0,1,2 "
                "--jobs 2 --out runs/privacy_keep_target",
                "laser sweep configs/mnist1d_laser.yaml privacy.clip=1 compressor.name=laser "
                "--grid privacy.keep_clipped=false,true --grid seed=0,1,2 --jobs 2 "
                "--out runs/privacy_keep_channel",
            ),
            row_header="cell",
        ),
        Table(
            name="privacy_central",
            files=("docs/results.md",),
            caption=(
                "The channel's noise against Flower-style central DP at equal epsilon (client-level, RDP, "
                "delta 1e-5, 600 rounds, 16 clients every round, clip 1). Channel: privacy mode over AWGN "
                "at energy 100, the clients lowering their energy until the receiver's noise meets the "
                "target; each client clips each block of its message to C_b = sqrt(d_b / d) (the fixed "
                "energy split needs per-block clips). Central (`privacy.mechanism: central`): a noiseless "
                "link, each client's message clipped as one vector to norm 1, and the server adds Gaussian "
                "noise of standard deviation nu / 16 to the mean, as Flower's "
                "`DifferentialPrivacyServerSideFixedClipping` does (a trusted server). Seeds 0, 1, 2."
            ),
            where=MNIST1D_600,
            rows=_central_rows(),
            columns=PRIVACY_COLUMNS,
            paired=tuple(
                pair
                for target in CENTRAL_TARGETS
                for pair in (
                    _versus(f"central_eps{target:g}"),
                    Paired(f"laser_channel_eps{target:g}", f"laser_central_eps{target:g}"),
                    Paired(f"zsgd_channel_eps{target:g}", f"zsgd_central_eps{target:g}"),
                )
            ),
            commands=(
                "laser sweep configs/mnist1d_noiseless.yaml privacy.clip=1 privacy.mechanism=central "
                "--grid compressor.name=laser,zsgd --grid privacy.target_epsilon=1000,3000 --grid seed=0,1,2 "
                "--jobs 2 --out runs/privacy_central",
                "laser sweep configs/mnist1d_laser.yaml privacy.clip=1 --grid compressor.name=laser,zsgd "
                "--grid privacy.target_epsilon=1000,3000 --grid seed=0,1,2 --jobs 2 "
                "--out runs/privacy_central_channel",
            ),
            row_header="cell",
        ),
        Table(
            name="privacy_clip",
            files=("docs/results.md",),
            caption=(
                "The clip swept at epsilon 1,000 (privacy mode over AWGN at energy 100, the clients "
                "lowering their energy until the channel's noise meets the target; RDP, delta 1e-5, 600 "
                "rounds, 16 clients every round). Seeds 0, 1, 2."
            ),
            where=MNIST1D_600,
            rows=_clip_rows(),
            columns=PRIVACY_COLUMNS,
            paired=tuple(_versus(_clip_cell(clip)) for clip in PRIVACY_CLIPS),
            commands=(
                "laser sweep configs/mnist1d_laser.yaml privacy.target_epsilon=1000 "
                "--grid privacy.clip=0.5,1,2,4 --grid compressor.name=laser,zsgd --grid seed=0,1,2 "
                "--jobs 2 --out runs/privacy_clip",
            ),
            row_header="cell",
        ),
    )
}


# ------------------------------------------------------------------------------- the records
# ------------------------------------------------------------------------------- benchmarks
BENCHMARKS = "benchmarks"  # docs/data/benchmarks/<table>.json: a benchmark's JSON, as it wrote it


@dataclass(frozen=True)
class BenchColumn:
    """A column of a benchmark table: ``key`` of each result row, shown as ``style``: ``int``, ``f1``,
    ``f2``, ``f3`` (decimals), ``x`` (a ratio, 2 decimals and a times sign), ``mib`` (bytes in MiB),
    ``sci`` (two significant digits) or ``text`` (as it is)."""

    header: str
    key: str
    style: str = "f2"


@dataclass(frozen=True)
class BenchTable:
    """A generated table of a benchmark's JSON (``docs/data/benchmarks/<name>.json``: the file the
    benchmark's ``--json`` wrote, with its machine, command and commit): one line per result row."""

    name: str
    files: tuple[str, ...]
    caption: str
    columns: tuple[BenchColumn, ...]
    command: str
    rows: str = "results"  # the JSON key of the result rows


BENCH_TABLES = {
    table.name: table
    for table in (
        BenchTable(
            name="scenarios",
            files=("docs/performance.md",),
            caption=(
                "What a 3GPP scenario costs a round: `Simulation.round` of LASER on the MNIST-1D CNN, 16 "
                "clients, FedSGD, no evaluation; one simulation per case, timed in turns (median of 25). "
                "The scenarios as `configs/mnist1d_laser_umi.yaml` (a drop, open-loop caps, Rayleigh "
                "fading, truncated inversion), N receive antennas with the matched beamformer; the drop "
                "(Sionna's topology, LOS, indoor and shadowing draws) happens once, when the run starts. "
                "'UMi clusters': the drop's own TR 38.901 clusters as the small-scale channel "
                "(`channel.name: scenario`), whose responses come in chunks of rounds, one Sionna call "
                "each: a chunk's time over its rounds is the last column, to add to the round's median."
            ),
            columns=(
                BenchColumn("case", "case", "text"),
                BenchColumn("N", "antennas", "int"),
                BenchColumn("round (ms)", "round_median_ms", "f1"),
                BenchColumn("vs the AWGN round", "ratio_to_awgn", "x"),
                BenchColumn("the drop, once (ms)", "drop_median_ms", "f1"),
                BenchColumn("the clusters, a round (ms)", "clusters_ms_per_round", "f2"),
            ),
            command="python benchmarks/scenarios.py --threads 1 --json docs/data/benchmarks/scenarios.json",
        ),
        BenchTable(
            name="nr_link_check",
            files=("docs/performance.md",),
            caption=(
                "The NR link's BLER tables (`channels/nr_tables/PUSCH_table1.json`) against Sionna's "
                "explicit transport-block chain (TB encoder with CRC, segmentation, LDPC and rate "
                "matching; QAM; AWGN; APP demapper; TB decoder), 2,000 blocks a point, at every tabulated "
                "SNR of the MCS where the abstraction's BLER is in [0.05, 0.9], for a code-block size "
                "between the tabulated ones and one above the largest (1,500 bits). A point passes when "
                "the simulated BLER is within 3 binomial standard errors of the abstraction's BLER at some "
                "SNR within +-0.2 dB (the offset column: the closest). The last column: Sionna's shipped "
                "table at the same point (no MCS 0 there)."
            ),
            columns=(
                BenchColumn("MCS", "mcs", "int"),
                BenchColumn("Qm", "qm", "int"),
                BenchColumn("R", "r", "f3"),
                BenchColumn("TBS (bits)", "tbs", "int"),
                BenchColumn("code block (bits)", "cbs", "int"),
                BenchColumn("SNR (dB)", "snr_db", "f2"),
                BenchColumn("simulated BLER", "sim_bler", "f3"),
                BenchColumn("blocks", "n", "int"),
                BenchColumn("tables' BLER", "table_bler", "f3"),
                BenchColumn("offset (dB)", "offset_db", "f2"),
                BenchColumn("passes", "pass", "text"),
                BenchColumn("Sionna's shipped table", "shipped_bler", "f3"),
            ),
            command="python benchmarks/nr_link_check.py --json docs/data/benchmarks/nr_link_check.json",
            rows="rows",
        ),
        BenchTable(
            name="privacy_audit",
            files=("docs/physics.md",),
            caption=(
                "An empirical audit of privacy mode: one clipped pass through the real transmission code "
                "(4 clients over flat gains 1, 0.7, 1.3, 0.9, blocks of 3 and 5 entries clipped at C = 1, "
                "noise_var 1, the energy set for noise multiplier nu), client 0 sending a canary or zero; "
                "the likelihood-ratio test on what the server sees, its threshold chosen on 20% of the "
                "trials and the 95% Clopper-Pearson lower bound on epsilon (delta 1e-5) from the other 80%, "
                "against the accountant's epsilon for the round. Canaries: C_b on one coordinate of the "
                "first block, or on one coordinate of every block (the worst direction the fixed scale "
                "allows: the accountant's sensitivity)."
            ),
            columns=(
                BenchColumn("nu", "nu", "f1"),
                BenchColumn("canary", "canary", "text"),
                BenchColumn("trials a world", "trials", "int"),
                BenchColumn("accountant's epsilon", "epsilon_accountant", "f2"),
                BenchColumn("audit's 95% lower bound", "epsilon_lower_bound", "f2"),
                BenchColumn("lower bound / accountant", "ratio", "f2"),
            ),
            command=(
                "python benchmarks/privacy_audit.py --threads 1 "
                "--json docs/data/benchmarks/privacy_audit.json"
            ),
        ),
        BenchTable(
            name="conversion",
            files=("docs/results.md",),
            caption=(
                "What the normalised tables' energies are in the physical-units cell "
                "(`configs/mnist1d_laser_umi.yaml`, seed 0's drop of 16 UMi clients; computed, not run): "
                "for energy E per client and round over a noise variance of 1 and each method's real "
                "channel uses per round n (LASER: the mean of its two alternating rounds), the SNR per "
                "use E / n, and the transmit power and energy that give it to the cell's median client "
                "and the power its weakest client (largest coupling loss) would need; the air time of a "
                "round over 51 resource blocks at 30 kHz."
            ),
            columns=(
                BenchColumn("E", "energy", "int"),
                BenchColumn("method", "method", "text"),
                BenchColumn("real uses n", "real_uses", "int"),
                BenchColumn("SNR per use (dB)", "snr_per_use_db", "f1"),
                BenchColumn("median client: power (dBm)", "power_dbm_median", "f1"),
                BenchColumn("its energy per round (J)", "energy_j_median", "sci"),
                BenchColumn("weakest client: power (dBm)", "power_dbm_weakest", "f1"),
                BenchColumn("air time per round (µs)", "air_time_us", "f1"),
            ),
            command="python benchmarks/conversion.py --json docs/data/benchmarks/conversion.json",
        ),
        BenchTable(
            name="registered_clients",
            files=("docs/performance.md",),
            caption=(
                "FedAvg with LASER over AWGN: 10 of K registered clients a round, each 5 local SGD steps, on "
                "the tiny GPT (IID windows of the pydoc text, so every client has data); a fresh process per "
                "K. Round: the median of the timed rounds (the first, warm-up, apart); peak: the process's "
                "peak resident set (torch and the data included); added: what the rounds added above the "
                "set-up; sides: the clients' compressor sides made (on first participation)."
            ),
            columns=(
                BenchColumn("registered clients K", "clients", "int"),
                BenchColumn("set-up (s)", "setup_s", "f2"),
                BenchColumn("round (s)", "round_s", "f3"),
                BenchColumn("rounds/s", "rounds_per_s", "f2"),
                BenchColumn("round vs K = 100", "round_time_vs_smallest", "x"),
                BenchColumn("peak (MiB)", "peak_bytes", "mib"),
                BenchColumn("peak vs K = 100", "peak_vs_smallest", "x"),
                BenchColumn("added (MiB)", "round_added_bytes", "mib"),
                BenchColumn("sides made", "sides_made", "int"),
            ),
            command=(
                "python benchmarks/registered_clients.py --json docs/data/benchmarks/registered_clients.json"
            ),
        ),
        BenchTable(
            name="overhead",
            files=("docs/performance.md",),
            caption=(
                "A round's time over its clients' own work alone: `round` is `Simulation.round` without "
                "evaluation, `clients` the 16 clients' `Simulation.clients.update` alone (FedSGD: one "
                "forward and backward pass each; FedAvg: 5 local SGD steps each), timed in turns on one "
                "simulation "
                "(median of 25). The stages (medians of 25 more rounds, a timer around each): `clients` the "
                "local updates less the encoding inside them, `encode` the compressor's client side, "
                "`uplink` the channel and the decoding, `server` the optimizer's step, `rest` who takes "
                "part, the training loss and the record."
            ),
            columns=(
                BenchColumn("task", "task", "text"),
                BenchColumn("regime", "regime", "text"),
                BenchColumn("method", "method", "text"),
                BenchColumn("channel", "channel", "text"),
                BenchColumn("round (ms)", "round_median_ms", "f1"),
                BenchColumn("clients alone (ms)", "clients_median_ms", "f1"),
                BenchColumn("overhead", "overhead", "x"),
                BenchColumn("stage: clients (ms)", "stage_clients_ms", "f1"),
                BenchColumn("encode (ms)", "stage_encode_ms", "f2"),
                BenchColumn("uplink (ms)", "stage_uplink_ms", "f2"),
                BenchColumn("server (ms)", "stage_server_ms", "f2"),
                BenchColumn("rest (ms)", "stage_rest_ms", "f2"),
            ),
            command=(
                "python benchmarks/overhead.py --threads 1 --repeats 25 "
                "--json docs/data/benchmarks/overhead.json"
            ),
        ),
        BenchTable(
            name="flower",
            files=("docs/performance.md",),
            caption=(
                "The cross-device workload: FedAvg, 10 of 1,000 clients a round, Dirichlet(0.3) shards of "
                "100,000 MNIST-1D samples, H local SGD steps (batch 32, lr 0.1) on the 1-D CNN; ours LASER "
                "over AWGN, its clients one after another (`loop`) or vmapped (`vmap`), Flower 1.42 plain "
                "FedAvg on Ray (2 actors x 1 torch thread). Rounds per second "
                "over 20 rounds after a warm-up, median of 3; `in turns`: ours and Flower alternating in one "
                "process while Ray is up; `alone`: ours in a fresh process without Ray. Memory: ours the "
                "process's peak resident set; Flower the driver's peak plus Ray's processes' resident sets."
            ),
            columns=(
                BenchColumn("H", "local_steps", "int"),
                BenchColumn("our threads", "threads", "int"),
                BenchColumn("our clients", "vectorize", "text"),
                BenchColumn("ours rounds/s (in turns)", "ours_rounds_per_s", "f2"),
                BenchColumn("ours rounds/s (alone)", "ours_alone_rounds_per_s", "f2"),
                BenchColumn("Flower rounds/s", "flower_rounds_per_s", "f2"),
                BenchColumn("ours / Flower (in turns)", "ratio", "x"),
                BenchColumn("ours / Flower (alone)", "ratio_alone", "x"),
                BenchColumn("ours peak (MiB)", "ours_peak_bytes", "mib"),
                BenchColumn("Flower + Ray (MiB)", "flower_memory_bytes", "mib"),
            ),
            command="python benchmarks/flower.py --json docs/data/benchmarks/flower.json",
        ),
        BenchTable(
            name="local_training_vmap",
            files=("docs/performance.md",),
            caption=(
                "Local training vmapped against the loop: K clients each take 5 local SGD steps a round "
                "(batch 32, lr 0.05) on the MNIST-1D CNN, LASER over AWGN; whole rounds per second, the "
                "two modes timed in turns in one process (median over repeats), one torch thread."
            ),
            columns=(
                BenchColumn("clients K", "clients", "int"),
                BenchColumn("loop rounds/s", "loop_rounds_per_s", "f2"),
                BenchColumn("vmap rounds/s", "vmap_rounds_per_s", "f2"),
                BenchColumn("vmap / loop", "speedup", "x"),
            ),
            command=(
                "python benchmarks/clients_scaling.py --threads 1 --clients 16,64 --local-steps 5 "
                "--json docs/data/benchmarks/local_training_vmap.json"
            ),
        ),
    )
}


def _bench_cell(value: object, style: str) -> str:
    if style == "text":
        return "–" if value is None else str(value)
    if not _number(value):
        return "–"
    if style == "int":
        return f"{int(value):,}"
    if style == "mib":
        return f"{value / 2**20:,.0f}"
    if style == "x":
        return f"{value:.2f}x"
    if style == "sci":
        return f"{value:.2g}"
    return f"{value:.{int(style[1:])}f}"


def load_bench(name: str, data_root: Path = DATA) -> dict | None:
    """A benchmark table's JSON, or None where it has none."""
    path = Path(data_root) / BENCHMARKS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def render_bench(table: BenchTable, data: Mapping) -> str:
    """The Markdown of a benchmark table: its caption, the lines, and where the numbers come from
    (command, commit, machine and its load)."""
    rows = data.get(table.rows)
    if not isinstance(rows, list) or not rows:
        raise TableError(f"{BENCHMARKS}/{table.name}.json: no {table.rows!r} rows")
    lines = [[_bench_cell(row.get(c.key), c.style) for c in table.columns] for row in rows]
    machine_ = data.get("machine") or {}
    code = data.get("code") or {}
    dirty = code.get("dirty") or []
    load = machine_.get("loadavg_1m_at_start")
    command = data.get("command") or table.command
    source = (
        f"Data: `docs/data/{BENCHMARKS}/{table.name}.json`, made by `{command}` at "
        f"commit {_short(code.get('commit'))}{' with changes to ' + ', '.join(dirty) if dirty else ''}, on "
        f"{machine_.get('cpu_model', 'an unrecorded CPU')} ({machine_.get('cpus_usable', '?')} cores usable, "
        f"torch {machine_.get('torch', '?')} with {machine_.get('torch_threads', '?')} threads"
        + (f", load {load:.2f} at the start" if _number(load) else "")
        + ")."
    )
    return "\n".join([table.caption, "", *_markdown([c.header for c in table.columns], lines), "", source])


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + str(key)] = tuple(value) if isinstance(value, list) else value
    return flat


def _same(a: object, b: object) -> bool:
    """Config values alike: numbers by value (100 and 100.0), anything else by equality."""
    if _number(a) and _number(b):
        return float(a) == float(b)
    return a == b


def _outcome(summary: dict) -> str:
    from federated.history import outcome

    return outcome(summary) or "unfinished"


@dataclass
class Record:
    """One run: its name (its path under the table's ``records/``, or under the sweep's parent),
    flattened config, summary, stored history rows and whether they are the whole history."""

    name: str
    path: Path
    config: dict
    summary: dict
    rows: list[dict]
    whole: bool

    @property
    def status(self) -> str:
        return _outcome(self.summary)

    @property
    def seed(self) -> object:
        return self.config.get("seed")

    @property
    def diverged_round(self) -> int | None:
        """The round (as in history.jsonl, from 0) a diverged run stopped in."""
        if self.status != "diverged":
            return None
        match = re.match(r"round (\d+)\b", str(self.summary.get("error", "")))
        if match:
            return int(match.group(1))
        rounds = self.summary.get("rounds")
        return int(rounds) if _number(rounds) else None

    @property
    def wall_time_s(self) -> float:
        value = self.summary.get("wall_time_s")
        return float(value) if _number(value) else math.inf


def read_config(path: Path) -> dict:
    """A run's config.yaml, flattened, in today's keys with the defaults filled in where it still
    loads (as ``laser sweep``'s summary reads runs of several versions)."""
    try:
        stored = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TableError(f"{path}: unreadable ({str(error).splitlines()[0]})") from None
    if not isinstance(stored, dict):
        raise TableError(f"{path}: not a mapping")
    try:
        from federated.config import ConfigError, config_from_dict, config_to_dict

        try:
            stored = config_to_dict(config_from_dict(stored))
        except ConfigError:
            pass
    except ImportError:  # pragma: no cover - the package is installed with the docs' tools
        pass
    return _flatten(stored)


def read_rows(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        raise TableError(f"{path}: unreadable ({error})") from None


def read_record(path: Path, name: str) -> Record:
    """A run directory or a stored record: config.yaml, summary.json (empty if missing) and history."""
    summary_path = path / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    except (OSError, ValueError) as error:
        raise TableError(f"{summary_path}: unreadable ({error})") from None
    summary = summary if isinstance(summary, dict) else {}
    whole = (path / WHOLE_HISTORY).is_file()
    history = path / (WHOLE_HISTORY if whole else EVAL_HISTORY)
    rows = read_rows(history) if history.is_file() else []
    return Record(name, path, read_config(path / "config.yaml"), summary, rows, whole)


def evaluation_rows(rows: list[dict]) -> list[dict]:
    """The rows that hold a test evaluation (a ``test_*`` or ``ema_test_*`` key), and the last row
    (where a diverged run stopped, and the last value of every per-round key)."""
    kept = [r for r in rows if any(k.startswith(("test_", "ema_test_")) for k in r)]
    if rows and (not kept or kept[-1] is not rows[-1]):
        kept.append(rows[-1])
    return kept


def load_table(name: str, data_root: Path = DATA) -> tuple[dict, list[Record]] | None:
    """A table's manifest and records, sorted by name; None where it has no data."""
    folder = Path(data_root) / name
    if not (folder / MANIFEST).is_file():
        if (folder / RECORDS).exists():
            raise TableError(f"{folder}: records without {MANIFEST} (collect them again with --replace)")
        return None
    manifest = json.loads((folder / MANIFEST).read_text())
    records = [
        read_record(p.parent, p.parent.relative_to(folder / RECORDS).as_posix())
        for p in sorted((folder / RECORDS).rglob("config.yaml"))
    ]
    return manifest, records


def tables_with_data(data_root: Path = DATA) -> list[str]:
    """The folders of ``data_root`` that hold a manifest (known to :data:`TABLES` or not), sorted."""
    root = Path(data_root)
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []


def benches_with_data(data_root: Path = DATA) -> list[str]:
    """The benchmark tables ``data_root/benchmarks/`` holds a JSON of (known or not), sorted."""
    return sorted(p.stem for p in (Path(data_root) / BENCHMARKS).glob("*.json"))


# ---------------------------------------------------------------------------------- grouping
def matches(config: Mapping, where: Mapping[str, object]) -> bool:
    return all(key in config and _same(config[key], value) for key, value in where.items())


def signature(config: Mapping) -> tuple:
    """What a run computes apart from its seed: the config without the seed and the ignored keys."""
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k != "seed" and k not in IGNORED_KEYS))


def _check_alike(cell: str, records: list[Record]) -> None:
    """A row's runs differ in the seed only, and no seed twice."""
    seeds = [repr(r.seed) for r in records]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise TableError(f"{cell}: seed {', '.join(twice)} recorded twice")
    first = records[0]
    for other in records[1:]:
        if signature(other.config) != signature(first.config):
            keys = sorted(
                k
                for k in set(first.config) | set(other.config)
                if k != "seed"
                and k not in IGNORED_KEYS
                and repr(first.config.get(k)) != repr(other.config.get(k))
            )
            raise TableError(
                f"{cell}: {first.name} and {other.name} differ in more than the seed ({', '.join(keys[:5])})"
            )


def group(table: Table, records: list[Record]) -> tuple[dict[str, list[Record]], list[Record]]:
    """The records of each row (by row id, sorted by seed) and those no row takes. Raises
    TableError for a run two rows take, or a row whose runs differ in more than the seed."""
    cells: dict[str, list[Record]] = {row.id: [] for row in table.rows}
    unused: list[Record] = []
    for record in records:
        taken = [
            row.id
            for row in table.rows
            if matches(record.config, table.where) and matches(record.config, row.where)
        ]
        if len(taken) > 1:
            raise TableError(f"table {table.name}: run {record.name} fits rows {' and '.join(taken)}")
        (cells[taken[0]] if taken else unused).append(record)
    for row_id, cell in cells.items():
        cell.sort(key=lambda r: _seed_key(r.seed))
        if cell:
            _check_alike(f"table {table.name}, row {row_id}", cell)
    return cells, unused


def _seed_key(seed: object) -> tuple:
    return (0, float(seed), "") if _number(seed) else (1, 0.0, str(seed))


def derived_cells(records: list[Record]) -> dict[str, list[Record]]:
    """Runs of a table without a spec, grouped by what they compute apart from the seed; each cell
    named by its first run's name without its ``seed=N`` part."""
    groups: dict[tuple, list[Record]] = {}
    for record in records:
        groups.setdefault(signature(record.config), []).append(record)
    cells = {}
    for cell in groups.values():
        cell.sort(key=lambda r: _seed_key(r.seed))
        parts = [
            ",".join(p for p in part.split(",") if not p.startswith("seed="))
            for part in cell[0].name.split("/")
        ]
        name = "/".join(p for p in parts if p) or cell[0].name
        while name in cells:
            name += "'"
        cells[name] = cell
    return cells


def cells_of(name: str, records: list[Record]) -> dict[str, list[Record]]:
    """A table's cells: its spec's rows (the runs no row takes left out) or, without a spec, the
    runs grouped by configuration."""
    if name in TABLES:
        return {k: v for k, v in group(TABLES[name], records)[0].items() if v}
    return derived_cells(records)


# -------------------------------------------------------------------------------- statistics
def t975(n: int) -> float:
    """t_{0.975, n-1}: the two-sided 95% Student-t quantile for a mean of n values."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    sd: float  # NaN for n < 2
    half: float  # the 95% interval of the mean: mean +- half (NaN for n < 2)
    predict: float  # one more run's 95% prediction interval: mean +- t sd sqrt(1 + 1/n)


def stats(values: Sequence[float]) -> Stats:
    n = len(values)
    if n == 0:
        return Stats(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(values) / n
    if n == 1:
        return Stats(1, mean, math.nan, math.nan, math.nan)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Stats(n, mean, sd, t975(n) * sd / math.sqrt(n), t975(n) * sd * math.sqrt(1 + 1 / n))


def paired(
    a: list[Record], b: list[Record], metric: Metric, kind: str = "difference"
) -> tuple[list, list[str], Stats]:
    """The seeds both rows finished, those left out (with why), and the stats of the differences
    (``kind`` ratio: of the logarithms of the ratios, positive values only)."""
    b_by_seed = {repr(r.seed): r for r in b}
    seeds, left_out, differences = [], [], []
    for ra in a:
        rb = b_by_seed.pop(repr(ra.seed), None)
        va, vb = metric.of(ra), None if rb is None else metric.of(rb)
        if kind == "ratio" and va is not None and vb is not None and not (va > 0 and vb > 0):
            va = None
        if va is not None and vb is not None:
            seeds.append(ra.seed)
            differences.append(va - vb if kind == "difference" else math.log(va / vb))
        else:
            left_out.append(str(ra.seed))
    left_out += [str(r.seed) for r in b_by_seed.values()]
    return seeds, left_out, stats(differences)


# -------------------------------------------------------------------------------- formatting
def show(value: float, style: str, signed: bool = False) -> str:
    """A value as the table shows it (see :class:`Metric`); NaN as "-"."""
    if not math.isfinite(value):
        return "-"
    sign = "+" if signed else ""
    if style == "percent":
        return f"{100 * value:{sign}.1f}"
    if style == "count":
        return f"{value:{sign},.0f}"
    if style == "fixed1":
        return f"{value:{sign}.1f}"
    if style == "sci":
        if value == 0:
            return "0"
        mantissa, exponent = f"{value:{sign}.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    raise TableError(f"style {style!r}: one of percent, count, fixed1, sci")


def _values(cell: list[Record], metric: Metric) -> list[float]:
    return [v for v in (metric.of(r) for r in cell) if v is not None]


def _runs_text(cell: list[Record]) -> str:
    diverged = [r for r in cell if r.status == "diverged"]
    if not diverged:
        return str(len(cell))
    rounds = [str(r.diverged_round) for r in diverged if r.diverged_round is not None]
    where = f": round{'s' * (len(rounds) > 1)} {', '.join(rounds)}" if rounds else ""
    return f"{len(cell)} ({len(diverged)} diverged{where})"


def _common_seeds(cells: Mapping[str, list[Record]]) -> list | None:
    seeds = {tuple(r.seed for r in cell) for cell in cells.values() if cell}
    return list(next(iter(seeds))) if len(seeds) == 1 else None


def cell_text(column: Column, cell: list[Record], common_seeds: bool) -> str:
    if column.show == "runs":
        return _runs_text(cell)
    metric = METRICS[column.metric or ""]
    s = stats(_values(cell, metric))
    if column.show == "seeds":
        texts = [
            (show(v, metric.style) + (f" (diverged at {r.diverged_round})" if r.status == "diverged" else ""))
            if (v := metric.of(r)) is not None
            else "not reached"
            if r.status == "finished" and metric.source.startswith("reach:")
            else r.status
            for r in cell
        ]
        if not common_seeds:
            texts = [f"{r.seed}: {t}" for r, t in zip(cell, texts)]
        return ", ".join(texts)
    if column.show == "sd":
        return show(s.sd, metric.style)
    if s.n == 0:
        diverged = sum(r.status == "diverged" for r in cell)
        return f"diverged ({diverged}/{len(cell)})" if diverged and column.show == "mean_ci" else "-"
    if column.show == "mean":
        return show(s.mean, metric.style)
    if column.show == "mean_ci":
        if s.n == 1:
            return f"{show(s.mean, metric.style)} (one seed)"
        return f"{show(s.mean, metric.style)} ± {show(s.half, metric.style)}"
    raise TableError(
        f"column {column.header!r}: show {column.show!r} is not one of mean_ci, mean, sd, seeds, runs"
    )


def _ratio_lines(
    ratios: list[Paired], cells: Mapping[str, list[Record]], labels: Mapping[str, str]
) -> tuple[list[str], list[list[str]]]:
    """The header and lines of a table's ratio comparisons: per pair the seeds, the geometric mean of
    the seeds' ratios a / b and its 95% interval (a paired t on the logarithms)."""
    lines = []
    for p in ratios:
        metric = METRICS[p.metric]
        seeds, left_out, d = paired(cells[p.a], cells[p.b], metric, "ratio")
        seeds_text = ", ".join(map(str, seeds)) or "-"
        if left_out:
            seeds_text += f" (left out: {', '.join(left_out)})"
        interval = (
            f"[{_times(math.exp(d.mean - d.half))}, {_times(math.exp(d.mean + d.half))}]" if d.n > 1 else "-"
        )
        excludes = "-" if d.n < 2 else "yes" if d.mean - d.half > 0 or d.mean + d.half < 0 else "no"
        lines.append(
            [
                f"{p.label or f'{labels[p.a]} / {labels[p.b]}'}, {metric.label}",
                seeds_text,
                _times(math.exp(d.mean)) if d.n else "-",
                interval,
                excludes,
            ]
        )
    header = [
        "ratio, paired by seed (same seed: same drop, data split and initialisation)",
        "seeds",
        "geometric mean",
        "95% interval (paired t on the logs)",
        "excludes 1",
    ]
    return header, lines


def _times(value: float) -> str:
    """A multiple: three significant digits, thousands separated, with a x."""
    if not math.isfinite(value):
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"


def _markdown(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(line) + " |" for line in lines]


def _short(commit: object) -> str:
    return str(commit)[:7] if commit else "unknown"


def provenance(table_name: str, manifest: dict, n_runs: int, data_label: str) -> str:
    """The sentence under a generated table: where its data is and what made it."""
    machine = manifest.get("machine") or {}
    environment = manifest.get("environment")
    environment = environment if isinstance(environment, Mapping) else {}
    cpu = environment.get("cpu") or machine.get("cpu_model", "an unknown CPU")
    dirty = manifest.get("dirty") or []
    return (
        f"Data: `{data_label}`, {n_runs} runs made at commit {_short(manifest.get('commit'))}"
        + (f" (with uncommitted changes to {', '.join(dirty)})" if dirty else "")
        + f", torch {recorded_torch(manifest) or 'unknown'}"
        + f", {cpu} ({machine.get('cores', '?')} cores)"
        + f", kernel fingerprint {manifest.get('kernel_fingerprint') or 'not recorded'}."
        + f" `python docs/reproduce.py --table {table_name}` re-runs a sample of them and compares."
    )


def render(table: Table, manifest: dict, records: list[Record], data_label: str | None = None) -> str:
    """The Markdown between a table's markers (without them), from its records."""
    cells, _ = group(table, records)
    common = _common_seeds(cells) is not None
    header = [table.row_header]
    for column in table.columns:
        if column.show == "seeds" and common:
            seeds = ", ".join(str(s) for s in _common_seeds(cells) or [])
            header.append(f"{column.header} ({seeds})")
        else:
            header.append(column.header)
    lines = [[row.label, *(cell_text(c, cells[row.id], common) for c in table.columns)] for row in table.rows]
    out = [
        f"<!-- generated by `python docs/tables.py` from docs/data/{table.name}/ and its spec in "
        "docs/tables.py: edit those, not these lines -->",
        "",
        table.caption,
        "",
        *_markdown(header, lines),
    ]
    labels = {row.id: row.label for row in table.rows}
    ratios = [p for p in table.paired if p.kind == "ratio"]
    if ratios:
        out += ["", *_markdown(*_ratio_lines(ratios, cells, labels))]
    if any(p.kind == "difference" for p in table.paired):
        compared = []
        for p in (p for p in table.paired if p.kind == "difference"):
            metric = METRICS[p.metric]
            pair_seeds, left_out, d = paired(cells[p.a], cells[p.b], metric)
            unit = f" ({metric.unit})" if metric.unit else ""
            seeds_text = ", ".join(map(str, pair_seeds)) or "-"
            if left_out:
                seeds_text += f" (left out: {', '.join(left_out)})"
            interval = (
                f"[{show(d.mean - d.half, metric.style, True)}, {show(d.mean + d.half, metric.style, True)}]"
                if d.n > 1
                else "-"
            )
            excludes = "-" if d.n < 2 else "yes" if d.mean - d.half > 0 or d.mean + d.half < 0 else "no"
            compared.append(
                [
                    f"{p.label or f'{labels[p.a]} − {labels[p.b]}'}, {metric.label}{unit}",
                    seeds_text,
                    show(d.mean, metric.style, True),
                    interval,
                    excludes,
                ]
            )
        out += [
            "",
            *_markdown(
                [
                    "paired by seed (same seed: same data split and initialisation)",
                    "seeds",
                    "mean difference",
                    "95% interval (paired t, n - 1 df)",
                    "excludes 0",
                ],
                compared,
            ),
        ]
    if table.spread:
        metric = METRICS[table.spread]
        spreads = [(labels[row.id], stats(_values(cells[row.id], metric))) for row in table.rows]
        unit = f", {metric.unit}" if metric.unit else ""
        out += [
            "",
            f"How much one seed varies ({metric.label}{unit}): the sd over the seeds is "
            + ", ".join(f"{show(s.sd, metric.style)} ({label})" for label, s in spreads)
            + "; one more run lands within the mean ± "
            + ", ".join(f"{show(s.predict, metric.style)} ({label})" for label, s in spreads)
            + " 95% of the time (the prediction interval t · sd · √(1 + 1/n), √(n + 1) times as wide as"
            " the interval of the mean).",
        ]
    out += [
        "",
        provenance(
            table.name,
            manifest,
            sum(len(c) for c in cells.values()),
            data_label or f"docs/data/{table.name}/",
        ),
        "",
        "```bash",
        *(manifest.get("commands") or table.commands),
        "```",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------- the Markdown regions
def _region(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- table:{re.escape(name)} -->\n)(.*?)(<!-- /table:{re.escape(name)} -->)", re.S)


MARKER = re.compile(r"<!-- (/?)table:([A-Za-z0-9_\-]+) -->")


def markers(text: str) -> list[str]:
    """The table names whose opening marker ``text`` holds, in order."""
    return [m.group(2) for m in MARKER.finditer(text) if not m.group(1)]


def region(text: str, name: str) -> str | None:
    """What the region of table ``name`` holds in ``text`` (None: no region)."""
    found = _region(name).search(text)
    return found.group(2) if found else None


def fill(text: str, name: str, body: str) -> str:
    """``text`` with the region of table ``name`` holding ``body``; TableError if it has no region."""
    pattern = _region(name)
    if len(pattern.findall(text)) != 1:
        raise TableError(
            f"table {name}: not exactly one <!-- table:{name} --> ... <!-- /table:{name} --> region"
        )
    return pattern.sub(lambda m: f"{m.group(1)}\n{body}\n\n{m.group(3)}", text)


def expected_files(
    root: Path = ROOT,
    data_root: Path = DATA,
    tables: Mapping[str, Table] | None = None,
    benches: Mapping[str, BenchTable] | None = None,
) -> tuple[dict[Path, str], dict[Path, list[str]], list[str]]:
    """What every Markdown file of the tables (and of the benchmark tables, :data:`BENCH_TABLES`)
    should hold: {file: text}, the tables each file has generated, and the tables without data (left
    as typed). Raises TableError for a marker of an unknown table, a table whose file has no region,
    or data without a spec."""
    tables = TABLES if tables is None else tables
    benches = (BENCH_TABLES if tables is TABLES else {}) if benches is None else benches
    unknown = [n for n in tables_with_data(data_root) if n not in tables]
    unknown += [f"{BENCHMARKS}/{n}" for n in benches_with_data(data_root) if n not in benches]
    if unknown:
        raise TableError(f"--data {data_root}: {', '.join(unknown)} has data but no spec in docs/tables.py")
    texts: dict[Path, str] = {}
    written: dict[Path, list[str]] = {}
    files = sorted({f for t in [*tables.values(), *benches.values()] for f in t.files})
    for name in files:
        path = root / name
        text = texts[path] = path.read_text(encoding="utf-8")
        strays = [m for m in markers(text) if m not in tables and m not in benches]
        if strays:
            raise TableError(f"{name}: a marker of table {strays[0]}, which docs/tables.py does not define")
    no_data = []
    for table in tables.values():
        loaded = load_table(table.name, data_root)
        if loaded is None:
            no_data.append(table.name)
            continue
        manifest, records = loaded
        body = render(table, manifest, records)
        for name in table.files:
            path = root / name
            texts[path] = fill(texts[path], table.name, body)
            written.setdefault(path, []).append(table.name)
    for bench in benches.values():
        data = load_bench(bench.name, data_root)
        if data is None:
            no_data.append(bench.name)
            continue
        body = render_bench(bench, data)
        for name in bench.files:
            path = root / name
            texts[path] = fill(texts[path], bench.name, body)
            written.setdefault(path, []).append(bench.name)
    return texts, written, no_data


ALLOWED_FILES = frozenset({"config.yaml", "summary.json", WHOLE_HISTORY, EVAL_HISTORY})
MANIFEST_KEYS = ("commit", "commands", "packages", "machine", "environment", "kernel_fingerprint", "runs")


def data_problems(data_root: Path = DATA, repo: Path = ROOT) -> list[str]:
    """What is wrong with the data folder: over the size budget, a table folder without a manifest
    or with an incomplete one, records the manifest does not list (or the reverse), a file a record
    does not keep (a checkpoint, TensorBoard events, a log), a whole history over the limit, a file
    git ignores (it would never be committed). Empty: nothing."""
    root = Path(data_root)
    if not root.is_dir():
        return []
    problems = []
    size = _size(root)
    if size > BUDGET_BYTES:
        problems.append(f"{root}: {size / 1e6:.1f} MB, over the {BUDGET_BYTES / 1e6:.0f} MB budget")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name == BENCHMARKS:
            problems += _bench_problems(folder, repo)
            continue
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            problems.append(f"{folder}: no {MANIFEST}")
            continue
        manifest = json.loads(manifest_path.read_text())
        missing = [k for k in MANIFEST_KEYS if k not in manifest]
        missing += [f"packages.{k}" for k in PACKAGES if k not in (manifest.get("packages") or {})]
        missing += [
            f"machine.{k}" for k in ("cpu_model", "cores") if k not in (manifest.get("machine") or {})
        ]
        if missing or not manifest.get("commands"):
            problems.append(f"{manifest_path}: no {', '.join(missing or ['commands'])}")
        on_disk = {
            p.parent.relative_to(folder / RECORDS).as_posix() for p in (folder / RECORDS).rglob("config.yaml")
        }
        listed = set(manifest.get("runs") or {})
        if on_disk != listed:
            odd = sorted(on_disk ^ listed)
            problems.append(f"{folder}: records and the manifest's runs differ ({', '.join(odd[:3])})")
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or path == manifest_path:
                continue
            if path.name not in ALLOWED_FILES or path.parent.name == RECORDS:
                problems.append(f"{path}: not a file a record keeps ({', '.join(sorted(ALLOWED_FILES))})")
            elif path.name == WHOLE_HISTORY and path.stat().st_size >= HISTORY_WHOLE_LIMIT:
                problems.append(
                    f"{path}: a whole history of {path.stat().st_size} bytes (keep its evaluations)"
                )
        for path in [manifest_path, *sorted(folder.rglob("summary.json"))[:1]]:
            if _ignored(repo, path):
                problems.append(f"{path}: ignored by git, so never committed")
    return problems


def _bench_problems(folder: Path, repo: Path) -> list[str]:
    """What is wrong with ``docs/data/benchmarks/``: a file that is not a benchmark table's JSON, or
    one without its rows, machine, command or commit, or one git ignores."""
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            continue
        if path.suffix != ".json" or path.parent != folder or path.stem not in BENCH_TABLES:
            problems.append(f"{path}: not the JSON of a benchmark table ({', '.join(sorted(BENCH_TABLES))})")
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            problems.append(f"{path}: not JSON ({error})")
            continue
        missing = [k for k in (BENCH_TABLES[path.stem].rows, "machine", "command", "code") if not data.get(k)]
        if missing:
            problems.append(f"{path}: no {', '.join(missing)}")
        if _ignored(repo, path):
            problems.append(f"{path}: ignored by git, so never committed")
    return problems


# ------------------------------------------------------------------------------- the machine
def _cpu_model() -> str:
    """The CPU's model name (with vendor, family and model numbers where the pin module gives them)."""
    try:
        from federated.reproducible import cpu_model

        return cpu_model()
    except ImportError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    """The machine this runs on: CPU model, cores, platform, Python (torch's capability and kernel
    fingerprint are the runs' own record, or :func:`environment_here`'s: asking torch here would fix
    its instruction set for this process)."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def packages() -> dict:
    """Versions of torch, numpy, scipy, sionna, mnist1d and this package (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        candidates = ("sionna", "sionna-no-rt") if name == "sionna" else (name,)
        versions[name] = None
        for candidate in candidates:
            try:
                versions[name] = importlib.metadata.version(candidate)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def environment_here(setting: str = "avx2") -> dict | None:
    """``federated.reproducible.environment()`` of this machine, from a fresh process pinned as a
    run with ``cpu_isa: setting`` is (``python -m federated.reproducible``; this process stays
    unpinned); None where the module is absent or fails."""
    command = [sys.executable, "-m", "federated.reproducible", *(["--native"] if setting == "native" else [])]
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        record = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def find_fingerprint(environment: object) -> str | None:
    """The kernel fingerprint inside an environment record (a key naming a fingerprint)."""
    if isinstance(environment, Mapping):
        for key, value in environment.items():
            if "fingerprint" in str(key) and isinstance(value, str):
                return value
        for value in environment.values():
            found = find_fingerprint(value)
            if found:
                return found
    return None


def recorded_torch(manifest: Mapping) -> str | None:
    """The torch version the runs used: their environment's where recorded, else the collector's."""
    environment = manifest.get("environment")
    if isinstance(environment, Mapping):
        for key in ("torch", "torch_version"):
            if isinstance(environment.get(key), str):
                return environment[key]
    return (manifest.get("packages") or {}).get("torch")


def _git(repo: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(repo: Path = ROOT) -> tuple[str | None, list[str]]:
    """HEAD's commit and the tracked code files (:data:`CODE_PATHS`) with uncommitted changes."""
    head = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS) or ""
    return (head.strip() if head else None), sorted(line[3:] for line in status.splitlines() if line.strip())


def commit_time(repo: Path, commit: str) -> float | None:
    """The commit's committer time (seconds since the epoch); None where git does not know it."""
    out = _git(repo, "show", "-s", "--format=%ct", commit, "--")
    try:
        return float(out.strip()) if out else None
    except ValueError:
        return None


def _ignored(repo: Path, path: Path) -> bool:
    try:
        relative = path.resolve().relative_to(repo.resolve())
    except ValueError:
        return False
    result = _git(repo, "check-ignore", "-q", "--no-index", str(relative))
    return result is not None


# ------------------------------------------------------------------------------- collecting
def find_runs(sweep_dir: Path) -> list[Path]:
    """The run directories under ``sweep_dir`` (itself included): a config.yaml beside a history.jsonl."""
    return sorted(p.parent for p in sweep_dir.rglob("config.yaml") if (p.parent / WHOLE_HISTORY).is_file())


def _shown(path: Path) -> str:
    """A path as the manifest records it: relative to the working directory where under it (no one's
    home directory in the repository), else its last three parts."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return "/".join(path.parts[-3:])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _small_records(run: Path) -> dict[str, bytes]:
    """The files a record keeps of a run directory: config.yaml, summary.json, and history.jsonl
    whole when under the limit, else history.eval.jsonl (its evaluation rows and its last row)."""
    files = {
        "config.yaml": (run / "config.yaml").read_bytes(),
        "summary.json": (run / "summary.json").read_bytes(),
    }
    history = (run / WHOLE_HISTORY).read_bytes()
    if len(history) < HISTORY_WHOLE_LIMIT:
        files[WHOLE_HISTORY] = history
    else:
        lines = [line for line in history.decode().splitlines() if line.strip()]
        rows = [json.loads(line) for line in lines]
        keep = {id(r) for r in evaluation_rows(rows)}
        files[EVAL_HISTORY] = "".join(f"{line}\n" for line, r in zip(lines, rows) if id(r) in keep).encode()
    return files


def _identity(manifest: Mapping) -> dict:
    """What must be equal for runs to share a table: the runs' environment (where recorded: torch,
    the CPU, torch's capability, the pin), the kernel fingerprint, the CPU model and torch."""
    return {
        "environment": manifest.get("environment"),
        "kernel_fingerprint": manifest.get("kernel_fingerprint"),
        "cpu_model": (manifest.get("machine") or {}).get("cpu_model"),
        "torch": recorded_torch(manifest),
    }


def collect(
    table: str,
    sweep_dirs: Sequence[str | Path],
    *,
    data_root: Path = DATA,
    commands: Sequence[str] = (),
    append: bool = False,
    replace: bool = False,
    commit: str | None = None,
    allow_dirty: bool = False,
    keep_all: bool = False,
    spec: Table | None = None,
    repo: Path = ROOT,
    log=print,
) -> Path:
    """Copy the small records of the runs under ``sweep_dirs`` into ``data_root/table/`` and write
    its manifest; see ``python docs/tables.py collect --help``. Raises TableError (nothing written)
    for bad input, runs of several machines, data already there (unless ``append`` or
    ``replace``), or more than the size budget."""
    spec = spec or TABLES.get(table)
    if spec is None and not keep_all:
        raise TableError(f"TABLE {table}: not a table of docs/tables.py ({', '.join(TABLES)})")
    if append and replace:
        raise TableError("--append and --replace: one or the other")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", table):
        raise TableError(f"TABLE {table!r}: letters, digits, '_' and '-' only")
    # the runs, each named by its path under its sweep directory's parent
    found: dict[str, Path] = {}
    for given in sweep_dirs:
        sweep = Path(given)
        if not sweep.is_dir():
            raise TableError(f"SWEEP_DIR {given}: not a directory")
        runs = find_runs(sweep)
        if not runs:
            raise TableError(f"SWEEP_DIR {given}: no run directory (config.yaml and history.jsonl) under it")
        for run in runs:
            name = (Path(sweep.resolve().name) / run.relative_to(sweep)).as_posix()
            if name in found:
                raise TableError(
                    f"SWEEP_DIR {given}: {name} is also under another sweep directory of that name"
                )
            found[name] = run
    records = [read_record(path, name) for name, path in found.items()]
    unfinished = [r.name for r in records if r.status not in ("finished", "diverged")]
    if unfinished:
        raise TableError(
            f"SWEEP_DIR: {len(unfinished)} run(s) neither finished nor diverged, e.g. {unfinished[0]} "
            "(finish the sweep: the same laser sweep command resumes it)"
        )
    if spec is not None and not keep_all:
        cells, unused = group(spec, records)
        records = [r for cell in cells.values() for r in cell]
        if unused:
            log(
                f"tables.py collect: {len(unused)} run(s) the table does not use left out, "
                f"e.g. {unused[0].name}"
            )
        if not records:
            raise TableError(f"SWEEP_DIR: no run fits table {table}'s rows (its spec in docs/tables.py)")
        for row in spec.rows:
            seeds = [r.seed for r in cells[row.id]]
            if [_seed_key(s) for s in seeds] != [_seed_key(s) for s in spec.seeds]:
                log(f"tables.py collect: row {row.id} has seeds {seeds}; the spec names {list(spec.seeds)}")
    # the machine: the runs' own record of it, all alike
    environments = {json.dumps(r.summary.get(ENVIRONMENT_KEY), sort_keys=True): r.name for r in records}
    if len(environments) > 1:
        (a, name_a), (b, name_b) = list(environments.items())[:2]
        raise TableError(
            f"SWEEP_DIR: runs of different machines or settings ({name_a}: {a[:120]}; {name_b}: {b[:120]}); "
            "collect them into separate tables"
        )
    run_environment = records[0].summary.get(ENVIRONMENT_KEY)
    here = machine()
    fingerprint, source, environment_now = find_fingerprint(run_environment), "runs", None
    if fingerprint is None:  # runs made before the pin recorded it: this machine's, said to be so
        environment_now = environment_here(str(records[0].config.get("cpu_isa", "avx2")))
        fingerprint, source = find_fingerprint(environment_now), "collector"
    elif isinstance(run_environment, Mapping) and run_environment.get("cpu") not in (None, here["cpu_model"]):
        log(
            f"tables.py collect: the runs were made on {run_environment.get('cpu')}, this is "
            f"{here['cpu_model']}: the manifest's machine (cores, platform) is this one's"
        )
    head, dirty = git_state(repo)
    commit_given = commit
    if commit is None:
        if head is None:
            raise TableError("--commit: this checkout has no git commit to record; name the runs' commit")
        if dirty and not allow_dirty:
            raise TableError(
                f"--commit: {', '.join(dirty[:3])} differ from HEAD {_short(head)}; commit them, name "
                "the runs' commit with --commit, or record the changes with --allow-dirty"
            )
        commit = head
    else:
        dirty = []
    # runs carry no commit; one that ended before the commit named cannot have been made at it
    made = commit_time(repo, commit)
    older = [r.name for r in records if made is not None and (r.path / "summary.json").stat().st_mtime < made]
    if older:
        raise TableError(
            f"--commit: {len(older)} run(s) ended before commit {_short(commit)} was made, e.g. {older[0]}: "
            "name the commit they were made at with --commit"
        )
    manifest: dict = {
        "table": table,
        "commit": commit,
        "commit_source": "HEAD" if commit_given is None else "given",
        "dirty": dirty,
        "collected": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commands": list(commands) or list(spec.commands if spec else []),
        "commands_source": "given" if commands else "spec",
        "packages": packages(),
        "machine": here,
        "environment": run_environment,
        "collector_environment": environment_now,
        "kernel_fingerprint": fingerprint,
        "fingerprint_source": source if fingerprint else None,
        "runs": {},
    }
    folder = Path(data_root) / table
    existing: dict = {}
    if (folder / MANIFEST).is_file() or (folder / RECORDS).exists():
        if not (append or replace):
            raise TableError(
                f"TABLE {table}: {folder} already holds data; --append adds runs of the same commit and "
                "machine, --replace replaces it"
            )
        if append:
            if not (folder / MANIFEST).is_file():
                raise TableError(f"--append: {folder} has records but no {MANIFEST}; --replace remakes it")
            existing = json.loads((folder / MANIFEST).read_text())
            if existing.get("commit") != commit:
                raise TableError(
                    f"--append: {folder} holds runs of commit {_short(existing.get('commit'))}, these are of "
                    f"{_short(commit)}; a table is of one commit (--replace remakes it)"
                )
            if _identity(existing) != _identity(manifest):
                differing = [k for k, v in _identity(existing).items() if _identity(manifest)[k] != v]
                raise TableError(
                    f"--append: {folder} holds runs of another machine or torch ({', '.join(differing)} "
                    "differ); a table is of one machine (--replace remakes it)"
                )
            twice = sorted(set(existing.get("runs", {})) & {r.name for r in records})
            if twice:
                raise TableError(
                    f"--append: {twice[0]} is already recorded in {folder} (--replace remakes the table)"
                )
    files = {r.name: _small_records(r.path) for r in records}
    size = sum(len(b) for f in files.values() for b in f.values())
    total = _size(Path(data_root)) - (_size(folder) if replace else 0) + size
    if total > BUDGET_BYTES:
        raise TableError(
            f"TABLE {table}: {size / 1e6:.1f} MB of records would bring {data_root} to {total / 1e6:.1f} MB, "
            f"over its {BUDGET_BYTES / 1e6:.0f} MB budget"
        )
    probe = folder / RECORDS / records[0].name / "summary.json"
    if _ignored(repo, probe):
        raise TableError(
            f"SWEEP_DIR: git ignores {probe}; rename the sweep directory (e.g. not runs/ or data/)"
        )
    # nothing refused: write
    if replace and folder.exists():
        shutil.rmtree(folder / RECORDS, ignore_errors=True)
        (folder / MANIFEST).unlink(missing_ok=True)
    for record in records:
        target = folder / RECORDS / record.name
        target.mkdir(parents=True, exist_ok=True)
        for filename, content in files[record.name].items():
            (target / filename).write_bytes(content)
        manifest["runs"][record.name] = {
            "status": record.status,
            "seed": record.seed,
            "wall_time_s": record.summary.get("wall_time_s"),
            "history": "whole" if WHOLE_HISTORY in files[record.name] else "evaluations",
            "source": _shown(found[record.name]),
        }
    if existing:
        manifest["commands"] = list(dict.fromkeys([*existing.get("commands", []), *manifest["commands"]]))
        manifest["runs"] = {**existing.get("runs", {}), **manifest["runs"]}
        manifest["collected"] = existing.get("collected", manifest["collected"])
    manifest["runs"] = dict(sorted(manifest["runs"].items()))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    log(
        f"tables.py collect: {len(records)} run(s) into {folder} ({size / 1e3:.0f} kB; {data_root} now "
        f"{total / 1e6:.2f} MB of {BUDGET_BYTES / 1e6:.0f}); commit {_short(commit)}, kernel fingerprint "
        f"{fingerprint or 'not recorded'}"
    )
    return folder


# ------------------------------------------------------------------------------- the command
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python docs/tables.py",
        description="Write the documented tables from docs/data/ (or check them, or collect runs into it).",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 naming each table that differs"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the data folder (default docs/data)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="the tables, their files, data and the commands that make their runs")
    collect_ = commands.add_parser(
        "collect",
        help="copy the small records of sweep directories' runs into docs/data/TABLE/",
        description="Copy config.yaml, summary.json and the history (whole under 50 kB, else its evaluation "
        "rows) of every run under the SWEEP_DIRs that the table uses into DATA/TABLE/records/<sweep dir "
        "name>/<run path>/, and write DATA/TABLE/manifest.json (commit, packages, machine, commands).",
    )
    collect_.add_argument("table", metavar="TABLE")
    collect_.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR")
    collect_.add_argument(
        "--command",
        action="append",
        default=[],
        dest="commands",
        help="a command that made the runs, as run (repeatable; default: the spec's commands)",
    )
    collect_.add_argument(
        "--append", action="store_true", help="add to the table's runs (same commit and machine)"
    )
    collect_.add_argument("--replace", action="store_true", help="replace the table's data")
    collect_.add_argument(
        "--commit", help="the commit the runs were made at (default: HEAD, if the code is clean)"
    )
    collect_.add_argument(
        "--allow-dirty", action="store_true", help="record HEAD and its uncommitted code changes"
    )
    collect_.add_argument("--all", action="store_true", help="every run, not only those of the table's rows")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "collect":
            collect(
                args.table,
                args.sweep_dirs,
                data_root=args.data,
                commands=args.commands,
                append=args.append,
                replace=args.replace,
                commit=args.commit,
                allow_dirty=args.allow_dirty,
                keep_all=args.all,
            )
            return 0
        if args.command == "list":
            for table in TABLES.values():
                loaded = load_table(table.name, args.data)
                data = f"{len(loaded[1])} runs" if loaded else "no data"
                print(f"{table.name}: {', '.join(table.files)}; {args.data / table.name} ({data})")
                for command in table.commands:
                    print(f"    {command}")
            return 0
        texts, written, no_data = expected_files(ROOT, args.data)
        problems = data_problems(args.data) if args.check else []
    except TableError as error:
        print(f"tables.py: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    differs = check(texts, written, log=print if args.check else None)
    if not args.check:
        for path, text in texts.items():
            if path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
        for name in differs:
            print(f"tables.py: table {name} written")
    if no_data:
        print(f"tables.py: no data, left as typed: {', '.join(no_data)}")
    for problem in problems:
        print(f"tables.py --check: {problem}")
    if args.check and differs:
        print("tables.py --check: run `python docs/tables.py` and commit the tables with their data")
    return EXIT_DIFFERS if differs or problems else 0


def check(texts: Mapping[Path, str], written: Mapping[Path, list[str]], log=None) -> list[str]:
    """The tables whose region in a file differs from what :func:`expected_files` gives (``texts``,
    ``written``), each named once through ``log``."""
    differs = []
    for path, text in texts.items():
        current = path.read_text(encoding="utf-8")
        if current == text:
            continue
        for name in written.get(path, []):
            if region(current, name) != region(text, name):
                differs.append(name)
                if log is not None:
                    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                    log(f"tables.py --check: table {name}: {where} differs from what docs/tables.py writes")
    return differs


if __name__ == "__main__":
    sys.exit(main())
