"""The server's optimisation: optimizer, learning-rate schedule and an EMA of the weights.

The server steps on the decoded gradient. SGD (the paper's vision tasks) applies weight decay as an
L2 term on every parameter, batch-norm ones included; AdamW (the paper's GPT-2) decays the weights
of Linear layers only, decoupled from the gradient (not LayerNorm scales, biases, embeddings, or a
head tied to the embedding).

Example:
    >>> from federated.config import OptimizerConfig
    >>> model = nn.Linear(2, 1)
    >>> optimizer = build_optimizer(OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.1), model)
    >>> [group["weight_decay"] for group in optimizer.param_groups]
    [0.1, 0.0]
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from federated.config import OptimizerConfig

__all__ = ["build_optimizer", "build_scheduler", "WeightEMA"]


def _decayed_weights(model: nn.Module) -> set[int]:
    """ids of the Linear weights that are not also an embedding (a tied head)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - embeddings


def build_optimizer(config: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The server optimizer of ``config`` over ``model``'s parameters."""
    params = list(model.parameters())
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
        [g for g in groups if g["params"]], lr=config.lr, betas=(config.beta1, config.beta2)
    )


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
