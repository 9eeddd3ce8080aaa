"""Flower-style central DP (``PassOptions.central``), the comparison privacy mode's results need: each
client's blocks clipped as one vector (Flower's flat clip), the exact mean over a noiseless channel,
and Gaussian noise of standard deviation nu C / K added by the server (Flower's ``compute_stdv``)."""

import math

import numpy as np
import pytest
import torch
from flwr.supercore.differential_privacy import clip_inputs_inplace, compute_stdv

from channels import AWGNChannel, flat_clip
from laser import LaserCompressor, PassOptions, ZSGDCompressor, transmit_round


def _grads(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        [
            torch.randn(40, 30, generator=g, dtype=torch.float64),
            torch.randn(30, generator=g, dtype=torch.float64),
        ]
        for _ in range(count)
    ]


def _round(method, grads, options, seed=1):
    params = [torch.zeros_like(t) for t in grads[0]]
    server = method.make_server(params)
    clients = [method.make_client(params, k) for k in range(len(grads))]
    channel = AWGNChannel(noise_var=0.0, generator=torch.Generator().manual_seed(seed))
    return transmit_round(channel, server, clients, grads, options), clients


def test_the_flat_clip_is_flowers():
    blocks = [torch.randn(7, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    sent, off = flat_clip(blocks, 0.8)
    theirs = [b.numpy().copy() for b in blocks]
    clip_inputs_inplace(theirs, 0.8)
    for ours, flower, u, o in zip(sent, theirs, blocks, off):
        np.testing.assert_allclose(ours.numpy(), flower, rtol=1e-12)
        torch.testing.assert_close(ours + o, u)
    assert math.sqrt(sum(float(t.square().sum()) for t in sent)) == pytest.approx(0.8)
    within, cut = flat_clip(blocks, 100.0)  # within the clip: sent as it is, nothing cut
    assert all(a is b for a, b in zip(within, blocks)) and not any(bool(t.any()) for t in cut)


def test_zsgd_central_is_the_clipped_mean_plus_the_servers_gaussian():
    grads, nu, clip = _grads(4), 0.7, 0.5
    out, _ = _round(ZSGDCompressor(), grads, PassOptions(energy=1.0, clip=clip, central=nu))
    clipped = [flat_clip(g, clip)[0] for g in grads]
    mean = [sum(c[b] for c in clipped) / 4 for b in range(2)]
    noise = torch.cat([(o - m).flatten() for o, m in zip(out.gradient, mean)])
    std = compute_stdv(nu, clip, 4)  # Flower's: nu C / K
    assert std == pytest.approx(nu * clip / 4)
    # 1,230 draws: the sample variance within 5 standard errors of std^2 (chi-square, 2 / n relative var)
    n = noise.numel()
    assert float(noise.var()) == pytest.approx(std**2, rel=5 * math.sqrt(2 / n))
    assert abs(float(noise.mean())) < 5 * std / math.sqrt(n)
    (record,) = out.passes
    assert record.noise_multiplier == nu and out.noise_multiplier == pytest.approx(nu)
    assert torch.allclose(record.noise_var, torch.full((2,), std**2, dtype=torch.float64))
    # the same seed draws the same noise; the channel's generator is the server's stream
    again, _ = _round(ZSGDCompressor(), grads, PassOptions(energy=1.0, clip=clip, central=nu))
    assert all(a.equal(b) for a, b in zip(out.gradient, again.gradient))


def test_each_of_powersgds_passes_is_a_gaussian_at_sqrt_two_nu():
    out, _ = _round(
        LaserCompressor(rank=2, factors_per_round=2),
        _grads(3),
        PassOptions(energy=1.0, clip=1.0, central=0.5),
    )
    assert [p.noise_multiplier for p in out.passes] == pytest.approx([0.5 * math.sqrt(2)] * 2)
    assert out.noise_multiplier == pytest.approx(0.5)  # the round composes to nu


def test_laser_keeps_the_flat_clips_cut_in_its_memory():
    grads = _grads(1)
    # one client, noise negligible: memory + decoded = gradient (the factor's cut is kept)
    options = PassOptions(energy=1.0, clip=0.05, central=1e-9, keep_clipped=True)
    out, (client,) = _round(LaserCompressor(rank=2), grads, options)
    (memory,) = [m for m in client.memory if m is not None]
    torch.testing.assert_close(memory[0] + out.gradient[0], grads[0][0], rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"central": 1.0}, "clip"),
        ({"central": 0.0, "clip": 1.0}, "central"),
        ({"central": 1.0, "clip": 1.0, "min_noise_multiplier": 1.0}, "excludes"),
        ({"central": 1.0, "clip": 1.0, "participation": 0.5}, "excludes"),
    ],
)
def test_central_is_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PassOptions(energy=1.0, **kwargs)
