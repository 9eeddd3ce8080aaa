"""Random-K, count-mean sketch and Signum: exact identities and statistical unbiasedness; and, for
these and A-DSGD, the client/server split: the checks at the public calls, no aliasing of the
caller's tensors, separate sides (another process) equal to the one-process façade, undelivered
messages kept by error feedback."""

import io
import math

import pytest
import torch
from _identities import numeric
from torch.testing import assert_close

from laser.adsgd import ADSGDCompressor
from laser.baselines import (
    CountSketchCompressor,
    RandomKCompressor,
    SignumCompressor,
    count_sketch,
    count_unsketch,
)
from laser.compressor import ZSGDCompressor

F64 = torch.float64
SHAPES = [(6, 10), (7,), (3, 2, 2)]

METHODS = {  # the four analog baselines, with their client state on (error feedback, momentum)
    "randomk": lambda: RandomKCompressor(0.3, seed=3),
    "sketch": lambda: CountSketchCompressor(0.4, error_feedback=True, seed=4),
    "signum": lambda: SignumCompressor(momentum=0.5),
    "adsgd": lambda: ADSGDCompressor(0.25, seed=2),
}


def _params():
    return [torch.zeros(s, dtype=F64) for s in SHAPES]


def _grads(generator):
    return [torch.randn(s, generator=generator, dtype=F64) for s in SHAPES]


def _mean(blocks):
    return [torch.stack(b).mean(0) for b in zip(*blocks)]


def _round(c, grads_per_client):
    blocks = [c.encode(k, g) for k, g in enumerate(grads_per_client)]
    return blocks, c.decode(_mean(blocks))


def _over_the_wire(obj):
    """``obj`` after a serialization round trip, as another process would receive it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()))


def _tensors(state):
    """Every tensor (or None) in a state_dict, in a fixed order."""
    if isinstance(state, dict):
        return [t for key in sorted(state) for t in _tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for x in state for t in _tensors(x)]
    return [state]


def _identical(a, b):
    a, b = _tensors(numeric(a)), _tensors(numeric(b))
    return len(a) == len(b) and all(
        (x is None and y is None)
        or (
            isinstance(x, torch.Tensor)
            and isinstance(y, torch.Tensor)
            and x.dtype == y.dtype
            and torch.equal(x, y)
        )
        or (not isinstance(x, torch.Tensor) and x == y)
        for x, y in zip(a, b)
    )


def _own_message(c, block, i):
    """What the server would decode from this client's block alone (the current round's randomness)."""
    shared, d = c.server.broadcast(), math.prod(SHAPES[i])
    if isinstance(c, CountSketchCompressor):
        return count_unsketch(block, shared["buckets"][i], shared["signs"][i])
    values = block * (d / block.numel()) if c.unbiased else block
    return torch.zeros(d, dtype=block.dtype).index_copy_(0, shared["supports"][i], values)


# ------------------------------------------------------------------------------- the methods
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
            memory = c.clients[k].memory
            wanted = [g.reshape(-1) + (m if m is not None else 0) for g, m in zip(grads, memory)]
            blocks.append(c.encode(k, grads))
            for i, v in enumerate(wanted):
                assert_close(_own_message(c, blocks[k][i], i) + c.clients[k].memory[i], v, rtol=0, atol=1e-12)
        c.decode(_mean(blocks))


@pytest.mark.parametrize(
    "make", [lambda: RandomKCompressor(0.3, error_feedback=False), lambda: CountSketchCompressor(0.4)]
)
def test_linearity_under_the_shared_seed(generator, make):
    """The mean of the clients' blocks is the block of their mean gradient, and decodes to it."""
    c = make()
    c.setup(_params(), num_clients=4)
    client_grads = [_grads(generator) for _ in range(4)]
    blocks = [c.encode(k, g) for k, g in enumerate(client_grads)]
    mean_blocks = _mean(blocks)
    mean_grads = [torch.stack(g).mean(0) for g in zip(*client_grads)]
    for a, b in zip(mean_blocks, c.encode(3, mean_grads)):  # same round, same randomness
        assert_close(a, b)
    assert [b.numel() for b in mean_blocks] == [math.floor(c.fraction * math.prod(s)) for s in SHAPES]
    assert c.server.block_sizes() == [b.numel() for b in mean_blocks]
    assert c.channel_uses() == sum(b.numel() for b in mean_blocks)


