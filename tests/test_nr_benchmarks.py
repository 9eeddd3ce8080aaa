"""Our 5G NR PUSCH BLER tables (channels/nr_tables/PUSCH_table1.json, made by
benchmarks/nr_bler_tables.py) load in Sionna's PHYAbstraction and are sane, the generator's --quick
run writes a loadable table, and benchmarks/nr_link_check.py's --quick run reports its rows."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "channels" / "nr_tables" / "PUSCH_table1.json"
INTERP = (-12.0, 30.01, 0.1)  # the default grid starts at -5 dB, above MCS 0-2's waterfalls


def _abstraction(path):
    torch = pytest.importorskip("torch")
    sys_mod = pytest.importorskip("sionna.sys")
    torch.set_num_threads(1)
    return sys_mod.PHYAbstraction(load_bler_tables_from=[str(path)], snr_db_interp_min_max_delta=INTERP)


def _bler(phy, mcs, cbs, snr_dbs):
    import torch

    snr = torch.tensor(10 ** (np.asarray(snr_dbs, dtype=float) / 10), dtype=torch.float32)
    return phy.get_bler(mcs, 1, 0, cbs, snr).double().numpy()


def _check_table(phy, mcs_list, cbs_list, rise=0.05):
    table = phy.bler_table["category"][0]["index"][1]["MCS"]
    for mcs in mcs_list:
        grid = table[mcs]["SNR_db"]
        assert np.all(np.diff(grid) > 0) and np.max(np.diff(grid)) <= 0.5 + 1e-9, mcs
        for cbs in cbs_list:
            raw = np.asarray(table[mcs]["CBS"][cbs]["BLER"])
            assert len(raw) == len(grid) and np.all((raw >= 0) & (raw <= 1)), (mcs, cbs)
            snrs = np.arange(grid[0] - 1, grid[-1] + 1, 0.05)
            bler = _bler(phy, mcs, cbs, snrs)
            assert np.all(np.isfinite(bler)) and np.all((bler >= 0) & (bler <= 1)), (mcs, cbs)
            assert bler[0] >= 0.8 and bler[-1] <= 1e-3, (mcs, cbs, bler[0], bler[-1])
            # falls with SNR: over every 1 dB step, up to Monte-Carlo noise (``rise``)
            coarse = bler[::20]
            assert np.all(np.diff(coarse) <= rise), (mcs, cbs, coarse)
            assert coarse[: len(coarse) // 2].mean() > coarse[len(coarse) // 2 :].mean() + 0.2, (mcs, cbs)
            assert bler[np.searchsorted(snrs, grid[-1])] < 0.01, (mcs, cbs)


def test_shipped_tables_load_and_fall_with_snr():
    phy = _abstraction(TABLE)
    table = phy.bler_table["category"][0]["index"][1]["MCS"]
    assert sorted(table) == list(range(28))
    cbs_list = sorted(table[0]["CBS"])
    assert len(cbs_list) >= 2
    _check_table(phy, range(28), cbs_list)
    # waterfalls in the right order: a higher MCS needs more SNR (at BLER 0.1, CBS 500)
    snrs = np.arange(-12, 30, 0.05)
    at_01 = [snrs[np.argmax(_bler(phy, m, 500, snrs) <= 0.1)] for m in range(28)]
    assert all(b >= a - 0.5 for a, b in zip(at_01, at_01[1:])), at_01
    # a CBS between the tabulated ones interpolates: its curve lies between its neighbours'
    mid = _bler(phy, 14, 1000, snrs)
    lo, hi = _bler(phy, 14, 500, snrs), _bler(phy, 14, 1500, snrs)
    assert np.all(mid <= np.maximum(lo, hi) + 1e-6) and np.all(mid >= np.minimum(lo, hi) - 1e-6)


def _quick(tmp_path, script: str, flag: str, out) -> subprocess.CompletedProcess:
    """``benchmarks/<script> --quick <flag> <out>`` in a subprocess, from ``tmp_path``."""
    command = [sys.executable, str(REPO / "benchmarks" / script), "--quick", flag, str(out)]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_nr_bler_tables_quick(tmp_path):
    out = tmp_path / "t.json"
    done = _quick(tmp_path, "nr_bler_tables.py", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MCS 27" in done.stdout and f"wrote {out}" in done.stdout
    raw = json.loads(out.read_text())
    entry = raw["category"]["0"]["index"]["1"]["MCS"]["27"]
    assert set(entry) == {"CBS", "SNR_db"} and set(entry["CBS"]) == {"100", "300"}
    meta = json.loads((tmp_path / "t_meta.json").read_text())
    assert meta["seed"] and meta["config"]["cbs"] == [100, 300]
    phy = _abstraction(out)
    assert sorted(phy.bler_table["category"][0]["index"][1]["MCS"]) == [27]
    _check_table(phy, [27], [100, 300], rise=0.3)  # 48 blocks a point: noisy
    assert np.all(np.isinf(_bler(phy, 26, 300, [20.0])))  # not tabulated: inf, as in Sionna


@pytest.mark.slow
def test_nr_link_check_quick(tmp_path):
    out = tmp_path / "check.json"
    done = _quick(tmp_path, "nr_link_check.py", "--json", out)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "verdict:" in done.stdout and "JSON:" in done.stdout
    result = json.loads(out.read_text())
    assert result["benchmark"] == "nr_link_check" and result["quick"] is True
    assert result["machine"]["torch_threads"] == 1
    rows = result["rows"]
    assert 1 <= len(rows) <= 2
    keys = {"mcs", "tbs", "cbs", "num_cb", "snr_db", "sim_bler", "n", "table_bler", "offset_db", "pass"}
    for row in rows:
        assert keys <= set(row)
        assert row["mcs"] == 27 and row["n"] == 200 and row["num_cb"] == 1
        assert 0 <= row["sim_bler"] <= 1 and 0.05 <= row["table_bler"] <= 0.9
        assert abs(row["offset_db"]) <= 0.2 + 1e-9
    assert result["all_pass"] == all(r["pass"] for r in rows)
    assert done.returncode == (0 if result["all_pass"] else 1)


def test_link_check_criterion():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from nr_link_check import best_offset
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    offsets = np.round(np.arange(-0.2, 0.2001, 0.01), 2)
    curve = 1 / (1 + np.exp(10 * offsets))  # 0.5 at offset 0, steep
    assert best_offset(0.5, 2000, offsets, curve, 0.2) == (0.0, True)
    off, ok = best_offset(0.3, 2000, offsets, curve, 0.2)
    assert ok and 0.05 <= off <= 0.12
    off, ok = best_offset(0.01, 2000, offsets, curve, 0.2)  # needs a shift beyond 0.2 dB
    assert not ok and off == 0.2
