"""How the training data is split over the clients: ``data.partition`` and its parameters.

Every partition is a pure function of the labels (or the number of samples or tokens), the number
of clients ``K``, its parameters and a ``torch.Generator`` (the run's data seed): the same inputs
give the same split on any machine. Each returns one sorted index tensor per client (``contiguous``:
one ``range`` of token positions per client, which costs nothing for a stream of 10^8 tokens).

- :func:`iid`: a random permutation cut into ``K`` equal shards, the remainder dropped (the LASER
  paper's split, exactly :func:`~federated.data.datasets.iid_split`).
- :func:`dirichlet` (Yurochkin et al. 2019; Hsu et al. 2019; flwr-datasets' DirichletPartitioner):
  each class split over the clients in proportions ``p_c ~ Dir_K(alpha)``.
- :func:`shards` (McMahan et al. 2017): sorted by label, cut into ``K * shards_per_client`` equal
  shards, ``shards_per_client`` random shards per client.
- :func:`quantity`: client sizes in proportions ``q ~ Dir_K(alpha)``, labels IID.
- :func:`contiguous` (language): each client's own contiguous slice of the token stream.

:func:`partition_table` counts what each client holds (client x class, or tokens per client), and
:func:`split` dispatches on a :class:`PartitionSpec` (``data.partition`` and its parameters).

Dirichlet draws. ``Dir_K(alpha)`` is drawn as normalised Gamma variables, ``p_k = G_k / sum_j G_j``
with ``G_k ~ Gamma(alpha, 1)`` independent, computed in log space with the boosting identity
``G = Y U^(1/alpha)``, ``Y ~ Gamma(alpha + 1)``, ``U ~ Uniform(0, 1]`` (so ``log G = log Y + log(U) /
alpha``, then a softmax), which neither underflows nor loses a client for small ``alpha``; ``Y``
comes from ``torch._standard_gamma`` and ``U`` from ``torch.rand``, both with the explicit
generator (``torch.distributions.Dirichlet`` cannot take one). The marginals are
``p_k ~ Beta(alpha, (K - 1) alpha)``: ``E[p_k] = 1/K`` and ``Var[p_k] = (K - 1) / (K^2 (K alpha + 1))``.

Splitting ``n`` samples in proportions ``p``: client ``k`` gets the samples between the cumulative
bounds ``round(n P_{k-1})`` and ``round(n P_k)``, ``P_k = p_1 + ... + p_k`` (``P_0 = 0``, ``P_K = 1``):
every sample is given to exactly one client and each count is ``n p_k`` to within one sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import torch
from torch import Tensor

from federated.data.datasets import iid_split

__all__ = [
    "MAX_DRAWS",
    "PARTITIONS",
    "PartitionError",
    "PartitionSpec",
    "iid",
    "dirichlet",
    "shards",
    "quantity",
    "contiguous",
    "partition_table",
    "split",
]

# dirichlet, quantity: draws of the proportions, in all, before giving up on min_partition_size
MAX_DRAWS = 10

# data.partition -> the parameters (DataConfig keys) it reads
PARTITIONS: dict[str, tuple[str, ...]] = {
    "iid": (),
    "dirichlet": ("alpha", "min_partition_size"),
    "shards": ("shards_per_client",),
    "quantity": ("alpha", "min_partition_size"),
    "contiguous": (),
}


class PartitionError(ValueError):
    """A partition that cannot be made with these settings: the configuration ``key`` (``data.*`` or
    ``clients.num_clients``) to change, its ``value`` and what would work (``accepted``); the task
    builder turns it into a :class:`~federated.config.ConfigError` (``laser``'s exit status 2)."""

    def __init__(self, key: str, value: object, accepted: str) -> None:
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key} = {value!r} cannot be met; expected {accepted}")


@dataclass(frozen=True)
class PartitionSpec:
    """``data.partition`` and its parameters (see :class:`~federated.config.DataConfig`)."""

    name: Literal["iid", "dirichlet", "shards", "quantity", "contiguous"] = "iid"
    alpha: float = 0.5
    shards_per_client: int = 2
    min_partition_size: int = 10

    @property
    def parameters(self) -> dict[str, float | int]:
        """The parameters this partition reads (JSON-ready).

        >>> PartitionSpec("dirichlet", alpha=0.1).parameters
        {'alpha': 0.1, 'min_partition_size': 10}
        >>> PartitionSpec("iid").parameters
        {}
        """
        return {key: getattr(self, key) for key in PARTITIONS[self.name]}