def test_fresh_randomness_each_round_and_shared_within_it(generator):
    rk = RandomKCompressor(0.2, seed=5)
    rk.setup(_params(), num_clients=2)
    first = rk.server.broadcast()["supports"][0].clone()
    assert torch.equal(rk.server.broadcast()["supports"][0], first)  # the same for the whole round
    rk.decode(rk.encode(0, _grads(generator)))
    assert not torch.equal(rk.server.broadcast()["supports"][0], first)
    other = RandomKCompressor(0.2, seed=5)  # same seed: same supports
    other.setup(_params(), num_clients=2)
    assert torch.equal(other.server.broadcast()["supports"][0], first)
    assert len(set(first.tolist())) == first.numel()  # without replacement


@pytest.mark.parametrize(
    "make", [lambda: RandomKCompressor(0.3, seed=8), lambda: CountSketchCompressor(0.3, seed=8)]
)
def test_the_server_draws_one_round_after_another_from_its_seed(generator, make):
    """Round t's objects are the t-th round of draws, tensor by tensor, from a CPU generator seeded
    with ``seed``, whichever clients take part (none, one, all)."""
    c = make()
    c.setup(_params(), num_clients=3)
    reference = torch.Generator().manual_seed(8)
    for t, clients in enumerate([[0, 1, 2], [1], [], [0, 2]]):
        expected = []
        for s in SHAPES:
            d, size = math.prod(s), math.floor(c.fraction * math.prod(s))
            if isinstance(c, RandomKCompressor):
                expected.append(torch.randperm(d, generator=reference)[:size])
            else:
                buckets = torch.randint(size, (d,), generator=reference)
                expected += [buckets, torch.randint(2, (d,), generator=reference, dtype=torch.int8) * 2 - 1]
        shared = c.server.broadcast()
        got = (
            shared["supports"]
            if "supports" in shared
            else [x for pair in zip(*shared.values()) for x in pair]
        )
        assert all(torch.equal(x, y) for x, y in zip(got, expected, strict=True)), t
        blocks = [c.encode(k, _grads(generator)) for k in clients]
        c.decode(_mean(blocks) if blocks else [torch.zeros(n, dtype=F64) for n in c.server.block_sizes()])


def test_a_client_that_skips_rounds_stays_in_step(generator):
    """Clients keep no generator: one that sat out rounds encodes with the current round's support."""
    rk = RandomKCompressor(0.3, error_feedback=False, seed=1)
    rk.setup(_params(), num_clients=2)
    for _ in range(3):  # client 1 sits out
        rk.decode(rk.encode(0, _grads(generator)))
    grads = _grads(generator)
    supports = rk.server.broadcast()["supports"]
    for block, g, s in zip(rk.encode(1, grads), grads, supports, strict=True):
        assert torch.equal(block, g.reshape(-1)[s])


def test_random_k_with_fraction_one_reproduces_the_input(generator):
    rk = RandomKCompressor(1.0)
    rk.setup(_params(), num_clients=1)
    grads = _grads(generator)
    for g, d in zip(grads, rk.decode(rk.encode(0, grads))):
        assert torch.equal(g, d)
    assert all(float(m.abs().max()) == 0 for m in rk.clients[0].memory)


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
    decoded = signum.decode(_mean(blocks))
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
    assert_close(signum.clients[0].buffers[0], m, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["randomk", "sketch", "signum"])
