"""The digital methods' link in a run (digital.*): the config's refusals, NR and Shannon links in
physical units end to end, and shared channel draws between analog and digital runs of one seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from federated import load_config
from federated.config import ConfigError
from federated.simulation import Simulation
from federated.train import train

ROOT = Path(__file__).resolve().parents[2]
UMI = [
    "data.name=digits",
    "model.name=mlp",
    "model.width=8",
    "clients.num_clients=4",
    "channel.name=rayleigh",
    "channel.scenario=umi",
    "power.energy=null",
    "power.max_dbm=10",
    "channel.shared_draws=true",
]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["compressor.name=topk", "digital.link=nr"], "digital.link"),  # normalised units
        ([*UMI, "compressor.name=laser", "digital.link=nr"], "digital.link"),  # an analog method
        ([*UMI, "compressor.name=topk", "channel.name=tdl"], "channel.name"),
        ([*UMI, "compressor.name=topk", "channel.rx_antennas=2"], "channel.rx_antennas"),
        ([*UMI, "compressor.name=topk", "channel.coherence_blocks=2"], "channel.coherence_blocks"),
        ([*UMI, "compressor.name=topk", "clients.num_clients=60"], "clients.num_clients"),
        (["digital.bler_target=1.5"], "digital.bler_target"),
        (["digital.harq_retx=-1"], "digital.harq_retx"),
        (["digital.olla_step_db=0"], "digital.olla_step_db"),
        (["digital.harq_retx=1"], "digital.harq_retx"),  # an NR key with the Shannon link
        ([*UMI, "compressor.name=topk", "digital.adaptation=outer"], "digital.adaptation"),
    ],
)
def test_refusals_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert key in str(error.value)


def test_the_cli_refuses_nr_in_normalised_units_with_exit_2(tmp_path, capsys) -> None:
    from federated.cli import main

    code = main(
        ["run", str(ROOT / "configs/mnist1d_topk.yaml"), "digital.link=nr", "--out", str(tmp_path / "run")]
    )
    assert code == 2
    assert "digital.link" in capsys.readouterr().err


@pytest.mark.parametrize("link", ["nr", "shannon"])
def test_a_digital_run_in_physical_units_records_its_link(tmp_path, link: str) -> None:
    config = load_config(
        None, [*UMI, "compressor.name=topk", f"digital.link={link}", "rounds=3", "eval_every=3"]
    )
    train(config, tmp_path / link, progress=False)
    rows = [json.loads(line) for line in (tmp_path / link / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert row["air_time_s"] > 0 and row["energy_j_max"] >= row["energy_j_mean"] > 0
        assert math.isfinite(row["sinr_db_mean"])
        if link == "nr":  # slots of 0.5 ms (30 kHz), retransmissions counted
            assert row["tb_transmissions"] >= 1 and 0 <= row["tb_failed_share"] <= 1
            assert row["air_time_s"] / 0.5e-3 == pytest.approx(round(row["air_time_s"] / 0.5e-3))
        else:
            assert "tb_transmissions" not in row
        assert row["unscheduled"] >= 0
    air = [row["air_time_s"] for row in rows]
    assert [row["air_time_s_cum"] for row in rows] == pytest.approx([sum(air[: t + 1]) for t in range(3)])
    energy = [row["energy_j_mean"] for row in rows]
    assert rows[-1]["energy_j_mean_cum"] == pytest.approx(sum(energy))
    summary = json.loads((tmp_path / link / "summary.json").read_text())
    assert summary["status"] == "finished"


def test_a_round_with_every_client_out_records_its_outage(tmp_path) -> None:
    """At -60 dBm nobody reaches MCS 0's SINR: nobody is scheduled, nothing is sent or spent, and the
    round says so."""
    config = load_config(
        None,
        [*UMI, "compressor.name=topk", "digital.link=nr", "power.max_dbm=-60", "rounds=1", "eval_every=1"],
    )
    train(config, tmp_path / "out", progress=False)
    row = json.loads((tmp_path / "out" / "history.jsonl").read_text().splitlines()[0])
    assert row["unscheduled"] == 4 and row["active_clients"] == 0
    assert row["air_time_s"] == 0 and row["energy_j_max"] == 0 and "tb_transmissions" not in row


def _states(overrides: list[str], rounds: int, monkeypatch) -> list:  # type: ignore[no-untyped-def]
    """Each round's channel as it reached the uplink (``transmit_blocks``'s state)."""
    import federated.simulation as simulation_module

    states = []
    original = simulation_module.transmit_blocks

    def recording(*args, state=None, **kwargs):  # type: ignore[no-untyped-def]
        states.append(state)
        return original(*args, state=state, **kwargs)

    monkeypatch.setattr(simulation_module, "transmit_blocks", recording)
    simulation = Simulation(load_config(None, [*UMI, *overrides, f"rounds={rounds}"]))
    for t in range(rounds):
        simulation.round(t)
    monkeypatch.setattr(simulation_module, "transmit_blocks", original)
    assert len(states) == rounds and all(s is not None for s in states)
    return states


def test_shared_draws_give_analog_and_digital_runs_the_same_channel(monkeypatch) -> None:
    laser = _states(["compressor.name=laser"], 3, monkeypatch)
    topk = _states(["compressor.name=topk", "digital.link=nr"], 3, monkeypatch)
    zsgd = _states(["compressor.name=zsgd"], 3, monkeypatch)
    for a, b, c in zip(laser, topk, zsgd):
        assert torch.equal(a.gains, b.gains) and torch.equal(a.csi, b.csi) and torch.equal(a.gains, c.gains)
    assert not torch.equal(laser[1].gains, laser[2].gains)  # a new channel every round


def test_without_shared_draws_the_runs_drift_apart() -> None:
    """The default (one generator for fading, noise and HARQ): the analog run's noise draws move its
    later rounds' fading, so the two runs see different channels after round 0."""
    config = [o for o in UMI if o != "channel.shared_draws=true"]
    states = {}
    for name in ("laser", "topk"):
        simulation = Simulation(load_config(None, [*config, f"compressor.name={name}", "rounds=2"]))
        simulation.round(0)
        states[name] = simulation.channel.realize(4, 1, dtype=torch.complex64)
    assert not torch.equal(states["laser"].gains, states["topk"].gains)
