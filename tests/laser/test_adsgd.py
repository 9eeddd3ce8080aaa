"""ADSGDCompressor: exact identities in float64, recovery checks for its two decoders, and its two
sides sharing one copy of the projections. The checks at the public calls, the no-aliasing test,
separate sides against the façade and undelivered messages are in test_baselines.py, for every
analog baseline, A-DSGD included."""

import io
import math
from itertools import pairwise

import pytest
import torch
from _identities import numeric
from torch.testing import assert_close

from laser.adsgd import ADSGDCompressor, amp_estimate, lmmse_estimate, sparsify

F64 = torch.float64


def _over_the_wire(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()))


def _params():
    # a conv kernel, a linear weight and a bias (d = 108, 400, 7)
    return [torch.zeros(4, 3, 3, 3, dtype=F64), torch.zeros(10, 40, dtype=F64), torch.zeros(7, dtype=F64)]


def _grads(generator, params):
    return [torch.randn(p.shape, generator=generator, dtype=F64) for p in params]


def _sparse(generator, d, k):
    """A vector of d entries with k standard normal nonzeros at random positions."""
    x = torch.zeros(d, dtype=F64)
    x[torch.randperm(d, generator=generator)[:k]] = torch.randn(k, generator=generator, dtype=F64)
    return x


def _relative_error(estimate, target):
    return float((estimate - target).norm() / target.norm())


def test_sparsify_keeps_the_k_largest_magnitudes(generator):
    v = torch.randn(50, generator=generator, dtype=F64)
    out = sparsify(v, 7)
    keep = v.abs().argsort(descending=True)[:7]
    expected = torch.zeros_like(v)
    expected[keep] = v[keep]
    assert torch.equal(out, expected)


def test_error_feedback_identity(generator):
    """v = message + new memory exactly, message = top-k of v, block = A message; 3 clients, 4 rounds."""
    params = _params()
    adsgd = ADSGDCompressor(fraction=0.25)
    adsgd.setup(params, num_clients=3)
    for _ in range(4):
        blocks = []
        for c in range(3):
            grads = _grads(generator, params)
            before = [None if m is None else m.clone() for m in adsgd.clients[c].memory]
            blocks.append(adsgd.encode(c, grads))
            for b, proj in enumerate(adsgd.server.projections):
                v = grads[b].reshape(-1) + (0 if before[b] is None else before[b])
                message = sparsify(v, proj.k)
                assert torch.equal(message + adsgd.clients[c].memory[b], v)
                assert torch.equal(adsgd.clients[c].memory[b], v - message)
                assert int((message != 0).sum()) == proj.k
                assert_close(blocks[c][b], proj.a @ message)
        adsgd.decode([torch.stack(b).mean(0) for b in zip(*blocks)])
    assert all(m is not None and m.abs().sum() > 0 for client in adsgd.clients for m in client.memory)


def test_linearity_mean_of_blocks_is_projection_of_mean_message(generator):
    params = _params()
    adsgd = ADSGDCompressor(fraction=0.25)
    adsgd.setup(params, num_clients=2)
    grads = [_grads(generator, params) for _ in range(2)]
    blocks = [adsgd.encode(c, grads[c]) for c in range(2)]
    for b, proj in enumerate(adsgd.server.projections):
        messages = [sparsify(grads[c][b].reshape(-1), proj.k) for c in range(2)]
        assert_close((blocks[0][b] + blocks[1][b]) / 2, proj.a @ ((messages[0] + messages[1]) / 2))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_channel_uses_and_sparsity(generator, fraction):
    params = _params()
    adsgd = ADSGDCompressor(fraction=fraction)
    adsgd.setup(params, num_clients=1)
    blocks = adsgd.encode(0, _grads(generator, params))
    dims = [p.numel() for p in params]
    expected = [max(1, math.floor(fraction * d)) for d in dims]
    assert [b.shape for b in blocks] == [torch.Size([s]) for s in expected]
    assert adsgd.channel_uses() == adsgd.server.channel_uses() == sum(expected)
    assert adsgd.server.block_sizes() == expected
    assert [proj.k for proj in adsgd.server.projections] == [
        max(1, math.floor(fraction * d / 2)) for d in dims
    ]
    assert [proj.a.shape for proj in adsgd.server.projections] == [
        torch.Size([s, d]) for s, d in zip(expected, dims)
    ]


