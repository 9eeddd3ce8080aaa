"""The results table at the end of ``laser run`` (:func:`federated.history.format_summary`): every
number says what it is, per round or over the run, and in which unit; the energy's unit is spelled
out; and where the highest-spending client spent less than its budget, one line says why (the
alignment rule). Issue 29, item 4."""

import json
import re
from pathlib import Path

from federated.history import ENERGY, ENERGY_UNIT, PER_ROUND, SUMMARY_FIELDS, SUMMARY_UNITS, format_summary

ROOT = Path(__file__).resolve().parents[2]

# a LASER run of 4 rounds: the busiest client spent 86.6 of its 100 per round on average
SUMMARY = {
    "rounds": 4,
    "test_accuracy": 0.88,
    "energy_per_client_total": 346.4,
    "energy_per_client_mean_total": 208.0,
    "channel_uses_total": 8096,
    "noise_var_mean": 3.6e-4,
    "wall_time_s": 1.5,
}
ROUNDS = [{"round": t, "channel_uses": 3038 if t % 2 == 0 else 1010} for t in range(4)]
# the same run in physical units (channel.scenario): air time, joules, dBm
PHYSICAL = {
    **SUMMARY,
    "air_time_s_total": 2.5e-4,
    "energy_j_total": 4e-6,
    "energy_j_mean_total": 2e-6,
    "tx_power_dbm_mean": 9.03,
    "rx_snr_db_mean": 4.2,
}


def row(table: str, key: str) -> str:
    """The table's row of ``key`` (its last column)."""
    return next(line for line in table.splitlines() if line.endswith(f"  {key}"))


def test_a_total_key_is_shown_per_round_with_the_total_it_holds_beside_it():
    """A key ending in ``_total`` holds a sum over rounds: its row, named per round, shows the mean
    per round and the total, so the number beside the key is the key's own (the issue: per-round
    values beside `_total` names)."""
    table = format_summary(SUMMARY, ROUNDS)
    assert re.search(r"energy per round, highest-spending client +86\.6 \(total 346\.4\) ", table)
    assert "52 (total 208)" in row(table, "energy_per_client_mean_total")
    assert "2,024 (total 8,096)" in row(table, "channel_uses_total")
    physical = format_summary(PHYSICAL, ROUNDS)
    for key in PER_ROUND:
        assert "per round" in SUMMARY_FIELDS[key] and "(total " in row(physical, key)
    assert "6.25e-05 (total 0.00025)" in row(physical, "air_time_s_total")


def test_in_physical_units_the_table_gives_seconds_joules_and_dbm_and_says_what_the_energy_counts():
    table = format_summary(PHYSICAL, ROUNDS)
    assert " s " in row(table, "air_time_s_total") and " J " in row(table, "energy_j_total")
    assert " dBm " in row(table, "tx_power_dbm_mean") and " dB " in row(table, "rx_snr_db_mean")
    note = " ".join(table.split("\n\n", 1)[1].split())
    assert "channel uses at the client's power cap" in note and "in joules" in note
    assert "the LASER paper's power P" not in note


def test_every_number_with_a_unit_shows_it_and_the_energy_unit_is_spelled_out():
    table = format_summary(SUMMARY, ROUNDS)
    for key in ENERGY:
        assert ENERGY_UNIT in row(table, key)
    assert "fraction" in row(table, "test_accuracy") and " s " in row(table, "wall_time_s") + " "
    assert "real uses" in row(table, "channel_uses_total")
    note = " ".join(table.split("\n\n", 1)[1].split())  # the lines below the table, unwrapped
    assert "energy: in units of the channel's noise_var per real channel use" in note
    assert "the LASER paper's power P" in note


def test_alternating_channel_uses_are_given_below_the_table():
    table = format_summary(SUMMARY, ROUNDS)
    assert "channel uses: 3,038 / 1,010 (even / odd rounds)" in table
    steady = [{"round": t, "channel_uses": 2024} for t in range(4)]
    assert "even / odd" not in format_summary(SUMMARY, steady)


def test_the_alignment_line_says_why_the_busiest_client_spent_less_than_its_budget():
    table = " ".join(format_summary(SUMMARY, ROUNDS, budget=100.0).split())
    assert "the highest-spending client spent 86.6 of its 100 per round" in table
    assert "weakest link" in table and "docs/physics.md, section 4" in table
    # no line where there is nothing to explain, or nothing to compare with
    full = dict(SUMMARY, energy_per_client_total=400.0)
    assert "weakest link" not in format_summary(full, ROUNDS, budget=100.0)
    assert "weakest link" not in format_summary(SUMMARY, ROUNDS)  # no budget: digital, spread_db, snr_db
    assert "weakest link" not in format_summary(SUMMARY, ROUNDS, budget=float("inf"))
    diverged = dict(SUMMARY, energy_per_client_total=float("nan"))
    assert "weakest link" not in format_summary(diverged, ROUNDS, budget=100.0)


def test_a_noiseless_run_shows_no_energy_at_all():
    table = format_summary(SUMMARY, ROUNDS, noiseless=True, budget=100.0)
    assert "energy" not in table and "channel_uses_total" in table


def test_every_unit_belongs_to_a_documented_key_and_docs_outputs_gives_it():
    """docs/outputs.md's table of keys has a unit column: each key's row gives the table's unit."""
    assert set(SUMMARY_UNITS) <= set(SUMMARY_FIELDS)
    page = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    for key, unit in SUMMARY_UNITS.items():
        cells = next(line for line in rows if f"`{key}`" in line.split(" | ")[0]).split(" | ")
        # the unit column: one unit, or "fraction (accuracy); none (perplexity)" for a row of two keys
        documented = {part.split(" (")[0].strip() for part in cells[2].split(";")}
        assert unit in documented, (key, unit, cells[2])


def test_laser_run_passes_the_budget_and_prints_the_alignment_line(tmp_path, capsys):
    """``laser run`` gives the table the run's budget: LASER on the digits (several blocks, each
    aligned to its own weakest link) spends less than 100 for its busiest client, and says why."""
    from federated.cli import main

    config = str(ROOT / "configs" / "digits_laser.yaml")
    out = tmp_path / "r"
    assert main(["run", config, "rounds=4", "power.energy=100", "-q", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    spent = summary["energy_per_client_total"] / summary["rounds"]
    assert spent < 100 * (1 - 1e-6)  # the premise
    table = " ".join(capsys.readouterr().out.split())
    assert f"the highest-spending client spent {spent:.4g} of its 100 per round" in table