def test_state_round_trip_continues_identically(generator, name):
    a, b = METHODS[name](), METHODS[name]()
    a.setup(_params(), num_clients=2)
    b.setup(_params(), num_clients=2)
    grads = [[_grads(generator) for _ in range(2)] for _ in range(4)]
    for t in range(2):
        _round(a, grads[t])
    b.load_state_dict(_over_the_wire(a.state_dict()))
    for t in range(2, 4):
        (blocks_a, out_a), (blocks_b, out_b) = _round(a, grads[t]), _round(b, grads[t])
        assert _identical([blocks_a, out_a], [blocks_b, out_b])
    assert _identical(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("name", ["randomk", "sketch"])
def test_a_state_saved_between_encode_and_decode_continues_identically(generator, name):
    """The server saves the generator as it was at the round's start: its draws are redone."""
    a, b = METHODS[name](), METHODS[name]()
    a.setup(_params(), num_clients=2)
    b.setup(_params(), num_clients=2)
    _round(a, [_grads(generator) for _ in range(2)])
    blocks = [a.encode(k, _grads(generator)) for k in range(2)]
    b.load_state_dict(_over_the_wire(a.state_dict()))
    assert _identical(a.decode(_mean(blocks)), b.decode(_mean(blocks)))
    grads = [_grads(generator) for _ in range(2)]
    assert _identical(_round(a, grads), _round(b, grads))


def test_state_dicts_hold_copies(generator):
    rk = RandomKCompressor(0.3)
    rk.setup(_params(), num_clients=1)
    _round(rk, [_grads(generator)])
    state = rk.state_dict()
    assert set(state) == {"server", "clients"} and set(state["server"]) == {"generator", "identity"}
    assert set(state["clients"][0]) == {"memory", "index", "server"}
    for m in state["clients"][0]["memory"]:
        m.fill_(float("nan"))
    assert all(bool(m.isfinite().all()) for m in rk.clients[0].memory)


def test_reprs_show_the_hyperparameters():
    assert (
        repr(RandomKCompressor())
        == "RandomKCompressor(fraction=0.1, error_feedback=True, unbiased=False, seed=0)"
    )
    assert repr(CountSketchCompressor(0.5, seed=2)) == (
        "CountSketchCompressor(fraction=0.5, error_feedback=False, seed=2)"
    )
    assert repr(SignumCompressor(0.9)) == "SignumCompressor(momentum=0.9)"
    assert repr(ADSGDCompressor()) == (
        "ADSGDCompressor(fraction=0.1, decoder='lmmse', amp_iterations=30, seed=0, "
        "max_projection_entries=134217728)"
    )


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_bad_fraction_is_rejected(bad):
    with pytest.raises(ValueError, match="fraction"):
        RandomKCompressor(bad)
    with pytest.raises(ValueError, match="fraction"):
        CountSketchCompressor(bad)
    with pytest.raises(ValueError, match="momentum"):
        SignumCompressor(momentum=1.0)


def test_bad_seed_is_rejected():
    with pytest.raises(TypeError, match="seed"):
        RandomKCompressor(seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        CountSketchCompressor(seed="0")


# ------------------------------------------------------------------ checks at the public calls
_MISUSES = {
    "one grad too few": (lambda g: g[:-1], ValueError, r"grads has 2 tensors; expected 3"),
    "one grad too many": (lambda g: [*g, g[0]], ValueError, r"grads has 4 tensors; expected 3"),
    "one tensor": (lambda g: g[0], TypeError, r"grads must be a sequence"),
    "wrong shape": (lambda g: [g[0].reshape(-1), *g[1:]], ValueError, r"grads\[0\] has shape \(60,\)"),
    "wrong order": (lambda g: [g[1], g[0], g[2]], ValueError, r"grads\[0\] has shape"),
    "wrong dtype": (lambda g: [g[0], g[1].float(), g[2]], TypeError, r"grads\[1\] has dtype torch.float32"),
    "not a tensor": (lambda g: [g[0], g[1].tolist(), g[2]], TypeError, r"grads\[1\] must be a tensor"),
}


@pytest.mark.parametrize("misuse", _MISUSES)
@pytest.mark.parametrize("name", METHODS)
def test_misused_grads_are_refused_naming_the_argument(generator, name, misuse):
    c = METHODS[name]()
    c.setup(_params(), num_clients=2)
    change, error, message = _MISUSES[misuse]
    with pytest.raises(error, match=message):
        c.encode(0, change(_grads(generator)))
    side = c.make_client(_params())
    with pytest.raises(error, match=message):
        side.encode(change(_grads(generator)), c.server.broadcast())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", METHODS)
def test_a_non_finite_gradient_is_refused_and_the_memory_untouched(generator, name, bad):
    c = METHODS[name]()
    c.setup(_params(), num_clients=2)
    _round(c, [_grads(generator) for _ in range(2)])
    before = _over_the_wire(c.state_dict())
    grads = _grads(generator)
    grads[1][3] = bad
    with pytest.raises(ValueError, match=r"grads\[1\] is not finite"):
        c.encode(0, grads)
    assert _identical(c.state_dict(), before)


@pytest.mark.parametrize("name", METHODS)
def test_a_finite_gradient_whose_norm_overflows_is_accepted(generator, name):
    """The fused check's norm of entries 1e200 is inf in float64; the entries are finite, so the
    gradient is encoded (only NaN or inf entries are refused), and a later NaN still is refused."""
    c = METHODS[name]()
    c.setup(_params(), num_clients=2)
    grads = [torch.full_like(g, 1e200) for g in _grads(generator)]
    assert not bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())  # the fast check fails
    c.encode(0, grads)
    grads[2][0] = float("nan")
    with pytest.raises(ValueError, match=r"grads\[2\] is not finite"):
        c.encode(1, grads)


def test_the_finite_check_takes_parameters_of_several_dtypes(generator):
    params = [torch.zeros(4, 3), torch.zeros(3, dtype=torch.float64)]
    c = ZSGDCompressor()
    c.setup(params, num_clients=1)
    assert [b.dtype for b in c.encode(0, [torch.ones(4, 3), torch.ones(3, dtype=torch.float64)])] == [
        torch.float32,
        torch.float64,
    ]
    with pytest.raises(ValueError, match=r"grads\[1\] is not finite"):
        c.encode(0, [torch.ones(4, 3), torch.tensor([1.0, float("inf"), 0.0], dtype=torch.float64)])


@pytest.mark.parametrize("name", METHODS)
def test_params_may_be_any_iterable_such_as_model_parameters(generator, name):
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 2))
    c = METHODS[name]()
    c.setup(model.parameters(), num_clients=2)
    client, server = c.make_client(iter(list(model.parameters())), 1), c.make_server(model.parameters())
    grads = [torch.randn(p.shape, generator=generator) for p in model.parameters()]
    blocks = client.encode(grads, server.broadcast())
    assert _identical(blocks, c.encode(1, grads))
    assert [g.shape for g in server.decode(blocks)] == [p.shape for p in model.parameters()]


