"""Digital compressors: exact identities, bit counts by hand, statistical unbiasedness and variance,
client and server sides, per-client generators, copies, state and argument checks."""

import math

import pytest
import torch
from _identities import numeric
from torch.testing import assert_close

from laser.compressor import DigitalServer, client_seed
from laser.digital import (
    NaturalCompressor,
    NaturalDitheringCompressor,
    QSGDCompressor,
    SignSGDCompressor,
    SignSGDServer,
    TopKCompressor,
    TopKDitheringCompressor,
)

F64 = torch.float64
SHAPES = [(10, 20), (7,)]  # d = 200 and 7

# one instance maker per method (and the interesting variants), for the tests every method must pass
EVERY_METHOD = {
    "topk": lambda: TopKCompressor(fraction=0.1),
    "topk-no-ef": lambda: TopKCompressor(fraction=0.1, error_feedback=False),
    "topk-dense": lambda: TopKCompressor(fraction=1.0, error_feedback=False),
    "qsgd": lambda: QSGDCompressor(levels=3, seed=11),
    "natural": lambda: NaturalCompressor(seed=12),
    "natural-dithering": lambda: NaturalDitheringCompressor(levels=5, p=math.inf, seed=13),
    "topk-dithering": lambda: TopKDitheringCompressor(fraction=0.2, levels=3, seed=14),
    "signsgd": lambda: SignSGDCompressor(),
    "signum": lambda: SignSGDCompressor(momentum=0.5),
}
every_method = pytest.mark.parametrize("make", list(EVERY_METHOD.values()), ids=list(EVERY_METHOD))
STOCHASTIC = {
    "qsgd": lambda: QSGDCompressor(levels=3, seed=11),
    "natural": lambda: NaturalCompressor(seed=12),
    "natural-dithering": lambda: NaturalDitheringCompressor(levels=5, p=math.inf, seed=13),
    "topk-dithering": lambda: TopKDitheringCompressor(fraction=0.2, levels=3, seed=14),
}
stochastic_method = pytest.mark.parametrize("make", list(STOCHASTIC.values()), ids=list(STOCHASTIC))


def _params():
    return [torch.zeros(shape, dtype=F64) for shape in SHAPES]


def _grads(generator):
    return [torch.randn(shape, generator=generator, dtype=F64) for shape in SHAPES]


def _mean(messages):
    return [torch.stack(b).mean(0) for b in zip(*messages)]


def _state_equal(a, b):
    """Two state dicts (nested dicts, lists, tensors, ints, None) are equal, bit for bit (who the
    sides are aside)."""
    a, b = numeric(a), numeric(b)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b))
    return a == b


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
            old = list(compressor.clients[k].memory)
            message = compressor.encode(k, grads)
            for i, g in enumerate(grads):
                v = g.reshape(-1) if old[i] is None else g.reshape(-1) + old[i]
                assert_close(message[i] + compressor.clients[k].memory[i], v, rtol=0, atol=1e-15)


def test_top_k_keeps_exactly_the_k_largest_magnitudes(generator):
    topk = TopKCompressor(fraction=0.1, error_feedback=False)
    client = topk.make_client(_params())
    grads = _grads(generator)
    message = client.encode(grads)
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
        assert all(float(m.abs().max()) == 0 for m in topk.clients[0].memory)
    assert topk.message_bits(0) == 32 * (200 + 7)


def test_no_error_feedback_keeps_no_memory(generator):
    topk = TopKCompressor(fraction=0.1, error_feedback=False)
    topk.setup(_params(), num_clients=1)
    grads = _grads(generator)
    first = topk.encode(0, grads)
    for a, b in zip(first, topk.encode(0, grads), strict=True):
        assert_close(a, b, rtol=0, atol=0)
    assert topk.clients[0].memory == [None, None]
    assert "memory" not in topk.state_dict()["clients"][0]