def test_shared_matrix_statistics():
    """A_b has i.i.d. N(0, 1/s) entries, the same for the same seed, different for another seed."""
    params = [torch.zeros(100, 50, dtype=F64)]  # s = 500, d = 5000: 2.5e6 entries
    one, same, other = ADSGDCompressor(), ADSGDCompressor(), ADSGDCompressor(seed=1)
    for c in (one, same, other):
        c.setup(params, num_clients=1)
    a = one.server.projections[0].a
    assert torch.equal(a, same.server.projections[0].a) and not torch.equal(a, other.server.projections[0].a)
    s, n = a.shape[0], a.numel()
    # sample mean and variance of n entries: standard errors sqrt(1/(s n)) and sqrt(2/n)/s; 6 sigma
    assert abs(float(a.mean())) < 6 / math.sqrt(s * n)
    assert abs(float(a.var()) * s - 1) < 6 * math.sqrt(2 / n)


def test_full_measurements_noiseless_lmmse_is_exact(generator):
    """fraction 1 (s = d), noise 0: decoding the mean blocks gives the mean sparse message."""
    params = _params()
    adsgd = ADSGDCompressor(fraction=1.0)
    adsgd.setup(params, num_clients=3)
    grads = [_grads(generator, params) for _ in range(3)]
    blocks = [adsgd.encode(c, grads[c]) for c in range(3)]
    decoded = adsgd.decode([torch.stack(b).mean(0) for b in zip(*blocks)], noise_var=[0.0, 0.0, 0.0])
    for b, proj in enumerate(adsgd.server.projections):
        mean_message = torch.stack([sparsify(grads[c][b].reshape(-1), proj.k) for c in range(3)]).mean(0)
        assert_close(decoded[b].reshape(-1), mean_message, rtol=0, atol=1e-9)
        assert decoded[b].shape == params[b].shape


def test_lmmse_with_noise_beats_linear_alternatives(generator):
    """s = d, a 40-sparse xbar, y = A xbar + w: the error falls with the noise; at each noise level
    the estimate beats the minimum-norm (noise-blind) one in every trial, and on average the best
    scaled back-projection c A^T y even with c chosen per trial knowing xbar."""
    d = 200
    adsgd = ADSGDCompressor(fraction=1.0)
    adsgd.setup([torch.zeros(d, dtype=F64)], num_clients=1)
    proj = adsgd.server.projections[0]
    x = _sparse(generator, d, 40)
    errors = []
    for noise_var in [1e-1, 1e-2, 1e-3, 1e-4]:
        trials, scaled_trials = [], []
        for _ in range(20):
            y = proj.a @ x + math.sqrt(noise_var) * torch.randn(d, generator=generator, dtype=F64)
            xhat = adsgd.decode([y], noise_var=[noise_var])[0]
            assert torch.isfinite(xhat).all()
            min_norm = adsgd.decode([y], noise_var=[0.0])[0]
            back = proj.a.T @ y  # best scale in hindsight (oracle)
            scaled_trials.append(_relative_error(back * (back @ x) / (back @ back), x))
            trials.append(_relative_error(xhat, x))
            assert trials[-1] < _relative_error(min_norm, x)
        errors.append(sum(trials) / len(trials))
        # on average: at the highest noise the two are close (0.73 vs 0.80), at the lowest 5x apart
        assert errors[-1] < sum(scaled_trials) / len(scaled_trials)
    assert all(later < earlier for earlier, later in pairwise(errors))
    assert errors[0] < 1 and errors[-1] < errors[0] / 4


def test_lmmse_matches_direct_formulas(generator):
    """Against a dense solve: A^T (A A^T + (v / sigma2) I)^-1 y with sigma2 from the received energy,
    and, for a rank-deficient A (repeated rows) at v = 0, the pseudo-inverse A^+ y."""
    a = torch.randn(30, 80, generator=generator, dtype=F64) / math.sqrt(30)
    y = torch.randn(30, generator=generator, dtype=F64)
    lam, u = torch.linalg.eigh(a @ a.T)
    sigma2 = (y @ y - 30 * 0.2) / (a * a).sum()
    direct = a.T @ torch.linalg.solve(a @ a.T + 0.2 / sigma2 * torch.eye(30, dtype=F64), y)
    assert_close(lmmse_estimate(y, a, u, lam, 0.2), direct)
    deficient = torch.cat([a[:20], a[:10]])  # rank 20 of 30 rows
    y = deficient @ torch.randn(80, generator=generator, dtype=F64)
    lam, u = torch.linalg.eigh(deficient @ deficient.T)
    assert_close(lmmse_estimate(y, deficient, u, lam, 0.0), torch.linalg.pinv(deficient) @ y)


