"""The server's optimisation: optimizer, learning-rate schedule and an EMA of the weights.

The server steps on the decoded gradient. SGD (the paper's vision tasks) applies weight decay as an
L2 term on every parameter, batch-norm ones included; AdamW (the paper's GPT-2) decays the weights
of Linear layers only, decoupled from the gradient (not LayerNorm scales, biases, embeddings, or a
head tied to the embedding). With local training the decoded "gradient" is the pseudo-gradient
x - mean_k x_k: SGD with lr 1 is then FedAvg (no momentum) or FedAvgM (momentum), and
:class:`FedOpt` is FedAdam, FedYogi or FedAdagrad (Reddi et al. 2021). :class:`Preconditioner` is
the diagonal scaling of the clients' local steps that the server keeps and broadcasts (local
methods with adaptivity via scaling, ``precond:``).

Example:
    >>> from federated.config import OptimizerConfig, PrecondConfig
    >>> model = nn.Linear(2, 1)
    >>> optimizer = build_optimizer(OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.1), model)
    >>> [group["weight_decay"] for group in optimizer.param_groups]
    [0.1, 0.0]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from channels import FadingChannel
from federated.config import OptimizerConfig, PrecondConfig
from laser import PassOptions, RoundResult, ZSGDCompressor, transmit_blocks

__all__ = ["build_optimizer", "build_scheduler", "FedOpt", "WeightEMA", "Preconditioner", "StatisticPass"]


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

    >>> from federated.config import OptimizerConfig, PrecondConfig
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


class Preconditioner:
    """The server's diagonal preconditioner: D (``None`` before the first statistic), D^ and the
    OASIS probes' generator.

    Local steps with adaptive scaling (Chezhegov et al., "Local methods with adaptivity via scaling",
    2024): inside a round every client steps with the same frozen diagonal preconditioner D^,

        x_k <- x_k - lr * g_k / D^        (``clients.lr``, ``clients.local_steps`` H, client SGD),

    and at the synchronisation the server updates D from an averaged statistic s and broadcasts D^ with
    the model (noiselessly, as the model itself; a noisy downlink perturbs the model only):

        D <- beta D + (1 - beta) s,

    ``precond.name``:

    - ``adam`` (Adam/RMSProp type), D^ = max(alpha, sqrt(D)). ``precond.statistic``:

      - ``square_of_mean`` (default; no extra channel use): the server forms the mean gradient
        g_bar = D^ * Delta^ / (lr H) from the decoded mean model change Delta^ (exact for plain local
        SGD on a fixed gradient: each of the H steps moved by lr g / D^) and s = g_bar * g_bar. Over a
        noisy channel Delta^ = Delta + n with n of per-entry variance sigma^2 (the round's effective
        noise variance of that block, logged as ``noise_var``), so E[s] = g_bar^2 + (D^ / (lr H))^2
        sigma^2: the channel noise inflates D by about the per-entry noise variance, scaled by
        (D^ / (lr H))^2, like a larger Adam epsilon (steps shrink where the noise dominates); the
        alpha floor keeps D^ invertible. Since that inflation grows with D^ itself, D can feed on
        the noise (and on a compressor's error, which error feedback delays into later rounds)
        when sigma / (lr H) is not small. The mean gradient is also much smaller than one
        client's minibatch gradient, so with a tiny alpha the local steps lr g_k / D^ are large:
        choose alpha near the typical minibatch gradient entry;
      - ``mean_of_squares``: each client sends the mean of g * g over its H local steps (summed over
        its micro-batches each step) in a second analog pass (below). This is a different statistic:
        the mean of the squares, not the square of the mean (it also counts the spread of the
        gradients across clients and steps), so D is larger than with ``square_of_mean``; the channel
        adds zero-mean noise to it (unbiased), which can make an entry of D negative: D^ uses
        sqrt(max(D, 0)).

    - ``oasis`` (OASIS type), D^ = max(alpha, |D|): each client sends the mean over its H local steps
      of z * (Hessian of f_k at its iterate times z) (Hutchinson's estimate of the Hessian's diagonal,
      by a double backward), with one Rademacher z per round shared by all clients (drawn from the
      run's own stream), so the over-the-air sum is z * (sum_k H_k z): linear, the estimate of the
      mean Hessian's diagonal. On a quadratic with a diagonal Hessian A it is diag(A) for every z.

    The second pass: every participant sends its statistic (one block per parameter tensor, d real
    channel uses, uncompressed as Z-SGD's) over the air after the update's pass, each client spending
    ``precond.energy_fraction`` of its round budget on it and the rest on the update (``power.snr_db``:
    both passes at that per-use SNR). The round's log sums both passes (``energy_*``,
    ``channel_uses``, ``noise_var`` lists the statistic's blocks after the update's) and gives the
    second pass's channel uses as ``precond_channel_uses``; ``precond_mean`` is the mean of D^.

    Before the first synchronisation there is no statistic: round 0 runs plain local SGD (D^ = 1) and
    the first statistic sets D (D <- s; later rounds the moving average). The server's D, the probe
    generator's state are in :meth:`Preconditioner.state_dict`.

    Example (Adam type, square of the mean, one parameter, lr 0.5, H = 2, alpha 0.5):
        >>> config = PrecondConfig(name="adam", beta=0.5, alpha=0.5)
        >>> pre = Preconditioner(config, [torch.zeros(2)], lr=0.5, local_steps=2)
        >>> pre.scale()[0].tolist()                     # round 0: plain local SGD
        [1.0, 1.0]
        >>> pre.update(change=[torch.tensor([2.0, 0.0])])   # g_bar = 1 * change / (0.5 * 2)
        >>> pre.state["D"][0].tolist(), pre.scale()[0].tolist()   # D^ = max(alpha, sqrt(D))
        ([4.0, 0.0], [2.0, 0.5])
    """

    def __init__(
        self,
        config: PrecondConfig,
        params: Sequence[Tensor],
        *,
        lr: float,
        local_steps: int,
        seed: int = 0,
    ) -> None:
        if config.name == "none":
            raise ValueError("precond.name is none: there is no preconditioner to build")
        self.config = config
        self.lr, self.local_steps = float(lr), int(local_steps)
        self.shapes = [p.shape for p in params]
        self.dtypes = [p.dtype for p in params]
        self.device = params[0].device
        self.generator = torch.Generator().manual_seed(seed) if config.name == "oasis" else None
        self.state: dict[str, Any] = {"D": None}
        self._scale = [torch.ones(s, dtype=t, device=self.device) for s, t in zip(self.shapes, self.dtypes)]

    @property
    def statistic(self) -> str | None:
        """What the clients compute during their local steps for the second pass: ``"hessian"``
        (oasis), ``"mean_of_squares"`` (adam with that statistic), or None (no second pass)."""
        if self.config.name == "oasis":
            return "hessian"
        return "mean_of_squares" if self.config.second_pass else None

    def scale(self) -> list[Tensor]:
        """D^, shaped like the parameters (what the server broadcasts with the model)."""
        return self._scale

    def probe(self) -> list[Tensor] | None:
        """This round's Rademacher z (entries +-1, shaped like the parameters; drawn on the CPU in
        the parameters' dtype and moved to their device), the same for every client; None unless oasis."""
        if self.generator is None:
            return None
        return [
            (torch.randint(0, 2, s, generator=self.generator, dtype=t) * 2 - 1).to(self.device)
            for s, t in zip(self.shapes, self.dtypes)
        ]

    def update(
        self, change: Sequence[Tensor] | None = None, statistic: Sequence[Tensor] | None = None
    ) -> None:
        """The synchronisation: s from the decoded mean ``change`` (adam, square of the mean) or the
        decoded mean ``statistic`` (the second pass), D <- beta D + (1 - beta) s (D <- s at first), D^."""
        beta = self.config.beta
        if self.config.second_pass:
            if statistic is None:
                raise ValueError(f"precond {self.config.name}: update needs the decoded statistic")
            s = [v.to(t) for v, t in zip(statistic, self.dtypes)]
        else:
            if change is None:
                raise ValueError("precond adam (square_of_mean): update needs the decoded mean change")
            step = self.lr * self.local_steps
            s = [(d * c.to(t) / step) ** 2 for d, c, t in zip(self._scale, change, self.dtypes)]
        previous = self.state["D"]
        self.state["D"] = s if previous is None else [beta * p + (1 - beta) * v for p, v in zip(previous, s)]
        self._set_scale()

    def _set_scale(self) -> None:
        alpha, D = self.config.alpha, self.state["D"]
        if D is None:
            self._scale = [torch.ones_like(d) for d in self._scale]
        elif self.config.name == "oasis":
            self._scale = [d.abs().clamp(min=alpha) for d in D]
        else:
            self._scale = [d.clamp(min=0).sqrt().clamp(min=alpha) for d in D]

    def extra_pass(self, params: Sequence[Tensor], num_clients: int) -> StatisticPass | None:
        """The analog pass this preconditioner asks of each round besides the update's (its clients'
        statistic, :attr:`PrecondConfig.second_pass`), or None where it needs none."""
        if not self.config.second_pass:
            return None
        return StatisticPass(params, num_clients, self.config.energy_fraction)

    def mean_scale(self) -> float:
        """The mean of D^ over every entry (logged as ``precond_mean``)."""
        total = sum(float(d.sum(dtype=torch.float64)) for d in self._scale)
        return total / sum(d.numel() for d in self._scale)

    def state_dict(self) -> dict[str, Any]:
        """D (None before the first statistic) and the probe generator's state."""
        D = self.state["D"]
        return {
            "D": None if D is None else [d.clone() for d in D],
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors from any device)."""
        D = state["D"]
        self.state["D"] = None if D is None else [d.to(self.device, t) for d, t in zip(D, self.dtypes)]
        if self.generator is not None:
            self.generator.set_state(state["generator"].cpu())
        self._set_scale()


class StatisticPass:
    """The preconditioner's extra analog pass (:meth:`Preconditioner.extra_pass`): after the update's
    pass, each client's statistic (OASIS's z * Hz, or Adam's mean of g * g) goes over the air entry by
    entry, as Z-SGD's gradient does (one block per parameter tensor, each client its own side), with
    ``fraction`` of the round's energy (``precond.energy_fraction``; the update's pass gets the
    rest, :meth:`update_share`). Its channel uses are logged as ``precond_channel_uses``.
    """

    def __init__(self, params: Sequence[Tensor], num_clients: int, fraction: float) -> None:
        self.fraction = fraction
        self.compressor = ZSGDCompressor()
        self.compressor.setup(list(params), num_clients)

    @property
    def update_share(self) -> float:
        """The share of the round's energy left to the update's pass."""
        return 1 - self.fraction

    def send(
        self,
        channel: FadingChannel,
        clients: Sequence[int],
        statistics: Sequence[Sequence[Tensor]],
        options: PassOptions,
    ) -> RoundResult:
        """The clients' ``statistics`` (this process's ``clients``, in order) over ``channel`` with
        the round's ``options`` (its energy times :attr:`fraction`; what an unheard client keeps does
        not apply: the statistic has no error feedback); the decoded mean statistic and the pass."""
        sides = [self.compressor.clients[k] for k in clients]
        mine = options.replace(keep_unheard=False).share(self.fraction)
        return transmit_blocks(channel, self.compressor.server, sides, statistics, mine)
