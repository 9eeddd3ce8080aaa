"""Fading gains and path loss: statistics within 5 standard errors, determinism, input checks."""

import math

import pytest
import torch
from sionna.phy import config as sionna_config
from torch.testing import assert_close

from channels.fading import FADING_MODELS, PathLoss, RayleighFading, RicianFading, TDLFading

NUM_DRAWS = 40_000  # flat-fading samples per statistical test


def _assert_mean_within(samples: torch.Tensor, expected: float, z: float = 5.0) -> None:
    """|mean - expected| < z standard errors (the SE estimated from the samples)."""
    samples = samples.double().flatten()
    standard_error = float(samples.std()) / math.sqrt(samples.numel())
    assert abs(float(samples.mean()) - expected) < z * standard_error, (float(samples.mean()), expected)


# ---- small-scale fading: E|h|^2 = 1 and the distributions ------------------------------------


@pytest.mark.parametrize(
    "model", [RayleighFading(), RicianFading(0.0), RicianFading(1.0), RicianFading(10.0)]
)
def test_flat_fading_has_unit_average_power(model, generator):
    h = model(NUM_DRAWS, generator)
    assert h.shape == (NUM_DRAWS, 1) and model.num_subcarriers == 1
    _assert_mean_within(h.abs().square(), 1.0)


def test_rayleigh_power_is_exponential(generator):
    """P(|h|^2 < x) = 1 - exp(-x); the empirical fraction has SE sqrt(p (1 - p) / n)."""
    power = RayleighFading()(NUM_DRAWS, generator, torch.complex128).abs().square()
    for x in (0.1, 1.0, 3.0):
        p = 1 - math.exp(-x)
        fraction = float((power < x).double().mean())
        assert abs(fraction - p) < 5 * math.sqrt(p * (1 - p) / NUM_DRAWS), (x, fraction, p)


@pytest.mark.parametrize("k_factor", [0.0, 0.5, 4.0])
def test_rician_mean_and_variance(k_factor, generator):
    """E[h] = sqrt(K/(K+1)) (phi = 0), Var[h] = 1/(K+1); |h - E h|^2 ~ Exp(1/(K+1))."""
    h = RicianFading(k_factor)(NUM_DRAWS, generator, torch.complex128).flatten()
    variance = 1 / (k_factor + 1)
    mean_se = math.sqrt(variance / 2 / NUM_DRAWS)  # per real part
    assert abs(float(h.real.mean()) - math.sqrt(k_factor / (k_factor + 1))) < 5 * mean_se
    assert abs(float(h.imag.mean())) < 5 * mean_se
    assert abs(float(h.var()) - variance) < 5 * variance / math.sqrt(NUM_DRAWS)


@pytest.mark.parametrize("profile", ["A", "D"])  # NLOS and LOS (Rician first tap)
def test_tdl_has_unit_average_power_on_every_subcarrier(profile, generator):
    model = TDLFading(profile, delay_spread_s=300e-9, num_subcarriers=16)
    h = model(8_000, generator)
    assert h.shape == (8_000, 16) and model.num_subcarriers == 16
    power = h.abs().square().double()  # [K, N]
    se = power.std(0) / math.sqrt(power.shape[0])
    assert bool(((power.mean(0) - 1).abs() < 5 * se).all()), power.mean(0)
    _assert_mean_within(power.mean(1), 1.0)  # clients are independent


def test_tdl_is_flat_when_the_delay_spread_is_tiny(generator):
    """A 1 ns delay spread over 12 x 30 kHz: phases 2 pi f tau ~ 1e-3, so h[n] ~ h[0]."""
    h = TDLFading("B", delay_spread_s=1e-9, num_subcarriers=12)(64, generator, torch.complex128)
    assert_close(h, h[:, :1].expand_as(h), atol=1e-2, rtol=0)


# ---- path loss -------------------------------------------------------------------------------