def test_the_digital_server_averages_into_copies(generator):
    """DigitalServer: the mean of the delivered messages, reshaped, in new tensors."""
    topk = TopKCompressor(fraction=0.5)
    server = topk.make_server(_params())
    assert type(server) is DigitalServer
    mean = [m.reshape(-1).clone() for m in _grads(generator)]
    decoded = server.decode(mean)
    for d, m, shape in zip(decoded, mean, SHAPES, strict=True):
        assert d.shape == torch.Size(shape) and torch.equal(d.reshape(-1), m)
        assert d.data_ptr() != m.data_ptr()


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
    assert compressor.clients[1].message_bits() == compressor.clients[1].bits == bits
    assert compressor.message_bits(0) == 0


def test_bit_count_of_a_single_entry_tensor():
    """d == 1: an index costs 0 bits, and top-k of one entry is dense."""
    client = TopKCompressor(fraction=0.5).make_client([torch.zeros(1)])
    client.encode([torch.ones(1)])
    assert client.message_bits() == 32


def test_top_k_count_does_not_lose_an_entry_to_rounding():
    """0.29 * 100 = 28.999999999999996 in floating point; k must still be 29."""
    client = TopKCompressor(fraction=0.29, error_feedback=False).make_client([torch.zeros(100)])
    message = client.encode([torch.arange(1.0, 101.0)])[0]
    assert int((message != 0).sum()) == 29


# ----------------------------------------------------------------------------- statistical checks

# Every tolerance below is Z standard errors of a mean of N independent samples: a check that holds
# exactly in expectation fails by chance with probability about 6e-7 per coordinate (two-sided
# normal tail at 5 sigma); the generators are seeded, so each run is deterministic anyway.
N = 4000
Z = 5.0


def _fixed_vector():
    # mixed signs, several magnitudes, an exact power of two and a zero
    return torch.tensor([2.5, -0.3, 1.0, 0.0, -7.1, 0.04, 3.3, -1.5], dtype=F64)


def _samples_of_one_client(compressor, v, n):
    """n encodes of the fixed vector v by one client (n draws from its own generator)."""
    client = compressor.make_client([v], index=0)
    return torch.stack([client.encode([v])[0] for _ in range(n)])


def _samples_of_many_clients(compressor, v, n):
    """One encode of v by each of n clients: n draws from n generators client_seed(seed, k)."""
    compressor.setup([v], num_clients=n)
    return torch.stack([compressor.encode(k, [v])[0] for k in range(n)])


UNBIASED = [
    QSGDCompressor(levels=2, seed=1),
    QSGDCompressor(levels=4, seed=2),
    NaturalCompressor(seed=3),
    NaturalDitheringCompressor(levels=3, p=2.0, seed=4),
    NaturalDitheringCompressor(levels=4, p=math.inf, seed=5),
]


@pytest.mark.parametrize(
    "sampler", [_samples_of_one_client, _samples_of_many_clients], ids=["rounds", "clients"]
)
@pytest.mark.parametrize("compressor", UNBIASED, ids=repr)
def test_unbiased(compressor, sampler):
    """|mean - v| <= Z sd / sqrt(N) per coordinate (a coordinate with sd 0 must be exact): over one
    client's rounds (its generator's stream) and over N clients' single draws (independent streams)."""
    v = _fixed_vector()
    samples = sampler(compressor, v, N)
    mean, sd = samples.mean(0), samples.std(0)
    assert (sd > 0).sum() >= 4  # the check is not vacuous
    assert ((mean - v).abs() <= Z * sd / math.sqrt(N) + 1e-12).all(), (mean - v, sd)


