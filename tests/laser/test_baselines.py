"""Random-K, count-mean sketch and Signum: exact identities and statistical unbiasedness."""

import math

import pytest
import torch
from torch.testing import assert_close

from laser.baselines import (
    CountSketchCompressor,
    RandomKCompressor,
    SignumCompressor,
    count_sketch,
    count_unsketch,
)

F64 = torch.float64
SHAPES = [(6, 10), (7,), (3, 2, 2)]


def _params():
    return [torch.zeros(s, dtype=F64) for s in SHAPES]


def _grads(generator):
    return [torch.randn(s, generator=generator, dtype=F64) for s in SHAPES]


def _own_message(compressor, block, i):
    """What the server would decode from this client's block alone (the current round's randomness)."""
    return compressor._expand(block, compressor.shared()[i], math.prod(SHAPES[i]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomKCompressor(0.3),
        lambda: RandomKCompressor(0.3, unbiased=True),
        lambda: CountSketchCompressor(0.5, error_feedback=True),
    ],
)
def test_error_feedback_identity(generator, make):
    """memory_old + gradient == own decoded message + memory_new, exactly, for every client and round."""
    c = make()
    c.setup(_params(), num_clients=3)
    for _ in range(4):
        blocks = []
        for k in range(3):
            grads = _grads(generator)
            wanted = [g.reshape(-1) + (m if m is not None else 0) for g, m in zip(grads, c.memory[k])]
            blocks.append(c.encode(k, grads))
            for i, v in enumerate(wanted):
                assert_close(_own_message(c, blocks[k][i], i) + c.memory[k][i], v, rtol=0, atol=1e-12)
        c.decode([torch.stack(b).mean(0) for b in zip(*blocks)])


@pytest.mark.parametrize(
    "make", [lambda: RandomKCompressor(0.3, error_feedback=False), lambda: CountSketchCompressor(0.4)]
)
def test_linearity_under_the_shared_seed(generator, make):
    """The mean of the clients' blocks is the block of their mean gradient, and decodes to it."""
    c = make()
    c.setup(_params(), num_clients=4)
    client_grads = [_grads(generator) for _ in range(4)]
    blocks = [c.encode(k, g) for k, g in enumerate(client_grads)]
    mean_blocks = [torch.stack(b).mean(0) for b in zip(*blocks)]
    mean_grads = [torch.stack(g).mean(0) for g in zip(*client_grads)]
    for a, b in zip(mean_blocks, c.encode(3, mean_grads)):  # same round, same randomness
        assert_close(a, b)
    assert [b.numel() for b in mean_blocks] == [
        math.floor(f * math.prod(s)) for f, s in zip([c.fraction] * 3, SHAPES)
    ]


def test_fresh_randomness_each_round_and_shared_within_it(generator):
    rk = RandomKCompressor(0.2, seed=5)
    rk.setup(_params(), num_clients=2)
    first = rk.shared()[0][0].clone()
    assert torch.equal(rk.shared()[0][0], first)  # cached for the whole round
    rk.decode([b for b in rk.encode(0, _grads(generator))])
    assert not torch.equal(rk.shared()[0][0], first)
    other = RandomKCompressor(0.2, seed=5)  # same seed: same supports
    other.setup(_params(), num_clients=2)
    assert torch.equal(other.shared()[0][0], first)
    assert len(set(first.tolist())) == first.numel()  # without replacement


def test_random_k_with_fraction_one_reproduces_the_input(generator):
    rk = RandomKCompressor(1.0)
    rk.setup(_params(), num_clients=1)
    grads = _grads(generator)
    for g, d in zip(grads, rk.decode(rk.encode(0, grads))):
        assert torch.equal(g, d)
    assert all(float(m.abs().max()) == 0 for m in rk.memory[0])


def test_sketch_with_an_identity_hash_reproduces_the_input(generator):
    v = torch.randn(9, generator=generator, dtype=F64)
    identity = torch.arange(9)
    signs = torch.randint(2, (9,), generator=generator) * 2 - 1
    sketch = count_sketch(v, identity, signs, 9)
    assert torch.equal(sketch, signs * v)
    assert torch.equal(count_unsketch(sketch, identity, signs), v)


