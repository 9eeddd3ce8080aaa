"""The adaptive server optimizers (Reddi et al. 2021, Algorithm 2) against transcriptions of the
algorithm, and of Flower 1.42's FedAdam for the bias-corrected variant, in float64."""

import io

import numpy as np
import pytest
import torch
from torch import nn

from federated.config import ConfigError, OptimizerConfig, load_config
from federated.optim import FedOpt, build_optimizer, build_scheduler

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]
# the pseudo-gradients' scale per round: it changes so that Yogi's sign(v - Delta^2) takes both signs
SCALES = [1.0, 1e-2, 3.0, 1e-3, 0.5, 2.0]
TOL = {"rtol": 1e-12, "atol": 1e-12}


class Params(nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.values = nn.ParameterList(
            [nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64)) for shape in SHAPES]
        )


def pseudo_gradients(rounds: int, seed: int = 1) -> list[list[torch.Tensor]]:
    """Per round, one random g = x - mean_k x_k per parameter."""
    generator = torch.Generator().manual_seed(seed)
    return [
        [
            SCALES[t % len(SCALES)] * torch.randn(shape, generator=generator, dtype=torch.float64)
            for shape in SHAPES
        ]
        for t in range(rounds)
    ]


def server_round(model: nn.Module, optimizer: torch.optim.Optimizer, grads: list[torch.Tensor]) -> None:
    """As the simulation: g into p.grad, one step, grads cleared."""
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def config(name: str, **kwargs) -> OptimizerConfig:
    defaults = {"lr": 0.3, "betas": (0.9, 0.99), "tau": 1e-3, "weight_decay": 0.0}
    return OptimizerConfig(name=name, **{**defaults, **kwargs})


def run(cfg: OptimizerConfig, grads: list[list[torch.Tensor]], rounds_total: int | None = None) -> nn.Module:
    model = Params()
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, rounds_total or len(grads))
    for g in grads:
        server_round(model, optimizer, g)
        if scheduler is not None:
            scheduler.step()
    return model


def reddi(name, x0, grads, lrs, beta1, beta2, tau, signs=None):
    """Algorithm 2 of Reddi et al. in numpy: Delta_t = -g_t, m_{-1} = 0, v_{-1} = tau^2 (Yogi's signs
    of v_{t-1} - Delta_t^2 are collected into ``signs`` if given)."""
    x = [a.copy() for a in x0]
    m = [np.zeros_like(a) for a in x0]
    v = [np.full_like(a, tau**2) for a in x0]
    for lr, round_grads in zip(lrs, grads):
        for i, g in enumerate(round_grads):
            delta = -g
            m[i] = beta1 * m[i] + (1 - beta1) * delta
            if name == "fedadagrad":
                v[i] = v[i] + delta**2
            elif name == "fedadam":
                v[i] = beta2 * v[i] + (1 - beta2) * delta**2
            else:
                sign = np.sign(v[i] - delta**2)
                if signs is not None:
                    signs.update(sign.ravel().tolist())
                v[i] = v[i] - (1 - beta2) * delta**2 * sign
            x[i] = x[i] + lr * m[i] / (np.sqrt(v[i]) + tau)
    return x


def flower_fedadam(x0, grads, etas, beta_1, beta_2, tau):
    """Flower 1.42's FedAdam (flwr.serverapp.strategy.FedAdam / FedOpt) arithmetic in numpy: the
    clients' aggregate is x - g; server_round counts from 1."""
    current_arrays = {str(i): a.copy() for i, a in enumerate(x0)}
    m_t = v_t = None
    for server_round, (eta, round_grads) in enumerate(zip(etas, grads), start=1):
        aggregated = {k: x - round_grads[int(k)] for k, x in current_arrays.items()}
        delta_t = {k: x - current_arrays[k] for k, x in aggregated.items()}
        if not m_t:
            m_t = {k: np.zeros_like(v) for k, v in aggregated.items()}
        m_t = {k: beta_1 * v + (1 - beta_1) * delta_t[k] for k, v in m_t.items()}
        if not v_t:
            v_t = {k: np.zeros_like(v) for k, v in aggregated.items()}
        v_t = {k: beta_2 * v + (1 - beta_2) * (delta_t[k] ** 2) for k, v in v_t.items()}
        eta_norm = (
            eta
            * np.sqrt(1 - np.power(beta_2, server_round + 1.0))
            / (1 - np.power(beta_1, server_round + 1.0))
        )
        current_arrays = {
            k: x + eta_norm * m_t[k] / (np.sqrt(v_t[k]) + tau) for k, x in current_arrays.items()
        }
    return [current_arrays[str(i)] for i in range(len(x0))]