@pytest.mark.parametrize(
    ("compressor", "bound"),
    [
        # QSGD: E||q - v||^2 <= min(d / s^2, sqrt(d) / s) ||v||^2, d = 8
        (QSGDCompressor(levels=2, seed=21), min(8 / 4, math.sqrt(8) / 2)),
        (QSGDCompressor(levels=4, seed=22), min(8 / 16, math.sqrt(8) / 4)),
        # natural compression: E||C(x) - x||^2 <= ||x||^2 / 8
        (NaturalCompressor(seed=23), 1 / 8),
    ],
    ids=repr,
)
def test_variance_bounds(compressor, bound):
    """The sample mean of ||C(v) - v||^2 over N clients stays below the bound plus Z standard errors."""
    v = _fixed_vector()
    errors = ((_samples_of_many_clients(compressor, v, N) - v) ** 2).sum(1)
    assert float(errors.mean()) > 0
    assert float(errors.mean()) <= bound * float(v.square().sum()) + Z * float(errors.std()) / math.sqrt(N)


def test_top_k_dithering_is_biased():
    """The same check rejects the biased TopK-dithering (scaled by 1/zeta, sparse): it can fail."""
    v = _fixed_vector()
    compressor = TopKDitheringCompressor(fraction=0.5, levels=3, error_feedback=False, seed=6)
    samples = _samples_of_one_client(compressor, v, N)
    mean, sd = samples.mean(0), samples.std(0)
    assert not ((mean - v).abs() <= Z * sd / math.sqrt(N) + 1e-12).all()


def test_natural_compression_outputs_signed_powers_of_two():
    v = _fixed_vector()
    client = NaturalCompressor(seed=7).make_client([v])
    for _ in range(50):
        q = client.encode([v])[0]
        nonzero = q != 0
        assert torch.equal(nonzero, v != 0)
        assert torch.equal(torch.sign(q), torch.sign(v))
        exponent = torch.log2(q[nonzero].abs())
        assert torch.equal(exponent, exponent.round())
        # neighbours: 2^floor(log2|v|) or twice that
        lower = torch.exp2(torch.floor(torch.log2(v[nonzero].abs())))
        assert ((q[nonzero].abs() == lower) | (q[nonzero].abs() == 2 * lower)).all()
    assert client.encode([v])[0][2] == 1.0  # an exact power of two is unchanged


def test_natural_compression_rounds_2_5_up_a_quarter_of_the_time():
    v = torch.full((N,), 2.5, dtype=F64)
    q = NaturalCompressor(seed=8).make_client([v], index=3).encode([v])[0]
    assert set(q.unique().tolist()) == {2.0, 4.0}
    share = float((q == 4.0).double().mean())
    assert abs(share - 0.25) <= Z * math.sqrt(0.25 * 0.75 / N)


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_natural_dithering_lies_on_the_level_grid(generator, p):
    levels = 4
    client = NaturalDitheringCompressor(levels=levels, p=p, seed=9).make_client(_params())
    grid = torch.tensor(
        [0.0] + [2.0 ** (j - levels) for j in range(1, levels + 1)], dtype=F64
    )  # 0, 1/8, ..., 1
    for _ in range(5):
        grads = _grads(generator)
        for g, q in zip(grads, client.encode(grads), strict=True):
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
        client = compressor.make_client([torch.zeros(5, dtype=F64)])
        q = client.encode([torch.zeros(5, dtype=F64)])[0]
        assert torch.equal(q, torch.zeros(5, dtype=F64))


# ----------------------------------------------------------------------------- per-client generators


@stochastic_method
def test_each_client_owns_a_generator_seeded_with_client_seed(make):
    compressor = make()
    for k in (0, 1, 5):
        client = compressor.make_client(_params(), k)
        expected = torch.Generator().manual_seed(client_seed(compressor.seed, k))
        assert torch.equal(client.generator.get_state(), expected.get_state())


@stochastic_method
def test_a_clients_draws_do_not_depend_on_the_others(generator, make):
    """Client 2's messages are the same alone (its own object) as among three clients encoding in
    any order, or with client 1 sitting out; two clients given the same vector differ."""
    rounds = [[_grads(generator) for _ in range(3)] for _ in range(3)]
    alone = make().make_client(_params(), 2)
    crowd = make()
    crowd.setup(_params(), num_clients=3)
    for r, grads in enumerate(rounds):
        order = [2, 0, 1] if r == 0 else ([0, 2] if r == 1 else [1, 0, 2])
        messages = {k: crowd.encode(k, grads[k]) for k in order}
        for a, b in zip(alone.encode(grads[2]), messages[2], strict=True):
            assert torch.equal(a, b)
    fresh = [make().make_client(_params(), k) for k in range(2)]  # same seed, same vector, two clients
    same = [client.encode(rounds[0][0]) for client in fresh]
    assert not all(torch.equal(a, b) for a, b in zip(*same))


