"""Vectorised clients (federated/vectorized.py): one vmap call equals the per-client loop."""

import pytest
import torch
from torch import nn

from federated.config import ModelConfig
from federated.data.tasks import cross_entropy
from federated.models import build_model
from federated.models.gpt import GPT
from federated.models.resnet import ResNet18
from federated.vectorized import VectorizedClients, stack_batches, vmap_supported

K, B = 5, 16
FEATURES, CLASSES = 40, 10  # MNIST-1D: 40-sample signals, 10 classes
VOCAB, CONTEXT = 32, 8

# the SDPA kernel has no batching rule yet on CPU: vmap falls back to a (correct) loop and warns
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")


def _model(name: str) -> nn.Module:
    if name == "gpt":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return GPT(vocab_size=VOCAB, context=CONTEXT, layers=2, heads=2, width=16, dropout=0.0)
    width = {"cnn": 8, "mlp": 32, "linear": 0}[name]
    config = ModelConfig(name=name, width=width) if width else ModelConfig(name=name)
    return build_model(config, {"num_features": FEATURES, "num_classes": CLASSES}, seed=0)


def _batches(name: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """K clients' different random batches, stacked: xs [K, B, ...], ys [K, B, ...]."""
    if name == "gpt":
        xs = torch.randint(0, VOCAB, (K, B, CONTEXT), generator=generator)
        return xs, torch.randint(0, VOCAB, (K, B, CONTEXT), generator=generator)
    return torch.randn(K, B, FEATURES, generator=generator), torch.randint(
        0, CLASSES, (K, B), generator=generator
    )


def _loop(
    model: nn.Module, xs: torch.Tensor, ys: torch.Tensor
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """The reference: each client's loss and gradient, one autograd pass per client."""
    params = list(model.parameters())
    losses, grads = [], []
    for x, y in zip(xs, ys):
        loss = cross_entropy(model(x), y)
        grads.append(list(torch.autograd.grad(loss, params)))
        losses.append(loss.detach())
    return torch.stack(losses), grads


def _assert_matches(model, losses, grads, ref_losses, ref_grads):
    params = list(model.parameters())
    assert losses.shape == (K,)
    torch.testing.assert_close(losses, ref_losses, atol=1e-6, rtol=1e-5)
    assert len(grads) == len(params)
    for i, (g, p) in enumerate(zip(grads, params)):
        assert g.shape == (K, *p.shape)
        assert g.dtype == p.dtype
        for k in range(K):
            torch.testing.assert_close(g[k], ref_grads[k][i], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [None, 2], ids=["all", "chunk2"])
@pytest.mark.parametrize("name", ["cnn", "mlp", "linear", "gpt"])
def test_vmapped_clients_equal_the_loop(name, chunk_size, generator):
    model = _model(name)
    assert vmap_supported(model) == (True, "")
    xs, ys = _batches(name, generator)
    losses, grads = VectorizedClients(model, cross_entropy, chunk_size=chunk_size)(xs, ys)
    ref_losses, ref_grads = _loop(model, xs, ys)
    _assert_matches(model, losses, grads, ref_losses, ref_grads)
    # the clients' batches differ, so their gradients do too (not K copies of one)
    assert not torch.allclose(grads[0][0], grads[0][1])
    assert all(not g.requires_grad for g in grads) and not losses.requires_grad


@pytest.mark.parametrize("name", ["cnn", "gpt"])
def test_accumulate_sums_gradients_and_averages_losses(name, generator):
    model = _model(name)
    batches = [_batches(name, generator) for _ in range(3)]
    losses, grads = VectorizedClients(model, cross_entropy).accumulate(batches)
    ref_total, ref_grads = None, None
    for xs, ys in batches:  # client_gradient's semantics: gradients summed, loss = total / steps
        step_losses, step_grads = _loop(model, xs, ys)
        ref_total = step_losses if ref_total is None else ref_total + step_losses
        ref_grads = (
            step_grads
            if ref_grads is None
            else [[a + b for a, b in zip(ga, gb)] for ga, gb in zip(ref_grads, step_grads)]
        )
    _assert_matches(model, losses, grads, ref_total / 3, ref_grads)


def test_parameters_are_read_at_call_time(generator):
    model = _model("mlp")
    clients = VectorizedClients(model, cross_entropy)
    xs, ys = _batches("mlp", generator)
    before, _ = clients(xs, ys)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for p, g in zip(model.parameters(), clients(xs, ys)[1]):
        p.grad = g.mean(0)
    optimizer.step()  # the server steps the model in place between rounds
    losses, grads = clients(xs, ys)
    assert not torch.allclose(losses, before)
    _assert_matches(model, losses, grads, *_loop(model, xs, ys))


def test_gradients_have_the_models_dtype(generator):
    model = _model("mlp").double()
    xs, ys = _batches("mlp", generator)
    losses, grads = VectorizedClients(model, cross_entropy)(xs.double(), ys)
    assert all(g.dtype == torch.float64 for g in grads)
    ref_losses, ref_grads = _loop(model, xs.double(), ys)
    torch.testing.assert_close(losses, ref_losses, atol=1e-6, rtol=1e-5)  # cross_entropy is float32
    for i, g in enumerate(grads):
        for k in range(K):
            torch.testing.assert_close(g[k], ref_grads[k][i], atol=1e-12, rtol=1e-10)


def test_batchnorm_in_training_mode_is_not_supported(generator):
    model = ResNet18(num_classes=10, width=4)
    supported, reason = vmap_supported(model)
    assert not supported and "BatchNorm" in reason
    with pytest.raises(ValueError, match="BatchNorm"):
        VectorizedClients(model, cross_entropy)(
            torch.zeros(2, 2, 3, 32, 32), torch.zeros(2, 2, dtype=torch.long)
        )


def test_batchnorm_in_eval_mode_is_supported_and_equals_the_loop(generator):
    model = ResNet18(num_classes=10, width=4).eval()
    assert vmap_supported(model) == (True, "")
    xs = torch.randn(K, 2, 3, 32, 32, generator=generator)
    ys = torch.randint(0, 10, (K, 2), generator=generator)
    buffers = [b.clone() for b in model.buffers()]
    losses, grads = VectorizedClients(model, cross_entropy, chunk_size=3)(xs, ys)
    _assert_matches(model, losses, grads, *_loop(model, xs, ys))
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers()))


