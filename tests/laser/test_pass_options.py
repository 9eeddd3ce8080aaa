"""One options object for an over-the-air pass (issue 30, item 2): ``PassOptions`` carries what
``transmit_round`` and ``transmit_blocks`` took as eight keyword arguments; the keywords stay
accepted, a call gives one or the other, and both give the same bits."""

import dataclasses

import pytest
import torch

from channels import AWGNChannel, FadingChannel, RayleighFading
from laser import LaserCompressor, PassOptions, transmit_blocks, transmit_round


def _round(method, options=None, seed=0, **keywords):
    params = [torch.zeros(12, 10), torch.zeros(7)]
    server = method.make_server(params)
    clients = [method.make_client(params, k) for k in range(4)]
    generator = torch.Generator().manual_seed(seed)
    grads = [[torch.randn(12, 10, generator=generator), torch.randn(7, generator=generator)] for _ in clients]
    channel = FadingChannel(RayleighFading(), noise_var=1.0, generator=torch.Generator().manual_seed(seed))
    out = transmit_round(channel, server, clients, grads, options, **keywords)
    return out, [m for c in clients for m in c.state_dict()["memory"]]  # the error feedback


@pytest.mark.parametrize("factors", [1, 2], ids=["laser", "powersgd"])
def test_options_and_keyword_arguments_give_the_same_bits(factors):
    keywords = {
        "energy": 50.0,
        "allocation": "norm_sqrt_dim",
        "budget_scale": torch.tensor([1.0, 0.5, 2.0, 1.0], dtype=torch.float64),
        "weights": torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64),
        "keep_unheard": True,
    }
    by_keywords, memories = _round(LaserCompressor(rank=2, factors_per_round=factors, seed=1), **keywords)
    by_options, memories_too = _round(
        LaserCompressor(rank=2, factors_per_round=factors, seed=1), PassOptions(**keywords)
    )
    for a, b in zip(by_keywords.gradient, by_options.gradient):
        assert torch.equal(a, b)
    assert torch.equal(by_keywords.energy_used, by_options.energy_used)
    assert by_keywords.channel_uses == by_options.channel_uses
    assert len(memories) == len(memories_too) and all(map(torch.equal, memories, memories_too))


def test_transmit_blocks_takes_the_options_positionally():
    method = LaserCompressor(rank=2)
    params = [torch.zeros(6, 5)]
    server = method.make_server(params)
    clients = [method.make_client(params, k) for k in range(3)]
    shared = server.broadcast()
    blocks = [c.encode([torch.full((6, 5), float(k + 1))], shared) for k, c in enumerate(clients)]
    out = transmit_blocks(AWGNChannel(noise_var=0.0), server, clients, blocks, PassOptions(energy=10.0))
    assert out.channel_uses > 0 and int(out.active.sum()) == 3


def test_a_call_gives_options_or_keywords_not_both():
    with pytest.raises(TypeError, match=r"options and energy, weights both given"):
        _round(LaserCompressor(rank=2), PassOptions(energy=1.0), energy=2.0, weights=torch.ones(4))
    # a keyword left at its default is not "given"
    out, _ = _round(LaserCompressor(rank=2), PassOptions(energy=1.0), allocation="norm", keep_unheard=False)
    assert out.channel_uses > 0
    with pytest.raises(TypeError, match="options must be a PassOptions, got dict"):
        _round(LaserCompressor(rank=2), {"energy": 1.0})


def test_the_options_check_themselves_when_built_and_replaced():
    with pytest.raises(ValueError, match="exactly one of energy"):
        PassOptions()
    with pytest.raises(ValueError, match="exactly one of energy"):
        PassOptions(energy=1.0, snr_db=3.0)
    with pytest.raises(ValueError, match="allocation = 'equal' is not accepted"):
        PassOptions(energy=1.0).replace(allocation="equal")
    with pytest.raises(TypeError, match="keep_unheard must be True or False, got str"):
        PassOptions(energy=1.0, keep_unheard="yes")
    options = PassOptions(energy=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.energy = 2.0  # type: ignore[misc]


def test_a_share_of_the_energy_and_the_snr_left_as_it_is():
    energy = torch.tensor([10.0, 20.0])
    assert torch.equal(PassOptions(energy=energy).share(0.25).energy, energy * 0.25)
    per_use = PassOptions(snr_db=5.0)
    assert per_use.share(0.25) is per_use