@pytest.mark.parametrize(
    "params, error, message",
    [
        ([torch.zeros(3), torch.zeros(0, 4)], ValueError, r"params\[1\] has no entries"),
        ([torch.zeros(3, dtype=torch.int64)], TypeError, r"params\[0\] has dtype torch.int64"),
        ([torch.zeros(3, dtype=torch.bool)], TypeError, r"params\[0\] has dtype torch.bool"),
        ([], ValueError, r"params is empty"),
        (torch.zeros(3), TypeError, r"params must be an iterable of tensors"),
        ([torch.zeros(3), [0.0]], TypeError, r"params\[1\] must be a tensor"),
    ],
)
@pytest.mark.parametrize("name", METHODS)
def test_params_no_compressor_can_work_on_are_refused(name, params, error, message):
    c = METHODS[name]()
    with pytest.raises(error, match=message):
        c.setup(params, num_clients=1)
    with pytest.raises(error, match=message):
        c.make_client(params, 0)
    with pytest.raises(error, match=message):
        c.make_server(params)


@pytest.mark.parametrize("name", METHODS)
def test_a_client_index_out_of_range_is_refused(generator, name):
    c = METHODS[name]()
    c.setup(_params(), num_clients=2)
    for bad in (2, -1):
        with pytest.raises(ValueError, match=rf"client = {bad} is out of range"):
            c.encode(bad, _grads(generator))
        with pytest.raises(ValueError, match=rf"client = {bad} is out of range"):
            c.undelivered(bad, [torch.zeros(n, dtype=F64) for n in c.server.block_sizes()])
    with pytest.raises(TypeError, match="client must be an integer"):
        c.encode(1.0, _grads(generator))
    with pytest.raises(ValueError, match=r"index = -1 is out of range"):
        c.make_client(_params(), -1)
    with pytest.raises(ValueError, match="num_clients"):
        c.setup(_params(), num_clients=0)