def test_gain_at_the_reference_distance_is_one():
    for scenario in ("umi_los", "umi_nlos"):
        pathloss = PathLoss(
            scenario, min_distance_m=50.0, max_distance_m=50.0, reference_distance_m=50.0, shadowing=False
        )
        gains = pathloss(4, torch.Generator().manual_seed(0))
        assert gains.dtype == torch.float64
        assert_close(gains, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("scenario", ["umi_los", "umi_nlos"])
def test_gains_decrease_with_distance_and_distances_lie_in_range(scenario, generator):
    pathloss = PathLoss(scenario, min_distance_m=10.0, max_distance_m=1000.0, shadowing=False)
    distances, gains = pathloss.sample(2_000, generator)
    assert bool((distances >= 10.0).all() and (distances <= 1000.0).all())
    order = distances.argsort()
    assert bool((gains[order].diff() <= 0).all())  # across the LOS breakpoint too
    grid = torch.linspace(10.0, 5000.0, 500, dtype=torch.float64)
    assert bool((pathloss.path_gain_db(grid).diff() < 0).all())


def test_distances_are_uniform_over_the_annulus_area(generator):
    """P(d < r) = (r^2 - a^2) / (b^2 - a^2) for a client uniform over the annulus a <= d <= b."""
    distances, _ = PathLoss(min_distance_m=20.0, max_distance_m=200.0).sample(NUM_DRAWS, generator)
    p = (100.0**2 - 20.0**2) / (200.0**2 - 20.0**2)
    fraction = float((distances < 100.0).double().mean())
    assert abs(fraction - p) < 5 * math.sqrt(p * (1 - p) / NUM_DRAWS)


@pytest.mark.parametrize("scenario, sigma_db", [("umi_los", 4.0), ("umi_nlos", 7.82)])
def test_shadowing_is_log_normal_with_the_table_sigma(scenario, sigma_db, generator):
    pathloss = PathLoss(scenario)
    distances, gains = pathloss.sample(NUM_DRAWS, generator)
    shadowing_db = 10 * gains.log10() - pathloss.path_gain_db(distances)  # -X_k
    assert abs(float(shadowing_db.std()) - sigma_db) < 5 * sigma_db / math.sqrt(2 * (NUM_DRAWS - 1))
    assert abs(float(shadowing_db.mean())) < 5 * sigma_db / math.sqrt(NUM_DRAWS)


# ---- randomness, dtype, names --------------------------------------------------------------

ALL_MODELS = [RayleighFading(), RicianFading(2.0), TDLFading(num_subcarriers=8), PathLoss()]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_same_seed_same_gains_and_global_generators_untouched(model):
    torch.manual_seed(0)
    expected = torch.rand(1)
    sionna_state = sionna_config.torch_rng("cpu").get_state()
    torch.manual_seed(0)
    first = model(5, torch.Generator().manual_seed(7))
    second = model(5, torch.Generator().manual_seed(7))
    third = model(5, torch.Generator().manual_seed(8))
    assert torch.equal(first, second) and not torch.equal(first, third)
    assert torch.equal(torch.rand(1), expected)  # torch's global RNG
    assert torch.equal(sionna_config.torch_rng("cpu").get_state(), sionna_state)  # Sionna's


@pytest.mark.parametrize("name", sorted(FADING_MODELS))
def test_requested_dtype_is_returned(name, generator):
    model = FADING_MODELS[name](2.0) if name == "rician" else FADING_MODELS[name]()
    for dtype in (torch.complex64, torch.complex128):
        h = model(3, generator, dtype)
        assert h.dtype == dtype and h.shape == (3, model.num_subcarriers)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: RicianFading(-1.0), "k_factor"),
        (lambda: RicianFading(float("nan")), "k_factor"),
        (lambda: TDLFading("Z"), "profile"),
        (lambda: TDLFading(num_subcarriers=0), "num_subcarriers"),
        (lambda: TDLFading(subcarrier_spacing_hz=0.0), "subcarrier_spacing_hz"),
        (lambda: TDLFading(delay_spread_s=-1e-9), "delay_spread_s"),
        (lambda: PathLoss(carrier_frequency_hz=200e9), "carrier_frequency_hz"),
        (lambda: PathLoss(carrier_frequency_hz=0.1e9), "carrier_frequency_hz"),
        (lambda: PathLoss(min_distance_m=300.0, max_distance_m=200.0), "min_distance_m"),
    ],
)
def test_bad_input_names_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_unknown_profile_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"\['A', 'B', 'C', 'D', 'E'\]"):
        TDLFading("Z")


@pytest.mark.parametrize("distance_m", [10.0, 35.0, 100.0, 200.0, 260.0, 1000.0, 4900.0])
def test_umi_path_loss_is_the_3gpp_table(distance_m):
    """TR 38.901 Table 7.4.1-1, UMi street canyon at 3.5 GHz (h_BS 10 m, h_UT 1.5 m: breakpoint
    d'BP = 4 * 9 * 0.5 * fc / c = 210 m), written out here term by term: LOS below and above the
    breakpoint, NLOS as the larger of LOS and its own law."""
    from channels.fading import umi_path_loss_db

    fc_ghz, d3d = 3.5, math.hypot(distance_m, 10.0 - 1.5)
    breakpoint_m = 4 * 9.0 * 0.5 * 3.5e9 / 3.0e8  # the table's c = 3.0e8 m/s (its note 1)
    if distance_m <= breakpoint_m:
        los = 32.4 + 21 * math.log10(d3d) + 20 * math.log10(fc_ghz)
    else:
        los = (
            32.4 + 40 * math.log10(d3d) + 20 * math.log10(fc_ghz) - 9.5 * math.log10(breakpoint_m**2 + 8.5**2)
        )
    nlos = max(los, 35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(fc_ghz))
    d = torch.tensor([distance_m], dtype=torch.float64)
    assert abs(float(umi_path_loss_db(d, "umi_los", 3.5e9)) - los) < 1e-9
    assert abs(float(umi_path_loss_db(d, "umi_nlos", 3.5e9)) - nlos) < 1e-9
