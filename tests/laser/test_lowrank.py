"""LaserCompressor: exact identities in float64 (error feedback, rank-r recovery, linearity)."""

import pytest
import torch
from torch.testing import assert_close

from laser import LaserCompressor, is_compressed, orthogonalize

F64 = torch.float64


def _params():
    # a conv kernel, a linear weight, two tensors of the same shape (one batch), and a bias
    return [
        torch.zeros(16, 3, 3, 3, dtype=F64),
        torch.zeros(10, 40, dtype=F64),
        torch.zeros(10, 40, dtype=F64),
        torch.zeros(7, dtype=F64),
    ]


def _grads(generator, params):
    return [torch.randn(p.shape, generator=generator, dtype=F64) for p in params]


def _error_compensated(laser, client, grads):
    """M = memory + gradient for every compressed tensor (before encode changes the memory)."""
    out = {}
    for gi, group in enumerate(laser.server.groups):
        memory = laser.clients[client].memory[gi]
        for j, i in enumerate(group.indices):
            m = grads[i].reshape(group.m, group.n)
            out[i] = m if memory is None else m + memory[j]
    return out


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_error_feedback_identity(generator, rank):
    """approximation + new memory == error-compensated gradient, for every client, several rounds."""
    params = _params()
    laser = LaserCompressor(rank=rank)
    laser.setup(params, num_clients=3)
    for _ in range(4):
        even = laser.server.step % 2 == 0
        blocks, targets = [], []
        for k in range(3):
            grads = _grads(generator, params)
            targets.append(_error_compensated(laser, k, grads))
            blocks.append(laser.encode(k, grads))
        for k in range(3):
            for gi, group in enumerate(laser.server.groups):
                a = laser.server.queries()[gi]
                for j, i in enumerate(group.indices):
                    x = blocks[k][i].reshape(group.n if even else group.m, group.rank)
                    approx = a[j] @ x.T if even else x @ a[j].T
                    assert_close(approx + laser.clients[k].memory[gi][j], targets[k][i])
        laser.decode([torch.stack(b).mean(0) for b in zip(*blocks)])


def test_linearity_decoded_mean_equals_compression_of_the_mean(generator):
    """With the noise off, decoding the mean of K clients' payloads == compressing their mean."""
    params = _params()
    many, one = LaserCompressor(rank=2), LaserCompressor(rank=2)
    many.setup(params, num_clients=5)
    one.setup(params, num_clients=1)
    for _ in range(3):  # several rounds: the warm-started factors must agree too
        client_grads = [_grads(generator, params) for _ in range(5)]
        blocks = [many.encode(k, g) for k, g in enumerate(client_grads)]
        decoded = many.decode([torch.stack(b).mean(0) for b in zip(*blocks)])
        # the single client holds the mean gradient (and, by linearity, the mean memory) of the five
        mean_grads = [torch.stack(gs).mean(0) for gs in zip(*client_grads)]
        reference = one.decode(one.encode(0, mean_grads))
        for d, r in zip(decoded, reference):
            assert_close(d, r)
        for gi in range(len(one.server.groups)):
            assert_close(
                torch.stack([many.clients[k].memory[gi] for k in range(5)]).mean(0), one.clients[0].memory[gi]
            )


def test_exact_recovery_of_a_rank_r_matrix(generator):
    """A rank-r gradient is recovered exactly after one full power iteration (two rounds)."""
    m, n, r = 12, 30, 3
    target = torch.randn(m, r, generator=generator, dtype=F64) @ torch.randn(
        r, n, generator=generator, dtype=F64
    )
    laser = LaserCompressor(rank=r)
    laser.setup([torch.zeros(m, n, dtype=F64)], num_clients=1)
    laser.decode(laser.encode(0, [target]))  # round 0: memory holds the residual
    laser.clients[0].memory = [None]  # feed the same matrix again, no memory
    decoded = laser.decode(laser.encode(0, [target]))[0]
    assert_close(decoded, target)


def test_query_factors_are_orthonormal_and_shared(generator):
    laser = LaserCompressor(rank=4)
    laser.setup(_params(), num_clients=2)
    for _ in range(3):
        for a in laser.server.queries():
            eye = torch.eye(a.shape[-1], dtype=F64).expand(a.shape[0], -1, -1)
            assert_close(a.transpose(1, 2) @ a, eye)
        blocks = [laser.encode(k, _grads(generator, _params())) for k in range(2)]
        laser.decode([torch.stack(b).mean(0) for b in zip(*blocks)])
    # the initial factors come from the seed alone: the same for any number of clients
    other = LaserCompressor(rank=4)
    other.setup(_params(), num_clients=7)
    fresh = _fresh(4).server
    for p, q, p2, q2 in zip(fresh.p, fresh.q, other.server.p, other.server.q, strict=True):
        assert torch.equal(p, p2) and torch.equal(q, q2)


def _fresh(rank):
    laser = LaserCompressor(rank=rank)
    laser.setup(_params(), num_clients=1)
    return laser


