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

References: Amiri & Gündüz, "Machine Learning at the Wireless Edge: Distributed Stochastic Gradient
Descent Over-the-Air", IEEE TSP 2020; Makkuva et al., "LASER", ICML 2024 (baselines, A-DSGD);
Donoho, Maleki & Montanari, "Message-passing algorithms for compressed sensing", PNAS 2009.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import Tensor

from laser.compressor import Compressor
from laser.sparse import check_fraction, keep_count, sparsify

__all__ = [
    "AMP_THRESHOLD",
    "AMP_TOLERANCE",
    "ADSGDCompressor",
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


@dataclass
class _Projection:
    """One tensor's shared measurement matrix and the eigenpairs of A A^T (for the linear decoder)."""

    a: Tensor  # [s, d], the params' dtype and device
    u: Tensor  # [s, s] float64, eigenvectors of A A^T
    lam: Tensor  # [s] float64, eigenvalues of A A^T
    k: int  # sparsity of each client's message


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
    parameters. Only the memories are state: the A_b and their eigenpairs are regenerated
    identically from ``seed`` by ``setup``, so ``load_state_dict`` after ``setup`` continues
    bit-identically.

    Example:
        >>> adsgd = ADSGDCompressor(fraction=0.5)
        >>> params = [torch.zeros(4, 5, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
        >>> adsgd.setup(params, num_clients=2)
        >>> grads = [torch.randn(4, 5, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
        >>> blocks = adsgd.encode(0, grads)
        >>> [b.numel() for b in blocks], adsgd.channel_uses()    # s = floor(0.5 d)
        ([10, 1], 11)
        >>> [g.shape for g in adsgd.decode(blocks, noise_var=[0.1, 0.1])]
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
        if not (isinstance(amp_iterations, int) and amp_iterations >= 1):
            raise ValueError(f"amp_iterations must be an integer >= 1, got {amp_iterations!r}")
        if not (isinstance(max_projection_entries, int) and max_projection_entries >= 1):
            raise ValueError(
                f"max_projection_entries must be an integer >= 1, got {max_projection_entries!r}"
            )
        self.fraction = check_fraction(fraction)
        self.decoder = decoder
        self.amp_iterations = amp_iterations
        self.seed = seed
        self.max_projection_entries = max_projection_entries

    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        self.shapes = [p.shape for p in params]
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
        self.projections: list[_Projection] = []
        for p, s, d in zip(params, measurements, dims):
            a = torch.randn(s, d, generator=generator, dtype=p.dtype) / math.sqrt(s)
            a64 = a.to(torch.float64)
            lam, u = torch.linalg.eigh(a64 @ a64.T)  # on the CPU: the same on every device
            k = keep_count(self.fraction / 2, d)
            self.projections.append(_Projection(a.to(p.device), u.to(p.device), lam.to(p.device), k))
        # error feedback: one flat [d_b] buffer per client and tensor (created on first use)
        self.memory: list[list[Tensor | None]] = [[None] * len(params) for _ in range(num_clients)]

    def channel_uses(self) -> int:
        """Real channel uses one client needs per round, sum_b s_b."""
        return sum(proj.a.shape[0] for proj in self.projections)

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        blocks = []
        for b, (g, proj) in enumerate(zip(grads, self.projections, strict=True)):
            v = g.reshape(-1)
            memory = self.memory[client][b]
            if memory is not None:
                v = v + memory
            message = sparsify(v, proj.k)
            self.memory[client][b] = v - message
            index = message.nonzero().squeeze(1)  # at most k columns: O(s k), not O(s d)
            blocks.append(proj.a.index_select(1, index) @ message[index])
        return blocks

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor]:
        if len(blocks) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} blocks, got {len(blocks)}")
        variances = [0.0] * len(blocks) if noise_var is None else [float(v) for v in noise_var]
        if len(variances) != len(blocks) or not all(math.isfinite(v) and v >= 0 for v in variances):
            raise ValueError(f"noise_var must hold one finite value >= 0 per block, got {noise_var!r}")
        grads = []
        for y, v, proj, shape in zip(blocks, variances, self.projections, self.shapes):
            xhat = None
            if self.decoder == "amp":
                xhat = amp_estimate(y, proj.a, self.amp_iterations)
            if xhat is None:
                xhat = lmmse_estimate(y, proj.a, proj.u, proj.lam, v)
            grads.append(xhat.to(y.dtype).reshape(shape))
        return grads

    def state_dict(self) -> dict[str, object]:
        return {"memory": [list(client) for client in self.memory]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        memory = cast(list[list[Tensor | None]], state["memory"])
        if len(memory) != len(self.memory) or any(len(c) != len(self.shapes) for c in memory):
            raise ValueError("the saved memories do not match this set-up's clients and tensors")
        self.memory = [list(client) for client in memory]
