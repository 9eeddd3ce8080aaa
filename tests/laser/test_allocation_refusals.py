"""The power allocations refuse what they cannot split (issue 27, item 5): a ``TypeError`` or
``ValueError`` whose message starts with the argument's name, where they used to raise raw torch
errors or return NaN, negative or misplaced shares."""

import math

import pytest
import torch

from laser import allocate_energy, allocate_grouped_energy

F64 = torch.float64
NORMS = torch.tensor([[3.0, 1.0], [1.0, 1.0]], dtype=F64)  # K = 2 clients, B = 2 blocks
DIMS = torch.tensor([4, 4])
GROUP_NORMS = torch.tensor([[3.0, 1.0, 4.0]], dtype=F64)  # K = 1, B = 3: two columns and a bias
GROUP_DIMS = torch.tensor([2, 2, 2])


@pytest.mark.parametrize(
    "energy",
    [torch.ones(3), torch.ones(2, 2), torch.ones(0)],
    ids=["three for two clients", "one per client and block", "none"],
)
def test_an_energy_of_the_wrong_length_is_refused(energy):
    """It used to raise "The expanded size of the tensor (2) must match the existing size (3)"."""
    with pytest.raises(
        ValueError, match=r"^energy must be one number or one per client \(\[K\] with K = 2\)"
    ):
        allocate_energy(NORMS, DIMS, energy)
    with pytest.raises(ValueError, match=r"^energy must be one number or one per client"):
        allocate_grouped_energy(NORMS, DIMS, energy, "norm", [0, 0], 1.0)


@pytest.mark.parametrize(
    "energy, message",
    [
        (math.nan, r"got nan$"),
        (-1.0, r"got -1.0$"),
        (torch.tensor([1.0, math.nan]), r"got \[nan\] for client\(s\) \[1\]$"),
        (torch.tensor([-2.0, 1.0]), r"got \[-2.0\] for client\(s\) \[0\]$"),
    ],
)
def test_a_nan_or_negative_energy_is_refused(energy, message):
    """A NaN energy used to come back as NaN shares, a negative one as negative shares."""
    for rule in ("norm", "uniform"):
        with pytest.raises(ValueError, match=r"^energy must be >= 0 \(inf is accepted\), " + message):
            allocate_energy(NORMS, DIMS, energy, rule)
    with pytest.raises(ValueError, match=r"^energy must be >= 0"):
        allocate_grouped_energy(NORMS, DIMS, energy, "norm", [0, 1], 1.0)


def test_energies_that_are_not_numbers_or_have_no_data_are_refused():
    """A string used to raise "new(): invalid data type 'str'", a meta tensor "Cannot copy out of meta
    tensor; no data!", and True was taken for an energy of 1."""
    for energy in ("100", 1j, True, torch.ones(2, dtype=torch.complex64)):
        with pytest.raises(TypeError, match=r"^energy must be real numbers"):
            allocate_energy(NORMS, DIMS, energy)
    with pytest.raises(ValueError, match=r"^energy must hold data.*meta"):
        allocate_energy(NORMS, DIMS, torch.ones(2, device="meta"))
    # what the docstring promises still goes through: a float, one per client, an infinite budget
    assert allocate_energy(NORMS, DIMS, [1.0, 2.0]).sum(1).tolist() == [1.0, 2.0]
    assert allocate_energy(NORMS, DIMS, math.inf)[0].tolist() == [math.inf, math.inf]


def test_dims_of_the_wrong_length_or_impossible_lengths_are_refused():
    """Three lengths for two blocks used to pass unnoticed under the norm rule (and raise an expand
    error under the uniform one); a negative length gave infinite shares, a NaN one zero shares."""
    for rule in ("norm", "norm_sqrt_dim", "uniform"):
        for dims in (torch.tensor([4, 4, 4]), torch.tensor([4]), torch.tensor([[4, 4]])):
            with pytest.raises(ValueError, match=r"^dims must be \[B\] with B = 2"):
                allocate_energy(NORMS, dims, 100.0, rule)
    for dims, shown in [
        (torch.tensor([4.0, -4.0]), r"\[-4.0\]"),
        (torch.tensor([4.0, math.nan]), r"\[nan\]"),
    ]:
        with pytest.raises(
            ValueError, match=rf"^dims must be finite lengths >= 0, got {shown} for block\(s\) \[1\]"
        ):
            allocate_energy(NORMS, dims, 100.0, "uniform")
    with pytest.raises(ValueError, match=r"^dims must be finite lengths >= 0"):  # hidden in the group's sum
        allocate_grouped_energy(GROUP_NORMS, torch.tensor([4, -2, 2]), 100.0, "norm", [0, 0, 1], 1.0)
    with pytest.raises(ValueError, match=r"^dims must be \[B\] with B = 3"):  # was an index_add_ error
        allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS[:2], 100.0, "norm", [0, 0, 1], 1.0)
    with pytest.raises(TypeError, match=r"^dims must be real numbers"):
        allocate_energy(NORMS, ["4", "4"], 100.0)
    # a list of lengths is as good as a tensor (it used to raise "'list' object has no attribute 'to'")
    assert torch.equal(allocate_energy(NORMS, [4, 4], 100.0), allocate_energy(NORMS, DIMS, 100.0))


