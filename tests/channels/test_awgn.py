"""AWGNChannel: the physics contract (units, alignment scale, noise of the mean; docs/physics.md)."""

import math

import pytest
import torch
from torch.testing import assert_close

from channels import AWGNChannel, energy_for_snr_db, snr_db_for_energy


def _signals(generator, num_clients=8, dim=64):
    scales = torch.linspace(0.5, 3.0, num_clients, dtype=torch.float64).unsqueeze(1)
    return scales * torch.randn(num_clients, dim, generator=generator, dtype=torch.float64)


def test_noiseless_channel_returns_the_exact_mean(generator):
    s = _signals(generator)
    out = AWGNChannel(noise_var=0.0)(s, energy=3.0)
    assert_close(out.estimate, s.mean(0))
    assert float(out.noise_var) == 0.0
    assert out.active.all()


def test_alignment_scale_and_energy_budget(generator):
    s = _signals(generator)
    energy = 7.5
    out = AWGNChannel(noise_var=1.0, generator=generator)(s, energy=energy)
    norms = torch.linalg.vector_norm(s, dim=1)
    eta = math.sqrt(energy) / float(norms.max())
    assert_close(out.scale, torch.tensor(eta, dtype=torch.float64))
    assert_close(out.energy_used, eta**2 * norms**2)  # ||eta s_k||^2
    assert bool((out.energy_used <= energy * (1 + 1e-12)).all())
    assert_close(out.energy_used.max(), torch.tensor(energy, dtype=torch.float64))  # largest signal: equality
    assert_close(out.noise_var, torch.tensor(1.0 / (eta**2 * 8**2), dtype=torch.float64))


def test_per_client_energies_the_tightest_client_sets_the_scale():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    out = AWGNChannel(noise_var=0.0)(s, energy=torch.tensor([4.0, 1.0], dtype=torch.float64))
    assert_close(out.energy_used, torch.tensor([1.0, 1.0], dtype=torch.float64))  # eta = min(2, 1)


def test_noise_variance_matches_the_formula_within_five_standard_errors(generator):
    """Empirical per-entry variance of (estimate - mean) against noise_var / (eta^2 K^2)."""
    s = _signals(generator, num_clients=16, dim=20001)  # odd d: the padded I/Q symbol
    channel = AWGNChannel(noise_var=2.0, generator=generator)
    errors, expected = [], None
    for _ in range(10):
        out = channel(s, energy=50.0)
        errors.append(out.estimate - s.mean(0))
        expected = float(out.noise_var)
    errors = torch.cat(errors)
    n = errors.numel()
    standard_error = expected * math.sqrt(2.0 / (n - 1))
    assert abs(float(errors.var()) - expected) < 5 * standard_error
    assert abs(float(errors.mean())) < 5 * math.sqrt(expected / n)  # unbiased


def test_in_phase_and_quadrature_noise_are_independent_and_equal(generator):
    s = torch.zeros(2, 40000, dtype=torch.float64)
    s[0, 0] = 1.0  # eta = 1, K = 2
    out = AWGNChannel(noise_var=1.0, generator=generator)(s, energy=1.0)
    noise = (out.estimate - s.mean(0)).view(-1, 2)  # (I, Q) pairs
    n = noise.shape[0]
    var = 1.0 / 4
    for part in (noise[:, 0], noise[:, 1]):
        assert abs(float(part.var()) - var) < 5 * var * math.sqrt(2.0 / n)
    correlation = float((noise[:, 0] * noise[:, 1]).mean()) / var
    assert abs(correlation) < 5 / math.sqrt(n)


