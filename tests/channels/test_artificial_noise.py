"""Artificial noise (``transmit(min_energy_scale=)``): where a target noise multiplier would lower the
clients' energy below a floor, they lower it only to the floor (or as far as their budgets carry
their shares) and send the rest of the noise; the server's estimate has the same noise either way."""

import pytest
import torch

from channels import AWGNChannel, RayleighFading, SignalBlocks, block_clips, clip_blocks
from channels.fading_channel import FadingChannel

DIMS = (60, 20)


def _blocks(clients=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = [[torch.randn(d, generator=g, dtype=torch.float64) for d in DIMS] for _ in range(clients)]
    clips = block_clips(list(DIMS), 1.0)
    return SignalBlocks(clip_blocks(raw, clips)), clips


def _send(energy, target, floor=None, seed=3, channel=None):
    blocks, clips = _blocks()
    channel = channel or AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(seed))
    budget = clips.square() / clips.square().sum() * energy  # E_b = E C_b^2 / C^2
    return channel.transmit(
        blocks,
        budget[None, :].expand(4, -1).contiguous(),
        clips=clips,
        min_noise_multiplier=target,
        min_energy_scale=floor,
    )


def test_the_floor_keeps_the_energy_and_the_clients_send_the_rest_of_the_noise():
    # AWGN, E = 100: nu = 1 / sqrt(E) = 0.1; a target of 0.4 alone would keep alpha = 1/16 of the energy
    lowered, floored = _send(100.0, 0.4), _send(100.0, 0.4, floor=0.1)
    assert lowered.energy_scale == pytest.approx(1 / 16) and lowered.artificial_noise_var == 0
    assert floored.energy_scale == pytest.approx(0.1)
    # the noise the floor needs beyond the channel's: noise_var (alpha / (1/16) - 1) = 0.6
    assert floored.artificial_noise_var == pytest.approx(1.0 * (0.1 * 16 - 1))
    assert floored.noise_multiplier == lowered.noise_multiplier == 0.4
    # the same noise in the server's estimate: (noise_var + artificial) / (eta K)^2 = noise_var / (eta' K)^2
    torch.testing.assert_close(floored.noise_var, lowered.noise_var, rtol=1e-9, atol=0)
    # each client spends its signal at alpha = 0.1 plus its share: sigma_a^2 / K per real entry
    signal = lowered.energy_used.double() * (0.1 * 16)
    share = torch.tensor(DIMS, dtype=torch.float64)[None, :] * floored.artificial_noise_var / 4
    torch.testing.assert_close(floored.energy_used.double(), signal + share, rtol=1e-6, atol=0)


def test_a_budget_too_small_for_its_share_stops_alpha_below_the_floor():
    # E = 10: at alpha = 0.5 a share of 80 (sigma_a^2 / 4 per entry) would not fit; alpha stops where the
    # tightest client's public bound plus its share is its budget
    out = _send(10.0, 1.0, floor=0.5)
    alpha = out.energy_scale
    assert 0.1 < alpha < 0.5  # above the target's own 1/10, below the floor
    assert out.artificial_noise_var == pytest.approx(1.0 * (alpha / 0.1 - 1))
    # the public bound of every client is its budget (AWGN, every block at its clip's energy): the
    # tightest spends at most alpha E + its share = E
    bound = alpha * 10.0 + sum(DIMS) * out.artificial_noise_var / 4
    assert bound == pytest.approx(10.0, rel=1e-9)
    assert float(out.energy_used.double().sum(1).max()) <= 10.0 * (1 + 1e-9)


def test_the_channels_own_noise_meeting_the_target_sends_no_artificial_noise():
    out = _send(100.0, 0.05, floor=0.5)  # nu = 0.1 already above 0.05
    assert out.energy_scale == 1.0 and out.artificial_noise_var == 0
    assert out.noise_multiplier == pytest.approx(0.1)


def test_the_estimates_noise_is_measured_where_it_is_predicted():
    # one client sending zeros over many symbols: the estimate is the noise alone, of variance
    # (noise_var + artificial) / eta^2, the recorded noise_var
    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    blocks = SignalBlocks([[torch.zeros(20000, dtype=torch.float64)]])
    out = channel.transmit(
        blocks, torch.tensor([[100.0]]), clips=[1.0], min_noise_multiplier=0.4, min_energy_scale=0.1
    )
    assert out.artificial_noise_var > 0
    measured = float(out.estimates[0].var())
    assert measured == pytest.approx(float(out.noise_var[0]), rel=5 * (2 / 20000) ** 0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_energy_scale": 0.0}, "min_energy_scale"),
        ({"min_energy_scale": 1.5}, "min_energy_scale"),
        ({"min_energy_scale": 0.5, "participation": 0.5}, "one receive antenna"),
    ],
)
def test_the_floor_is_checked(kwargs, match):
    blocks, clips = _blocks()
    channel = AWGNChannel(noise_var=1.0)
    with pytest.raises(ValueError, match=match):
        channel.transmit(blocks, torch.full((4, 2), 10.0), clips=clips, min_noise_multiplier=1.0, **kwargs)


def test_imperfect_csi_is_refused():
    from channels.power_control import ImperfectCSI

    blocks, clips = _blocks()
    channel = FadingChannel(fading=RayleighFading(), policy=ImperfectCSI(error_var=0.1), noise_var=1.0)
    with pytest.raises(ValueError, match="perfect CSI"):
        channel.transmit(
            blocks, torch.full((4, 2), 10.0), clips=clips, min_noise_multiplier=1.0, min_energy_scale=0.5
        )


def test_a_block_nobody_sends_on_leaves_every_client_within_its_budget():
    # block 1 has no budget anywhere (its scale is infinite): it costs nothing, and alpha stays where
    # the budgets carry the shares of block 0's noise (before the fix it read NaN and took the floor)
    blocks, clips = _blocks()
    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    budget = torch.tensor([[10.0, 0.0]] * 4)
    out = channel.transmit(blocks, budget, clips=clips, min_noise_multiplier=1.0, min_energy_scale=0.5)
    assert out.artificial_noise_var > 0 and out.energy_scale < 0.5
    assert float(out.energy_used.double().sum(1).max()) <= 10.0 * (1 + 1e-9)
