"""The clients' side of a round: who takes part, and what each computes from the model it received.

**Participation** (``clients.per_round`` m of the K clients, ``clients.sampling``):

- ``uniform``: m of the K clients without replacement, from the sampler's own seed stream (with
  m = K everyone takes part and nothing is drawn);
- ``best_channel``: the m clients with the largest channel quality this round (their mean
  ``|h|^2``, which the channel supplies before anyone transmits): no reweighting, so near clients
  take part more often; the run logs who took part each round;
- ``poisson`` (privacy mode, ``privacy.clip``): every client takes part independently with
  probability q = m / K, from the sampler's own seed stream, so a round's count varies (and may be
  0). The clients sample themselves and the server cannot tell who did: the pass is fixed from public
  quantities and the server divides by the expected count, which is what lets the privacy accountant
  count amplification by sampling (docs/physics.md, section 14).

**What a client computes** (``clients.lr``):

- FedSGD (``clients.lr: null``, the LASER paper's protocol): the gradient of its loss at the model
  it received, summed over its ``accumulation_steps`` micro-batches;
- local training (``clients.lr`` set): ``clients.local_steps`` H steps of its own optimizer
  (``sgd`` with ``momentum``, or ``adam``; with ``precond:`` each SGD step's gradient divided by
  the server's diagonal D^, :class:`federated.optim.Preconditioner`) from the model it received x,
  one step per ``accumulation_steps`` micro-batches, then the model change ``x - x_k`` (a
  pseudo-gradient, which compressors, error feedback and the channel treat as a gradient). The
  optimizer state starts
  afresh every round unless ``clients.keep_state``. A learning-rate schedule scales the server's
  rate, never the clients'. Batch-norm statistics: with local training the server takes the mean
  of the participants' running statistics (exact side information, as FedAvg averages every model
  state); with FedSGD it keeps the first participant's (the paper's protocol: one client's batch
  statistics).

Example:
    >>> sampler = UniformSampler(num_clients=10, per_round=3, seed=0)
    >>> sorted(sampler.sample()) == sampler.last and len(sampler.last) == 3
    True
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from federated.config import ClientsConfig
from federated.data.tasks import Task, cross_entropy
from federated.radio.downlink import NoisyDownlink

__all__ = ["Sampler", "UniformSampler", "PoissonSampler", "BestChannelSampler", "build_sampler", "Clients"]


class Sampler(ABC):
    """Chooses each round's participants; ``last`` holds the latest choice (sorted indices)."""

    def __init__(self, num_clients: int, per_round: int) -> None:
        if not 1 <= per_round <= num_clients:
            raise ValueError(f"per_round must be in 1..{num_clients}, got {per_round}")
        self.num_clients, self.per_round = num_clients, per_round
        self.last: list[int] = list(range(num_clients))

    @property
    def everyone(self) -> bool:
        return self.per_round == self.num_clients

    @abstractmethod
    def sample(self, quality: Tensor | None = None) -> list[int]:
        """This round's participants, sorted (``quality``: ``[K]``, each client's channel quality)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless by default)
        """Restore what :meth:`state_dict` returned."""


class UniformSampler(Sampler):
    """m of K clients uniformly without replacement, from its own generator."""

    def __init__(self, num_clients: int, per_round: int, seed: int) -> None:
        super().__init__(num_clients, per_round)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, quality: Tensor | None = None) -> list[int]:
        if not self.everyone:
            chosen = torch.randperm(self.num_clients, generator=self.generator)[: self.per_round]
            self.last = sorted(chosen.tolist())
        return self.last

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())


class PoissonSampler(UniformSampler):
    """Every client independently with probability q = ``per_round`` / K, from its own generator (one
    uniform draw per client and round): ``per_round`` is the expected count, and a round may take
    none. With ``per_round`` = K everyone takes part and nothing is drawn.

    >>> sampler = PoissonSampler(num_clients=1000, per_round=50, seed=0)
    >>> counts = [len(sampler.sample()) for _ in range(200)]
    >>> 45 < sum(counts) / len(counts) < 55 and len(set(counts)) > 5
    True
    """

    @property
    def probability(self) -> float:
        """q, each client's probability of taking part in a round."""
        return self.per_round / self.num_clients

    def sample(self, quality: Tensor | None = None) -> list[int]:
        if not self.everyone:
            draws = torch.rand(self.num_clients, generator=self.generator, dtype=torch.float64)
            self.last = torch.nonzero(draws < self.probability).flatten().tolist()
        return self.last