def numpy_of(model: nn.Module) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in model.parameters()]


def assert_equal_to(model: nn.Module, expected: list[np.ndarray]) -> None:
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach(), torch.from_numpy(np.asarray(e, dtype=np.float64)), **TOL)


@pytest.mark.parametrize("name", ["fedadam", "fedyogi", "fedadagrad"])
@pytest.mark.parametrize("rounds", [1, 2, 6])
@pytest.mark.parametrize("betas", [(0.9, 0.99), (0.0, 0.5)])
def test_algorithm_2(name, rounds, betas):
    grads = pseudo_gradients(rounds)
    model = run(config(name, betas=betas), grads)
    x0 = numpy_of(Params())
    expected = reddi(name, x0, [[g.numpy() for g in gs] for gs in grads], [0.3] * rounds, *betas, 1e-3)
    assert_equal_to(model, expected)


def test_the_yogi_test_takes_both_of_its_branches():
    grads = [[g.numpy() for g in gs] for gs in pseudo_gradients(6)]
    signs: set[float] = set()
    reddi("fedyogi", numpy_of(Params()), grads, [0.3] * 6, 0.9, 0.99, 1e-3, signs)
    assert {-1.0, 1.0} <= signs


def test_fedadam_with_bias_correction_is_flowers_fedadam():
    grads = pseudo_gradients(6)
    model = run(config("fedadam", bias_correction=True, betas=(0.9, 0.99)), grads)
    expected = flower_fedadam(
        numpy_of(Params()), [[g.numpy() for g in gs] for gs in grads], [0.3] * 6, 0.9, 0.99, 1e-3
    )
    assert_equal_to(model, expected)
    # and differs from Algorithm 2 (v_{-1} = tau^2, no correction)
    reddi_x = reddi(
        "fedadam", numpy_of(Params()), [[g.numpy() for g in gs] for gs in grads], [0.3] * 6, 0.9, 0.99, 1e-3
    )
    assert not np.allclose(expected[0], reddi_x[0], rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "name, bias_correction",
    [("fedadam", False), ("fedyogi", False), ("fedadagrad", False), ("fedadam", True)],
)
def test_a_schedule_scales_the_step(name, bias_correction):
    grads = pseudo_gradients(4)
    cfg = config(name, bias_correction=bias_correction)
    scheduled = config(
        name, bias_correction=bias_correction, schedule="multistep", milestones=(2,), gamma=0.1
    )
    lrs = [0.3, 0.3, 0.03, 0.03]
    grads_np = [[g.numpy() for g in gs] for gs in grads]
    x0 = numpy_of(Params())
    expected = (
        flower_fedadam(x0, grads_np, lrs, 0.9, 0.99, 1e-3)
        if bias_correction
        else reddi(name, x0, grads_np, lrs, 0.9, 0.99, 1e-3)
    )
    assert_equal_to(run(scheduled, grads), expected)
    # the moments do not depend on lr: the third round's step is a tenth of the unscheduled one
    before = run(cfg, grads[:2])
    for p, q in zip(before.parameters(), run(scheduled, grads[:2], rounds_total=4).parameters()):
        assert torch.equal(p, q)
    constant, reduced = run(cfg, grads[:3]), run(scheduled, grads[:3], rounds_total=4)
    for p0, p, q in zip(before.parameters(), constant.parameters(), reduced.parameters()):
        torch.testing.assert_close((q - p0).detach(), 0.1 * (p - p0).detach(), **TOL)


