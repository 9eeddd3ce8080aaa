"""A-DSGD: top-k sparsification with error feedback, a shared Gaussian projection, sparse recovery.

Amiri & Gündüz's analog scheme as LASER's baseline implements it. Per parameter tensor b with d
entries (``floor`` as in the reference code's ``int(cf * d)``):

    s = max(1, floor(fraction * d)) measurements (channel uses),  k = max(1, floor(fraction * d / 2))

A_b (s x d, i.i.d. N(0, 1/s)) is drawn once from ``seed`` and is the same on every client and the
server. Round, client c (error feedback on; the memory is the client's own residual, so channel
noise is never fed back):

    v = g_c + memory_c;   message_c = top_k(|v|) of v (others 0);   memory_c = v - message_c
    block_c = A_b message_c                                           (s values)

The block is linear in the message, so the channel's mean of the blocks is A_b xbar with xbar the
mean of the clients' sparse messages; the server receives y = A_b xbar + w, w ~ N(0, v_b I), and
estimates xbar:

* ``"lmmse"`` (default; the reference's one-shot linear estimate, vampyre ``LinEst.est_init``,
  with its AMP refinement commented out): xhat = A^T (A A^T + (v / sigma2) I)^+ y, the prior
  per-entry variance from the received energy, E||y||^2 = sigma2 tr(A A^T) + s v. At v = 0 this
  is the minimum-norm solution A^T (A A^T)^+ y (exact when s == d).
* ``"amp"``: approximate message passing with a soft-threshold denoiser (Donoho, Maleki and
  Montanari 2009), the sparse recovery of the original paper.

With n clients xbar has up to n k nonzeros (the supports differ), so recovery gets harder as the
number of clients grows: the method's known limitation. At the reference's k = s/2 even one client's
message is typically beyond soft-threshold AMP's recovery limit; AMP then diverges and the decoder
falls back to the linear estimate (see :func:`amp_estimate`). AMP needs no ``noise_var``: its
threshold tracks the residual, which includes the noise.

Sides (:mod:`laser.compressor`): a client (:class:`ADSGDClient`) keeps its memories; the server
(:class:`ADSGDServer`) decodes. Neither broadcasts anything: the A_b, fixed for the run, are
computed once per method object (:meth:`ADSGDCompressor.projections`) and the same read-only
tensors are shared by every side it makes.

References: Amiri & Gündüz, "Machine Learning at the Wireless Edge: Distributed Stochastic Gradient
Descent Over-the-Air", IEEE TSP 2020; Makkuva et al., "LASER", ICML 2024 (baselines, A-DSGD);
Donoho, Maleki & Montanari, "Message-passing algorithms for compressed sensing", PNAS 2009.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Literal

import torch
from torch import Tensor

from laser.baselines import _check_blocks
from laser.compressor import Compressor, CompressorClient, CompressorServer, Shared, check_params
from laser.sparse import check_fraction, keep_count, sparsify

__all__ = [
    "AMP_THRESHOLD",
    "AMP_TOLERANCE",
    "ADSGDCompressor",
    "ADSGDClient",
    "ADSGDServer",
    "amp_estimate",
    "lmmse_estimate",
    "soft_threshold",
    "sparsify",
]

AMP_THRESHOLD = 1.1  # alpha in theta_t = alpha ||z_t|| / sqrt(s) (Donoho et al.'s tuning knob)
AMP_TOLERANCE = 1e-6  # stop when ||x_{t+1} - x_t|| <= tol * ||x_{t+1}||


def soft_threshold(r: Tensor, theta: float | Tensor) -> Tensor:
    """eta(r; theta) = sign(r) max(|r| - theta, 0), the AMP denoiser.

    >>> soft_threshold(torch.tensor([-2.0, 0.5, 3.0]), 1.0)
    tensor([-1.,  0.,  2.])
    """
    return r.sign() * (r.abs() - theta).clamp(min=0)


def lmmse_estimate(y: Tensor, a: Tensor, u: Tensor, lam: Tensor, noise_var: float) -> Tensor:
    """xhat = A^T U diag(w) U^T y,  w_i = 1 / (lam_i + v / sigma2), from A A^T = U diag(lam) U^T.

    ``y`` ``[s]``, ``a`` ``[s, d]``, ``u`` ``[s, s]`` and ``lam`` ``[s]`` float64 (the eigenpairs of
    A A^T), ``noise_var`` v >= 0. The prior variance sigma2 = max((||y||^2 - s v) / sum(lam), tiny).
    Directions with lam_i <= s eps max(lam) get w_i = 0 (pseudo-inverse; they carry no signal).
    Costs O(s^2 + s d). Returns ``[d]`` in ``a``'s dtype.

    >>> a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    >>> lam, u = torch.linalg.eigh(a @ a.T)
    >>> lmmse_estimate(torch.tensor([1.0, 4.0], dtype=torch.float64), a, u, lam, 0.0)
    tensor([1., 2., 0.], dtype=torch.float64)
    """
    y64 = y.to(torch.float64)
    s = y64.numel()
    lam = lam.clamp(min=0)
    sigma2 = max(
        (float(y64.square().sum()) - s * noise_var) / float(lam.sum()), torch.finfo(torch.float64).tiny
    )
    cut = s * torch.finfo(torch.float64).eps * float(lam.max())
    # v / sigma2 may overflow to inf (no signal above the noise): the weights are then 0, not NaN
    weights = torch.where(lam > cut, 1.0 / (lam + noise_var / sigma2), 0.0)  # [s]
    z = u @ (weights * (u.T @ y64))  # [s]
    return a.T @ z.to(a.dtype)


def amp_estimate(
    y: Tensor, a: Tensor, iterations: int, threshold: float = AMP_THRESHOLD, tolerance: float = AMP_TOLERANCE
) -> Tensor | None:
    """Soft-threshold AMP (Donoho, Maleki, Montanari 2009); ``None`` if it diverges.

    x^0 = 0, z^0 = y, delta = s / d; for t < ``iterations``:

        r = x^t + A^T z^t,  theta_t = alpha ||z^t|| / sqrt(s),  x^{t+1} = eta(r; theta_t)
        z^{t+1} = y - A x^{t+1} + (1/delta) z^t mean(eta'(r; theta_t))      (Onsager term)

    with alpha = ``threshold``; stops early once ||x^{t+1} - x^t|| <= ``tolerance`` ||x^{t+1}||.
    Divergence guard: if a residual z^t is non-finite or larger than z^0 = y, it returns ``None``
    (the compressor then uses :func:`lmmse_estimate`). ``y`` ``[s]``, ``a`` ``[s, d]`` with
    columns of norm about 1 (N(0, 1/s) entries); returns ``[d]`` in ``a``'s dtype.

    >>> g = torch.Generator().manual_seed(0)
    >>> a = torch.randn(40, 100, generator=g, dtype=torch.float64) / 40 ** 0.5
    >>> x = torch.zeros(100, dtype=torch.float64)
    >>> x[[3, 50, 97]] = torch.tensor([1.0, -2.0, 0.5], dtype=x.dtype)
    >>> bool((amp_estimate(a @ x, a, iterations=100) - x).norm() < 1e-4 * x.norm())
    True
    """
    s, d = a.shape
    y = y.to(a.dtype)
    x, z = torch.zeros(d, dtype=a.dtype, device=a.device), y
    start = float(y.norm())
    for _ in range(iterations):
        r = x + a.T @ z
        theta = threshold * z.norm() / math.sqrt(s)
        x_next = soft_threshold(r, theta)
        onsager = z * ((r.abs() > theta).to(a.dtype).mean() * d / s)
        z = y - a @ x_next + onsager
        residual = float(z.norm())
        if not math.isfinite(residual) or residual > start:
            return None
        converged = float((x_next - x).norm()) <= tolerance * float(x_next.norm())
        x = x_next
        if converged:
            break
    return x


@dataclass(frozen=True)
class _Projection:
    """One tensor's shared measurement matrix and the eigenpairs of A A^T (for the linear decoder).
    Read-only: one instance serves every side a method makes."""

    a: Tensor  # [s, d], the params' dtype and device
    u: Tensor  # [s, s] float64, eigenvectors of A A^T
    lam: Tensor  # [s] float64, eigenvalues of A A^T
    k: int  # sparsity of each client's message


_ProjectionKey = tuple[int, float, tuple[tuple[tuple[int, ...], torch.dtype, torch.device], ...]]


class ADSGDClient(CompressorClient):
    """One client of A-DSGD: its error-feedback memories (flat ``[d_b]``, created on first use) and
    the method's shared projections (the same read-only tensors as every other side's). Needs no
    broadcast: the A_b are fixed for the run. State: ``{"memory": [...]}``."""

    partial_feedback = False  # undelivered takes back a whole projected message, or nothing

    def __init__(self, method: ADSGDCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        tensors = check_params(params, half=False, data=True)
        super().__init__(tensors, index)
        self.projections = method.projections(tensors)
        self.numels = [p.numel() for p in tensors]
        self.devices = [p.device for p in tensors]
        self.memory: list[Tensor | None] = [None] * len(tensors)
        # per tensor, until the next encode: (support, values) of the message, a copy of the block
        self._sent: list[tuple[Tensor, Tensor, Tensor] | None] = [None] * len(tensors)

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        grads = self._checked(grads)
        blocks, sent = [], []
        for b, (g, proj) in enumerate(zip(grads, self.projections, strict=True)):
            v = g.reshape(-1)
            memory = self.memory[b]
            if memory is not None:
                v = v + memory
            message = sparsify(v, proj.k)  # a new tensor; exactly v on its support
            self.memory[b] = v - message  # exactly 0 on the support
            index = message.nonzero().squeeze(1)  # at most k columns: O(s k), not O(s d)
            values = message[index]
            blocks.append(proj.a.index_select(1, index) @ values)
            sent.append((index, values, blocks[-1].clone()))  # a copy: the caller may scale its blocks
        self._sent = list(sent)
        return blocks

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        """The channel did not hear this client's last ``blocks`` (all of them, or those not zero: a
        block the channel heard is given as zeros): the memory takes each unheard block's message
        back, so it is ``v = g + e`` there, the whole vector the client meant to send, exactly (the
        memory is 0 on the message's support, where the message is v). A block that is neither the
        one sent nor zeros is refused: a projected message cannot be taken back in part."""
        blocks = _check_blocks(blocks, [proj.a.shape[0] for proj in self.projections])
        if all(sent is None for sent in self._sent):
            raise ValueError(
                "undelivered(blocks) must follow this client's encode of the round, once (no message pending)"
            )
        back = []
        for i, (b, sent) in enumerate(zip(blocks, self._sent)):
            if sent is not None and torch.equal(b, sent[2]):
                back.append(i)
            elif bool(b.any()):
                raise ValueError(
                    f"blocks[{i}] is neither the block this client sent this round (not yet given back) "
                    "nor zeros (heard): A-DSGD can only take back a whole projected message"
                )
        for i in back:
            memory, sent = self.memory[i], self._sent[i]
            assert memory is not None and sent is not None  # encode sets both
            memory.index_copy_(0, sent[0], sent[1])
            self._sent[i] = None

    def _state_dict(self) -> dict[str, Any]:
        return {"memory": [None if m is None else m.clone() for m in self.memory]}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        memory = list(state["memory"])
        if len(memory) != len(self.memory):
            raise ValueError(
                f"state holds {len(memory)} memories; this client has {len(self.memory)} tensors"
            )
        for i, (m, d) in enumerate(zip(memory, self.numels)):
            if m is not None and (not isinstance(m, Tensor) or m.numel() != d):
                raise ValueError(f"state['memory'][{i}] must be None or a flat tensor of {d} entries")
        self.memory = [
            None if m is None else m.to(dev, copy=True).reshape(-1) for m, dev in zip(memory, self.devices)
        ]
        self._sent = [None] * len(self.memory)


class ADSGDServer(CompressorServer):
    """A-DSGD's server: decodes each block with the linear estimate or AMP, using the method's shared
    projections. No state beyond what the seed gives (``state_dict()`` is empty), no broadcast."""

    def __init__(self, method: ADSGDCompressor, params: Iterable[Tensor]) -> None:
        tensors = check_params(params, half=False, data=True)
        super().__init__(tensors)
        self.projections = method.projections(tensors)
        self.decoder = method.decoder
        self.amp_iterations = method.amp_iterations

    def block_sizes(self) -> list[int]:
        """s_b per tensor: :meth:`channel_uses` is their sum, the real channel uses per round."""
        return [int(proj.a.shape[0]) for proj in self.projections]

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor]:
        grads = []
        for b, (y, proj, shape) in enumerate(zip(blocks, self.projections, self.shapes)):
            v = 0.0 if noise_var is None else float(noise_var[b])
            xhat = None
            if self.decoder == "amp":
                xhat = amp_estimate(y, proj.a, self.amp_iterations)
            if xhat is None:
                xhat = lmmse_estimate(y, proj.a, proj.u, proj.lam, v)
            grads.append(xhat.to(y.dtype).reshape(shape))  # a new tensor: neither estimate returns y
        return grads


class ADSGDCompressor(Compressor):
    """A-DSGD (Amiri & Gündüz 2020): top-k + error feedback, projected by a shared Gaussian A.

    Args:
        fraction: channel uses per entry, in (0, 1]: s = max(1, floor(fraction d)) measurements and
            sparsity k = max(1, floor(fraction d / 2)) per tensor (the reference's ``cf = 0.1``).
        decoder: ``"lmmse"`` (the reference's linear estimate) or ``"amp"`` (sparse recovery).
        amp_iterations: AMP's maximum number of iterations (>= 1).
        seed: seed of the shared matrices A_b (drawn on the CPU, so every device gets the same).
        max_projection_entries: cap on sum_b s_b d_b, since the dense A_b cost O(fraction d^2)
            memory (the reason LASER ran A-DSGD only on a one-layer MNIST model).

    Blocks (in parameter order): client c's A_b message_c, ``s_b`` values each. ``decode`` takes the
    channel's per-block noise variances (``None`` or 0: noiseless) and returns grads shaped like the
    parameters. The A_b and their eigenpairs are fixed for the run: :meth:`projections` computes
    them once per method object and parameter layout, and every side the method makes (the server,
    each client) holds the same read-only tensors. Only the clients' memories are state
    (:class:`ADSGDClient`); the server has none beyond the seed (:class:`ADSGDServer`), so
    ``load_state_dict`` after ``setup`` continues bit-identically. Parameters must be float32 or
    float64 (the eigendecomposition).

    Example:
        >>> adsgd = ADSGDCompressor(fraction=0.5)
        >>> params = [torch.zeros(4, 5, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
        >>> client, server = adsgd.make_client(params), adsgd.make_server(params)
        >>> client.projections[0].a is server.projections[0].a     # one copy, shared by the sides
        True
        >>> grads = [torch.randn(4, 5, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
        >>> blocks = client.encode(grads, server.broadcast())
        >>> [b.numel() for b in blocks], server.channel_uses()      # s = floor(0.5 d)
        ([10, 1], 11)
        >>> [g.shape for g in server.decode(blocks, noise_var=[0.1, 0.1])]
        [torch.Size([4, 5]), torch.Size([3])]
    """

    def __init__(
        self,
        fraction: float = 0.1,
        decoder: Literal["lmmse", "amp"] = "lmmse",
        amp_iterations: int = 30,
        seed: int = 0,
        max_projection_entries: int = 2**27,
    ) -> None:
        if decoder not in ("lmmse", "amp"):
            raise ValueError(f"decoder must be 'lmmse' or 'amp', got {decoder!r}")
        if isinstance(amp_iterations, bool) or not (isinstance(amp_iterations, int) and amp_iterations >= 1):
            raise ValueError(f"amp_iterations must be an integer >= 1, got {amp_iterations!r}")
        if isinstance(max_projection_entries, bool) or not (
            isinstance(max_projection_entries, int) and max_projection_entries >= 1
        ):
            raise ValueError(
                f"max_projection_entries must be an integer >= 1, got {max_projection_entries!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
        self.fraction: float = check_fraction(fraction)
        self.decoder: Literal["lmmse", "amp"] = decoder
        self.amp_iterations: int = amp_iterations
        self.seed: int = int(seed)
        self.max_projection_entries: int = max_projection_entries
        self._projections: dict[_ProjectionKey, list[_Projection]] = {}

    def projections(self, params: Iterable[Tensor]) -> list[_Projection]:
        """The shared A_b (with the eigenpairs of A_b A_b^T and the sparsity k_b) for these parameters,
        computed on first use and cached on this method, keyed by the parameters' shapes, dtypes and
        devices (and the seed and fraction): every side gets the same read-only tensors."""
        tensors = check_params(params, half=False, data=True)
        key = (self.seed, self.fraction, tuple((tuple(p.shape), p.dtype, p.device) for p in tensors))
        cached = self._projections.get(key)
        if cached is None:
            cached = self._draw(tensors)
            self._projections[key] = cached
        return list(cached)

    def _draw(self, params: list[Tensor]) -> list[_Projection]:
        dims = [p.numel() for p in params]
        measurements = [keep_count(self.fraction, d) for d in dims]
        entries = sum(s * d for s, d in zip(measurements, dims))
        if entries > self.max_projection_entries:
            gigabytes = sum(s * d * p.element_size() for s, d, p in zip(measurements, dims, params)) / 1e9
            raise ValueError(
                f"A-DSGD's dense projections would need {entries} entries ({gigabytes:.3g} GB), more than "
                f"max_projection_entries={self.max_projection_entries}; use a smaller model or a lower "
                "fraction"
            )
        generator = torch.Generator().manual_seed(self.seed)
        projections = []
        for p, s, d in zip(params, measurements, dims):
            a = torch.randn(s, d, generator=generator, dtype=p.dtype) / math.sqrt(s)
            a64 = a.to(torch.float64)
            lam, u = torch.linalg.eigh(a64 @ a64.T)  # on the CPU: the same on every device
            k = keep_count(self.fraction / 2, d)
            projections.append(_Projection(a.to(p.device), u.to(p.device), lam.to(p.device), k))
        return projections

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> ADSGDClient:
        return ADSGDClient(self, params, index)

    def make_server(self, params: Iterable[Tensor]) -> ADSGDServer:
        return ADSGDServer(self, params)

    def channel_uses(self) -> int:
        """Real channel uses one client needs per round, sum_b s_b (the server's, after ``setup``)."""
        return self._server().channel_uses()

    def __repr__(self) -> str:
        return (
            f"ADSGDCompressor(fraction={self.fraction}, decoder={self.decoder!r}, "
            f"amp_iterations={self.amp_iterations}, seed={self.seed}, "
            f"max_projection_entries={self.max_projection_entries})"
        )
