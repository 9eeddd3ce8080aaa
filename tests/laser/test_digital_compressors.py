"""Digital compressors: exact identities, bit counts by hand, and statistical unbiasedness."""

import math

import pytest
import torch
from torch.testing import assert_close

from laser.digital import (
    NaturalCompressor,
    NaturalDitheringCompressor,
    QSGDCompressor,
    SignSGDCompressor,
    TopKCompressor,
    TopKDitheringCompressor,
)

F64 = torch.float64
SHAPES = [(10, 20), (7,)]  # d = 200 and 7


def _params():
    return [torch.zeros(shape, dtype=F64) for shape in SHAPES]


def _grads(generator):
    return [torch.randn(shape, generator=generator, dtype=F64) for shape in SHAPES]


def _averaged(compressor, v, n):
    """Mean and per-coordinate standard deviation of n independent encodes of the fixed vector v."""
    compressor.setup([v], num_clients=1)
    samples = torch.stack([compressor.encode(0, [v])[0] for _ in range(n)])
    return samples.mean(0), samples.std(0)


# ----------------------------------------------------------------------------- exact identities


@pytest.mark.parametrize(
    "make",
    [
        lambda: TopKCompressor(fraction=0.1),
        lambda: TopKDitheringCompressor(fraction=0.1, levels=4, p=2.0),
        lambda: TopKDitheringCompressor(fraction=0.3, levels=2, p=math.inf),
    ],
)
def test_error_feedback_identity(generator, make):
    """v = g + old memory == message + new memory, for every client and tensor, several rounds."""
    compressor = make()
    compressor.setup(_params(), num_clients=3)
    for _ in range(5):
        for k in range(3):
            grads = _grads(generator)
            old = [m for m in compressor.memory[k]]
            message = compressor.encode(k, grads)
            for i, g in enumerate(grads):
                v = g.reshape(-1) if old[i] is None else g.reshape(-1) + old[i]
                assert_close(message[i] + compressor.memory[k][i], v, rtol=0, atol=1e-15)


def test_top_k_keeps_exactly_the_k_largest_magnitudes(generator):
    topk = TopKCompressor(fraction=0.1, error_feedback=False)
    topk.setup(_params(), num_clients=1)
    grads = _grads(generator)
    message = topk.encode(0, grads)
    for g, q, k in zip(grads, message, [20, 1], strict=True):
        v = g.reshape(-1)
        kept = q != 0
        assert int(kept.sum()) == k
        assert_close(q[kept], v[kept], rtol=0, atol=0)
        assert v[kept].abs().min() >= v[~kept].abs().max()


def test_top_k_fraction_one_reproduces_the_input(generator):
    topk = TopKCompressor(fraction=1.0)
    topk.setup(_params(), num_clients=1)
    for _ in range(2):
        grads = _grads(generator)
        message = topk.encode(0, grads)
        for g, q in zip(grads, message, strict=True):
            assert_close(q, g.reshape(-1), rtol=0, atol=0)
        assert all(float(m.abs().max()) == 0 for m in topk.memory[0])
    assert topk.message_bits(0) == 32 * (200 + 7)


def test_no_error_feedback_keeps_no_memory(generator):
    topk = TopKCompressor(fraction=0.1, error_feedback=False)
    topk.setup(_params(), num_clients=1)
    grads = _grads(generator)
    first = topk.encode(0, grads)
    for a, b in zip(first, topk.encode(0, grads), strict=True):
        assert_close(a, b, rtol=0, atol=0)
    assert "memory" not in topk.state_dict()


# ----------------------------------------------------------------------------- bit counts by hand


