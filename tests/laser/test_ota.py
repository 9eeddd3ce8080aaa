"""One over-the-air round (laser.ota): the budget split, per-client energy and decoded blocks of a
pass; the public round call for a compressor's client and server sides."""

import math

import torch
from torch.testing import assert_close

from channels import AWGNChannel
from laser.ota import _analog_pass


def uplink(channel, client_blocks, *, energy=None, snr_db=None, groups=None):
    """One analog pass of ``client_blocks`` (the unit under test), its record."""
    record, _ = _analog_pass(
        channel,
        client_blocks,
        energy=energy,
        snr_db=snr_db,
        allocation="norm",
        budget_scale=None,
        groups=groups,
        processes=None,
    )
    return record


F64 = torch.float64


def _client_blocks(generator, num_clients=5, dims=(7, 30, 1)):
    return [
        [torch.randn(d, generator=generator, dtype=F64) * (b + 1) for b, d in enumerate(dims)]
        for _ in range(num_clients)
    ]


class RecordingChannel(AWGNChannel):
    """Keeps what each call of the channel got and returned, to check a whole round's per-block physics."""

    def transmit(self, blocks, energy, **kwargs):
        out = super().transmit(blocks, energy, **kwargs)
        self.calls.append((blocks, energy, out))
        return out


def test_block_budgets_sum_to_the_budget_and_the_largest_signal_of_each_block_meets_its_own(generator):
    channel = RecordingChannel(1.0, generator=generator)
    channel.calls = []
    client_blocks = _client_blocks(generator)
    out = uplink(channel, client_blocks, energy=50.0)
    assert len(channel.calls) == 1 and out.channel_uses == 7 + 30 + 1  # one call for the round
    _, budgets, round_out = channel.calls[0]  # [K, B]
    assert_close(budgets.sum(1), torch.full((5,), 50.0, dtype=F64))
    for b in range(3):
        signals = torch.stack([c[b] for c in client_blocks])
        largest = int(torch.linalg.vector_norm(signals, dim=1).argmax())
        assert_close(round_out.energy_used[largest, b], budgets[largest, b])  # equality
        assert bool((round_out.energy_used[:, b] <= budgets[:, b] * (1 + 1e-9)).all())
    assert_close(out.energy_used, round_out.energy_used.sum(1))
    assert bool((out.energy_used <= 50.0 * (1 + 1e-9)).all())


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


def test_noise_energy_matches_the_papers_formula(generator):
    """sum_b d_b c_b^2 / (K^2 E_b), with c_b the largest client norm and E_b the norm-proportional
    share, computed here from scratch."""
    blocks = _client_blocks(generator)
    out = uplink(AWGNChannel(1.0, generator=generator), blocks, energy=5.0)
    norms = torch.tensor(
        [[float(torch.linalg.vector_norm(b)) for b in client] for client in blocks], dtype=F64
    )
    shares = 5.0 * (norms / norms.sum(1, keepdim=True)).mean(0)
    expected = sum(
        d * float(norms[:, b].max()) ** 2 / (25 * float(shares[b])) for b, d in enumerate((7, 30, 1))
    )
    assert math.isclose(out.noise_energy, expected, rel_tol=1e-9)


def test_grouped_blocks_get_the_grouped_allocation(generator):
    """With energy groups, each block's budget (read back from its noise variance) is the grouped split."""
    from laser.allocation import allocate_grouped_energy

    channel = RecordingChannel(1.0, generator=generator)
    channel.calls = []
    blocks = _client_blocks(generator, num_clients=3, dims=(5, 5, 5, 9))
    groups = ([0, 0, 0, 1], 1.0)
    out = uplink(channel, blocks, energy=40.0, groups=groups)
    budgets = channel.calls[0][1]
    norms = torch.stack([torch.stack([b.norm() for b in client]) for client in blocks])
    expected = allocate_grouped_energy(norms, torch.tensor([5, 5, 5, 9]), 40.0, "norm", *groups)
    assert_close(budgets, expected)
    # per-entry noise variance c_b^2 / (K^2 E_b), c_b the largest client norm of block b
    c = norms.max(0).values
    assert_close(out.noise_var, c**2 / (9 * expected[0]))


def test_a_pass_with_nothing_to_send_costs_nothing():
    """PowerSGD's second pass when no tensor is compressed: no channel use, no energy, nobody heard."""
    out = uplink(AWGNChannel(noise_var=1.0), [[], [], []], energy=10.0)
    assert out.estimates == [] and out.channel_uses == 0 and out.noise_energy == 0.0
    assert out.energy_used.tolist() == [0.0, 0.0, 0.0] and not out.active.any()