@pytest.mark.parametrize("name", METHODS)
def test_decode_refuses_blocks_of_the_wrong_number_or_sizes(generator, name):
    c = METHODS[name]()
    c.setup(_params(), num_clients=1)
    blocks = c.encode(0, _grads(generator))
    for bad in (blocks[:-1], [*blocks, blocks[0]], [blocks[0][:-1], *blocks[1:]], blocks[0]):
        with pytest.raises((ValueError, TypeError), match="blocks"):
            c.decode(bad)
    with pytest.raises(ValueError, match="noise_var"):
        c.decode(blocks, noise_var=[0.0])
    assert len(c.decode(blocks)) == 3  # the refusals changed nothing


@pytest.mark.parametrize("name, key", [("randomk", "supports"), ("sketch", "buckets"), ("sketch", "signs")])
def test_encode_refuses_a_shared_without_what_the_client_needs(generator, name, key):
    c = METHODS[name]()
    c.setup(_params(), num_clients=1)
    client, shared = c.clients[0], c.server.broadcast()
    before = client.state_dict()
    for bad in (None, {}, {**shared, key: shared[key][:-1]}, {**shared, key: "nothing"}):
        with pytest.raises(ValueError, match=rf"shared must be the server's broadcast\(\).*{key!r}"):
            client.encode(_grads(generator), bad)
    wrong = {**shared, key: [shared[key][0][:-1], *shared[key][1:]]}  # one entry short
    with pytest.raises(ValueError, match=rf"shared\[{key!r}\]\[0\] is"):
        client.encode(_grads(generator), wrong)
    assert _identical(client.state_dict(), before)


# ------------------------------------------------------------ no aliasing of the caller's tensors
@pytest.mark.parametrize("name", [*METHODS, "randomk-no-ef", "signum-no-momentum"])
def test_reused_grad_buffers_give_what_fresh_clones_give(generator, name):
    """A training loop that overwrites the same ``.grad``-like tensors for each client (and then
    scribbles over the blocks it sent and the blocks it decoded) gets, bit for bit, what a loop
    encoding fresh clones gets: nothing kept or returned aliases the caller's tensors."""
    make = {
        **METHODS,
        "randomk-no-ef": lambda: RandomKCompressor(0.3, error_feedback=False, seed=3),
        "signum-no-momentum": lambda: SignumCompressor(),
    }[name]
    reused, fresh = make(), make()
    reused.setup(_params(), num_clients=3)
    fresh.setup(_params(), num_clients=3)
    buffers = [torch.zeros(s, dtype=F64) for s in SHAPES]
    got, expected = [], []
    for _ in range(3):
        grads = [_grads(generator) for _ in range(3)]
        blocks, reference = [], []
        for k in range(3):
            for buffer, g in zip(buffers, grads[k]):
                buffer.copy_(g)
            blocks.append(reused.encode(k, buffers))
            reference.append(fresh.encode(k, [g.clone() for g in grads[k]]))
        received = _mean(blocks)
        decoded = reused.decode(received)
        got.append(_over_the_wire([blocks, decoded]))  # a copy of what it returned, now
        expected.append([reference, fresh.decode(_mean(reference))])
        for t in [*received, *(b for client in blocks for b in client)]:
            t.fill_(float("nan"))  # the caller reuses its block buffers too
        for buffer in buffers:
            buffer.fill_(float("nan"))
        got[-1].append(_over_the_wire(decoded))  # unchanged by the scribbling
        expected[-1].append(expected[-1][1])
    assert _identical(got, expected)
    assert _identical(reused.state_dict(), fresh.state_dict())


