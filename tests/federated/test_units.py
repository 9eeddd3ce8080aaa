"""Runs in physical units (``channel.scenario``): the drop from the run's seed, the power caps, the
channel's gains in the link budget's units, a round's air time, joules, dBm and received SNR."""

import math

import pytest
import torch

from channels import FadingChannel, LinkBudget, SignalBlocks
from federated import load_config
from federated.config import ConfigError
from federated.radio.units import PhysicalUnits, snr_per_use_db
from federated.simulation import Simulation

ABSOLUTE = ["channel.scenario=umi", "power.energy=null", "power.max_dbm=10"]
SMALL = ["data.name=digits", "model.name=linear", "clients.num_clients=6", "rounds=3", "eval_every=3"]


def _config(*overrides: str):
    return load_config(None, [*SMALL, *ABSOLUTE, *overrides])


def test_the_same_seed_gives_the_same_drop_and_gains_and_another_seed_another():
    config = _config()
    a, b, c = PhysicalUnits(config, 7), PhysicalUnits(config, 7), PhysicalUnits(config, 8)
    assert torch.equal(a.drop.positions_m, b.drop.positions_m)
    assert torch.equal(a.gains.gains, b.gains.gains) and torch.equal(a.power_dbm, b.power_dbm)
    assert not torch.equal(a.drop.positions_m, c.drop.positions_m)
    # the drop draws from its own stream: the same in two runs that differ in everything else's seed use
    sim = Simulation(_config())
    again = Simulation(_config("compressor.rank=2", "channel.name=rayleigh"))
    assert torch.equal(sim.units.drop.coupling_loss_db, again.units.drop.coupling_loss_db)


def test_the_gains_are_each_clients_snr_per_use_at_its_cap_as_the_link_budget_computes_it():
    config = _config("power.control=open_loop", "power.p0_dbm=-90", "power.alpha=0.7")
    units = PhysicalUnits(config, 3)
    budget = LinkBudget()
    for k in range(6):
        expected = budget.snr_per_use(float(units.power_dbm[k]), -float(units.drop.coupling_loss_db[k]))
        assert float(units.gains.gains[k]) == pytest.approx(expected, rel=1e-12)
        cap = -90 + 0.7 * float(units.drop.coupling_loss_db[k]) + 10 * math.log10(51)
        assert float(units.power_dbm[k]) == pytest.approx(min(cap, 10.0), abs=1e-9)