@pytest.mark.parametrize(
    ("compressor", "bits"),
    [
        # d = 200: k = 20, index ceil(log2 200) = 8; d = 7: k = max(1, 0) = 1, index 3
        (TopKCompressor(fraction=0.1), 20 * (32 + 8) + 1 * (32 + 3)),
        # levels 4: a sign + ceil(log2 5) = 3 bits per entry, plus a 32-bit norm per tensor
        (QSGDCompressor(levels=4), 32 + 200 * 4 + 32 + 7 * 4),
        (NaturalCompressor(), 9 * 207),
        # levels 8: ceil(log2 9) = 4 level bits
        (NaturalDitheringCompressor(levels=8), 32 + 200 * 5 + 32 + 7 * 5),
        (TopKDitheringCompressor(fraction=0.1, levels=8), 32 + 20 * (8 + 1 + 4) + 32 + 1 * (3 + 1 + 4)),
        # levels 1: ceil(log2 2) = 1; fraction 1: dense, no index bits
        (TopKDitheringCompressor(fraction=1.0, levels=1), 32 + 200 * (1 + 1) + 32 + 7 * (1 + 1)),
        (SignSGDCompressor(), 207),
    ],
)
def test_bit_counts(generator, compressor, bits):
    compressor.setup(_params(), num_clients=2)
    compressor.encode(1, _grads(generator))
    assert compressor.message_bits(1) == bits
    assert compressor.message_bits(0) == 0


def test_bit_count_of_a_single_entry_tensor():
    """d == 1: an index costs 0 bits, and top-k of one entry is dense."""
    topk = TopKCompressor(fraction=0.5)
    topk.setup([torch.zeros(1)], num_clients=1)
    topk.encode(0, [torch.ones(1)])
    assert topk.message_bits(0) == 32


def test_top_k_count_does_not_lose_an_entry_to_rounding():
    """0.29 * 100 = 28.999999999999996 in floating point; k must still be 29."""
    topk = TopKCompressor(fraction=0.29, error_feedback=False)
    topk.setup([torch.zeros(100)], num_clients=1)
    message = topk.encode(0, [torch.arange(1.0, 101.0)])[0]
    assert int((message != 0).sum()) == 29


# ----------------------------------------------------------------------------- statistical checks

N = 4000


def _fixed_vector():
    # mixed signs, several magnitudes, an exact power of two and a zero
    return torch.tensor([2.5, -0.3, 1.0, 0.0, -7.1, 0.04, 3.3, -1.5], dtype=F64)


@pytest.mark.parametrize(
    "compressor",
    [
        QSGDCompressor(levels=2, seed=1),
        QSGDCompressor(levels=4, seed=2),
        NaturalCompressor(seed=3),
        NaturalDitheringCompressor(levels=3, p=2.0, seed=4),
        NaturalDitheringCompressor(levels=4, p=math.inf, seed=5),
    ],
)
def test_unbiased(compressor):
    """|mean - v| <= 5 sd / sqrt(N) per coordinate (a coordinate with sd 0 must be exact)."""
    v = _fixed_vector()
    mean, sd = _averaged(compressor, v, N)
    assert (sd > 0).sum() >= 4  # the check is not vacuous
    assert ((mean - v).abs() <= 5 * sd / math.sqrt(N) + 1e-12).all(), (mean - v, sd)


def test_top_k_dithering_is_biased():
    """The same check rejects the biased TopK-dithering (scaled by 1/zeta, sparse): it can fail."""
    v = _fixed_vector()
    mean, sd = _averaged(TopKDitheringCompressor(fraction=0.5, levels=3, error_feedback=False, seed=6), v, N)
    assert not ((mean - v).abs() <= 5 * sd / math.sqrt(N) + 1e-12).all()


def test_natural_compression_outputs_signed_powers_of_two():
    nat = NaturalCompressor(seed=7)
    v = _fixed_vector()
    nat.setup([v], num_clients=1)
    for _ in range(50):
        q = nat.encode(0, [v])[0]
        nonzero = q != 0
        assert torch.equal(nonzero, v != 0)
        assert torch.equal(torch.sign(q), torch.sign(v))
        exponent = torch.log2(q[nonzero].abs())
        assert torch.equal(exponent, exponent.round())
        # neighbours: 2^floor(log2|v|) or twice that
        lower = torch.exp2(torch.floor(torch.log2(v[nonzero].abs())))
        assert ((q[nonzero].abs() == lower) | (q[nonzero].abs() == 2 * lower)).all()
    assert nat.encode(0, [v])[0][2] == 1.0  # an exact power of two is unchanged