def test_dropout_is_not_supported_in_training_mode():
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Dropout(p=0.1), nn.Linear(16, CLASSES))
    supported, reason = vmap_supported(model)
    assert not supported and "dropout" in reason.lower()
    gpt = GPT(vocab_size=VOCAB, context=CONTEXT, layers=1, heads=2, width=16, dropout=0.2)
    supported, reason = vmap_supported(gpt)
    assert not supported and "dropout" in reason.lower()
    # in eval mode dropout is the identity, so both are supported
    assert vmap_supported(model.eval()) == (True, "")
    assert vmap_supported(gpt.eval()) == (True, "")


def test_the_cnn_is_supported_and_a_model_without_parameters_is_not():
    assert vmap_supported(_model("cnn")) == (True, "")
    supported, reason = vmap_supported(nn.ReLU())
    assert not supported and "parameters" in reason


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="chunk_size"):
        VectorizedClients(nn.Linear(2, 2), cross_entropy, chunk_size=0)
    clients = VectorizedClients(nn.Linear(2, 2), cross_entropy)
    with pytest.raises(ValueError, match="clients"):
        clients(torch.zeros(3, 4, 2), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="micro-batch"):
        clients.accumulate([])


# ------------------------------------------------------------------- local training, vmapped
def _loop_local(model, steps, client, make_optimizer):
    """Client ``client``'s H steps with torch.optim from the model's parameters, as the loop runs
    them (gradients summed over a step's micro-batches); its change x^0 - x^H and mean loss."""
    import copy

    from federated.data.tasks import cross_entropy

    own = copy.deepcopy(model)
    start = [p.detach().clone() for p in own.parameters()]
    optimizer = make_optimizer(own.parameters())
    losses = []
    for micro in steps:
        optimizer.zero_grad()
        for xs, ys in micro:
            loss = cross_entropy(own(xs[client]), ys[client])
            loss.backward()
            losses.append(loss.detach())
        optimizer.step()
    return torch.stack(losses).mean(), [s - p.detach() for s, p in zip(start, own.parameters())]


