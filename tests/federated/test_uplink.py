"""The round's uplink: budget split, per-client energy, decoded blocks (DESIGN.md section 4)."""

import math

import torch
from torch.testing import assert_close

from channels import AWGNChannel
from federated.uplink import uplink

F64 = torch.float64


def _client_blocks(generator, num_clients=5, dims=(7, 30, 1)):
    return [[torch.randn(d, generator=generator, dtype=F64) * (b + 1) for b, d in enumerate(dims)]
            for _ in range(num_clients)]


def test_every_client_stays_within_budget_and_the_largest_signal_meets_it(generator):
    blocks = _client_blocks(generator)
    out = uplink(AWGNChannel(1.0, generator=generator), blocks, energy=50.0)
    assert bool((out.energy_used <= 50.0 * (1 + 1e-9)).all())
    # per block, the client with the largest norm spends its whole block budget, so a client that is
    # largest in every block spends exactly E
    assert out.channel_uses == 7 + 30 + 1
    assert out.noise_var.shape == (3,)


def test_single_client_spends_exactly_its_budget(generator):
    blocks = _client_blocks(generator, num_clients=1)
    out = uplink(AWGNChannel(1.0, generator=generator), blocks, energy=12.0)
    assert_close(out.energy_used, torch.tensor([12.0], dtype=F64))


def test_noiseless_uplink_decodes_the_exact_mean(generator):
    blocks = _client_blocks(generator)
    out = uplink(AWGNChannel(0.0), blocks, energy=1.0)
    for b, estimate in enumerate(out.estimates):
        assert_close(estimate, torch.stack([c[b] for c in blocks]).mean(0))


def test_snr_regime_energy_grows_with_channel_uses(generator):
    blocks = _client_blocks(generator, num_clients=1)
    out = uplink(AWGNChannel(2.0, generator=generator), blocks, snr_db=10.0)
    assert_close(out.energy_used, torch.tensor([38 * 2.0 * 10.0], dtype=F64))


def test_noise_energy_is_sum_of_block_noise(generator):
    out = uplink(AWGNChannel(1.0, generator=generator), _client_blocks(generator), energy=5.0)
    expected = sum(e.numel() * float(v) for e, v in zip(out.estimates, out.noise_var))
    assert math.isclose(out.noise_energy, expected, rel_tol=1e-12)