def test_natural_compression_rounds_2_5_up_a_quarter_of_the_time():
    nat = NaturalCompressor(seed=8)
    v = torch.full((N,), 2.5, dtype=F64)
    nat.setup([v], num_clients=1)
    q = nat.encode(0, [v])[0]
    assert set(q.unique().tolist()) == {2.0, 4.0}
    share = float((q == 4.0).double().mean())
    assert abs(share - 0.25) <= 5 * math.sqrt(0.25 * 0.75 / N)


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_natural_dithering_lies_on_the_level_grid(generator, p):
    levels = 4
    dither = NaturalDitheringCompressor(levels=levels, p=p, seed=9)
    dither.setup(_params(), num_clients=1)
    grid = torch.tensor(
        [0.0] + [2.0 ** (j - levels) for j in range(1, levels + 1)], dtype=F64
    )  # 0, 1/8, ..., 1
    for _ in range(5):
        grads = _grads(generator)
        for g, q in zip(grads, dither.encode(0, grads), strict=True):
            norm = torch.linalg.vector_norm(g.reshape(-1), ord=p)
            level = q.abs() / norm
            assert (level[:, None] - grid[None, :]).abs().min(1).values.max() <= 1e-12
            assert torch.equal(torch.sign(q)[q != 0], torch.sign(g.reshape(-1))[q != 0])


def test_zero_tensor_is_sent_as_zeros():
    for compressor in (
        QSGDCompressor(),
        NaturalDitheringCompressor(),
        NaturalCompressor(),
        TopKDitheringCompressor(fraction=0.5),
    ):
        compressor.setup([torch.zeros(5, dtype=F64)], num_clients=1)
        q = compressor.encode(0, [torch.zeros(5, dtype=F64)])[0]
        assert torch.equal(q, torch.zeros(5, dtype=F64))


# ----------------------------------------------------------------------------- signSGD


def test_sign_majority_vote_of_three_clients(generator):
    sign = SignSGDCompressor()
    sign.setup(_params(), num_clients=3)
    grads = [_grads(generator) for _ in range(3)]
    messages = [sign.encode(k, grads[k]) for k in range(3)]
    mean = [torch.stack(b).mean(0) for b in zip(*messages)]
    vote = sign.decode(mean)
    for i, shape in enumerate(SHAPES):
        expected = torch.sign(sum(torch.sign(grads[k][i]) for k in range(3)))
        assert torch.equal(vote[i], expected)
        assert vote[i].shape == torch.Size(shape)
        assert set(vote[i].unique().tolist()) <= {-1.0, 1.0}  # 3 voters: no ties


def test_sign_momentum_is_an_exponential_average(generator):
    beta = 0.9
    sign = SignSGDCompressor(momentum=beta)
    sign.setup(_params(), num_clients=2)
    m = [torch.zeros(shape, dtype=F64).reshape(-1) for shape in SHAPES]
    for _ in range(4):
        grads = _grads(generator)
        message = sign.encode(1, grads)
        m = [beta * mi + (1 - beta) * g.reshape(-1) for mi, g in zip(m, grads, strict=True)]
        for mi, q, b in zip(m, message, sign.buffers[1], strict=True):
            assert_close(b, mi, rtol=1e-14, atol=1e-15)
            assert torch.equal(q, torch.sign(mi))
    assert sign.buffers[0] == [None, None]  # client 0 never encoded


def test_sign_without_momentum_sends_the_sign_of_the_gradient(generator):
    sign = SignSGDCompressor()
    sign.setup(_params(), num_clients=1)
    for _ in range(2):
        grads = _grads(generator)
        for g, q in zip(grads, sign.encode(0, grads), strict=True):
            assert torch.equal(q, torch.sign(g.reshape(-1)))


# ----------------------------------------------------------------------------- state and arguments