def _recovery_setup(generator):
    # d = 400, fraction 0.4: s = 160 measurements of a 10-sparse vector (well inside AMP's region)
    adsgd = {name: ADSGDCompressor(fraction=0.4, decoder=name) for name in ("lmmse", "amp")}
    for c in adsgd.values():
        c.setup([torch.zeros(400, dtype=F64)], num_clients=1)
    return adsgd, adsgd["amp"].server.projections[0].a, _sparse(generator, 400, 10)


@pytest.mark.parametrize("noise_var", [0.0, 1e-10])
def test_amp_recovers_a_sparse_vector_where_lmmse_cannot(generator, noise_var):
    adsgd, a, x = _recovery_setup(generator)
    assert a.shape == (160, 400)
    y = a @ x + math.sqrt(noise_var) * torch.randn(160, generator=generator, dtype=F64)
    assert amp_estimate(y, a, iterations=30) is not None  # no fallback
    assert _relative_error(adsgd["amp"].decode([y], noise_var=[noise_var])[0], x) < 1e-2
    assert _relative_error(adsgd["lmmse"].decode([y], noise_var=[noise_var])[0], x) > 0.3


def test_amp_falls_back_to_lmmse_when_it_diverges(generator):
    """The reference's regime (fraction 0.1, k = s/2, here two clients: up to 4s nonzeros) is beyond
    AMP's recovery limit: the guard returns None and the decoder gives the linear estimate."""
    params = [torch.zeros(2000, dtype=F64)]
    adsgd = {name: ADSGDCompressor(decoder=name) for name in ("lmmse", "amp")}
    for c in adsgd.values():
        c.setup(params, num_clients=2)
    grads = [_grads(generator, params) for _ in range(2)]
    y = torch.stack([adsgd["amp"].encode(c, grads[c])[0] for c in range(2)]).mean(0)
    proj = adsgd["amp"].server.projections[0]
    assert amp_estimate(y, proj.a, iterations=30) is None
    expected = lmmse_estimate(y, proj.a, proj.u, proj.lam, 0.01)
    assert torch.equal(adsgd["amp"].decode([y], noise_var=[0.01])[0], expected)
    assert torch.equal(adsgd["lmmse"].decode([y], noise_var=[0.01])[0], expected)


@pytest.mark.parametrize("decoder", ["lmmse", "amp"])
def test_zero_blocks_decode_to_zero(decoder):
    adsgd = ADSGDCompressor(fraction=0.5, decoder=decoder)
    adsgd.setup(_params(), num_clients=1)
    out = adsgd.decode(
        [torch.zeros(s, dtype=F64) for s in (54, 200, 3)], noise_var=torch.tensor([0.0, 1.0, 0.5])
    )
    assert all(torch.equal(g, torch.zeros_like(p)) for g, p in zip(out, _params()))


def test_state_dict_round_trip_continues_identically(generator):
    params = _params()
    first = ADSGDCompressor(fraction=0.25, decoder="amp")
    first.setup(params, num_clients=2)
    rounds = [[_grads(generator, params) for _ in range(2)] for _ in range(4)]

    def run(compressor, grads_per_client):
        blocks = [compressor.encode(c, g) for c, g in enumerate(grads_per_client)]
        mean = [torch.stack(b).mean(0) for b in zip(*blocks)]
        return blocks, compressor.decode(mean, noise_var=[1e-3] * len(mean))

    for grads in rounds[:2]:
        run(first, grads)
    second = ADSGDCompressor(fraction=0.25, decoder="amp")
    second.setup(params, num_clients=2)
    second.load_state_dict(_over_the_wire(first.state_dict()))
    for grads in rounds[2:]:
        (blocks_1, out_1), (blocks_2, out_2) = run(first, grads), run(second, grads)
        assert all(torch.equal(u, v) for bu, bv in zip(blocks_1, blocks_2) for u, v in zip(bu, bv))
        assert all(torch.equal(u, v) for u, v in zip(out_1, out_2))
    assert all(
        torch.equal(u, v)
        for cu, cv in zip(first.clients, second.clients)
        for u, v in zip(cu.memory, cv.memory)
    )
    assert numeric(first.state_dict()["server"]) == {}


