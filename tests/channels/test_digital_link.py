"""The orthogonal digital link: Shannon rate, channel uses for a message, outage and energy."""

import math

import pytest
import torch
from torch.testing import assert_close

from channels.digital import (
    DigitalRound,
    bit_limit,
    digital_link,
    shannon_rate,
    uses_at_snr,
    uses_for_bits,
)

F64 = torch.float64


def _carried(m, energy, gain, noise_var):
    """m uses at SNR E g / (m noise_var) each: the left side of the inequality, as documented."""
    return float(m * shannon_rate(torch.tensor(energy * gain / (m * noise_var), dtype=F64)))


def test_shannon_rate_values():
    assert shannon_rate(torch.tensor([0.0, 1.0, 3.0, 15.0, 255.0])).tolist() == [0.0, 0.5, 1.0, 2.0, 4.0]
    snr = torch.logspace(-6, 4, 50, dtype=F64)
    assert_close(shannon_rate(snr), 0.5 * torch.log2(1 + snr), rtol=1e-12, atol=1e-15)
    assert shannon_rate(3.0).dtype == F64


def test_bit_limit_formula():
    energy = torch.tensor([1.0, 10.0, 0.0, 5.0], dtype=F64)
    gain = torch.tensor([1.0, 0.5, 2.0, 3.0], dtype=F64)
    assert_close(bit_limit(energy, gain, 2.0), energy * gain / (2 * math.log(2) * 2.0), rtol=1e-15, atol=0)
    assert bit_limit(1.0, 1.0, 0.0).item() == math.inf
    # the limit of m C(E g / (m noise_var)) as m grows
    assert _carried(1e9, 10.0, 0.5, 2.0) == pytest.approx(float(bit_limit(10.0, 0.5, 2.0)), rel=1e-8)


GRID = [
    (bits, energy, gain, noise_var)
    for bits in (1.0, 7.0, 100.0, 1234.0, 10**6)
    for energy in (0.5, 10.0, 1e3, 1e7)
    for gain in (0.01, 1.0, 3.7)
    for noise_var in (0.1, 1.0)
]


def test_uses_for_bits_is_minimal_and_feasible():
    """m satisfies the inequality and m - 1 does not, across a grid; the rest is infeasible."""
    bits, energy, gain, noise_var = (torch.tensor(column, dtype=F64) for column in zip(*GRID))
    uses = uses_for_bits(bits, energy, gain, noise_var)
    limit = bit_limit(energy, gain, noise_var)
    feasible = 0
    for b, e, g, n, m, lim in zip(
        *(t.tolist() for t in (bits, energy, gain, noise_var, uses, limit)), strict=True
    ):
        if b >= lim:
            assert m == math.inf
            continue
        feasible += 1
        assert m == int(m) and m >= 1
        assert _carried(m, e, g, n) >= b
        assert m == 1 or _carried(m - 1, e, g, n) < b
    assert 30 <= feasible < len(GRID)  # both cases are exercised


@pytest.mark.parametrize("share", [0.5, 0.9, 0.99, 0.999, 0.99999])
def test_uses_for_bits_near_the_limit(share):
    energy, gain, noise_var = 1000.0, 0.8, 1.0
    limit = float(bit_limit(energy, gain, noise_var))
    bits = share * limit
    m = float(uses_for_bits(bits, energy, gain, noise_var))
    assert math.isfinite(m)
    assert _carried(m, energy, gain, noise_var) >= bits > _carried(m - 1, energy, gain, noise_var)
    # m C(G/m) = limit (1 - G / (2m) + O(1/m^2)), so m -> G / (2 (1 - share)) as share -> 1
    if share >= 0.99:
        assert m == pytest.approx(energy * gain / noise_var / (2 * (1 - share)), rel=0.02)


def test_uses_for_bits_infeasible_and_special_cases():
    limit = float(bit_limit(10.0, 1.0, 1.0))
    assert float(uses_for_bits(limit, 10.0, 1.0, 1.0)) == math.inf
    assert float(uses_for_bits(limit * 1.01, 10.0, 1.0, 1.0)) == math.inf
    assert float(uses_for_bits(1.0, 10.0, 0.0, 1.0)) == math.inf  # no gain
    assert float(uses_for_bits(1.0, 0.0, 1.0, 1.0)) == math.inf  # no energy
    assert float(uses_for_bits(0.0, 0.0, 0.0, 1.0)) == 0.0  # nothing to send
    assert float(uses_for_bits(1e9, 10.0, 1.0, 0.0)) == 0.0  # noiseless: free
    assert float(uses_for_bits(1.0, 3.0, 1.0, 1.0)) == 1.0  # 1 use at SNR 3 carries 1 bit
    with pytest.raises(ValueError, match="bits"):
        uses_for_bits(-1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="noise_var"):
        uses_for_bits(1.0, 1.0, 1.0, float("nan"))


