"""The server's optimisation: optimizer, learning-rate schedule and an EMA of the weights.

The server steps on the decoded gradient. SGD (the paper's vision tasks) applies weight decay as an
L2 term on every parameter, batch-norm ones included; AdamW (the paper's GPT-2) decays the weights
of Linear layers only, decoupled from the gradient (not LayerNorm scales, biases, embeddings, or a
head tied to the embedding). With local training the decoded "gradient" is the pseudo-gradient
x - mean_k x_k: SGD with lr 1 is then FedAvg (no momentum) or FedAvgM (momentum), and
:class:`FedOpt` is FedAdam, FedYogi or FedAdagrad (Reddi et al. 2021).

Example:
    >>> from federated.config import OptimizerConfig
    >>> model = nn.Linear(2, 1)
    >>> optimizer = build_optimizer(OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.1), model)
    >>> [group["weight_decay"] for group in optimizer.param_groups]
    [0.1, 0.0]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from federated.config import OptimizerConfig

__all__ = ["build_optimizer", "build_scheduler", "FedOpt", "WeightEMA"]


def _decayed_weights(model: nn.Module) -> set[int]:
    """ids of the Linear weights that are not also an embedding (a tied head)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - embeddings


def build_optimizer(config: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The server optimizer of ``config`` over ``model``'s parameters."""
    params = list(model.parameters())
    if config.name in ("fedadam", "fedyogi", "fedadagrad"):
        variants: dict[str, Literal["adam", "yogi", "adagrad"]] = {
            "fedadam": "adam",
            "fedyogi": "yogi",
            "fedadagrad": "adagrad",
        }
        return FedOpt(
            params,
            lr=config.lr,
            variant=variants[config.name],
            betas=(config.betas[0], config.betas[1]),
            tau=config.tau,
            bias_correction=config.bias_correction,
        )
    if config.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    decayed = _decayed_weights(model)
    groups = [
        {"params": [p for p in params if id(p) in decayed], "weight_decay": config.weight_decay},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=config.lr, betas=(config.betas[0], config.betas[1])
    )


class FedOpt(torch.optim.Optimizer):
    r"""The adaptive server optimizers of Reddi et al., "Adaptive Federated Optimization" (ICLR 2021),
    Algorithm 2: FedAdam, FedYogi and FedAdagrad (``variant`` adam, yogi or adagrad).

    Sign convention: ``p.grad`` holds the pseudo-gradient g_t = x_t - mean_k x_k (or a plain
    gradient), as for any torch optimizer; the algorithm's Delta_t = -g_t is the clients' mean
    change. Per coordinate, in round t = 0, 1, ... (m_{-1} = 0, v_{-1} = tau^2):

        m_t = beta1 m_{t-1} + (1 - beta1) Delta_t
        v_t = v_{t-1} + Delta_t^2                                        (adagrad; beta2 unused)
        v_t = beta2 v_{t-1} + (1 - beta2) Delta_t^2                      (adam)
        v_t = v_{t-1} - (1 - beta2) Delta_t^2 sign(v_{t-1} - Delta_t^2)  (yogi)
        x_{t+1} = x_t + lr m_t / (sqrt(v_t) + tau)

    with no bias correction and no weight decay, as Algorithm 2. ``bias_correction=True`` (adam
    only) is Flower 1.42's ``FedAdam`` instead: v_{-1} = 0 and the step size
    lr sqrt(1 - beta2^(t+2)) / (1 - beta1^(t+2)) (Flower's ``server_round`` = t + 1, from 1).

    ``lr`` is read from each param group at every step, so learning-rate schedules scale it. The
    state of each parameter, saved and restored by ``state_dict`` / ``load_state_dict``, is ``m``,
    ``v`` (tensors in the parameter's dtype) and ``step`` (the rounds taken, an int). FedAvg and
    FedAvgM are not here: they are SGD with lr 1, without and with momentum.

    Example (one FedAdam round; the clients moved by Delta = [1, -2] on average):
        >>> x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        >>> optimizer = FedOpt([x], lr=0.1, variant="adam", betas=(0.9, 0.99), tau=1e-3)
        >>> x.grad = torch.tensor([-1.0, 2.0], dtype=torch.float64)   # g = x - mean_k x_k = -Delta
        >>> optimizer.step()
        >>> m = 0.1 * torch.tensor([1.0, -2.0], dtype=torch.float64)
        >>> v = 0.99 * 1e-3**2 + 0.01 * torch.tensor([1.0, 4.0], dtype=torch.float64)
        >>> torch.allclose(x, 0.1 * m / (v.sqrt() + 1e-3), rtol=1e-15, atol=0)
        True
        >>> [round(value, 4) for value in x.tolist()]                  # towards the clients
        [0.099, -0.0995]
        >>> optimizer.state[x]["step"]
        1
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        variant: Literal["adam", "yogi", "adagrad"],
        betas: tuple[float, float] = (0.9, 0.99),
        tau: float = 1e-3,
        bias_correction: bool = False,
    ) -> None:
        if variant not in ("adam", "yogi", "adagrad"):
            raise ValueError(f"variant must be adam, yogi or adagrad, not {variant!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, not {lr}")
        if not (len(betas) == 2 and all(0 <= b < 1 for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), not {betas}")
        if not tau > 0:
            raise ValueError(f"tau must be > 0, not {tau}")
        if bias_correction and variant != "adam":
            raise ValueError("bias_correction is Flower's FedAdam: variant must be adam")
        self.variant, self.bias_correction = variant, bias_correction
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "tau": tau})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One round: update every parameter that has a ``grad`` (the pseudo-gradient g_t = -Delta_t)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), tau = group["lr"], group["betas"], group["tau"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("FedOpt does not support sparse gradients")
                g = p.grad  # = -Delta_t
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    v0 = 0.0 if self.bias_correction else tau**2
                    state["v"] = torch.full_like(p, v0, memory_format=torch.preserve_format)
                m, v = state["m"], state["v"]
                state["step"] += 1
                m.mul_(beta1).add_(g, alpha=-(1 - beta1))  # + (1 - beta1) Delta_t
                delta2 = g.square()  # Delta_t^2
                if self.variant == "adagrad":
                    v.add_(delta2)
                elif self.variant == "adam":
                    v.mul_(beta2).add_(delta2, alpha=1 - beta2)
                else:
                    v.addcmul_(torch.sign(v - delta2), delta2, value=-(1 - beta2))
                step_size = lr
                if self.bias_correction:
                    k = state["step"] + 1  # Flower's server_round + 1, its server_round counted from 1
                    step_size = lr * math.sqrt(1 - beta2**k) / (1 - beta1**k)
                p.addcdiv_(m, v.sqrt().add_(tau), value=step_size)
        return loss


def build_scheduler(
    config: OptimizerConfig, optimizer: torch.optim.Optimizer, rounds: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule over ``rounds`` server steps (stepped once per round), or None.

    >>> from federated.config import OptimizerConfig
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> config = OptimizerConfig(lr=1.0, schedule="onecycle", warmup_fraction=0.1)
    >>> schedule = build_scheduler(config, opt, 100)
    >>> lrs = []                                    # the learning rate each of the 100 rounds uses
    >>> for _ in range(100):
    ...     lrs.append(opt.param_groups[0]["lr"])
    ...     opt.step(); schedule.step()
    >>> round(lrs[0], 6), round(max(lrs), 6), round(lrs[-1], 6)     # lr/100, lr, lr/5
    (0.01, 1.0, 0.2)
    """
    if config.schedule == "constant":
        return None
    if config.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), gamma=config.gamma)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=rounds,
        pct_start=config.warmup_fraction,
        anneal_strategy="cos",
        cycle_momentum=False,
        div_factor=config.div_factor,
        final_div_factor=1.0 / (config.div_factor * config.final_lr_fraction),
    )


