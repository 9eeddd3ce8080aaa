"""Qsparse-local-SGD's composed compressors: Q_s o Top_k (scaled into a contraction) and Sign o Top_k,
their contraction bound (statistical for the random one, exact for the sign), their exact bit
counts and their error-feedback bookkeeping."""

import math

import pytest
import torch

from laser import QSparseCompressor
from laser.digital import qsparse_beta

F64 = torch.float64


def _x(d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("fraction, levels", [(0.05, 1), (0.05, 4), (0.3, 2), (1.0, 8)])
def test_qsgd_top_k_is_a_contraction_in_expectation(fraction, levels):
    """E||C(x) - x||^2 = ||x - T||^2 + (beta / (1 + beta))^2 ||T||^2 + sum_j var_j / (1 + beta)^2 (var_j:
    QSGD's rounding variance of entry j, at most beta ||T||^2 in all) <= (1 - k / (d (1 + beta))) ||x||^2:
    the mean of 2,000 draws lies within 5 standard errors of the exact value, and under the bound."""
    d, draws = 200, 2000
    x = _x(d)
    method = QSparseCompressor(fraction, levels=levels, error_feedback=False, seed=1)
    client = method.make_client([torch.zeros(d, dtype=F64)])
    errors = torch.stack([((client.encode([x])[0] - x) ** 2).sum() for _ in range(draws)])
    mean, se = float(errors.mean()), float(errors.std()) / math.sqrt(draws)
    k = max(1, math.floor(fraction * d))
    beta = qsparse_beta(k, levels)
    kept = x.abs().topk(k).values
    norm = float(kept.norm())
    f = levels * kept / norm - (levels * kept / norm).floor()
    variance = float(((norm / levels) ** 2 * f * (1 - f)).sum())
    assert variance <= beta * norm**2
    expected = float((x**2).sum() - (kept**2).sum()) + (beta / (1 + beta)) ** 2 * norm**2
    expected += variance / (1 + beta) ** 2
    assert abs(mean - expected) <= 5 * se + 1e-12
    bound = (1 - method.contraction(d)) * float((x**2).sum())
    assert mean <= bound + 5 * se and expected <= bound + 1e-9


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_sign_top_k_is_a_contraction(fraction):
    """||C(x) - x||^2 = ||x||^2 - ||T||_1^2 / k <= (1 - 1/d) ||x||^2, exactly (nothing is random)."""
    d = 300
    for seed in range(5):
        x = _x(d, seed)
        method = QSparseCompressor(fraction, quantizer="sign", error_feedback=False)
        message = method.make_client([torch.zeros(d, dtype=F64)]).encode([x])[0]
        k = max(1, math.floor(fraction * d))
        kept = x.abs().topk(k).values
        error = float(((message - x) ** 2).sum())
        assert error == pytest.approx(float((x**2).sum() - kept.sum() ** 2 / k), rel=1e-12)
        assert error <= (1 - method.contraction(d)) * float((x**2).sum())
        nonzero = message[message != 0]
        assert nonzero.numel() == k and torch.allclose(nonzero.abs(), kept.sum() / k)


def test_bit_counts_are_exact():
    """Per tensor: qsgd 32 + k (ceil(log2 d) + 1 + ceil(log2(s + 1))), sign 32 + k (ceil(log2 d) + 1);
    no index bits when every entry is kept."""
    params = [torch.zeros(10, 10), torch.zeros(5), torch.zeros(1)]
    grads = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(params)]
    # fraction 0.2: k = 20 of 100 (index 7 bits), 1 of 5 (index 3 bits), 1 of 1 (no index)
    qsgd = QSparseCompressor(0.2, levels=3).make_client(params)
    qsgd.encode(grads)
    assert qsgd.message_bits() == (32 + 20 * (7 + 1 + 2)) + (32 + 1 * (3 + 1 + 2)) + (32 + 1 * (1 + 2))
    sign = QSparseCompressor(0.2, quantizer="sign").make_client(params)
    sign.encode(grads)
    assert sign.message_bits() == (32 + 20 * (7 + 1)) + (32 + 1 * (3 + 1)) + (32 + 1)
    dense = QSparseCompressor(1.0, levels=7).make_client(params)
    dense.encode(grads)
    assert dense.message_bits() == (32 + 100 * 4) + (32 + 5 * 4) + (32 + 4)


@pytest.mark.parametrize("quantizer", ["qsgd", "sign"])
def test_error_feedback_keeps_what_was_not_sent(quantizer):
    """e <- v - C(v) with v = g + e, and an undelivered message goes back: e <- v."""
    params = [torch.zeros(50, dtype=F64)]
    client = QSparseCompressor(0.1, levels=2, quantizer=quantizer, seed=0).make_client(params)
    g1, g2 = _x(50, 1), _x(50, 2)
    m1 = client.encode([g1])[0]
    torch.testing.assert_close(client.memory[0], g1 - m1, rtol=0, atol=0)
    m2 = client.encode([g2])[0]
    torch.testing.assert_close(client.memory[0], g2 + (g1 - m1) - m2, rtol=0, atol=1e-15)
    client.undelivered([m2])
    torch.testing.assert_close(client.memory[0], g2 + (g1 - m1), rtol=0, atol=1e-15)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="quantizer"):
        QSparseCompressor(0.1, quantizer="ternary")
    with pytest.raises(ValueError, match="fraction"):
        QSparseCompressor(0.0)
    with pytest.raises(ValueError, match="levels"):
        QSparseCompressor(0.1, levels=0)