def test_rank_one_vectors_are_normalised_one_by_one():
    factors = torch.tensor([[[3.0], [4.0]], [[0.0], [0.5]]], dtype=F64)  # two same-shape matrices
    a = orthogonalize(factors)
    assert_close(torch.linalg.vector_norm(a, dim=1), torch.ones(2, 1, dtype=F64))


def test_uncompressed_tensors_are_sent_raw_without_memory(generator):
    params = _params()
    laser = LaserCompressor(rank=4)
    laser.setup(params, num_clients=1)
    grads = _grads(generator, params)
    blocks = laser.encode(0, grads)
    assert laser.server.uncompressed == [3]
    assert torch.equal(blocks[3], grads[3])
    assert_close(laser.decode(blocks)[3], grads[3])


def test_channel_uses_alternate_between_the_two_factors():
    laser = _fresh(4)
    # even: n*r per compressed tensor (27*4 + 2*40*4), odd: m*r (16*4 + 2*10*4); bias 7 always
    assert laser.server.channel_uses(0) == 27 * 4 + 2 * 40 * 4 + 7
    assert laser.server.channel_uses(1) == 16 * 4 + 2 * 10 * 4 + 7


def test_the_min_compression_rate_rule():
    assert is_compressed((10, 784), rank=4, min_compression_rate=2)  # MNIST linear layer
    assert not is_compressed((512,), rank=4, min_compression_rate=2)  # 1-D: never
    assert not is_compressed((8, 8), rank=4, min_compression_rate=2)  # 64 / (0.5*4*16) = 2, not > 2


def test_state_round_trip_continues_identically(generator):
    params = _params()
    a, b = LaserCompressor(rank=2), LaserCompressor(rank=2)
    a.setup(params, 2)
    b.setup(params, 2)
    rounds = [[_grads(generator, params) for _ in range(2)] for _ in range(4)]

    def play(laser, round_grads):
        blocks = [laser.encode(k, g) for k, g in enumerate(round_grads)]
        return laser.decode([torch.stack(x).mean(0) for x in zip(*blocks)])

    for r in rounds[:2]:
        play(a, r)
    b.load_state_dict(a.state_dict())
    for r in rounds[2:]:
        for x, y in zip(play(a, r), play(b, r)):
            assert torch.equal(x, y)


def test_bad_rank_is_rejected():
    with pytest.raises(ValueError, match="rank"):
        LaserCompressor(rank=0)


def test_full_rank_on_a_square_matrix_is_exact_every_round(generator):
    """r = m = n: every query factor is square and orthonormal (A A^T = I), so nothing is lost and
    the error-feedback memory stays zero, on even and odd rounds alike."""
    laser = LaserCompressor(rank=6, min_compression_rate=0.0)
    laser.setup([torch.zeros(6, 6, dtype=F64)], num_clients=1)
    for _ in range(3):
        g = torch.randn(6, 6, generator=generator, dtype=F64)
        assert_close(laser.decode(laser.encode(0, [g]))[0], g)
        assert_close(laser.clients[0].memory[0], torch.zeros(1, 6, 6, dtype=F64))


def test_memory_is_the_local_residual_and_the_noisy_factor_is_the_next_query(generator):
    """Decode a *noisy* mean: the memory must still be M - A A^T M (even) / M - M A A^T (odd) with the
    client's own M and A = orth(stored factor), and the next query must be orth(noisy received Y)."""
    params = _params()
    laser = LaserCompressor(rank=2)
    laser.setup(params, num_clients=2)
    for _ in range(4):
        even = laser.server.step % 2 == 0
        expected_queries = [
            orthogonalize(p if even else q) for p, q in zip(laser.server.p, laser.server.q)
        ]  # independently
        grads = [_grads(generator, params) for _ in range(2)]
        targets = [_error_compensated(laser, k, g) for k, g in enumerate(grads)]
        blocks = [laser.encode(k, g) for k, g in enumerate(grads)]
        for k in range(2):
            for gi, group in enumerate(laser.server.groups):
                a = expected_queries[gi]
                for j, i in enumerate(group.indices):
                    m = targets[k][i]
                    residual = m - a[j] @ a[j].T @ m if even else m - m @ a[j] @ a[j].T
                    assert_close(laser.clients[k].memory[gi][j], residual)
        noisy = [
            torch.stack(b).mean(0) + 0.3 * torch.randn(b[0].shape, generator=generator, dtype=F64)
            for b in zip(*blocks)
        ]
        laser.decode(noisy)
        for gi, group in enumerate(laser.server.groups):
            side = group.n if even else group.m
            y = torch.stack([noisy[i].reshape(side, group.rank) for i in group.indices])
            assert_close(laser.server.queries()[gi], orthogonalize(y))


