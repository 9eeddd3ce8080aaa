"""Privacy mode (``privacy.clip``): clipped passes whose noise multiplier each round records, the
run's client-level epsilon from the accountant, and the settings it refuses (docs/physics.md, 14)."""

import math

import dp_accounting
import pytest

from federated import load_config
from federated.config import ConfigError
from federated.simulation import Simulation

SMALL = ["data.name=digits", "model.name=linear", "clients.num_clients=4", "rounds=3", "eval_every=3"]


def _sim(*overrides: str) -> Simulation:
    return Simulation(load_config(None, [*SMALL, *overrides]))


@pytest.mark.parametrize("method", ["laser", "powersgd", "zsgd"])
def test_over_awgn_each_round_is_a_gaussian_at_one_over_the_root_of_its_energy(method):
    # unit gains and noise_var 1: every pass has nu_p = 1 / sqrt(E_p), and the passes of a round (PowerSGD's
    # two, sharing the energy) compose into 1 / sqrt(E) whatever the clip
    sim = _sim(f"compressor.name={method}", "power.energy=25", "privacy.clip=0.5", "privacy.accountant=pld")
    records = [sim.round(t) for t in range(3)]
    for record in records:
        assert record["privacy_noise_multiplier"] == pytest.approx(0.2, rel=1e-6)
    # the run's epsilon: three Gaussians at 0.2, one at 0.2 / sqrt(3), the analytic Gaussian mechanism
    exact = dp_accounting.get_epsilon_gaussian(0.2 / math.sqrt(3), 1e-5)
    assert records[-1]["privacy_epsilon"] == pytest.approx(exact, rel=1e-6)
    assert records[0]["privacy_epsilon"] < records[1]["privacy_epsilon"] < records[2]["privacy_epsilon"]
    # every client's energy stays within its budget
    assert all(r["energy_max"] <= 25 * (1 + 1e-5) for r in records)


def test_fading_makes_the_weakest_heard_client_set_the_round_noise_multiplier():
    sim = _sim(
        "channel.name=rayleigh",
        "channel.power_control=truncated",
        "channel.threshold=0.2",
        "power.energy=100",
        "privacy.clip=1.0",
    )
    record = sim.round(0)
    # nu = sqrt(noise_var / E) / min_{heard} |h_k| <= sqrt(1 / (E threshold)): truncation caps it
    assert 0 < record["privacy_noise_multiplier"] <= math.sqrt(1 / (100 * 0.2)) * (1 + 1e-6)


def test_the_summary_carries_the_runs_epsilon(tmp_path):
    from federated.train import train

    config = load_config(None, [*SMALL, "power.energy=4", "privacy.clip=1.0"])
    history = train(config, tmp_path / "run", progress=False)
    assert history.summary["privacy_epsilon"] == history.rounds[-1]["privacy_epsilon"] > 0


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["privacy.clip=0"], "privacy.clip"),
        (["privacy.clip=-1"], "privacy.clip"),
        (["privacy.delta=0"], "privacy.delta"),
        (["privacy.delta=1"], "privacy.delta"),
        (["privacy.accountant=gdp"], "privacy.accountant"),
        (["privacy.clip=1", "compressor.name=topk", "power.energy=1e6"], "compressor.name"),
        (["privacy.clip=1", "channel.name=noiseless"], "channel.name"),
        (["privacy.clip=1", "clients.weighting=data_size"], "clients.weighting"),
    ],
)
def test_what_privacy_mode_cannot_do_is_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert str(error.value).startswith(key) or error.value.key == key, str(error.value)