def test_an_explicit_generator_makes_the_noise_reproducible():
    s = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    first = AWGNChannel(1.0)(s, 1.0, generator=torch.Generator().manual_seed(5)).estimate
    second = AWGNChannel(1.0)(s, 1.0, generator=torch.Generator().manual_seed(5)).estimate
    third = AWGNChannel(1.0)(s, 1.0, generator=torch.Generator().manual_seed(6)).estimate
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def test_the_global_generator_is_not_touched():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    AWGNChannel(1.0, generator=torch.Generator().manual_seed(1))(torch.ones(3, 5), energy=1.0)
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_the_input(dtype, generator):
    out = AWGNChannel(1.0, generator=generator)(torch.ones(3, 5, dtype=dtype), energy=1.0)
    assert out.estimate.dtype == dtype


# ---------------------------------------------------------------------------------- guards
def test_infinite_energy_is_noiseless_and_finite(generator):
    s = _signals(generator)
    out = AWGNChannel(1.0, generator=generator)(s, energy=math.inf)
    assert_close(out.estimate, s.mean(0))
    assert float(out.noise_var) == 0.0
    assert torch.isinf(out.energy_used).all()


def test_zero_energy_keeps_everyone_silent(generator):
    out = AWGNChannel(1.0, generator=generator)(_signals(generator), energy=0.0)
    assert torch.equal(out.estimate, torch.zeros_like(out.estimate))
    assert not out.active.any()
    assert torch.equal(out.energy_used, torch.zeros_like(out.energy_used))
    assert float(out.noise_var) == 0.0


def test_a_client_with_zero_energy_is_not_heard():
    s = torch.tensor([[1.0, 1.0], [3.0, 3.0]], dtype=torch.float64)
    out = AWGNChannel(0.0)(s, energy=torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert out.active.tolist() == [True, False]
    assert_close(out.estimate, s[0])  # mean over active clients
    assert_close(out.energy_used, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_zero_signals_give_a_zero_estimate_without_noise(generator):
    out = AWGNChannel(1.0, generator=generator)(torch.zeros(4, 9, dtype=torch.float64), energy=5.0)
    assert torch.equal(out.estimate, torch.zeros(9, dtype=torch.float64))
    assert float(out.noise_var) == 0.0
    assert torch.equal(out.energy_used, torch.zeros(4, dtype=torch.float64))


def test_one_zero_client_among_others_is_fine(generator):
    s = _signals(generator, num_clients=3)
    s[1] = 0
    out = AWGNChannel(0.0)(s, energy=2.0)
    assert_close(out.estimate, s.mean(0))
    assert float(out.energy_used[1]) == 0.0


@pytest.mark.parametrize("energy", [-1.0, math.nan])
def test_bad_energy_is_rejected(energy):
    with pytest.raises(ValueError, match="energy"):
        AWGNChannel(1.0)(torch.ones(2, 3), energy=energy)


@pytest.mark.parametrize("noise_var", [-1.0, math.nan, math.inf])
def test_bad_noise_variance_is_rejected(noise_var):
    with pytest.raises(ValueError, match="noise_var"):
        AWGNChannel(noise_var)


# ----------------------------------------------------------------------- power-limited regime
def test_snr_regime_gives_each_client_d_times_the_per_use_energy():
    s = torch.ones(2, 10, dtype=torch.float64)
    out = AWGNChannel(noise_var=0.5)(s, snr_db=20.0, generator=torch.Generator().manual_seed(0))
    assert_close(out.energy_used, torch.full((2,), 10 * 0.5 * 100.0, dtype=torch.float64))


def test_snr_and_energy_conversions_are_inverse():
    energy = energy_for_snr_db(7.0, channel_uses=123, noise_var=0.3)
    assert snr_db_for_energy(energy, channel_uses=123, noise_var=0.3) == pytest.approx(7.0)
    assert energy_for_snr_db(7.0, channel_uses=10, noise_var=0.0) == math.inf


def test_exactly_one_budget_must_be_given():
    with pytest.raises(ValueError, match="exactly one"):
        AWGNChannel(1.0)(torch.ones(2, 3), energy=1.0, snr_db=3.0)
    with pytest.raises(ValueError, match="exactly one"):
        AWGNChannel(1.0)(torch.ones(2, 3))
