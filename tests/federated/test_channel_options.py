"""The channel, power-control, budget and downlink options, end to end through the round loop."""

import json
import math

import pytest
import torch

from channels import AWGNChannel
from federated import load_config
from federated.components import client_budget_scales
from federated.radio.downlink import NoisyDownlink
from federated.train import train
from laser import ZSGDCompressor, transmit_round


def _config(tmp_path, *overrides):
    base = [
        "data.name=digits",
        "model.name=mlp",
        "model.width=16",
        "rounds=4",
        "eval_every=4",
        "clients.num_clients=8",
        "clients.batch_size=16",
        "power.energy=1000",
    ]
    return load_config(None, base + list(overrides))


@pytest.mark.parametrize(
    "channel",
    [
        ["channel.name=rayleigh"],
        ["channel.name=rayleigh", "channel.power_control=truncated", "channel.threshold=0.3"],
        [
            "channel.name=rician",
            "channel.k_factor=5",
            "channel.power_control=imperfect_csi",
            "channel.csi_error_var=0.05",
        ],
        ["channel.name=tdl", "channel.tdl_profile=C", "channel.num_subcarriers=16"],
        ["channel.name=rayleigh", "channel.coherence_blocks=4"],
        ["channel.name=awgn", "channel.path_loss=umi_nlos"],
        ["power.spread_db=10"],
        ["downlink.snr_db=20"],
    ],
    ids=["rayleigh", "truncated", "rician-imperfect", "tdl", "coherence", "pathloss", "spread", "downlink"],
)
def test_every_option_trains_and_logs_participation(tmp_path, channel):
    history = train(_config(tmp_path, *channel), tmp_path / "run", progress=False)
    for record in history.rounds:
        assert 0 <= record["active_clients"] <= 8
        if "power.spread_db=10" not in channel:
            assert record["energy_max"] <= 1000 * (1 + 1e-5)
        assert math.isfinite(record["noise_var_mean"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_truncation_lowers_participation_as_the_threshold_rises(tmp_path):
    def participation(threshold):
        history = train(
            _config(
                tmp_path,
                "channel.name=rayleigh",
                "channel.power_control=truncated",
                f"channel.threshold={threshold}",
                "rounds=40",
                "eval_every=40",
            ),
            progress=False,
        )
        return sum(r["active_clients"] for r in history.rounds) / (8 * 40)

    low, high = participation(0.05), participation(1.0)
    # exp(-0.05) = 0.95 and exp(-1) = 0.37 expected; 320 draws each
    assert abs(low - math.exp(-0.05)) < 5 * math.sqrt(0.05 / 320) and abs(high - math.exp(-1)) < 0.15
    assert low > high


def test_downlink_noise_has_the_variance_of_its_snr():
    params = {"w": torch.randn(200, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)}
    received = NoisyDownlink(snr_db=10.0, seed=1).receive(params)["w"]
    noise = received - params["w"]
    expected = float(params["w"].square().mean()) / 10.0
    n = noise.numel()
    assert abs(float(noise.var()) - expected) < 5 * expected * math.sqrt(2 / (n - 1))


def test_heterogeneous_budgets_cap_each_client_at_its_own_budget():
    scales = client_budget_scales(20.0, 16, seed=3)
    assert bool(((scales >= 0.1) & (scales <= 10.0)).all()) and float(scales.max() / scales.min()) > 10
    g = torch.Generator().manual_seed(0)
    grads = [
        [torch.randn(9, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
        for _ in range(16)
    ]
    zsgd, params = ZSGDCompressor(), grads[0]
    clients = [zsgd.make_client(params, k) for k in range(16)]
    out = transmit_round(
        AWGNChannel(1.0, generator=g),
        zsgd.make_server(params),
        clients,
        grads,
        energy=50.0,
        budget_scale=scales,
    )
    assert bool((out.energy_used <= 50.0 * scales * (1 + 1e-9)).all())
    assert float((out.energy_used / (50.0 * scales)).max()) == pytest.approx(1.0, abs=0.5)  # someone is tight


@pytest.mark.parametrize(
    "method",
    [
        ["compressor.name=powersgd"],
        [
            "clients.lr=0.05",
            "clients.local_steps=2",
            "precond.name=adam",
            "precond.statistic=mean_of_squares",
        ],
    ],
    ids=["powersgd", "second-pass-scaling"],
)
def test_path_loss_stays_each_clients_own_under_sampling_with_two_passes(method):
    """Issue 27's reproduction: 8 clients, 3 a round, a method of two passes, Rayleigh fading and UMi
    path loss: channel.large_scale held 3 entries and changed every round (the second pass drew new
    path losses for 3 clients); the run's 8 gains must stay as drawn at its first round."""
    from federated.simulation import Simulation

    config = _config(
        None, "channel.name=rayleigh", "channel.path_loss=umi_los", "clients.per_round=3", *method
    )
    sim = Simulation(config)
    sim.round()
    beta = sim.channel.large_scale.clone()
    assert beta.shape == (8,)
    for _ in range(3):
        sim.round()
        assert torch.equal(sim.channel.large_scale, beta)


def test_rounds_run_in_order_once_each():
    """Simulation.round(t) took any t: a round out of order left the run inconsistent."""
    from federated.simulation import Simulation

    sim = Simulation(_config(None, "rounds=2"))
    with pytest.raises(ValueError, match=r"t = 1: the next round of this simulation is round 0"):
        sim.round(1)
    assert sim.round(0)["round"] == 0 and sim.round()["round"] == 1
    with pytest.raises(ValueError, match="rounds are done"):
        sim.round()