# ----------------------------------------------------------------------------- signSGD


def test_sign_majority_vote_of_three_clients(generator):
    sign = SignSGDCompressor()
    sign.setup(_params(), num_clients=3)
    assert isinstance(sign.server, SignSGDServer)
    grads = [_grads(generator) for _ in range(3)]
    messages = [sign.encode(k, grads[k]) for k in range(3)]
    vote = sign.decode(_mean(messages))
    for i, shape in enumerate(SHAPES):
        expected = torch.sign(sum(torch.sign(grads[k][i]) for k in range(3)))
        assert torch.equal(vote[i], expected)
        assert vote[i].shape == torch.Size(shape)
        assert set(vote[i].unique().tolist()) <= {-1.0, 1.0}  # 3 voters: no ties


def test_sign_vote_is_zero_on_a_tie():
    server = SignSGDCompressor().make_server([torch.zeros(3)])
    assert server.decode([torch.tensor([0.0, 0.5, -0.5])])[0].tolist() == [0.0, 1.0, -1.0]


def test_sign_momentum_is_an_exponential_average(generator):
    beta = 0.9
    sign = SignSGDCompressor(momentum=beta)
    sign.setup(_params(), num_clients=2)
    m = [torch.zeros(shape, dtype=F64).reshape(-1) for shape in SHAPES]
    for _ in range(4):
        grads = _grads(generator)
        message = sign.encode(1, grads)
        m = [beta * mi + (1 - beta) * g.reshape(-1) for mi, g in zip(m, grads, strict=True)]
        for mi, q, b in zip(m, message, sign.clients[1].buffers, strict=True):
            assert_close(b, mi, rtol=1e-14, atol=1e-15)
            assert torch.equal(q, torch.sign(mi))
    assert sign.clients[0].buffers == [None, None]  # client 0 never encoded


def test_sign_without_momentum_sends_the_sign_of_the_gradient(generator):
    client = SignSGDCompressor().make_client(_params())
    for _ in range(2):
        grads = _grads(generator)
        for g, q in zip(grads, client.encode(grads), strict=True):
            assert torch.equal(q, torch.sign(g.reshape(-1)))
    assert client.buffers == [None, None]


# ----------------------------------------------------------------------------- sides and façade


@pytest.mark.parametrize(
    "make",
    [
        lambda: TopKCompressor(fraction=0.1),
        lambda: QSGDCompressor(levels=3, seed=5),
        lambda: TopKDitheringCompressor(fraction=0.2, levels=3, seed=6),
        lambda: SignSGDCompressor(momentum=0.5),
    ],
    ids=["topk", "qsgd", "topk-dithering", "signum"],
)
def test_separate_sides_equal_the_facade(generator, make):
    """K clients made by make_client(params, k) and one make_server(params) give bit-identical
    messages, bits, decoded gradients and states to the façade, over several rounds (one client's
    message lost in some rounds)."""
    K = 3
    facade = make()
    facade.setup(_params(), num_clients=K)
    method = make()
    clients = [method.make_client(_params(), k) for k in range(K)]
    server = method.make_server(_params())
    for r in range(4):
        grads = [_grads(generator) for _ in range(K)]
        ours = [facade.encode(k, grads[k]) for k in range(K)]
        theirs = [clients[k].encode(grads[k], server.broadcast()) for k in range(K)]
        for a, b in zip(ours, theirs, strict=True):
            assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert [facade.message_bits(k) for k in range(K)] == [c.message_bits() for c in clients]
        lost = r % K if r else None
        if lost is not None:
            facade.undelivered(lost, ours[lost])
            clients[lost].undelivered(theirs[lost])
        delivered = [k for k in range(K) if k != lost]
        decoded = facade.decode(_mean([ours[k] for k in delivered]))
        for x, y in zip(decoded, server.decode(_mean([theirs[k] for k in delivered])), strict=True):
            assert torch.equal(x, y)
    assert _state_equal(
        facade.state_dict(),
        {"server": server.state_dict(), "clients": {k: c.state_dict() for k, c in enumerate(clients)}},
    )