def test_a_factor_received_as_zero_does_not_silence_rank_one_forever(generator):
    laser = LaserCompressor(rank=1)
    laser.setup([torch.zeros(8, 12, dtype=F64)], num_clients=1)
    laser.decode([torch.zeros(12, dtype=F64)])  # a round in which nothing arrived
    g = torch.randn(8, 12, generator=generator, dtype=F64)
    assert float(torch.linalg.vector_norm(laser.decode(laser.encode(0, [g]))[0])) > 0


# ------------------------------------------------------------------ PowerSGD as published (2 passes)
def _powersgd_round(c, client_grads):
    """One noiseless round of the two-pass protocol; returns the decoded gradient."""
    blocks = [c.encode(k, g) for k, g in enumerate(client_grads)]
    assert c.decode([torch.stack(b).mean(0) for b in zip(*blocks)]) is None
    second = [c.encode_pass(k, 1) for k in range(len(client_grads))]
    return c.decode([torch.stack(b).mean(0) for b in zip(*second)])


def test_powersgd_recovers_a_rank_r_matrix_in_one_round(generator):
    m, n, r = 12, 30, 3
    target = torch.randn(m, r, generator=generator, dtype=F64) @ torch.randn(
        r, n, generator=generator, dtype=F64
    )
    c = LaserCompressor(rank=r, factors_per_round=2)
    c.setup([torch.zeros(m, n, dtype=F64)], num_clients=1)
    (decoded,) = _powersgd_round(c, [[target]])
    assert_close(decoded, target)
    assert float(c.clients[0].memory[0].abs().max()) < 1e-10


def test_powersgd_error_feedback_and_linearity(generator):
    params = _params()
    many, one = LaserCompressor(rank=2, factors_per_round=2), LaserCompressor(rank=2, factors_per_round=2)
    many.setup(params, num_clients=4)
    one.setup(params, num_clients=1)
    for _ in range(3):
        client_grads = [_grads(generator, params) for _ in range(4)]
        wanted = [_error_compensated(many, k, g) for k, g in enumerate(client_grads)]
        decoded = _powersgd_round(many, client_grads)
        reference = _powersgd_round(one, [[torch.stack(g).mean(0) for g in zip(*client_grads)]])
        for d, ref in zip(decoded, reference):
            assert_close(d, ref)
        # the memory is the client's own residual M_k - P^ Q_k^T, with P^ the shared orthonormal factor
        for gi, group in enumerate(many.server.groups):
            p_hat = many.server.p[gi]
            for k in range(4):
                for j, i in enumerate(group.indices):
                    q_k = wanted[k][i].T @ p_hat[j]
                    assert_close(p_hat[j] @ q_k.T + many.clients[k].memory[gi][j], wanted[k][i])


def test_powersgd_channel_uses_and_energy_shares():
    c = LaserCompressor(rank=4, factors_per_round=2, min_compression_rate=0.0)
    c.setup([torch.zeros(64, 27), torch.zeros(64)], num_clients=1)
    assert c.channel_uses() == 64 + 4 * (64 + 27)
    assert c.pass_shares() == pytest.approx([(64 + 4 * 64) / c.channel_uses(), 4 * 27 / c.channel_uses()])
    assert c.passes == 2
    # the compression rule counts both factors: 20x30 at rank 4 saves 600 / 200 = 3x, not 6x
    two = LaserCompressor(rank=4, factors_per_round=2, min_compression_rate=4.0)
    two.setup([torch.zeros(20, 30)], num_clients=1)
    one = LaserCompressor(rank=4, min_compression_rate=4.0)
    one.setup([torch.zeros(20, 30)], num_clients=1)
    assert (two.server.compressed, one.server.compressed) == ([], [0])


def test_powersgd_cannot_be_saved_between_its_passes(generator):
    c = LaserCompressor(rank=2, factors_per_round=2)
    c.setup(_params(), num_clients=1)
    c.decode(c.encode(0, _grads(generator, _params())))
    with pytest.raises(ValueError, match="middle of a round"):
        c.state_dict()


# ------------------------------------------------------------------------- per-column energy split
def test_exponent_sends_columns_as_blocks_and_decodes_the_same(generator):
    params = _params()
    plain, split = LaserCompressor(rank=3), LaserCompressor(rank=3, exponent=1.0)
    plain.setup(params, num_clients=1)
    split.setup(params, num_clients=1)
    for _ in range(3):
        grads = _grads(generator, params)
        a, b = plain.encode(0, grads), split.encode(0, grads)
        labels, exponent = split.energy_groups()
        assert exponent == 1.0 and len(labels) == len(b)
        assert labels == [
            i for i in range(len(params)) for _ in range(3 if i in split.server.compressed else 1)
        ]
        assert [x.numel() for x in b] == [
            x.numel() // (3 if i in split.server.compressed else 1)
            for i, x in enumerate(a)
            for _ in range(3 if i in split.server.compressed else 1)
        ]
        for x, y in zip(plain.decode(a), split.decode(b)):
            assert_close(x, y)
    assert plain.energy_groups() is None