def test_absolute_mode_gives_the_noise_variance_of_the_normalised_mode_with_the_equivalent_energies():
    """Each client's budget in the normalised mode, E_k = snr_k x n (LinkBudget.normalised_energy at its
    cap and coupling gain), over unit gains: the same decoded noise variance as the absolute mode's
    gains and budgets of n per client."""
    units = PhysicalUnits(_config("power.control=open_loop"), 5)
    signals = torch.randn(6, 300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = signals.shape[1]
    absolute = FadingChannel(path_loss=units.gains, generator=torch.Generator().manual_seed(1))
    out = absolute.transmit(
        SignalBlocks([[s] for s in signals]), torch.full((6, 1), float(n), dtype=torch.float64)
    )
    budget = LinkBudget()
    energy = torch.tensor(
        [
            budget.normalised_energy(float(p), -float(loss), n)
            for p, loss in zip(units.power_dbm, units.drop.coupling_loss_db)
        ],
        dtype=torch.float64,
    )
    normalised = FadingChannel(generator=torch.Generator().manual_seed(1))
    reference = normalised.transmit(SignalBlocks([[s] for s in signals]), energy[:, None])
    assert float(out.noise_var[0]) == pytest.approx(float(reference.noise_var[0]), rel=1e-9)
    assert torch.allclose(out.estimates[0], reference.estimates[0], rtol=1e-9, atol=1e-12)


def test_a_rounds_air_time_is_its_symbols_over_the_data_symbol_rate_and_the_weakest_client_spends_its_cap():
    # one client over AWGN at 10 dBm: it is the weakest link, so it transmits at its cap for the pass
    config = _config("clients.num_clients=1", "compressor.name=zsgd", "channel.pilot_symbols=2")
    sim = Simulation(config)
    record = sim.round(0)
    uses = int(record["channel_uses"])
    symbol_rate = 12 * 51 * (14 - 2) * 2000  # 30 kHz: 2,000 slots a second, 2 of 14 symbols pilots
    assert record["air_time_s"] == pytest.approx(math.ceil(uses / 2) / symbol_rate, rel=1e-12)
    assert record["energy_j_max"] == pytest.approx(0.01 * record["air_time_s"], rel=1e-9)  # 10 dBm = 10 mW
    # the transmit power comes from float32 energies: within float32 rounding of 10 dBm (10 / ln 10 x
    # 2^-23 = 5e-7 dB), whatever the CPU's kernels (an AVX-512 machine's test process gave 10.00000005)
    assert record["tx_power_dbm_max"] == pytest.approx(10.0, abs=1e-6)
    assert record["rx_snr_db"] == pytest.approx(float(sim.units.snr_db[0]), abs=1e-9)


def test_powersgd_counts_the_air_time_of_both_passes():
    sim = Simulation(
        _config("compressor.name=powersgd", "compressor.rank=1", "model.name=mlp", "model.width=8")
    )
    record = sim.round(0)
    budget = sim.units.budget
    # the two passes' uses add up to the round's; each pass takes whole symbols
    assert record["air_time_s"] >= budget.air_time_s(int(record["channel_uses"])) - 1e-15
    assert record["air_time_s"] <= budget.air_time_s(int(record["channel_uses"])) + 1 / budget.symbol_rate


def test_a_faded_runs_reported_received_snr_matches_a_monte_carlo_of_its_own_gains():
    sim = Simulation(_config("channel.name=rayleigh", "clients.num_clients=8"))
    record = sim.round(0)
    draws = 4000
    power = torch.stack(
        [
            sim.channel.realize(8, 100, dtype=torch.complex128).gains[:, 0, 0].abs().square()
            for _ in range(draws)
        ]
    )  # [draws, K]: |h_k|^2, each client's SNR per use at its cap in this fade
    mean = power.mean(0)  # [K]
    monte_carlo = 10 * math.log10(float(mean.mean()))
    # |h_k|^2 is exponential: its sample mean's standard error is mean / sqrt(draws); in dB over the
    # clients' mean, 10 / ln 10 x sqrt(sum m_k^2) / sum m_k / sqrt(draws) (0.04-0.07 dB here)
    spread = 10 / math.log(10) * float(mean.square().sum().sqrt() / mean.sum()) / math.sqrt(draws)
    assert abs(record["rx_snr_db"] - monte_carlo) < 4 * spread, (record["rx_snr_db"], monte_carlo, spread)
    # and client by client: each Monte Carlo mean within 4 standard errors of the gain the summary reports
    reported = torch.pow(10.0, sim.units.snr_db / 10)
    assert bool(((mean / reported - 1).abs() * math.sqrt(draws) < 4).all())


def test_the_drops_own_clusters_give_each_client_its_reported_snr_on_average_over_the_rounds():
    # channel.name scenario: the small-scale channel of the drop's own TR 38.901 clusters (fixed for the
    # run, turning with the clients' motion); every round sees one sample, and over many rounds each
    # client's mean |h_k|^2 tends to the SNR per use at its cap that the summary reports
    sim = Simulation(_config("channel.name=scenario", "clients.num_clients=8", "channel.rx_antennas=1"))
    assert sim.units.small_scale is not None and sim.channel.fading is sim.units.small_scale
    sim.round(0)
    power = []
    for t in range(400):
        sim.channel.time_step = t
        power.append(sim.channel.realize(8, 100, dtype=torch.complex128).gains[:, 0, 0].abs().square())
    mean = torch.stack(power).mean(0)
    reported = torch.pow(10.0, sim.units.snr_db / 10)
    assert float((mean / reported).mean()) == pytest.approx(1.0, abs=0.06)
    assert bool(((mean / reported - 1).abs() < 0.3).all()), mean / reported
    # the same round realized twice is the same channel; the simulation sets the round's time step
    sim.channel.time_step = 5
    assert torch.equal(sim.channel.realize(8, 10).gains, sim.channel.realize(8, 10).gains)
    sim.round(1)
    assert sim.channel.time_step == 1


def test_the_history_summary_and_table_carry_the_physical_units(tmp_path):
    from federated.history import format_summary
    from federated.train import train

    history = train(_config("channel.name=rayleigh"), tmp_path / "run", progress=False)
    summary = history.summary
    rounds = history.rounds
    assert summary["air_time_s_total"] == pytest.approx(sum(r["air_time_s"] for r in rounds))
    assert summary["energy_j_mean_total"] == pytest.approx(sum(r["energy_j_mean"] for r in rounds))
    power_dbm = 10 * math.log10(summary["energy_j_mean_total"] / summary["air_time_s_total"]) + 30
    assert summary["tx_power_dbm_mean"] == pytest.approx(power_dbm) and summary["tx_power_dbm_mean"] <= 10
    assert len(summary["cell"]["coupling_loss_db"]) == 6 and summary["cell"]["scenario"] == "umi"
    table = format_summary(summary, rounds)
    assert "air_time_s_total" in table and "energy_j_total" in table and "dBm" in table


def test_the_normalised_mode_reports_its_snr_per_channel_use():
    config = load_config(None, [*SMALL, "power.energy=250"])
    record = Simulation(config).round(0)
    assert record["snr_per_use_db"] == pytest.approx(10 * math.log10(250 / record["channel_uses"]))
    assert "air_time_s" not in record
    assert snr_per_use_db(load_config(None, [*SMALL, "power.energy=.inf"]), 10) is None
    assert snr_per_use_db(load_config(None, [*SMALL, "power.energy=null", "power.snr_db=7"]), 10) == 7.0


def test_other_cells_at_full_load_add_their_received_power_to_the_noise():
    grid = ["channel.bs_pattern=sector", "channel.num_rings=1", "power.control=open_loop"]
    quiet = PhysicalUnits(_config(*grid), 4)
    loud = PhysicalUnits(_config(*grid, "channel.inter_cell=full"), 4)
    assert quiet.noise_var == 1.0 and torch.equal(quiet.gains.gains, loud.gains.gains)  # the same drop
    drop, budget = loud.drop, LinkBudget()
    caps = [
        min(-80 + 0.8 * float(loss) + 10 * math.log10(51), 10.0) for loss in drop.interferer_serving_loss_db
    ]  # each other client's open-loop cap from its own sector's loss
    expected = sum(
        budget.snr_per_use(cap, -float(loss)) for cap, loss in zip(caps, drop.interferer_loss_db)
    )  # their power per use here, over the thermal noise
    assert loud.noise_var == pytest.approx(1.0 + expected, rel=1e-9)
    assert len(drop.interferer_loss_db) == 7 * 3 * 6 - 6
    summary = loud.summary()
    assert summary["interferers"] == 120 and summary["num_rings"] == 1
    assert summary["interference_to_noise_db"] == pytest.approx(10 * math.log10(expected), abs=1e-3)
    # and the run's channel has that noise, while every client keeps its cap: the same round without
    # interference has the same scale and draws, so each block's noise is 1 + I times as large
    sim = Simulation(_config(*grid, "channel.inter_cell=full", "channel.name=rayleigh"))
    assert sim.channel.noise_var == pytest.approx(sim.units.noise_var) and sim.channel.noise_var > 1
    alone = Simulation(_config(*grid, "channel.name=rayleigh"))
    loud_round, quiet_round = sim.round(0), alone.round(0)
    assert loud_round["tx_power_dbm_max"] <= 10 + 1e-6  # the cap, to rounding
    assert loud_round["energy_j_max"] == pytest.approx(quiet_round["energy_j_max"], rel=1e-9)
    ratio = torch.tensor(loud_round["noise_var"]) / torch.tensor(quiet_round["noise_var"])
    assert torch.allclose(ratio, torch.full_like(ratio, sim.units.noise_var), rtol=1e-6)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["channel.scenario=umi"], "power.max_dbm"),  # power.energy left: no transmit power
        (["power.energy=null", "power.max_dbm=10"], "channel.scenario"),
        ([*ABSOLUTE, "channel.path_loss=umi_los"], "channel.path_loss"),
        # digital methods run in physical units over the OFDMA uplink, on flat fading only
        ([*ABSOLUTE, "compressor.name=topk", "channel.name=tdl"], "channel.name"),
        ([*ABSOLUTE, "channel.noise_var=2"], "channel.noise_var"),
        ([*ABSOLUTE, "channel.subcarrier_spacing_hz=20e3"], "channel.subcarrier_spacing_hz"),
        (["power.control=open_loop"], "power.control"),
        ([*ABSOLUTE, "power.alpha=1.5"], "power.alpha"),
        ([*ABSOLUTE, "channel.num_rings=1"], "channel.num_rings"),  # needs the sector pattern
        (["channel.num_rings=1", "channel.bs_pattern=sector"], "channel.num_rings"),  # and a scenario
        ([*ABSOLUTE, "channel.inter_cell=full"], "channel.inter_cell"),  # and other cells
        ([*ABSOLUTE, "power.spread_db=6"], "power.spread_db"),  # caps come from the drop
        (["channel.bs_pattern=sector"], "channel.bs_pattern"),  # part of a drop's coupling loss
        (["power.energy=null", "power.snr_db=5", "power.max_dbm=10"], "power.max_dbm"),  # the extra one
        (["channel.name=scenario"], "channel.name"),  # the drop's clusters need a drop
        ([*ABSOLUTE, "channel.name=scenario", "channel.correlation=0.5"], "channel.correlation"),
        (
            [*ABSOLUTE, "channel.name=scenario", "channel.num_rings=1", "channel.bs_pattern=sector"],
            "channel.num_rings",
        ),
        ([*ABSOLUTE, "channel.name=scenario", "channel.speed_mps=-1"], "channel.speed_mps"),
        ([*ABSOLUTE, "channel.name=scenario", "channel.round_duration_s=0"], "channel.round_duration_s"),
        ([*ABSOLUTE, "channel.name=scenario", "channel.coherence_blocks=2"], "channel.coherence_blocks"),
        ([*ABSOLUTE, "channel.name=rayleigh", "channel.speed_mps=3"], "channel.speed_mps"),  # ignored there
        (["channel.round_duration_s=0.5"], "channel.round_duration_s"),
    ],
)
def test_inconsistent_physical_settings_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert str(error.value).startswith(key) or error.value.key == key, str(error.value)