@pytest.mark.parametrize(
    "name, bias_correction",
    [("fedadam", False), ("fedyogi", False), ("fedadagrad", False), ("fedadam", True)],
)
def test_state_dict_round_trip_resumes_bit_identically(name, bias_correction):
    cfg = config(name, bias_correction=bias_correction)
    grads = pseudo_gradients(4)
    straight = Params()
    uninterrupted = build_optimizer(cfg, straight)
    for g in grads:
        server_round(straight, uninterrupted, g)

    first = Params()
    optimizer = build_optimizer(cfg, first)
    for g in grads[:2]:
        server_round(first, optimizer, g)
    buffer = io.BytesIO()  # through torch.save / torch.load(weights_only=True), as a checkpoint
    torch.save({"model": first.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = Params(seed=123)  # other values, overwritten by the checkpoint
    resumed.load_state_dict(saved["model"])
    fresh = build_optimizer(cfg, resumed)
    fresh.load_state_dict(saved["optimizer"])
    for g in grads[2:]:
        server_round(resumed, fresh, g)

    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    states = [uninterrupted.state[p] for p in straight.parameters()]
    for p, state in zip(resumed.parameters(), states):
        assert fresh.state[p]["step"] == state["step"] == 4
        assert torch.equal(fresh.state[p]["m"], state["m"]) and torch.equal(fresh.state[p]["v"], state["v"])


def test_build_optimizer_makes_fedopt_with_the_configs_hyperparameters():
    optimizer = build_optimizer(config("fedyogi", lr=0.7, betas=(0.8, 0.9), tau=0.01), Params())
    assert isinstance(optimizer, FedOpt) and optimizer.variant == "yogi" and not optimizer.bias_correction
    (group,) = optimizer.param_groups
    assert group["lr"] == 0.7 and group["betas"] == (0.8, 0.9) and group["tau"] == 0.01
    assert "weight_decay" not in group


def test_first_state_and_adagrad_ignores_beta2():
    grads = pseudo_gradients(3)
    a = run(config("fedadagrad", betas=(0.9, 0.1)), grads)
    b = run(config("fedadagrad", betas=(0.9, 0.99)), grads)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    model = Params()
    optimizer = build_optimizer(config("fedadam", tau=0.5), model)
    model.values[0].grad = torch.zeros(SHAPES[0], dtype=torch.float64)
    optimizer.step()  # only the parameter with a grad gets state
    assert len(optimizer.state) == 1
    state = optimizer.state[model.values[0]]
    assert torch.equal(state["v"], torch.full(SHAPES[0], 0.99 * 0.25, dtype=torch.float64))
    assert state["m"].dtype == torch.float64 and state["step"] == 1


def test_sgd_with_lr_1_and_no_momentum_is_fedavg():
    model = Params()
    x = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(OptimizerConfig(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0), model)
    (g,) = pseudo_gradients(1)
    server_round(model, optimizer, g)
    for p, x0, g0 in zip(model.parameters(), x, g):
        assert torch.equal(p.detach(), x0 - g0)  # x - (x - mean x_k): the clients' mean model


def test_sgd_with_lr_1_and_momentum_is_fedavgm():
    model = Params()
    x = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(OptimizerConfig(name="sgd", lr=1.0, momentum=0.9, weight_decay=0.0), model)
    g1, g2 = pseudo_gradients(2)
    server_round(model, optimizer, g1)
    server_round(model, optimizer, g2)
    for p, x0, a, b in zip(model.parameters(), x, g1, g2):
        torch.testing.assert_close(p.detach(), x0 - a - (0.9 * a + b), **TOL)


@pytest.mark.parametrize(
    "overrides, key, accepted",
    [
        (["optimizer.bias_correction=true"], "optimizer.bias_correction", "fedadam"),
        (
            ["optimizer.name=fedyogi", "optimizer.bias_correction=true", "optimizer.weight_decay=0"],
            "optimizer.bias_correction",
            "fedadam",
        ),
        (["optimizer.name=fedadam"], "optimizer.weight_decay", "optimizer.weight_decay=0"),
        (
            ["optimizer.name=fedadagrad", "optimizer.weight_decay=0.01"],
            "optimizer.weight_decay",
            "no weight decay",
        ),
    ],
)
def test_config_refusals_name_the_key(overrides, key, accepted):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert error.value.key == key
    assert accepted in str(error.value)


def test_config_accepts_the_adaptive_optimizers_without_weight_decay():
    for name in ("fedadam", "fedyogi", "fedadagrad"):
        config_ = load_config(None, [f"optimizer.name={name}", "optimizer.weight_decay=0"])
        assert config_.optimizer.name == name
    with_bias = load_config(
        None, ["optimizer.name=fedadam", "optimizer.weight_decay=0", "optimizer.bias_correction=true"]
    )
    assert with_bias.optimizer.bias_correction