# ---------------------------------------------------------------- separate sides, one façade
@pytest.mark.parametrize("name", METHODS)
def test_separate_sides_equal_the_facade(generator, name):
    """K clients, each made on its own (its own method object, as in its own process) and given only
    the server's broadcast after a serialization round trip, and one server give the façade's blocks
    and decoded gradients bit for bit; the sides' states, sent over the wire into new sides,
    continue bit-identically."""
    params = _params()
    facade = METHODS[name]()
    facade.setup(params, num_clients=3)
    server = METHODS[name]().make_server(params)
    clients = [METHODS[name]().make_client(params, k) for k in range(3)]
    restored = None
    for t in range(5):
        grads = [_grads(generator) for _ in range(3)]
        sides = [(server, clients)] if restored is None else [(server, clients), restored]
        results = []
        for srv, cls in sides:
            shared = _over_the_wire(srv.broadcast())
            blocks = [client.encode(_over_the_wire(g), shared) for client, g in zip(cls, grads)]
            results.append([blocks, srv.decode(_mean(blocks), noise_var=[1e-4] * 3)])
        blocks = [facade.encode(k, g) for k, g in enumerate(grads)]
        reference = [blocks, facade.decode(_mean(blocks), noise_var=[1e-4] * 3)]
        assert all(_identical(r, reference) for r in results), t
        assert _identical([c.state_dict() for c in clients], list(facade.state_dict()["clients"].values()))
        assert _identical(server.state_dict(), facade.state_dict()["server"])
        if t == 1:  # move every side into a new one, through the wire
            new_server = METHODS[name]().make_server(params)
            new_server.load_state_dict(_over_the_wire(server.state_dict()))
            new_clients = [METHODS[name]().make_client(params, k) for k in range(3)]
            for new, old in zip(new_clients, clients):
                new.load_state_dict(_over_the_wire(old.state_dict()))
            restored = (new_server, new_clients)


def test_broadcasts_hold_the_rounds_objects_only():
    params = _params()
    sizes = [math.floor(0.3 * math.prod(s)) for s in SHAPES]
    rk = RandomKCompressor(0.3).make_server(params).broadcast()
    assert set(rk) == {"supports"} and [s.shape for s in rk["supports"]] == [torch.Size([n]) for n in sizes]
    cs = CountSketchCompressor(0.3).make_server(params).broadcast()
    assert set(cs) == {"buckets", "signs"}
    assert [s.numel() for s in cs["buckets"]] == [math.prod(s) for s in SHAPES]
    assert all(s.dtype == torch.int8 and set(s.tolist()) <= {-1, 1} for s in cs["signs"])
    assert SignumCompressor().make_server(params).broadcast() == {}
    assert ADSGDCompressor().make_server(params).broadcast() == {}
    assert numeric(SignumCompressor(0.5).make_server(params).state_dict()) == {}