def _dirichlet(alpha: float, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """float64 samples of ``Dir_K(alpha)`` along the last axis of ``shape`` (``K = shape[-1]``):
    ``softmax(log Y + log(U) / alpha)``, ``Y ~ Gamma(alpha + 1)``, ``U ~ Uniform(0, 1]``."""
    concentration = torch.full(shape, alpha + 1.0, dtype=torch.float64)
    y = torch._standard_gamma(concentration, generator=generator)
    u = 1.0 - torch.rand(shape, dtype=torch.float64, generator=generator)  # (0, 1]: log u is finite
    log_gamma = y.log() + u.log() / alpha
    weights = torch.exp(log_gamma - log_gamma.amax(dim=-1, keepdim=True))  # a softmax, written out
    return weights / weights.sum(dim=-1, keepdim=True)


def _bounds(count: int, proportions: Tensor) -> Tensor:
    """``[0, round(n P_1), ..., round(n P_{K-1}), n]``: where each client's share of ``n = count``
    samples starts and ends (``P_k`` the cumulative proportions)."""
    inner = torch.round(torch.cumsum(proportions, 0)[:-1] * count).long().clamp(0, count)
    return torch.cat([torch.zeros(1, dtype=torch.long), inner, torch.full((1,), count, dtype=torch.long)])


def _grouped(owners: Tensor, samples: Tensor, num_clients: int, num_samples: int) -> list[Tensor]:
    """Each client's samples, sorted: ``samples[i]`` (in 0..N-1) belongs to client ``owners[i]``. One
    sort of the keys ``owner * N + sample`` (no loop over the clients: 10^5 clients cost what a sort
    of the samples does); the parts are views of one tensor."""
    keys = torch.sort(owners * num_samples + samples).values
    return list(torch.split(keys % num_samples, torch.bincount(owners, minlength=num_clients).tolist()))


def _too_small(num_samples: int, num_clients: int, alpha: float, min_size: int, smallest: int | None) -> str:
    found = (
        f"no draw of {MAX_DRAWS} gave each of the {num_clients} clients {min_size} samples; at best the "
        f"smallest client got {smallest}"
        if smallest is not None
        else f"{num_clients} clients x {min_size} samples exceed the {num_samples} training samples"
    )
    return (
        f"a smaller data.min_partition_size, or a larger data.alpha (now {alpha:g}: the smaller, the more "
        f"skewed), or fewer clients.num_clients ({found})"
    )


def iid(num_samples: int, num_clients: int, generator: torch.Generator) -> list[Tensor]:
    """A random permutation ``pi`` of the ``N`` samples cut into ``K`` equal shards: client ``k`` gets
    ``pi[k s : (k + 1) s]``, ``s = floor(N / K)`` (the remainder ``N - K s`` is dropped).

    This is :func:`~federated.data.datasets.iid_split` itself: one ``randperm(N)`` from the generator,
    so the IID split, and every batch after it, is the one earlier versions drew (not sorted, unlike
    the other partitions: the order is the one they saw).

    >>> parts = iid(10, 3, torch.Generator().manual_seed(0))
    >>> [len(p) for p in parts], len(torch.cat(parts).unique())
    ([3, 3, 3], 9)
    """
    return iid_split(num_samples, num_clients, generator)


def dirichlet(
    labels: Tensor,
    num_clients: int,
    alpha: float,
    generator: torch.Generator,
    *,
    min_partition_size: int = 10,
    num_classes: int | None = None,
) -> list[Tensor]:
    """Label skew (Yurochkin et al. 2019, as flwr-datasets' DirichletPartitioner): for each class
    ``c``, proportions ``p_c ~ Dir_K(alpha)`` and the class's ``n_c`` samples, shuffled, split over
    the ``K`` clients in those proportions (client ``k`` gets ``round(n_c P_{c,k}) - round(n_c
    P_{c,k-1})`` of them, ``P`` the cumulative sums). So ``E[n_ck / n_c] = 1/K`` and
    ``Var[n_ck / n_c] = (K - 1) / (K^2 (K alpha + 1))``: ``alpha -> inf`` is IID, small ``alpha`` gives
    each client a few classes. Every sample goes to exactly one client.

    The whole split is redrawn until every client has at least ``min_partition_size`` samples, at
    most :data:`MAX_DRAWS` draws in all; if none does, a :class:`PartitionError` (a ``ValueError``)
    names ``data.min_partition_size`` and ``data.alpha``. Each draw takes ``C x K`` Dirichlet
    proportions, then one permutation per class, from ``generator``.

    >>> labels = torch.arange(100) % 4
    >>> parts = dirichlet(labels, 3, alpha=0.5, generator=torch.Generator().manual_seed(0))
    >>> sum(len(p) for p in parts), len(torch.cat(parts).unique()), min(len(p) for p in parts) >= 10
    (100, 100, True)
    """
    classes = int(labels.max()) + 1 if num_classes is None else num_classes
    labels = labels.cpu()
    if num_clients * min_partition_size > len(labels):
        raise PartitionError(
            "data.min_partition_size",
            min_partition_size,
            _too_small(len(labels), num_clients, alpha, min_partition_size, None),
        )
    members = [(labels == c).nonzero().flatten() for c in range(classes)]
    clients = torch.arange(num_clients)
    best = 0  # the largest smallest client over the draws
    for _ in range(MAX_DRAWS):
        proportions = _dirichlet(alpha, (classes, num_clients), generator)
        shuffled, owners = [], []
        for c, idx in enumerate(members):
            shuffled.append(idx[torch.randperm(len(idx), generator=generator)])
            owners.append(torch.repeat_interleave(clients, torch.diff(_bounds(len(idx), proportions[c]))))
        owner = torch.cat(owners)
        best = max(best, int(torch.bincount(owner, minlength=num_clients).min()))
        if best >= min_partition_size:  # (earlier draws fell short: this one made it)
            return _grouped(owner, torch.cat(shuffled), num_clients, len(labels))
    raise PartitionError(
        "data.min_partition_size",
        min_partition_size,
        _too_small(len(labels), num_clients, alpha, min_partition_size, best),
    )


def shards(
    labels: Tensor, num_clients: int, shards_per_client: int, generator: torch.Generator
) -> list[Tensor]:
    """Pathological non-IID (McMahan et al. 2017): the samples sorted by label (in random order
    within a class), cut into ``S = K * shards_per_client`` equal shards of ``floor(N / S)`` samples
    (the remainder, at the end of the last class, is dropped), and each client given
    ``shards_per_client`` shards at random (a random permutation of the shards cut into ``K``
    groups). A shard holds the classes its stretch of the sorted labels covers (with shards smaller
    than the classes: one, or two where it straddles a class boundary), so each client holds at most
    ``shards_per_client * (classes per shard)`` classes. Draws a permutation of the samples, then
    one of the shards.

    Fewer samples than shards is a :class:`PartitionError` naming ``data.shards_per_client``.

    >>> labels = torch.arange(40) // 10          # 4 classes of 10
    >>> parts = shards(labels, 4, 1, torch.Generator().manual_seed(0))
    >>> sorted(len(labels[p].unique()) for p in parts), sum(len(p) for p in parts)
    ([1, 1, 1, 1], 40)
    """
    labels = labels.cpu()
    count = num_clients * shards_per_client
    if len(labels) < count:
        raise PartitionError(
            "data.shards_per_client",
            shards_per_client,
            f"at most {len(labels) // num_clients} (clients.num_clients = {num_clients} clients x "
            f"data.shards_per_client shards must not exceed the {len(labels)} training samples)",
        )
    order = torch.randperm(len(labels), generator=generator)
    order = order[torch.sort(labels[order], stable=True).indices]
    size = len(labels) // count
    pieces = order[: count * size].view(count, size)
    assignment = torch.randperm(count, generator=generator).view(num_clients, shards_per_client)
    return list(torch.sort(pieces[assignment].flatten(1), dim=1).values)  # [K, shards x size], rows sorted


def quantity(
    num_samples: int,
    num_clients: int,
    alpha: float,
    generator: torch.Generator,
    *,
    min_partition_size: int = 10,
) -> list[Tensor]:
    """Quantity skew: client sizes in proportions ``q ~ Dir_K(alpha)`` (client ``k`` gets
    ``round(N Q_k) - round(N Q_{k-1})`` samples, ``Q`` the cumulative sums; ``E[size_k] = N/K``),
    redrawn as :func:`dirichlet` until every client has ``min_partition_size`` samples (at most
    :data:`MAX_DRAWS` draws, else a :class:`PartitionError`); the labels stay IID: a random
    permutation of the ``N`` samples cut at those sizes. Every sample goes to exactly one client.

    >>> parts = quantity(100, 4, alpha=1.0, generator=torch.Generator().manual_seed(0))
    >>> sum(len(p) for p in parts), len(torch.cat(parts).unique()), len({len(p) for p in parts}) > 1
    (100, 100, True)
    """
    if num_clients * min_partition_size > num_samples:
        raise PartitionError(
            "data.min_partition_size",
            min_partition_size,
            _too_small(num_samples, num_clients, alpha, min_partition_size, None),
        )
    best = 0  # the largest smallest client over the draws
    for _ in range(MAX_DRAWS):
        bounds = _bounds(num_samples, _dirichlet(alpha, (num_clients,), generator))
        best = max(best, int((bounds[1:] - bounds[:-1]).min()))
        if best >= min_partition_size:  # (earlier draws fell short: this one made it)
            order = torch.randperm(num_samples, generator=generator)
            owner = torch.repeat_interleave(torch.arange(num_clients), torch.diff(bounds))
            return _grouped(owner, order, num_clients, num_samples)
    raise PartitionError(
        "data.min_partition_size",
        min_partition_size,
        _too_small(num_samples, num_clients, alpha, min_partition_size, best),
    )


def contiguous(num_tokens: int, num_clients: int, context: int) -> list[range]:
    """Language: client ``k`` trains on its own contiguous slice ``[k L, (k + 1) L)`` of the training
    token stream, ``L = floor(T / K)`` (the last ``T - K L`` tokens are dropped); its windows of
    ``context + 1`` tokens start uniformly in ``[k L, (k + 1) L - context - 1]``. Nothing is random.
    A slice shorter than ``context + 1`` tokens is a :class:`PartitionError` naming
    ``clients.num_clients``.

    >>> contiguous(1000, 3, context=32)
    [range(0, 333), range(333, 666), range(666, 999)]
    """
    length = num_tokens // num_clients
    if length < context + 1:
        raise PartitionError(
            "clients.num_clients",
            num_clients,
            f"at most {num_tokens // (context + 1)} with data.partition = contiguous (each client's slice "
            f"of the {num_tokens} training tokens needs model.context + 1 = {context + 1} tokens)",
        )
    return [range(k * length, (k + 1) * length) for k in range(num_clients)]


@overload
def partition_table(labels: Tensor, parts: Sequence[Tensor], num_classes: int) -> list[list[int]]: ...
@overload
def partition_table(labels: None, parts: Sequence[Tensor | range], num_classes: None = None) -> list[int]: ...
def partition_table(
    labels: Tensor | None, parts: Sequence[Tensor | range], num_classes: int | None = None
) -> list[list[int]] | list[int]:
    """What each client holds: ``counts[k][c]``, client ``k``'s samples of class ``c`` (a list of
    lists of ints, JSON-ready); with ``labels=None`` (language), each client's number of samples or
    tokens.

    >>> labels = torch.tensor([0, 0, 1, 2, 2, 2])
    >>> partition_table(labels, [torch.tensor([0, 2]), torch.tensor([1, 3, 4, 5])], 3)
    [[1, 1, 0], [1, 0, 3]]
    >>> partition_table(None, [range(0, 333), range(333, 666)])
    [333, 333]
    """
    if labels is None:
        return [len(part) for part in parts]
    assert num_classes is not None, "partition_table: num_classes is needed with labels"
    labels = labels.cpu()
    index = [torch.as_tensor(part, dtype=torch.long) for part in parts]
    owner = torch.repeat_interleave(
        torch.arange(len(index)), torch.tensor([len(i) for i in index], dtype=torch.long)
    )
    taken = labels[torch.cat(index)] if index else labels[:0]
    counts = torch.bincount(owner * num_classes + taken, minlength=len(index) * num_classes)
    return counts.view(len(index), num_classes).tolist()


def split(labels: Tensor, num_clients: int, spec: PartitionSpec, generator: torch.Generator) -> list[Tensor]:
    """A classification task's split of ``labels`` over ``num_clients`` clients by ``spec`` (iid,
    dirichlet, shards or quantity), drawn from ``generator``.

    >>> labels = torch.arange(60) % 3
    >>> parts = split(labels, 3, PartitionSpec("shards", shards_per_client=1), torch.Generator())
    >>> [labels[p].unique().tolist() for p in sorted(parts, key=lambda p: int(labels[p[0]]))]
    [[0], [1], [2]]
    """
    if spec.name == "iid":
        return iid(len(labels), num_clients, generator)
    if spec.name == "dirichlet":
        return dirichlet(
            labels, num_clients, spec.alpha, generator, min_partition_size=spec.min_partition_size
        )
    if spec.name == "shards":
        return shards(labels, num_clients, spec.shards_per_client, generator)
    if spec.name == "quantity":
        return quantity(
            len(labels), num_clients, spec.alpha, generator, min_partition_size=spec.min_partition_size
        )
    raise ValueError(f"data.partition = {spec.name!r} is not a classification partition")
