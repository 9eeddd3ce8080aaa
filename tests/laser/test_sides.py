"""Every compressor's client and server sides: separate objects (as in separate processes) equal the
one-object simulation bit for bit; nothing aliases the caller's tensors; misuse is refused at the
public call with an error naming the argument."""

import io

import pytest
import torch
from _identities import numeric

from channels import AWGNChannel
from laser import (
    ADSGDCompressor,
    CountSketchCompressor,
    LaserCompressor,
    NaturalCompressor,
    NaturalDitheringCompressor,
    QSGDCompressor,
    QSparseCompressor,
    RandomKCompressor,
    SignSGDCompressor,
    SignumCompressor,
    TopKCompressor,
    TopKDitheringCompressor,
    WarmUp,
    ZSGDCompressor,
    transmit_round,
)

F64 = torch.float64
METHODS = {
    "laser": lambda: LaserCompressor(rank=2),
    "laser_exponent": lambda: LaserCompressor(rank=2, exponent=1.0),
    "powersgd": lambda: LaserCompressor(rank=2, factors_per_round=2),
    "zsgd": ZSGDCompressor,
    "randomk": lambda: RandomKCompressor(0.3, seed=3),
    "sketch": lambda: CountSketchCompressor(0.3, error_feedback=True, seed=3),
    "signum": lambda: SignumCompressor(momentum=0.5),
    "adsgd": lambda: ADSGDCompressor(0.5, seed=3),
    "topk": lambda: TopKCompressor(0.3),
    "qsgd": lambda: QSGDCompressor(levels=4, seed=3),
    "natural": lambda: NaturalCompressor(seed=3),
    "natural_dithering": lambda: NaturalDitheringCompressor(seed=3),
    "topk_dithering": lambda: TopKDitheringCompressor(0.3, seed=3),
    "signsgd": lambda: SignSGDCompressor(momentum=0.5),
    "qsparse": lambda: QSparseCompressor(0.3, levels=2, seed=3),
    "qsparse_sign": lambda: QSparseCompressor(0.3, quantizer="sign"),
    "warmup_laser": lambda: WarmUp(LaserCompressor(rank=2), rounds=1),
}
NUM_CLIENTS = 3


def _params(dtype=F64):
    return [torch.zeros(6, 5, dtype=dtype), torch.zeros(4, dtype=dtype), torch.zeros(6, 5, dtype=dtype)]


def _rounds(generator, rounds=4):
    return [
        [
            [torch.randn(p.shape, generator=generator, dtype=F64) for p in _params()]
            for _ in range(NUM_CLIENTS)
        ]
        for _ in range(rounds)
    ]


def _mean(blocks):
    return [torch.stack(b).mean(0) for b in zip(*blocks)]


def _sent(obj):
    """What crosses a network: a torch.save / torch.load round trip (no shared tensor survives)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _facade_round(method, grads):
    blocks = [method.encode(k, g) for k, g in enumerate(grads)]
    out = method.decode(_mean(blocks))
    for p in range(1, method.server.passes if out is None else 1):
        blocks = [method.encode_pass(k, p) for k in range(len(grads))]
        out = method.decode(_mean(blocks))
    return out


@pytest.mark.parametrize("name", list(METHODS))
def test_separate_client_and_server_objects_equal_the_one_object_simulation(name, generator):
    """K client objects and one server, each fed only the server's broadcast sent through a
    serialisation round trip, give the one-object simulation's results bit for bit."""
    facade = METHODS[name]()
    facade.setup(_params(), NUM_CLIENTS)
    method = METHODS[name]()
    server = method.make_server(_params())
    clients = [method.make_client(_params(), k) for k in range(NUM_CLIENTS)]
    for grads in _rounds(generator):
        expected = _facade_round(facade, grads)
        blocks = [client.encode(g, _sent(server.broadcast())) for client, g in zip(clients, grads)]
        out = server.decode(_mean(blocks))
        p = 1
        while out is None:
            shared = _sent(server.broadcast())
            out = server.decode(_mean([client.encode_pass(p, shared) for client in clients]))
            p += 1
        for a, b in zip(out, expected, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(METHODS))
def test_each_side_continues_bit_identically_from_its_state(name, generator):
    rounds = _rounds(generator, rounds=5)
    a, b = METHODS[name](), METHODS[name]()
    a.setup(_params(), NUM_CLIENTS)
    b.setup(_params(), NUM_CLIENTS)
    for grads in rounds[:2]:
        _facade_round(a, grads)
    state = _sent(a.state_dict())
    b.load_state_dict(state)
    for grads in rounds[2:]:
        for x, y in zip(_facade_round(a, grads), _facade_round(b, grads), strict=True):
            assert torch.equal(x, y)


@pytest.mark.parametrize("name", list(METHODS))
def test_reusing_grad_buffers_gives_the_results_of_fresh_tensors(name, generator):
    """A loop that overwrites one set of gradient buffers for each client (``zero_grad(set_to_none=
    False)``) decodes exactly what the same loop with a fresh copy per client decodes."""
    reused, fresh = METHODS[name](), METHODS[name]()
    reused.setup(_params(), NUM_CLIENTS)
    fresh.setup(_params(), NUM_CLIENTS)
    buffers = [torch.zeros_like(p) for p in _params()]
    for grads in _rounds(generator, rounds=3):
        blocks = []
        for k, g in enumerate(grads):
            for buffer, value in zip(buffers, g):
                buffer.copy_(value)
            blocks.append(reused.encode(k, buffers))
        out_reused = reused.decode(_mean(blocks))
        p = 1
        while out_reused is None:
            out_reused = reused.decode(_mean([reused.encode_pass(k, p) for k in range(NUM_CLIENTS)]))
            p += 1
        out_fresh = _facade_round(fresh, [[t.clone() for t in g] for g in grads])
        for a, b in zip(out_reused, out_fresh, strict=True):
            assert torch.equal(a, b)


