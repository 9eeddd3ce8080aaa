"""All clients' gradients in one vectorised call, for small models and many clients.

In a round every client ``k`` computes the gradient of its mean loss on its own batch at the same
(broadcast) model. :class:`~federated.simulation.Simulation` does that in a Python loop over the ``K``
clients: ``K`` small forward and backward passes, each too small to keep a GPU (or the CPU's
vector units) busy. :class:`VectorizedClients` instead stacks the clients' batches into
``[K, B, ...]`` and runs :func:`torch.func.grad_and_value` of a :func:`torch.func.functional_call`
under :func:`torch.func.vmap`, with the parameters shared (``in_dims=None``) and the batches mapped:
one batched pass. The losses and gradients are those of the loop up to float rounding (the
batched kernels sum in another order), so it pays off for small models (the MNIST-1D CNN, the MLP,
the linear model, a tiny GPT) with many clients; for large models a client's pass already fills
the device, and vmap only multiplies the memory by ``K`` (``chunk_size`` bounds that).

Models for which the vmapped result is *not* the loop's fall back to the loop; :func:`vmap_supported`
says which and why:

* a BatchNorm in training mode normalises with the statistics of the batch it sees and updates its
  running-statistics buffers in place; the loop updates them once per client, in turn (and the
  simulation keeps client 0's), while a vmapped pass would have to mutate one shared buffer with
  ``K`` different values at once, which functorch refuses;
* dropout with ``p > 0`` (a Dropout module, or a ``dropout`` rate a module passes to a functional
  op, as GPT's attention does) in training mode draws random masks, which under vmap come from a
  different stream than the loop's (or, with ``randomness="same"``, are shared by all clients), so
  the gradients are not the loop's.

The model must be shared: with a noisy downlink each client receives its own copy of the model,
which this class does not map over.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ["Batch", "VectorizedClients", "stack_batches", "vmap_supported"]

# One micro-batch of every client: stacked ``(xs [K, B, ...], ys [K, B, ...])``, or, where the
# clients' batches differ in shape (non-IID shards: the short end of an epoch), one ``(x, y)`` per
# client, run as one vmapped pass per shape.
Batch = tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]


def stack_batches(batches: list[tuple[Tensor, Tensor]]) -> Batch:
    """The clients' micro-batches ``[(x_k, y_k)]`` stacked as ``(xs, ys)`` when they share one shape,
    else the list itself (a ragged :data:`Batch`).

    >>> import torch
    >>> even = stack_batches([(torch.zeros(4, 3), torch.zeros(4)), (torch.ones(4, 3), torch.ones(4))])
    >>> type(even).__name__, tuple(even[0].shape)
    ('tuple', (2, 4, 3))
    >>> type(stack_batches([(torch.zeros(4, 3), torch.zeros(4)), (torch.ones(2, 3), torch.ones(2))])).__name__
    'list'
    """
    if len({(tuple(x.shape), tuple(y.shape)) for x, y in batches}) <= 1:
        return torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])
    return list(batches)


def _count(batch: Batch) -> int:
    return len(batch) if isinstance(batch, list) else batch[0].shape[0]


def _shape_groups(batch: Batch) -> list[tuple[Tensor | None, Tensor, Tensor]]:
    """``(rows, xs, ys)`` for each set of clients whose batches share a shape (``rows`` None: all of
    them, in order)."""
    if not isinstance(batch, list):
        return [(None, *batch)]
    rows: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for k, (x, y) in enumerate(batch):
        rows.setdefault((tuple(x.shape), tuple(y.shape)), []).append(k)
    if len(rows) == 1:
        return [(None, *cast(tuple[Tensor, Tensor], stack_batches(batch)))]
    return [
        (
            torch.tensor(ix, device=batch[0][0].device),
            torch.stack([batch[k][0] for k in ix]),
            torch.stack([batch[k][1] for k in ix]),
        )
        for ix in rows.values()
    ]


def vmap_supported(model: nn.Module) -> tuple[bool, str]:
    """``(True, "")`` if the clients' gradients of ``model`` can be computed with vmap to the loop's
    result; else ``(False, reason)``, for the first module that prevents it:

    * a BatchNorm module in training mode (its batch statistics and running-statistics buffers are
      per client, and the buffers are mutated in place), or an InstanceNorm that tracks running
      statistics in training mode (its buffers are mutated);
    * a Dropout module with ``p > 0``, or a module with a ``dropout`` rate > 0 (a model config's
      dropout handed to a functional op, as in GPT's attention, or nn.MultiheadAttention's), in
      training mode: random masks under vmap differ from the loop's;
    * a model without trainable parameters (nothing to differentiate).

    Modules in eval mode do neither, so e.g. a ResNet in eval mode is supported.

    >>> from torch import nn
    >>> vmap_supported(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    (True, '')
    >>> vmap_supported(nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1)))[0]
    False
    """
    if not any(p.requires_grad for p in model.parameters()):
        return False, "the model has no trainable parameters"
    for name, module in model.named_modules():
        label = f"{name or 'the model'} ({type(module).__name__})"
        if not module.training:
            continue
        if isinstance(module, _BatchNorm):
            return False, (
                f"{label} is a BatchNorm in training mode: it normalises with each client's batch "
                "statistics and mutates its running-statistics buffers once per client"
            )
        if isinstance(module, _InstanceNorm) and module.track_running_stats:
            return False, (
                f"{label} tracks running statistics in training mode: its buffers are mutated once per client"
            )
        if isinstance(module, _DropoutNd) and module.p > 0:
            return False, (
                f"{label} is dropout with p={module.p} in training mode: its random masks "
                "under vmap differ from the loop's"
            )
        rate = getattr(module, "dropout", None)
        # the numbers.Real ABC declares only __lt__ and __le__; concrete reals (float, Fraction, numpy) have >
        if isinstance(rate, Real) and not isinstance(rate, bool) and cast(float, rate) > 0:
            return False, (
                f"{label} applies dropout={rate} in training mode: its random masks under vmap "
                "differ from the loop's"
            )
    return True, ""


class VectorizedClients:
    """All clients' losses and gradients in one vmap call over stacked batches.

    ``clients(xs, ys)`` with ``xs`` ``[K, B, ...]`` and ``ys`` ``[K, B, ...]`` (client ``k``'s batch is
    ``(xs[k], ys[k])``) returns ``(losses, grads)``: ``losses[k] = loss(model(xs[k]), ys[k])`` (shape
    ``[K]``) and, for each parameter ``p`` of ``model.parameters()`` in that order, one tensor
    ``[K, *p.shape]`` (``p``'s dtype) whose row ``k`` is the gradient of client ``k``'s loss, all at
    the model's current parameters (read, detached, at every call, so the server may step the model
    in place between rounds). The model's buffers are passed along unchanged. Wrap the call in an
    autocast context for mixed precision, as the loop wraps its forward passes.

    Args:
        model: the shared model; see :func:`vmap_supported` (checked at every call; a model that
            is not supported raises ``ValueError`` and should use the loop).
        loss: ``loss(logits, targets)`` -> scalar mean loss of one client's batch (e.g.
            :func:`federated.data.tasks.cross_entropy`).
        chunk_size: clients per vmapped pass (``None``: all ``K`` at once); bounds the memory at
            ``chunk_size`` clients' activations.

    >>> import torch
    >>> from torch import nn
    >>> from federated.data.tasks import cross_entropy
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> clients = VectorizedClients(model, cross_entropy)
    >>> xs, ys = torch.randn(5, 16, 4), torch.randint(0, 3, (5, 16))     # 5 clients, batches of 16
    >>> losses, grads = clients(xs, ys)
    >>> losses.shape, [tuple(g.shape) for g in grads]
    (torch.Size([5]), [(5, 8, 4), (5, 8), (5, 3, 8), (5, 3)])
    >>> loop = torch.autograd.grad(cross_entropy(model(xs[2]), ys[2]), list(model.parameters()))
    >>> all(torch.allclose(g[2], h, atol=1e-6) for g, h in zip(grads, loop))
    True
    """

    def __init__(
        self, model: nn.Module, loss: Callable[[Tensor, Tensor], Tensor], chunk_size: int | None = None
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be None or an integer >= 1, not {chunk_size}")
        self.model = model
        self.loss = loss
        self.chunk_size = chunk_size

        def client_loss(
            params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
        ) -> Tensor:
            return loss(functional_call(model, {**params, **buffers}, (x,)), y)

        # gradient w.r.t. the parameters only (argnums=0); parameters and buffers shared, batches mapped
        self._vmapped = vmap(
            grad_and_value(client_loss, argnums=0), in_dims=(None, None, 0, 0), chunk_size=chunk_size
        )
        # local training: every client its own parameters (mapped too)
        self._vmapped_own = vmap(
            grad_and_value(client_loss, argnums=0), in_dims=(0, None, 0, 0), chunk_size=chunk_size
        )

    def _current(self, what: str) -> tuple[list[str], dict[str, Tensor], dict[str, Tensor]]:
        """The model's parameter names, its parameters and buffers as they are now (detached); a
        ``ValueError`` saying why the clients' ``what`` cannot be vmapped for a model that is not
        supported (checked at every call)."""
        supported, reason = vmap_supported(self.model)
        if not supported:
            raise ValueError(f"the clients' {what} of this model cannot be vmapped: {reason}")
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        buffers = {name: b.detach() for name, b in self.model.named_buffers()}
        return list(params), params, buffers

    def __call__(self, xs: Tensor, ys: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        if xs.shape[0] != ys.shape[0]:
            raise ValueError(
                f"xs and ys must stack the same number of clients, not {xs.shape[0]} and {ys.shape[0]}"
            )
        names, params, buffers = self._current("gradients")
        grads, losses = self._vmapped(params, buffers, xs, ys)
        return losses, tuple(grads[name] for name in names)

    def _mapped(
        self, params: dict[str, Tensor], own: bool, buffers: dict[str, Tensor], batch: Batch
    ) -> tuple[dict[str, Tensor], Tensor]:
        """The clients' gradients (by parameter name, ``[K, *p.shape]``) and losses ``[K]`` of one
        micro-batch: one vmapped pass, or one per shape of a ragged batch, each client's rows (and,
        with ``own`` parameters, its parameters' rows) gathered and the results put back in place."""
        mapped = self._vmapped_own if own else self._vmapped
        groups = _shape_groups(batch)
        if len(groups) == 1:
            _, xs, ys = groups[0]
            return mapped(params, buffers, xs, ys)
        count = _count(batch)
        grads: dict[str, Tensor] = {}
        losses: Tensor | None = None
        for rows, xs, ys in groups:
            assert rows is not None  # several groups: each names its clients
            sub = {name: p[rows] for name, p in params.items()} if own else params
            g, part = mapped(sub, buffers, xs, ys)
            for name, value in g.items():
                if name not in grads:
                    grads[name] = value.new_empty((count, *value.shape[1:]))
                grads[name][rows] = value
            if losses is None:
                losses = part.new_empty(count)
            losses[rows] = part
        assert losses is not None
        return grads, losses

    def accumulate(self, batches: list[Batch]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Several micro-batches per client, as the loop's gradient accumulation: each element of
        ``batches`` is one micro-batch ``(xs [K, B, ...], ys [K, B, ...])`` for all clients (or a
        ragged :data:`Batch`, one ``(x, y)`` per client); returns the clients' losses averaged over
        the micro-batches (``[K]``) and their gradients *summed* over them (one ``[K, *p.shape]`` per
        parameter).

        >>> import torch
        >>> from torch import nn
        >>> from federated.data.tasks import cross_entropy
        >>> model = nn.Linear(4, 3)
        >>> batches = [(torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8))) for _ in range(3)]
        >>> losses, grads = VectorizedClients(model, cross_entropy).accumulate(batches)
        >>> losses.shape, grads[0].shape
        (torch.Size([2]), torch.Size([2, 3, 4]))
        """
        if not batches:
            raise ValueError("accumulate needs at least one micro-batch")
        names, params, buffers = self._current("gradients")
        total: Tensor | None = None
        grads: tuple[Tensor, ...] | None = None
        for batch in batches:
            named, losses = self._mapped(params, False, buffers, batch)
            g = tuple(named[name] for name in names)
            total = losses if total is None else total + losses
            grads = g if grads is None else tuple(a + b for a, b in zip(grads, g))
        assert total is not None and grads is not None  # batches is not empty (checked above)
        return total / len(batches), grads

    def local_train(
        self,
        steps: list[list[Batch]],
        *,
        lr: float,
        optimizer: str = "sgd",
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Local training of every client at once: ``len(steps)`` = H optimizer steps from the
        model's current parameters, each client on its own copy (``[K, *p.shape]``, vmapped with
        ``in_dims=0``), step ``h`` on the micro-batches ``steps[h]`` (each ``(xs [K, B, ...], ys)``, or
        a ragged :data:`Batch`; gradients summed over them, as the loop's ``local_update``). The optimizer is
        ``torch.optim.SGD(lr, momentum)`` or ``torch.optim.Adam(lr, betas, eps)`` with a fresh state,
        written as its elementwise update on the stacked parameters (each client's slice is its own
        step). Returns the clients' losses averaged over all H x A micro-batches (``[K]``) and their
        model changes ``x^0 - x^H`` (one ``[K, *p.shape]`` per parameter): the loop's to float
        rounding (another summation order in the batched kernels).

        >>> import torch
        >>> from torch import nn
        >>> from federated.data.tasks import cross_entropy
        >>> model = nn.Linear(4, 3)
        >>> steps = [[(torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8)))] for _ in range(5)]  # H = 5
        >>> losses, changes = VectorizedClients(model, cross_entropy).local_train(steps, lr=0.1)
        >>> losses.shape, changes[0].shape
        (torch.Size([2]), torch.Size([2, 3, 4]))
        """
        if not steps or any(not micro for micro in steps):
            raise ValueError("local_train needs at least one step, each with at least one micro-batch")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', not {optimizer!r}")
        names, start, buffers = self._current("local training")
        count = _count(steps[0][0])
        params = {name: p.expand(count, *p.shape).clone() for name, p in start.items()}
        # the optimizer's state, [K, *p.shape] each, made when the optimizer needs it (plain SGD: none)
        first: dict[str, Tensor] = {}  # momentum buffer, Adam's m
        second: dict[str, Tensor] = {}  # Adam's v
        total: Tensor | None = None
        for h, micro in enumerate(steps, start=1):
            grads: dict[str, Tensor] | None = None
            for batch in micro:
                step, losses = self._mapped(params, True, buffers, batch)
                grads = step if grads is None else {n: grads[n] + step[n] for n in names}
                total = losses.detach() if total is None else total + losses.detach()
            assert grads is not None  # every step has a micro-batch (checked above)
            for name in names:
                p, g = params[name], grads[name].detach()
                if optimizer == "sgd":
                    if momentum:  # torch.optim.SGD: the buffer starts as the first gradient
                        g = first[name] = g.clone() if h == 1 else first[name].mul_(momentum).add_(g)
                    p.add_(g, alpha=-lr)
                else:  # torch.optim.Adam's update, elementwise
                    if h == 1:
                        first[name], second[name] = torch.zeros_like(p), torch.zeros_like(p)
                    m, v = first[name], second[name]
                    m.lerp_(g, 1 - betas[0])
                    v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
                    step_size = lr / (1 - betas[0] ** h)
                    denom = (v.sqrt() / math.sqrt(1 - betas[1] ** h)).add_(eps)
                    p.addcdiv_(m, denom, value=-step_size)
        assert total is not None
        losses = total / sum(len(micro) for micro in steps)
        return losses, tuple(start[name].unsqueeze(0) - params[name] for name in names)