def test_sketch_is_one_row_count_sketch():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    buckets, signs = torch.tensor([1, 0, 1, 1]), torch.tensor([1, -1, -1, 1])
    assert count_sketch(v, buckets, signs, 2).tolist() == [-2.0, 1 - 3 + 4]
    assert count_unsketch(torch.tensor([-2.0, 2.0]), buckets, signs).tolist() == [2.0, 2.0, -2.0, 2.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda s: RandomKCompressor(0.25, error_feedback=False, unbiased=True, seed=s),
        lambda s: CountSketchCompressor(0.5, seed=s),
    ],
)
def test_unbiased_over_the_shared_randomness(generator, make):
    """E[decode(encode(g))] = g: the mean of N independent rounds is within 5 standard errors."""
    g = [torch.randn(s, generator=generator, dtype=F64) for s in SHAPES]
    c = make(7)
    c.setup(_params(), num_clients=1)
    n = 3000
    draws = torch.stack([torch.cat([d.reshape(-1) for d in c.decode(c.encode(0, g))]) for _ in range(n)])
    target = torch.cat([x.reshape(-1) for x in g])
    stderr = draws.std(0) / math.sqrt(n)
    assert bool(((draws.mean(0) - target).abs() <= 5 * stderr + 1e-12).all())
    # and the check has power: the plain (unscaled) Random-K is biased towards zero by 1 - K/d
    if isinstance(c, RandomKCompressor):
        assert bool(((draws.mean(0) * 0.25 - target).abs() > 5 * stderr).any())


def test_signum_majority_vote_over_a_noiseless_channel(generator):
    signum = SignumCompressor()
    signum.setup(_params(), num_clients=5)
    client_grads = [_grads(generator) for _ in range(5)]
    blocks = [signum.encode(k, g) for k, g in enumerate(client_grads)]
    for b in blocks:
        assert all(set(x.unique().tolist()) <= {-1.0, 0.0, 1.0} for x in b)
    decoded = signum.decode([torch.stack(b).mean(0) for b in zip(*blocks)])
    for i, d in enumerate(decoded):
        votes = torch.stack([torch.sign(g[i]) for g in client_grads]).sum(0)
        assert torch.equal(d, torch.sign(votes))


def test_signum_momentum_signs_the_running_average(generator):
    signum = SignumCompressor(momentum=0.9)
    signum.setup([torch.zeros(4, dtype=F64)], num_clients=1)
    g1, g2 = torch.tensor([1.0, -1.0, 2.0, 0.0], dtype=F64), torch.tensor([-5.0, 0.5, -0.1, 0.0], dtype=F64)
    signum.encode(0, [g1])
    (block,) = signum.encode(0, [g2])
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    assert torch.equal(block, torch.sign(m))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomKCompressor(0.3, seed=3),
        lambda: CountSketchCompressor(0.3, seed=3),
        lambda: SignumCompressor(momentum=0.5),
    ],
)
def test_state_round_trip_continues_identically(generator, make):
    a, b = make(), make()
    a.setup(_params(), num_clients=2)
    b.setup(_params(), num_clients=2)
    grads = [[_grads(generator) for _ in range(2)] for _ in range(4)]
    for t in range(2):
        a.decode([torch.stack(x).mean(0) for x in zip(*[a.encode(k, grads[t][k]) for k in range(2)])])
    b.load_state_dict(a.state_dict())
    for t in range(2, 4):
        out_a = a.decode([torch.stack(x).mean(0) for x in zip(*[a.encode(k, grads[t][k]) for k in range(2)])])
        out_b = b.decode([torch.stack(x).mean(0) for x in zip(*[b.encode(k, grads[t][k]) for k in range(2)])])
        for x, y in zip(out_a, out_b):
            assert torch.equal(x, y)


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_bad_fraction_is_rejected(bad):
    with pytest.raises(ValueError, match="fraction"):
        RandomKCompressor(bad)
    with pytest.raises(ValueError, match="momentum"):
        SignumCompressor(momentum=1.0)


def test_saving_in_the_middle_of_a_round_is_refused(generator):
    rk = RandomKCompressor(0.3)
    rk.setup(_params(), num_clients=1)
    rk.encode(0, _grads(generator))
    with pytest.raises(ValueError, match="middle of a round"):
        rk.state_dict()