def test_zsgd_over_a_noiseless_channel_with_reused_buffers_is_the_true_mean(generator):
    method = ZSGDCompressor()
    params = _params()
    server, clients = method.make_server(params), [method.make_client(params, k) for k in range(4)]
    grads = [[torch.randn(p.shape, generator=generator, dtype=F64) for p in params] for _ in range(4)]
    buffers = [torch.zeros_like(p) for p in params]

    def reused():  # one set of .grad buffers, overwritten for each client
        for g in grads:
            for buffer, value in zip(buffers, g):
                buffer.copy_(value)
            yield buffers

    out = transmit_round(AWGNChannel(noise_var=0.0), server, clients, reused(), energy=1.0)
    for got, tensors in zip(out.gradient, zip(*grads)):
        torch.testing.assert_close(got, torch.stack(tensors).mean(0), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------- misuse
@pytest.mark.parametrize(
    "name", ["laser", "powersgd", "zsgd", "randomk", "sketch", "signum", "adsgd", "topk", "qsgd"]
)
def test_misuse_is_refused_naming_the_argument(name, generator):
    method = METHODS[name]()
    with pytest.raises(RuntimeError, match="setup"):
        method.encode(0, _params())
    method.setup((p for p in _params()), NUM_CLIENTS)  # any iterable, e.g. model.parameters()
    grads = [torch.ones_like(p) for p in _params()]
    with pytest.raises(ValueError, match="client = -1"):
        method.encode(-1, grads)
    with pytest.raises(ValueError, match=f"client = {NUM_CLIENTS}"):
        method.encode(NUM_CLIENTS, grads)
    with pytest.raises(TypeError, match="client must be an integer"):
        method.encode(0.5, grads)
    with pytest.raises(ValueError, match="grads has 2 tensors"):
        method.encode(0, grads[:2])
    with pytest.raises(ValueError, match=r"grads\[1\] has shape"):
        method.encode(0, [grads[0], torch.ones(5, dtype=F64), grads[2]])
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype torch.float32"):
        method.encode(0, [grads[0].float(), grads[1], grads[2]])
    state = _sent(method.state_dict())
    with pytest.raises(ValueError, match=r"grads\[2\] is not finite"):
        method.encode(1, [grads[0], grads[1], torch.full((6, 5), float("nan"), dtype=F64)])
    assert _same(method.state_dict(), state)  # nothing was kept of the refused gradient
    blocks = method.encode(0, grads)
    with pytest.raises(ValueError, match="blocks do not match"):
        method.decode(blocks[:-1])
    with pytest.raises(ValueError, match="blocks do not match"):
        method.decode([torch.ones(b.numel() + 1, dtype=F64) for b in blocks])


def _same(a, b):
    a, b = numeric(a), numeric(b)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", ["laser", "zsgd", "randomk", "adsgd", "topk"])
def test_parameters_that_cannot_be_compressed_are_refused(name):
    method = METHODS[name]()
    with pytest.raises(ValueError, match=r"params\[1\] has no entries"):
        method.make_client([torch.zeros(3, 2), torch.zeros(0)])
    with pytest.raises(TypeError, match=r"params\[0\] has dtype torch.int64"):
        method.make_server([torch.zeros(3, 2, dtype=torch.long)])
    with pytest.raises(TypeError, match="params must be an iterable of tensors"):
        method.make_server(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="num_clients = 0"):
        method.setup([torch.zeros(3, 2)], 0)


def test_lasers_linear_algebra_refuses_half_precision():
    with pytest.raises(
        TypeError, match=r"params\[0\] has dtype torch.float16; this compressor needs float32"
    ):
        LaserCompressor().make_server([torch.zeros(8, 8, dtype=torch.float16)])


def test_a_client_needs_the_servers_broadcast():
    params = _params()
    client = LaserCompressor(rank=2).make_client(params)
    with pytest.raises(ValueError, match="shared must be the server's broadcast"):
        client.encode([torch.ones_like(p) for p in params], {})


def test_warm_up_sends_the_whole_gradient_first_then_the_method(generator):
    params = _params()
    method = WarmUp(LaserCompressor(rank=2), rounds=2)
    server, client = method.make_server(params), method.make_client(params)
    sizes = []
    for _ in range(4):
        blocks = client.encode(
            [torch.randn(p.shape, generator=generator, dtype=F64) for p in params], server.broadcast()
        )
        sizes.append([b.numel() for b in blocks])
        server.decode(blocks)
    assert sizes[:2] == [[30, 4, 30]] * 2 and sizes[2] != sizes[1]
    with pytest.raises(TypeError, match="analog"):
        WarmUp(TopKCompressor(0.1), rounds=1)


def test_reprs_show_the_hyperparameters():
    assert repr(LaserCompressor(rank=8)) == (
        "LaserCompressor(rank=8, min_compression_rate=2.0, factors_per_round=1, seed=0)"
    )
    assert repr(WarmUp(ZSGDCompressor(), 3)) == "WarmUp(ZSGDCompressor(), rounds=3)"
    assert "rank" not in repr(ZSGDCompressor())
