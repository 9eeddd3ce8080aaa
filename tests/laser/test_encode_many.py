"""``encode_many`` (every client's matrices in one batched matmul) gives ``encode``'s blocks, memories
and decoded gradients, round after round, to float rounding."""

import pytest
import torch

from laser import LaserCompressor
from laser.baselines import RandomKCompressor


def _shapes():
    return [(6, 4, 3), (6,), (8, 6), (8, 6), (5, 7), (3,)]


@pytest.mark.parametrize("passes, exponent", [(1, None), (2, None), (1, 1.0)])
def test_encode_many_is_encode_client_by_client(generator, passes, exponent):
    params = [torch.zeros(s, dtype=torch.float64) for s in _shapes()]
    one, many = (LaserCompressor(rank=2, factors_per_round=passes, exponent=exponent) for _ in range(2))
    clients = [0, 2, 3]
    for c in (one, many):
        c.setup(params, num_clients=4)
    for _ in range(4):  # even and odd rounds, with memory
        grads = [
            torch.randn(len(clients), *p.shape, generator=generator, dtype=torch.float64) for p in params
        ]
        blocks_one = [one.encode(k, [g[j] for g in grads]) for j, k in enumerate(clients)]
        blocks_many = many.encode_many(clients, grads)
        for a, b in zip(blocks_one, blocks_many, strict=True):
            for x, y in zip(a, b, strict=True):
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
        mean = [torch.stack(x).mean(0) for x in zip(*blocks_one)]
        out_one, out_many = one.decode(mean), many.decode(mean)
        if passes == 2:  # the second pass, client by client
            second = [torch.stack(x).mean(0) for x in zip(*[one.encode_pass(k, 1) for k in clients])]
            second_many = [torch.stack(x).mean(0) for x in zip(*[many.encode_pass(k, 1) for k in clients])]
            for x, y in zip(second, second_many, strict=True):
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
            out_one, out_many = one.decode(second), many.decode(second)
        for x, y in zip(out_one, out_many, strict=True):
            torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
        for k in clients:
            for x, y in zip(one.clients[k].memory, many.clients[k].memory, strict=True):
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
        assert all(m is None for m in many.clients[1].memory)  # a client not in the batch is untouched


def test_the_default_encode_many_loops_over_encode(generator):
    params = [torch.zeros(20), torch.zeros(5, 4)]
    one, many = RandomKCompressor(fraction=0.5, seed=3), RandomKCompressor(fraction=0.5, seed=3)
    for c in (one, many):
        c.setup(params, num_clients=2)
    grads = [torch.randn(2, *p.shape, generator=generator) for p in params]
    expected = [one.encode(k, [g[k] for g in grads]) for k in range(2)]
    for a, b in zip(expected, many.encode_many([0, 1], grads), strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