@pytest.mark.parametrize(
    "optimizer, options, make",
    [
        ("sgd", {"lr": 0.1}, lambda ps: torch.optim.SGD(ps, lr=0.1)),
        ("sgd", {"lr": 0.05, "momentum": 0.9}, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
        ("adam", {"lr": 0.01}, lambda ps: torch.optim.Adam(ps, lr=0.01)),
    ],
    ids=["sgd", "sgd-momentum", "adam"],
)
def test_vmapped_local_steps_are_the_loops_to_1e_5_of_each_parameters_norm(optimizer, options, make):
    """H = 5 float32 steps of 6 clients, 2 micro-batches a step, on a small CNN: each client's final
    parameters x^H (= x^0 - change) within 1e-5 of the norm of each parameter tensor of the loop's,
    and its mean loss within 1e-5 (relative)."""
    from federated.data.tasks import cross_entropy

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 8, 5), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10)
    )
    generator = torch.Generator().manual_seed(1)
    steps = [
        [
            (torch.randn(6, 16, 40, generator=generator), torch.randint(0, 10, (6, 16), generator=generator))
            for _ in range(2)
        ]
        for _ in range(5)
    ]
    losses, changes = VectorizedClients(model, cross_entropy).local_train(
        steps, optimizer=optimizer, **options
    )
    start = [p.detach() for p in model.parameters()]
    for k in range(6):
        loss, change = _loop_local(model, steps, k, make)
        assert float(losses[k]) == pytest.approx(float(loss), rel=1e-5)
        for x0, c, d in zip(start, changes, change, strict=True):
            scale = float((x0 - d).norm())
            assert float(((x0 - c[k]) - (x0 - d)).norm()) <= 1e-5 * scale
        assert any(float(c[k].abs().max()) > 1e-4 for c in changes)  # it moved


def test_local_train_refuses_what_it_cannot_do():
    from federated.data.tasks import cross_entropy

    clients = VectorizedClients(nn.Linear(4, 3), cross_entropy)
    batch = (torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8)))
    with pytest.raises(ValueError, match="at least one step"):
        clients.local_train([], lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        clients.local_train([[batch]], lr=0.1, optimizer="rmsprop")
    dropout = VectorizedClients(nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)), cross_entropy)
    with pytest.raises(ValueError, match="local training of this model cannot be vmapped.*Dropout"):
        dropout.local_train([[batch]], lr=0.1)


def test_a_ragged_micro_batch_runs_one_pass_per_shape_and_equals_each_clients_own(generator):
    """Clients whose batches differ in shape (non-IID shards at an epoch's short end): gradients and
    losses are each client's own, in the clients' order, for shared and for own parameters."""
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    sizes = [8, 3, 8, 5, 3]
    batch = [
        (torch.randn(b, 4, generator=generator), torch.randint(0, 3, (b,), generator=generator))
        for b in sizes
    ]
    assert isinstance(stack_batches(batch), list) and isinstance(stack_batches(batch[:1] * 2), tuple)
    clients = VectorizedClients(model, cross_entropy)
    losses, grads = clients.accumulate([batch, batch])  # two micro-batches, summed
    for k, (x, y) in enumerate(batch):
        loss = cross_entropy(model(x), y)
        own = torch.autograd.grad(loss, list(model.parameters()))
        assert losses[k] == pytest.approx(float(loss), rel=1e-6)
        for g, h in zip(grads, own):
            torch.testing.assert_close(g[k], 2 * h, rtol=1e-5, atol=1e-6)
    # local training: one SGD step from the model, each client on its own batch
    _, changes = clients.local_train([[batch]], lr=0.1)
    for k, (x, y) in enumerate(batch):
        own = torch.autograd.grad(cross_entropy(model(x), y), list(model.parameters()))
        for change, h in zip(changes, own):
            torch.testing.assert_close(change[k], 0.1 * h, rtol=1e-5, atol=1e-6)
