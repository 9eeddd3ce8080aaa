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
    # every client's energy stays within its budget: its own signal at the public scale
    assert all(0 < r["energy_max"] <= 25 * (1 + 1e-5) for r in records)


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


@pytest.mark.parametrize("method", ["laser", "powersgd"])
def test_a_target_epsilon_lowers_the_energy_until_the_channels_noise_meets_it(method):
    # at energy 100 a round over AWGN is a Gaussian at 0.1 (epsilon in the hundreds after 3 rounds); a
    # target of 5 over the 3 rounds needs nu = sigma(5, 1e-5) sqrt(3) per round: the clients lower their
    # energy by (0.1 / nu)^2, and the run ends at the target
    sim = _sim(
        f"compressor.name={method}",
        "power.energy=100",
        "privacy.clip=1.0",
        "privacy.accountant=pld",
        "privacy.target_epsilon=5",
    )
    nu = dp_accounting.get_sigma_gaussian(5.0, 1e-5) * math.sqrt(3)
    records = [sim.round(t) for t in range(3)]
    for record in records:
        assert record["privacy_noise_multiplier"] == pytest.approx(nu, rel=1e-6)
        assert record["energy_max"] <= 100 * (0.1 / nu) ** 2 * (1 + 1e-5)  # the clip's reserve, lowered
    assert records[-1]["privacy_epsilon"] == pytest.approx(5.0, rel=1e-6)
    # LASER's round 0 (one pass) is the same data and model either way: every client spends
    # (0.1 / nu)^2 of what it would (PowerSGD's second pass encodes the first's noisy decoding)
    if method == "laser":
        free = _sim(f"compressor.name={method}", "power.energy=100", "privacy.clip=1.0").round(0)
        assert records[0]["energy_mean"] == pytest.approx(free["energy_mean"] * (0.1 / nu) ** 2, rel=1e-5)
    # a target the channel's noise already meets changes nothing: the same round as without one
    loose = _sim(
        f"compressor.name={method}", "power.energy=100", "privacy.clip=1.0", "privacy.target_epsilon=1e5"
    )
    free = _sim(f"compressor.name={method}", "power.energy=100", "privacy.clip=1.0")
    a, b = loose.round(0), free.round(0)
    assert (a["energy_max"], a["privacy_noise_multiplier"]) == (
        b["energy_max"],
        b["privacy_noise_multiplier"],
    )


def test_the_rdp_calibration_meets_its_target():
    from channels import PrivacyAccountant

    accountant = PrivacyAccountant(1e-5, "rdp")
    nu = accountant.noise_multiplier_for(2.0, 50)
    for _ in range(50):
        accountant.step(nu)
    assert accountant.epsilon() == pytest.approx(2.0, rel=1e-3)


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
        (["privacy.target_epsilon=1"], "privacy.target_epsilon"),  # without a clip
        (["privacy.clip=1", "power.energy=.inf"], "power.energy"),  # the sum without noise
        (["privacy.clip=1", "channel.noise_var=0"], "channel.noise_var"),
        (
            [
                "privacy.clip=1",
                "channel.scenario=umi",
                "power.energy=null",
                "power.max_dbm=10",
                "channel.bs_pattern=sector",
                "channel.num_rings=1",
                "channel.inter_cell=full",
            ],
            "channel.inter_cell",  # other cells' signals are no trusted noise
        ),
        (["privacy.clip=1", "privacy.target_epsilon=0"], "privacy.target_epsilon"),
    ],
)
def test_what_privacy_mode_cannot_do_is_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert str(error.value).startswith(key) or error.value.key == key, str(error.value)