@every_method
def test_reusing_gradient_buffers_in_place_changes_nothing(generator, make):
    """Copies, not views: a loop overwriting the same gradient tensors in place for each client
    (``g.copy_(new)``, then encode) gives bit-identical messages, bits, states and decoded gradients
    to the same loop with fresh clones, over 3 rounds. The messages are compared only at the end, so
    a message, memory or momentum aliasing the buffers would show."""
    K = 3
    reused, fresh = make(), make()
    reused.setup(_params(), num_clients=K)
    fresh.setup(_params(), num_clients=K)
    buffers = _params()
    runs: dict[str, list] = {"reused": [], "fresh": []}
    for _ in range(3):
        grads = [_grads(generator) for _ in range(K)]
        for name, compressor in (("reused", reused), ("fresh", fresh)):
            messages = []
            for k in range(K):
                if name == "reused":
                    for b, g in zip(buffers, grads[k]):
                        b.copy_(g)
                    messages.append(compressor.encode(k, buffers))
                else:
                    messages.append(compressor.encode(k, [g.clone() for g in grads[k]]))
            bits = [compressor.message_bits(k) for k in range(K)]
            mean = _mean(messages)
            decoded = compressor.decode(mean)
            if name == "reused":  # the decoded gradient does not alias the mean blocks either
                for m in mean:
                    m.fill_(float("nan"))
            runs[name].append((messages, bits, decoded, compressor.state_dict()))
    for (m1, b1, d1, s1), (m2, b2, d2, s2) in zip(runs["reused"], runs["fresh"], strict=True):
        assert _state_equal(m1, m2) and b1 == b2 and _state_equal(d1, d2) and _state_equal(s1, s2)


@every_method
def test_encode_leaves_the_gradients_alone(generator, make):
    compressor = make()
    compressor.setup(_params(), num_clients=1)
    for _ in range(3):
        grads = _grads(generator)
        copies = [g.clone() for g in grads]
        compressor.encode(0, grads)
        assert _state_equal(grads, copies)


@every_method
def test_returned_messages_are_the_callers(generator, make):
    """Writing into a returned message does not reach the client's memory or momentum."""
    K = 2
    scribbled, clean = make(), make()
    scribbled.setup(_params(), num_clients=K)
    clean.setup(_params(), num_clients=K)
    for _ in range(3):
        grads = [_grads(generator) for _ in range(K)]
        for k in range(K):
            for q in scribbled.encode(k, grads[k]):
                q.fill_(float("nan"))
            clean.encode(k, grads[k])
    assert _state_equal(scribbled.state_dict(), clean.state_dict())


# ----------------------------------------------------------------------------- undelivered messages


def test_an_undelivered_message_stays_in_the_error_feedback_memory(generator):
    """Outage: the client keeps what it could not send, memory = v (to rounding)."""
    topk = TopKCompressor(fraction=0.2)
    topk.setup([torch.zeros(10, dtype=F64)], num_clients=2)
    g1 = torch.randn(10, generator=generator, dtype=F64)
    topk.decode(topk.encode(0, [g1]))  # a delivered round fills the memory
    memory_before = topk.clients[0].memory[0].clone()
    assert float(memory_before.abs().sum()) > 0
    g2 = torch.randn(10, generator=generator, dtype=F64)
    message = topk.encode(0, [g2])
    v = memory_before + g2
    topk.undelivered(0, message)
    assert_close(topk.clients[0].memory[0], v, rtol=0, atol=1e-15)
    assert int((message[0] != 0).sum()) == 2
    assert topk.clients[1].memory == [None]  # the other client is untouched