class WeightEMA:
    """A bias-corrected exponential moving average of a model's parameters and floating-point
    buffers (batch-norm statistics), updated after every server step:

        a_t = decay * a_{t-1} + (1 - decay) * w_t,   a_0 = 0,   EMA_t = a_t / (1 - decay^t)

    Integer buffers (batch counters) are copied. ``model()`` returns a copy of the model holding the
    average, for evaluation.

    Example:
        >>> net = nn.Linear(1, 1, bias=False)
        >>> ema = WeightEMA(net, decay=0.5)
        >>> for value in (1.0, 3.0):
        ...     _ = net.weight.data.fill_(value)
        ...     ema.update(net)
        >>> ema.model().weight.item()         # (0.25 * 1 + 0.5 * 3) / (1 - 0.25)
        2.3333332538604736
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.count = decay, 0
        self._model = copy.deepcopy(model)
        self.average = {
            name: torch.zeros_like(v) for name, v in model.state_dict().items() if v.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.count += 1
        for name, value in model.state_dict().items():
            if name in self.average:
                self.average[name].mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)

    @torch.no_grad()
    def model(self, source: nn.Module | None = None) -> nn.Module:
        """The averaged model (integer buffers from ``source``, the live model, if given)."""
        correction = 1.0 - self.decay ** max(self.count, 1)
        state: dict[str, Tensor] = (
            {} if source is None else {k: v for k, v in source.state_dict().items() if k not in self.average}
        )
        state.update({k: v / correction for k, v in self.average.items()})
        self._model.load_state_dict(state, strict=source is not None)
        return self._model

    def state_dict(self) -> dict[str, object]:
        return {"count": self.count, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        for name, value in state["average"].items():
            self.average[name].copy_(value)