def test_norms_that_are_not_a_real_matrix_are_refused():
    """A vector of norms used to raise "Dimension out of range", a complex one "gt_cpu not
    implemented", a meta one "Tensor.item() cannot be called on meta tensors"; integer norms
    truncated the energy to an integer."""
    for norms in (NORMS[0], NORMS[None]):
        with pytest.raises(ValueError, match=r"^norms must be \[K, B\] \(clients, blocks\)"):
            allocate_energy(norms, DIMS, 100.0)
        with pytest.raises(ValueError, match=r"^norms must be \[K, B\]"):
            allocate_grouped_energy(norms, DIMS, 100.0, "norm", [0, 0], 1.0)
    for norms in (NORMS.to(torch.complex128), torch.tensor([[3, 1]]), NORMS.tolist()):
        with pytest.raises(TypeError, match=r"^norms must be a real floating-point \[K, B\] tensor"):
            allocate_energy(norms, DIMS, 2.5)
    with pytest.raises(ValueError, match=r"^norms must hold data"):
        allocate_energy(NORMS.to("meta"), DIMS, 100.0)
    with pytest.raises(ValueError, match=r"^norms must hold data"):
        allocate_grouped_energy(GROUP_NORMS.to("meta"), GROUP_DIMS, 100.0, "norm", [0, 0, 1], 1.0)
    with pytest.raises(TypeError, match=r"^rule must be one of norm, norm_sqrt_dim, uniform, got \['norm'\]"):
        allocate_energy(NORMS, DIMS, 100.0, ["norm"])


@pytest.mark.parametrize("groups", [[0, 0], [0, 0, 1, 1]], ids=["short", "long"])
def test_groups_of_the_wrong_length_are_refused(groups):
    """They used to raise "index_add_(): Number of indices (2) should be equal to source.size(dim)"."""
    with pytest.raises(
        ValueError, match=rf"^groups must hold one label per block \(3, .*got {len(groups)} labels"
    ):
        allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", groups, 1.0)


def test_groups_and_exponents_that_are_not_labels_or_numbers_are_refused():
    with pytest.raises(TypeError, match=r"^groups must be a sequence of labels, one per block, got 3"):
        allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", 3, 1.0)
    with pytest.raises(TypeError, match=r"^groups\[0\] must be a hashable label"):  # was "unhashable type"
        allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", [[0], [0], [1]], 1.0)
    with pytest.raises(TypeError, match=r"^exponent must be a real number, got '1'"):
        allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", [0, 0, 1], "1")
    for exponent in (math.nan, math.inf):  # NaN used to split the group evenly, without a word
        with pytest.raises(ValueError, match=r"^exponent must be a finite number"):
            allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", [0, 0, 1], exponent)


def test_grouped_allocation_of_edge_cases_that_used_to_fail():
    """Groups given by a generator (read twice: the second pass found none), no blocks at all (an
    index_add_ dtype error), and a negative exponent with a block of norm 0 (0^e = inf: NaN shares)."""
    expected = allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", [0, 0, 1], 1.0)
    labels = (g for g in [0, 0, 1])
    assert torch.equal(allocate_grouped_energy(GROUP_NORMS, GROUP_DIMS, 100.0, "norm", labels, 1.0), expected)
    empty = allocate_grouped_energy(torch.zeros(2, 0), torch.zeros(0), 100.0, "norm", [], 1.0)
    assert empty.shape == (2, 0)
    norms = torch.tensor([[3.0, 0.0, 4.0]], dtype=F64)
    shares = allocate_grouped_energy(norms, GROUP_DIMS, 100.0, "norm", [0, 0, 1], -1.0)
    assert shares[0, 1] == 0 and bool(shares.isfinite().all())  # the zero block gets nothing, as for e > 0
    torch.testing.assert_close(shares.sum(), torch.tensor(100.0, dtype=F64))