def test_an_undelivered_top_k_dithering_message_stays_in_the_memory(generator):
    client = TopKDitheringCompressor(fraction=0.3, levels=3, seed=1).make_client(_params())
    client.encode(_grads(generator))
    before = [m.clone() for m in client.memory]
    grads = _grads(generator)
    client.undelivered(client.encode(grads))
    for m, b, g in zip(client.memory, before, grads, strict=True):
        assert_close(m, b + g.reshape(-1), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TopKCompressor(fraction=0.1, error_feedback=False),
        lambda: QSGDCompressor(seed=3),
        lambda: NaturalCompressor(seed=3),
        lambda: NaturalDitheringCompressor(seed=3),
        lambda: SignSGDCompressor(momentum=0.5),
    ],
)
def test_undelivered_changes_nothing_without_error_feedback(generator, make):
    client = make().make_client(_params())
    message = client.encode(_grads(generator))
    state = client.state_dict()
    client.undelivered(message)
    assert _state_equal(client.state_dict(), state)


# ----------------------------------------------------------------------------- state


@every_method
def test_state_dict_round_trip_continues_identically(generator, make):
    first, second = make(), make()
    first.setup(_params(), num_clients=2)
    for _ in range(3):
        for k in range(2):
            first.encode(k, _grads(generator))
    second.setup(_params(), num_clients=2)
    second.load_state_dict(first.state_dict())
    assert _state_equal(second.state_dict(), first.state_dict())
    for _ in range(3):
        for k in range(2):
            grads = _grads(generator)
            for a, b in zip(first.encode(k, grads), second.encode(k, grads), strict=True):
                assert torch.equal(a, b)
            assert first.message_bits(k) == second.message_bits(k)


@every_method
def test_a_clients_state_is_a_copy_both_ways(generator, make):
    """Changing the saved state (or the client after saving) leaves the other untouched: a client
    restored from it continues bit-identically to the client that saved it."""
    method = make()
    client = method.make_client(_params(), 1)
    client.encode(_grads(generator))
    state = client.state_dict()
    reference = method.make_client(_params(), 1)
    reference.load_state_dict(state)
    for value in state.values():  # scribble on the saved tensors
        for t in value if isinstance(value, list) else [value]:
            if isinstance(t, torch.Tensor):
                t.fill_(7 if t.dtype == torch.uint8 else float("nan"))
    restored = method.make_client(_params(), 1)
    restored.load_state_dict(reference.state_dict())
    for t in [
        m for m in getattr(reference, "memory", []) + getattr(reference, "buffers", []) if m is not None
    ]:
        t.fill_(float("nan"))  # scribble on the client that was loaded: the restored copy is its own
    for _ in range(2):
        grads = _grads(generator)
        for a, b in zip(client.encode(grads), restored.encode(grads), strict=True):
            assert torch.equal(a, b)
        assert client.message_bits() == restored.message_bits()


def test_state_dict_holds_the_generator_state():
    """Without the generator state the continuation differs: the round trip is not vacuous."""
    v = _fixed_vector()
    first, second = QSGDCompressor(seed=0), QSGDCompressor(seed=0)
    first.setup([v], num_clients=1)
    first.encode(0, [v])
    state = first.state_dict()
    assert set(state) == {"server", "clients"} and numeric(state["server"]) == {}
    assert set(state["clients"][0]) == {"bits", "generator", "index", "server"}
    second.setup([v], num_clients=1)
    assert not torch.equal(first.encode(0, [v])[0], second.encode(0, [v])[0])


@pytest.mark.parametrize(
    ("make", "keys"),
    [
        (lambda: TopKCompressor(0.1), {"bits", "memory"}),
        (lambda: TopKCompressor(0.1, error_feedback=False), {"bits"}),
        (lambda: TopKDitheringCompressor(0.1), {"bits", "memory", "generator"}),
        (lambda: NaturalCompressor(), {"bits", "generator"}),
        (lambda: SignSGDCompressor(0.5), {"bits", "buffers"}),
    ],
)
def test_client_state_keys(make, keys):
    assert set(make().make_client(_params()).state_dict()) == keys | {"index", "server"}