@pytest.mark.parametrize(
    "make",
    [
        lambda: TopKCompressor(fraction=0.1),
        lambda: QSGDCompressor(levels=3, seed=11),
        lambda: NaturalCompressor(seed=12),
        lambda: NaturalDitheringCompressor(levels=5, p=math.inf, seed=13),
        lambda: TopKDitheringCompressor(fraction=0.2, levels=3, seed=14),
        lambda: SignSGDCompressor(momentum=0.5),
    ],
)
def test_state_dict_round_trip_continues_identically(generator, make):
    first, second = make(), make()
    first.setup(_params(), num_clients=2)
    for _ in range(3):
        for k in range(2):
            first.encode(k, _grads(generator))
    second.setup(_params(), num_clients=2)
    second.load_state_dict(first.state_dict())
    assert second.bits == first.bits
    for _ in range(3):
        for k in range(2):
            grads = _grads(generator)
            for a, b in zip(first.encode(k, grads), second.encode(k, grads), strict=True):
                assert torch.equal(a, b)
            assert first.message_bits(k) == second.message_bits(k)


def test_state_dict_holds_the_generator_state():
    """Without the generator state the continuation differs: the round trip is not vacuous."""
    v = _fixed_vector()
    first, second = QSGDCompressor(seed=0), QSGDCompressor(seed=0)
    first.setup([v], num_clients=1)
    first.encode(0, [v])
    state = first.state_dict()
    assert set(state) == {"bits", "generator"}
    second.setup([v], num_clients=1)
    assert not torch.equal(first.encode(0, [v])[0], second.encode(0, [v])[0])


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: TopKCompressor(fraction=0.0), "fraction"),
        (lambda: TopKCompressor(fraction=1.5), "fraction"),
        (lambda: TopKDitheringCompressor(fraction=-0.1), "fraction"),
        (lambda: QSGDCompressor(levels=0), "levels"),
        (lambda: QSGDCompressor(levels=2.5), "levels"),
        (lambda: NaturalDitheringCompressor(levels=True), "levels"),
        (lambda: NaturalDitheringCompressor(p=1.0), "p"),
        (lambda: TopKDitheringCompressor(p=3), "p"),
        (lambda: SignSGDCompressor(momentum=1.0), "momentum"),
        (lambda: SignSGDCompressor(momentum=-0.1), "momentum"),
    ],
)
def test_arguments_are_validated(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_messages_keep_dtype_and_shape(generator):
    for compressor in (
        TopKCompressor(0.5),
        QSGDCompressor(),
        NaturalCompressor(),
        NaturalDitheringCompressor(),
        TopKDitheringCompressor(0.5),
        SignSGDCompressor(),
    ):
        compressor.setup([torch.zeros(3, 4), torch.zeros(2)], num_clients=1)
        message = compressor.encode(
            0, [torch.randn(3, 4, generator=generator), torch.randn(2, generator=generator)]
        )
        assert [(q.shape, q.dtype) for q in message] == [
            (torch.Size([12]), torch.float32),
            (torch.Size([2]), torch.float32),
        ]
        decoded = compressor.decode(message)
        assert [g.shape for g in decoded] == [torch.Size([3, 4]), torch.Size([2])]


def test_an_undelivered_message_stays_in_the_error_feedback_memory(generator):
    """Outage: the client keeps what it could not send, memory = v (to rounding)."""
    from laser.digital import TopKCompressor

    topk = TopKCompressor(fraction=0.2)
    topk.setup([torch.zeros(10, dtype=torch.float64)], num_clients=1)
    g1 = torch.randn(10, generator=generator, dtype=torch.float64)
    topk.decode(topk.encode(0, [g1]))  # a delivered round fills the memory
    memory_before = topk.memory[0][0].clone()
    assert float(memory_before.abs().sum()) > 0
    g2 = torch.randn(10, generator=generator, dtype=torch.float64)
    message = topk.encode(0, [g2])
    v = memory_before + g2
    topk.undelivered(0, message)
    torch.testing.assert_close(topk.memory[0][0], v)
    assert int((message[0] != 0).sum()) == 2