class BestChannelSampler(Sampler):
    """The m clients of largest channel quality this round (ties: the lower index first)."""

    def sample(self, quality: Tensor | None = None) -> list[int]:
        if self.everyone:
            return self.last
        if quality is None or quality.shape != (self.num_clients,):
            raise ValueError(f"quality must be a [{self.num_clients}] tensor of channel power gains")
        order = sorted(range(self.num_clients), key=lambda k: (-float(quality[k]), k))
        self.last = sorted(order[: self.per_round])
        return self.last


def build_sampler(config: ClientsConfig, seed: int) -> Sampler:
    """The sampler of ``config`` (``per_round`` null: everyone, every round)."""
    per_round = config.num_clients if config.per_round is None else config.per_round
    if config.sampling == "best_channel":
        return BestChannelSampler(config.num_clients, per_round)
    if config.sampling == "poisson":
        return PoissonSampler(config.num_clients, per_round, seed)
    return UniformSampler(config.num_clients, per_round, seed)


class Clients:
    """What each client computes at the model it received (see the module docstring).

    Works on the simulation's model in place: a client's local steps start from the server's
    parameters (or the client's noisy copy of them), which are restored afterwards.
    """

    def __init__(
        self,
        model: nn.Module,
        forward: Callable[[Tensor], Tensor],
        task: Task,
        config: ClientsConfig,
        downlink: NoisyDownlink | None,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    ) -> None:
        self.model, self.forward, self.task, self.config = model, forward, task, config
        self.downlink, self.autocast = downlink, autocast
        self.params = list(model.parameters())
        self.local = config.lr is not None
        self.optimizer: torch.optim.Optimizer | None = None
        self.states: dict[int, dict[str, Any]] = {}  # keep_state: each client's optimizer state
        self.statistic: list[Tensor] | None = None  # adaptive scaling: the last local_update's statistic
        if self.local:
            assert config.lr is not None
            if config.optimizer == "adam":
                self.optimizer = torch.optim.Adam(self.params, lr=config.lr)
            else:
                self.optimizer = torch.optim.SGD(self.params, lr=config.lr, momentum=config.momentum)
            self._fresh = copy.deepcopy(self.optimizer.state_dict())

    def micro_batches(self, client: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The client's ``accumulation_steps`` micro-batches of one step, each drawn when it is asked
        for (drawing advances the task's data stream), so that a client holds one micro-batch at a
        time and memory does not grow with ``accumulation_steps``. The draws are the ones
        :meth:`batches` makes, in the same order: the task's stream is shared by the clients, so
        each client's micro-batches are drawn before the next client's."""
        for _ in range(self.config.accumulation_steps):
            yield self.task.batch(client)

    def batches(self, client: int) -> list[tuple[Tensor, Tensor]]:
        """All of the client's micro-batches of one step at once, for the vmapped clients (which
        compute every client's first micro-batch, then every client's second, while the shared
        stream is drawn client after client, so they hold all of them: memory grows with
        ``accumulation_steps``); the loop draws them one at a time (:meth:`micro_batches`)."""
        return list(self.micro_batches(client))

    def skip(self, client: int) -> None:
        """Draw the batches ``client`` would use this round without computing anything (another
        process computes it: every process's data stream stays the one-process one), one at a time."""
        for _ in range(self.config.local_steps if self.local else 1):
            for _batch in self.micro_batches(client):
                pass

    def loss_and_gradient(
        self,
        client_batches: Iterable[tuple[Tensor, Tensor]],
        forward: Callable[[Tensor], Tensor] | None = None,
        wrt: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """A client's mean loss over its micro-batches and its gradient summed over them (the
        micro-batches are used one at a time: an iterator of them is never held whole)."""
        forward = self.forward if forward is None else forward  # not `or`: a compiled module has no bool
        wrt = self.params if wrt is None else wrt
        grads: tuple[Tensor, ...] | None = None
        total: Tensor | None = None
        count = 0
        for x, y in client_batches:
            with self.autocast():
                loss = cross_entropy(forward(x), y)
            g = torch.autograd.grad(loss, wrt)
            grads = g if grads is None else tuple(a + b for a, b in zip(grads, g))
            total = loss.detach() if total is None else total + loss.detach()
            count += 1
        assert total is not None and grads is not None  # accumulation_steps >= 1
        return total / count, grads

    def gradient(self, client: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        """FedSGD: the client's mean loss and its gradient (summed over its micro-batches) at the model
        it received (the broadcast one, or its own noisy copy over a noisy downlink)."""
        forward: Callable[[Tensor], Tensor] = self.forward
        wrt: Sequence[Tensor] = self.params
        if self.downlink is not None:
            received = {
                n: p.requires_grad_()
                for n, p in self.downlink.receive(dict(self.model.named_parameters())).items()
            }
            forward, wrt = (lambda x: functional_call(self.model, received, (x,))), list(received.values())
        return self.loss_and_gradient(self.micro_batches(client), forward, wrt)

    @torch.no_grad()
    def _load(self, values: Sequence[Tensor]) -> None:
        for p, v in zip(self.params, values):
            p.copy_(v)

    def local_update(
        self,
        client: int,
        scale: Sequence[Tensor] | None = None,
        statistic: str | None = None,
        probe: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Local training: H optimizer steps from the received model x_k^0, then x_k^0 - x_k^H. The
        model's parameters are the server's again afterwards (its buffers are the caller's to set).

        Adaptive scaling (:class:`federated.optim.Preconditioner`): ``scale`` D^ (shaped like the parameters)
        divides every step's gradient, so SGD steps x <- x - lr g / D^; ``statistic``
        ``"mean_of_squares"`` (the mean of g * g over the H steps) or ``"hessian"`` (the mean of
        z * (Hessian z) over the H steps, ``probe`` z; a double backward per micro-batch) is left in
        :attr:`statistic` (else None)."""
        optimizer = self.optimizer
        assert optimizer is not None
        server = [p.detach().clone() for p in self.params]
        if self.downlink is not None:  # the client's own noisy copy of the model
            self._load(list(self.downlink.receive(dict(self.model.named_parameters())).values()))
        start = [p.detach().clone() for p in self.params] if self.downlink is not None else server
        optimizer.load_state_dict(self.states.get(client, self._fresh))
        losses = []
        total: list[Tensor] | None = [torch.zeros_like(p) for p in self.params] if statistic else None
        for _ in range(self.config.local_steps):
            optimizer.zero_grad(set_to_none=True)
            for x, y in self.micro_batches(client):  # gradients summed over the micro-batches, as FedSGD's
                with self.autocast():
                    loss = cross_entropy(self.forward(x), y)
                if statistic == "hessian":
                    assert probe is not None and total is not None
                    self._hessian_probe(loss, probe, total)
                else:
                    loss.backward()
                losses.append(loss.detach())
            if statistic == "mean_of_squares":
                assert total is not None
                for t, p in zip(total, self.params):
                    if p.grad is not None:
                        t.addcmul_(p.grad, p.grad)
            if scale is not None:
                for p, d in zip(self.params, scale):
                    if p.grad is not None:
                        p.grad.div_(d)
            optimizer.step()
        self.statistic = None if total is None else [t / self.config.local_steps for t in total]
        if self.config.keep_state:
            self.states[client] = copy.deepcopy(optimizer.state_dict())
        optimizer.zero_grad(set_to_none=True)
        change = [s - p.detach() for s, p in zip(start, self.params)]
        self._load(server)
        return torch.stack(losses).mean(), change

    def _hessian_probe(self, loss: Tensor, probe: Sequence[Tensor], total: list[Tensor]) -> None:
        """Add the gradient of ``loss`` to the parameters' ``.grad`` and z * (Hessian z) to ``total``
        (Hutchinson's estimate of the Hessian's diagonal, ``probe`` z; double backward)."""
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        linked = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        if linked:
            products = torch.autograd.grad(
                [grads[i] for i in linked],
                [self.params[i] for i in linked],
                grad_outputs=[probe[i] for i in linked],
                allow_unused=True,
            )
            for i, hz in zip(linked, products):
                if hz is not None:
                    total[i].addcmul_(probe[i], hz)
        for p, g in zip(self.params, grads):
            if g is not None:
                p.grad = g.detach() if p.grad is None else p.grad + g.detach()

    def update(self, client: int, **scaling: Any) -> tuple[Tensor, Sequence[Tensor]]:
        """What the client sends this round: its gradient (FedSGD) or its model change (local training;
        ``scaling``: :meth:`local_update`'s adaptive-scaling arguments)."""
        return self.local_update(client, **scaling) if self.local else self.gradient(client)

    def state_dict(self) -> dict[str, Any]:
        """The clients' optimizer states (``keep_state``), by client index."""
        return {"optimizers": {int(k): v for k, v in self.states.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.states = {int(k): v for k, v in state["optimizers"].items()}