@every_method
def test_a_wrong_state_is_refused(make):
    client = make().make_client(_params())
    with pytest.raises(ValueError, match="state"):
        client.load_state_dict({"bits": 0, "unexpected": 1})
    other = make().make_client([torch.zeros(3, dtype=F64)])
    other.encode([torch.ones(3, dtype=F64)])
    if set(other.state_dict()) & {"memory", "buffers"}:
        with pytest.raises(ValueError):
            client.load_state_dict(other.state_dict())


# ----------------------------------------------------------------------------- arguments and misuse


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [
        (lambda: TopKCompressor(fraction=0.0), ValueError, "fraction"),
        (lambda: TopKCompressor(fraction=1.5), ValueError, "fraction"),
        (lambda: TopKDitheringCompressor(fraction=-0.1), ValueError, "fraction"),
        (lambda: QSGDCompressor(levels=0), ValueError, "levels"),
        (lambda: QSGDCompressor(levels=2.5), ValueError, "levels"),
        (lambda: NaturalDitheringCompressor(levels=True), ValueError, "levels"),
        (lambda: NaturalDitheringCompressor(p=1.0), ValueError, "p"),
        (lambda: TopKDitheringCompressor(p=3), ValueError, "p"),
        (lambda: SignSGDCompressor(momentum=1.0), ValueError, "momentum"),
        (lambda: SignSGDCompressor(momentum=-0.1), ValueError, "momentum"),
        (lambda: SignSGDCompressor(momentum=float("nan")), ValueError, "momentum"),
        (lambda: QSGDCompressor(seed=1.5), TypeError, "seed"),
        (lambda: NaturalCompressor(seed=-1), ValueError, "seed"),
        (lambda: TopKDitheringCompressor(seed="0"), TypeError, "seed"),
    ],
)
def test_arguments_are_validated(make, error, name):
    with pytest.raises(error, match=name):
        make()


def _misuses():
    """(grads made from the right ones, error, message pattern) for every way to get grads wrong."""
    return {
        "too-few": (lambda g: g[:1], ValueError, "grads has 1 tensors"),
        "too-many": (lambda g: [*g, g[1]], ValueError, "grads has 3 tensors"),
        "one-tensor": (lambda g: g[0], TypeError, "grads"),
        "shape": (lambda g: [g[0].reshape(20, 10), g[1]], ValueError, r"grads\[0\]"),
        "flattened": (lambda g: [g[0].reshape(-1), g[1]], ValueError, r"grads\[0\]"),
        "dtype": (lambda g: [g[0], g[1].float()], TypeError, r"grads\[1\]"),
        "not-a-tensor": (lambda g: [g[0], g[1].tolist()], TypeError, r"grads\[1\]"),
        "nan": (lambda g: [g[0], g[1].clone().fill_(float("nan"))], ValueError, r"grads\[1\] is not finite"),
        "inf": (lambda g: [g[0].clone().fill_(float("inf")), g[1]], ValueError, r"grads\[0\] is not finite"),
    }


@every_method
@pytest.mark.parametrize("misuse", list(_misuses()))
def test_wrong_gradients_are_refused_and_change_nothing(generator, make, misuse):
    """Each misuse raises, naming the argument, before the memory, momentum, generator or bits move."""
    transform, error, pattern = _misuses()[misuse]
    compressor = make()
    compressor.setup(_params(), num_clients=2)
    compressor.encode(1, _grads(generator))  # some state to protect
    before = compressor.state_dict()
    with pytest.raises(error, match=pattern):
        compressor.encode(1, transform(_grads(generator)))
    assert _state_equal(compressor.state_dict(), before)