# ------------------------------------------------------------------------------- undelivered
@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomKCompressor(0.3, seed=1),
        lambda: RandomKCompressor(0.3, unbiased=True, seed=1),
        lambda: CountSketchCompressor(0.4, error_feedback=True, seed=1),
        lambda: ADSGDCompressor(0.25, seed=1),
    ],
)
def test_an_undelivered_message_stays_in_the_error_feedback_memory(generator, make):
    """After undelivered the memory is exactly v = g + e, the vector the client meant to send (round
    0: every block unheard), or, for the unheard blocks only, with the heard ones given as zeros (as
    :func:`laser.transmit_blocks` does; round 2); a delivered client's memory is the usual residual."""
    c, twin = make(), make()
    c.setup(_params(), num_clients=2)
    twin.setup(_params(), num_clients=2)
    for t in range(4):
        blocks = []
        for k in range(2):
            grads = _grads(generator)
            memory = c.clients[k].memory
            v = [g.reshape(-1) if m is None else g.reshape(-1) + m for g, m in zip(grads, memory)]
            blocks.append(c.encode(k, grads))
            twin.encode(k, grads)
            if k == 1 and t == 0:  # client 1 silenced: nothing heard
                residual = c.clients[k].memory  # reading the memory (or saving it) keeps the message pending
                assert not any(torch.equal(m, w) for m, w in zip(residual, v))
                c.undelivered(k, blocks[k])
                assert all(torch.equal(m, w) for m, w in zip(c.clients[k].memory, v, strict=True))
                with pytest.raises(ValueError, match="no message pending"):
                    c.undelivered(k, blocks[k])  # once
            if k == 1 and t == 2:  # blocks 0 and 2 heard, block 1 not
                residual = c.clients[k].memory
                unheard = [torch.zeros_like(b) if i != 1 else b for i, b in enumerate(blocks[k])]
                c.undelivered(k, unheard)
                expected = [residual[0], v[1], residual[2]]
                assert all(torch.equal(m, w) for m, w in zip(c.clients[k].memory, expected, strict=True))
                with pytest.raises(ValueError, match=r"blocks\[1\]"):
                    c.undelivered(k, unheard)  # block 1 was given back already
        c.decode(_mean(blocks))
        twin.decode(_mean(blocks))
    assert _identical(c.state_dict()["clients"][0], twin.state_dict()["clients"][0])  # client 0: unaffected
    assert not _identical(c.state_dict()["clients"][1], twin.state_dict()["clients"][1])


@pytest.mark.parametrize(
    "make",
    [lambda: RandomKCompressor(0.3, unbiased=True), lambda: CountSketchCompressor(0.4, error_feedback=True)],
)
def test_undelivered_takes_any_block_back_linearly(generator, make):
    """Random-K and the sketch are linear: a block b that is not the one sent adds expand(b)."""
    c = make()
    c.setup(_params(), num_clients=1)
    _round(c, [_grads(generator)])
    blocks = c.encode(0, _grads(generator))
    residual = c.clients[0].memory
    half = [b / 2 for b in blocks]
    c.undelivered(0, half)
    for i, (m, r, b) in enumerate(zip(c.clients[0].memory, residual, half)):
        assert_close(m, r + _own_message(c, b, i), rtol=0, atol=1e-12)


def test_undelivered_refuses_part_of_a_projected_message(generator):
    """A-DSGD cannot take back A m in part: a block that is neither the one sent nor zeros is refused."""
    c = ADSGDCompressor(0.25)
    c.setup(_params(), num_clients=1)
    blocks = c.encode(0, _grads(generator))
    before = _over_the_wire(c.state_dict())
    with pytest.raises(ValueError, match=r"blocks\[0\] is neither the block this client sent"):
        c.undelivered(0, [blocks[0] / 2, *blocks[1:]])
    assert _identical(c.state_dict(), before)
    c.undelivered(0, blocks)  # the whole message is fine


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomKCompressor(0.3, error_feedback=False),
        lambda: CountSketchCompressor(0.4),
        lambda: SignumCompressor(momentum=0.5),
        lambda: SignumCompressor(),
    ],
)
def test_without_error_feedback_an_undelivered_message_is_lost(generator, make):
    """Nothing to undo: no memory (Random-K, sketch without error feedback), or Signum, whose momentum
    averages the client's gradients whatever was sent and whose signs leave no residual."""
    c = make()
    c.setup(_params(), num_clients=1)
    for _ in range(2):
        blocks = c.encode(0, _grads(generator))
        before = _over_the_wire(c.state_dict())
        c.undelivered(0, blocks)
        c.undelivered(0, blocks)
        assert _identical(c.state_dict(), before)
        c.decode(blocks)


@pytest.mark.parametrize("name", METHODS)
def test_undelivered_refuses_blocks_that_are_not_the_clients(generator, name):
    c = METHODS[name]()
    c.setup(_params(), num_clients=1)
    blocks = c.encode(0, _grads(generator))
    before = _over_the_wire(c.state_dict())
    for bad in (blocks[:-1], [blocks[0][:-1], *blocks[1:]]):
        with pytest.raises(ValueError, match="blocks are not this client's"):
            c.undelivered(0, bad)
    assert _identical(c.state_dict(), before)
