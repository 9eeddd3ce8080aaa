"""Power allocation across blocks: LASER's norm-proportional split and its alternatives."""

import math

import pytest
import torch
from torch.testing import assert_close

from laser import allocate_energy

F64 = torch.float64


@pytest.mark.parametrize("rule", ["norm", "norm_sqrt_dim", "uniform"])
def test_each_client_allocation_sums_to_its_budget(generator, rule):
    norms = torch.rand(6, 9, generator=generator, dtype=F64)
    dims = torch.randint(1, 100, (9,), generator=generator)
    budgets = torch.rand(6, generator=generator, dtype=F64) * 10
    shares = allocate_energy(norms, dims, budgets, rule)
    assert_close(shares.sum(1), budgets)
    assert bool((shares >= 0).all())


def test_norm_rule_is_the_mean_of_the_clients_norm_fractions(generator):
    norms = torch.rand(4, 5, generator=generator, dtype=F64)
    expected = 3.0 * (norms / norms.sum(1, keepdim=True)).mean(0)  # E_b = E mean_k(a_kb / sum_b' a_kb')
    shares = allocate_energy(norms, torch.ones(5), 3.0)
    for k in range(4):
        assert_close(shares[k], expected)


def test_norm_sqrt_dim_and_uniform_weights():
    norms = torch.tensor([[1.0, 1.0]], dtype=F64)
    dims = torch.tensor([1, 4])
    assert_close(allocate_energy(norms, dims, 3.0, "norm_sqrt_dim"), torch.tensor([[1.0, 2.0]], dtype=F64))
    assert_close(allocate_energy(norms, dims, 5.0, "uniform"), torch.tensor([[1.0, 4.0]], dtype=F64))


def test_norm_rule_minimises_the_sum_of_per_entry_noise_variances(generator):
    """With one client, E_b = E c_b / sum c minimises sum_b c_b^2 / E_b: no random split does better."""
    c = torch.rand(1, 6, generator=generator, dtype=F64) + 0.1
    best = float((c**2 / allocate_energy(c, torch.ones(6), 1.0)).sum())
    for _ in range(200):
        split = torch.rand(6, generator=generator, dtype=F64)
        split /= split.sum()
        assert best <= float((c**2 / split).sum()) + 1e-12


def test_guards_zero_norms_and_infinite_energy():
    zeros = torch.zeros(2, 3, dtype=F64)
    assert_close(
        allocate_energy(zeros, torch.tensor([1, 1, 2]), 4.0), torch.tensor([[1.0, 1.0, 2.0]] * 2, dtype=F64)
    )
    mixed = torch.tensor([[0.0, 0.0], [1.0, 3.0]], dtype=F64)  # client 0 sends nothing: no vote
    assert_close(allocate_energy(mixed, torch.ones(2), 4.0)[0], torch.tensor([1.0, 3.0], dtype=F64))
    inf = allocate_energy(torch.tensor([[1.0, 0.0]], dtype=F64), torch.ones(2), math.inf)
    assert inf.tolist() == [[math.inf, 0.0]]  # no NaN from inf * 0


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="accepted"):
        allocate_energy(torch.ones(1, 1), torch.ones(1), 1.0, "squared")


def test_grouped_allocation_gives_groups_their_norm_share_and_splits_by_exponent(generator):
    from laser.allocation import allocate_grouped_energy

    norms = torch.rand(3, 5, generator=generator, dtype=torch.float64) + 0.1
    dims = torch.tensor([4, 4, 4, 7, 2])
    groups = ["a", "a", "a", "b", "c"]
    for exponent in (0.0, 1.0, 2.0):
        out = allocate_grouped_energy(norms, dims, 50.0, "norm", groups, exponent)
        assert torch.allclose(out.sum(1), torch.full((3,), 50.0, dtype=torch.float64))
        group_norms = torch.stack([norms[:, :3].norm(dim=1), norms[:, 3], norms[:, 4]], dim=1)
        expected_groups = allocate_energy(group_norms, torch.tensor([12, 7, 2]), 50.0, "norm")
        assert torch.allclose(out[:, :3].sum(1), expected_groups[:, 0])
        w = norms[:, :3] ** exponent
        fractions = (w / w.sum(1, keepdim=True)).mean(0)
        assert torch.allclose(out[:, :3], expected_groups[:, :1] * fractions)
    equal = allocate_grouped_energy(norms, dims, 50.0, "norm", groups, 0.0)
    assert torch.allclose(equal[:, 0], equal[:, 1]) and torch.allclose(equal[:, 1], equal[:, 2])