def test_too_large_projection_raises():
    with pytest.raises(ValueError, match=r"400000 entries .*smaller model or a lower fraction"):
        ADSGDCompressor(max_projection_entries=399_999).setup([torch.zeros(200, 10)], num_clients=1)
    with pytest.raises(ValueError, match=r"400000 entries"):
        ADSGDCompressor(max_projection_entries=399_999).make_client([torch.zeros(200, 10)])
    ADSGDCompressor(max_projection_entries=400_000).setup([torch.zeros(200, 10)], num_clients=1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"decoder": "omp"}, "decoder"),
        ({"amp_iterations": 0}, "amp_iterations"),
        ({"max_projection_entries": 0}, "max_projection_entries"),
        ({"seed": 0.5}, "seed"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        ADSGDCompressor(**kwargs)


def test_invalid_noise_var_is_rejected():
    adsgd = ADSGDCompressor(fraction=0.5)
    adsgd.setup([torch.zeros(10, dtype=F64)], num_clients=1)
    with pytest.raises(ValueError, match="noise_var"):
        adsgd.decode([torch.ones(5, dtype=F64)], noise_var=[-1.0])


def test_the_sides_of_one_method_share_one_copy_of_the_projections(generator):
    """The server and every client hold the same read-only tensors, computed once per method object
    and parameter layout; another method object (another process) computes equal ones."""
    params = _params()
    adsgd = ADSGDCompressor(fraction=0.25)
    adsgd.setup(params, num_clients=3)
    sides = [adsgd.server, *adsgd.clients, adsgd.make_client(iter(params), 3)]
    for b in range(len(params)):
        assert all(side.projections[b] is adsgd.server.projections[b] for side in sides)
        assert all(side.projections[b].a is adsgd.server.projections[b].a for side in sides)
    adsgd.setup([p.clone() for p in params], num_clients=2)  # the same layout: the cache serves it
    assert adsgd.server.projections[0].a is sides[0].projections[0].a
    as_float32 = adsgd.projections([p.float() for p in params])  # another dtype: its own, in float32
    assert as_float32[0].a.dtype == torch.float32 and as_float32[0].a is not sides[0].projections[0].a
    other = ADSGDCompressor(fraction=0.25).make_server(params)
    assert other.projections[0].a is not sides[0].projections[0].a
    assert all(
        torch.equal(x.a, y.a) and torch.equal(x.u, y.u) and torch.equal(x.lam, y.lam) and x.k == y.k
        for x, y in zip(other.projections, sides[0].projections, strict=True)
    )
    grads = _grads(generator, params)
    assert all(
        torch.equal(x, y) for x, y in zip(adsgd.encode(0, grads), adsgd.make_client(params).encode(grads))
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_parameters_are_refused(dtype):
    """The eigendecomposition needs float32 or float64."""
    params = [torch.zeros(10, 4), torch.zeros(3, dtype=dtype)]
    for make in (
        lambda c: c.setup(params, num_clients=1),
        lambda c: c.make_client(params),
        lambda c: c.make_server(params),
    ):
        with pytest.raises(
            TypeError, match=rf"params\[1\] has dtype {dtype}; this compressor needs float32 or float64"
        ):
            make(ADSGDCompressor())


def test_the_server_needs_no_state_and_broadcasts_nothing(generator):
    params = _params()
    adsgd = ADSGDCompressor(fraction=0.25)
    adsgd.setup(params, num_clients=1)
    assert adsgd.server.broadcast() == {} and numeric(adsgd.server.state_dict()) == {}
    blocks = adsgd.clients[0].encode(_grads(generator, params))  # no broadcast needed
    assert [b.numel() for b in blocks] == adsgd.server.block_sizes()
    assert numeric(adsgd.clients[0].state_dict()).keys() == {"memory"}