def test_uses_at_snr():
    snr_db = 10 * math.log10(15.0)  # 2 bits per use at gain 1
    bits = torch.tensor([0.0, 1.0, 2.0, 3.0, 100.0, 101.0], dtype=F64)
    uses, energy = uses_at_snr(bits, snr_db, 1.0, noise_var=0.5)
    assert uses.tolist() == [0.0, 1.0, 1.0, 2.0, 50.0, 51.0]
    assert_close(energy, uses * 0.5 * 15.0, rtol=1e-12, atol=0)
    # a gain scales the received SNR: 15 * (3 / 15) = 3 -> 1 bit per use
    assert uses_at_snr(7.0, snr_db, 0.2)[0].item() == 7.0
    rate = float(shannon_rate(10**0.73 * 0.37))
    m = uses_at_snr(1000.0, 7.3, 0.37)[0].item()
    assert m * rate >= 1000.0 > (m - 1) * rate
    assert uses_at_snr(1.0, 10.0, 0.0)[0].item() == math.inf


def test_digital_link_energy_mode():
    energy = 3.0
    limit = float(bit_limit(energy, 1.0, 1.0))  # 2.16 bits at gain 1
    bits = torch.tensor([1.0, 2.0, 3.0, 0.0, 1.0, 1.0], dtype=F64)
    gains = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 4.0], dtype=F64)
    out = digital_link(bits, gains, energy=energy)
    assert isinstance(out, DigitalRound)
    assert bits[2] > limit
    assert out.delivered.tolist() == [True, True, False, True, False, True]
    expected_uses = uses_for_bits(bits, energy, gains, 1.0)
    assert out.channel_uses.tolist() == [1.0, expected_uses[1].item(), 0.0, 0.0, 0.0, 1.0]
    assert out.energy_used.tolist() == [3.0, 3.0, 0.0, 0.0, 0.0, 3.0]  # whole energy, or silent
    assert out.total_channel_uses == 2.0 + expected_uses[1].item()
    assert out.channel_uses.dtype == F64 and out.delivered.dtype == torch.bool


def test_digital_link_per_client_energy():
    out = digital_link(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0]), energy=torch.tensor([1.0, 100.0]))
    assert out.delivered.tolist() == [False, True]  # 2 bits > 1 / (2 ln 2) = 0.72
    assert out.energy_used.tolist() == [0.0, 100.0]


def test_digital_link_snr_mode():
    snr_db = 10 * math.log10(15.0)
    out = digital_link(
        torch.tensor([4.0, 4.0, 0.0, 3.0]), torch.tensor([1.0, 0.2, 0.0, 0.0]), snr_db=snr_db, noise_var=2.0
    )
    assert out.delivered.tolist() == [True, True, True, False]
    assert out.channel_uses.tolist() == [2.0, 4.0, 0.0, 0.0]  # 2 and 1 bits per use
    assert_close(out.energy_used, torch.tensor([2 * 30.0, 4 * 30.0, 0.0, 0.0], dtype=F64), rtol=1e-12, atol=0)


def test_digital_link_noiseless_is_free():
    bits, gains = torch.tensor([1e6, 0.0, 5.0]), torch.tensor([1.0, 1.0, 0.0])
    for out in (
        digital_link(bits, gains, energy=1.0, noise_var=0.0),
        digital_link(bits, gains, snr_db=0.0, noise_var=0.0),
        digital_link(bits, gains, energy=math.inf),
    ):
        assert out.delivered.all()
        assert out.channel_uses.tolist() == [0.0, 0.0, 0.0]
        assert out.energy_used.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "exactly one"),
        ({"energy": 1.0, "snr_db": 10.0}, "exactly one"),
        ({"energy": -1.0}, "energy"),
        ({"energy": torch.ones(3)}, "energy"),
        ({"energy": 1.0, "noise_var": -1.0}, "noise_var"),
        ({"snr_db": float("nan")}, "snr_db"),
    ],
)
def test_digital_link_validates(kwargs, name):
    with pytest.raises(ValueError, match=name):
        digital_link(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), **kwargs)
    with pytest.raises(ValueError, match="gains"):
        digital_link(torch.tensor([1.0, 2.0]), torch.tensor([1.0, -1.0]), energy=1.0)