@every_method
def test_parameters_that_cannot_be_compressed_are_refused(make):
    method = make()
    for bad, error, pattern in (
        ([torch.zeros(3, dtype=F64), torch.zeros(0, dtype=F64)], ValueError, r"params\[1\] has no entries"),
        ([torch.zeros(3, dtype=torch.int64)], TypeError, r"params\[0\] has dtype torch.int64"),
        ([], ValueError, "params is empty"),
        (torch.zeros(3), TypeError, "params"),
    ):
        with pytest.raises(error, match=pattern):
            method.make_client(bad)
        with pytest.raises(error, match=pattern):
            method.make_server(bad)
        with pytest.raises(error, match=pattern):
            method.setup(bad, num_clients=2)


@every_method
def test_client_indices_are_checked(generator, make):
    method = make()
    with pytest.raises(ValueError, match="index = -1"):
        method.make_client(_params(), -1)
    with pytest.raises(TypeError, match="index"):
        method.make_client(_params(), 1.0)
    with pytest.raises(RuntimeError, match="setup"):
        method.encode(0, _grads(generator))
    method.setup(_params(), num_clients=2)
    grads = _grads(generator)
    for k in (2, -1):
        with pytest.raises(ValueError, match=f"client = {k} is out of range"):
            method.encode(k, grads)
        with pytest.raises(ValueError, match="client"):
            method.message_bits(k)
        with pytest.raises(ValueError, match="client"):
            method.undelivered(k, [g.reshape(-1) for g in grads])
    with pytest.raises(TypeError, match="client"):
        method.encode(True, grads)


@every_method
def test_wrong_blocks_are_refused(generator, make):
    method = make()
    method.setup(_params(), num_clients=1)
    message = method.encode(0, _grads(generator))
    before = method.state_dict()
    for blocks, error in (
        (message[:1], ValueError),
        ([*message, message[1]], ValueError),
        ([message[1], message[0]], ValueError),
        ([message[0][:-1], message[1]], ValueError),
        (message[0], TypeError),
    ):
        with pytest.raises(error, match="blocks"):
            method.decode(blocks)
        with pytest.raises(error, match="blocks"):
            method.undelivered(0, blocks)
    assert _state_equal(method.state_dict(), before)
    with pytest.raises(ValueError, match="noise_var"):
        method.decode(message, noise_var=[-1.0, 0.0])


def test_messages_keep_dtype_and_shape(generator):
    for make in EVERY_METHOD.values():
        compressor = make()
        compressor.setup([torch.zeros(3, 4), torch.zeros(2)], num_clients=1)
        message = compressor.encode(
            0, [torch.randn(3, 4, generator=generator), torch.randn(2, generator=generator)]
        )
        assert [(q.shape, q.dtype) for q in message] == [
            (torch.Size([12]), torch.float32),
            (torch.Size([2]), torch.float32),
        ]
        decoded = compressor.decode(message)
        assert [(g.shape, g.dtype) for g in decoded] == [
            (torch.Size([3, 4]), torch.float32),
            (torch.Size([2]), torch.float32),
        ]


@pytest.mark.parametrize(
    ("compressor", "text"),
    [
        (TopKCompressor(0.1, error_feedback=False), "TopKCompressor(fraction=0.1, error_feedback=False)"),
        (QSGDCompressor(levels=3, seed=2), "QSGDCompressor(levels=3, seed=2)"),
        (NaturalCompressor(seed=4), "NaturalCompressor(seed=4)"),
        (
            NaturalDitheringCompressor(2, p=math.inf, seed=1),
            "NaturalDitheringCompressor(levels=2, p=inf, seed=1)",
        ),
        (
            TopKDitheringCompressor(0.5, levels=2),
            "TopKDitheringCompressor(fraction=0.5, levels=2, p=2.0, error_feedback=True, seed=0)",
        ),
        (SignSGDCompressor(0.9), "SignSGDCompressor(momentum=0.9)"),
    ],
)
def test_repr_shows_the_hyperparameters(compressor, text):
    assert repr(compressor) == text
