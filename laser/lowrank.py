"""LASER: rank-r compression with shared query factors and error feedback, summable over the air.

One half power iteration per round, alternating sides (PowerSGD's warm-started scheme, as in the
LASER reference code). Every tensor with two or more dimensions is viewed as a matrix M (m x n,
``n = prod(shape[1:])``) and compressed iff it saves enough channel uses:

    numel / (0.5 * r_l * (m + n)) > min_compression_rate,        r_l = min(rank, m, n).

Round t, client k, compressed matrix l (M_k = error-feedback memory + fresh gradient):

    t even:  A = orth(P_l)  (m x r, shared);   X_k = M_k^T A  (n x r);   memory_k = M_k - A X_k^T
    t odd:   A = orth(Q_l)  (n x r, shared);   X_k = M_k A    (m x r);   memory_k = M_k - X_k A^T

Only X_k goes through the channel. Because A is common, the channel's mean of the X_k is X of the
mean M (linearity), and the server rebuilds G = A Y^T (even) or Y A^T (odd) from the received mean
Y. It keeps Y as the other factor (warm start: Q_l <- Y on even rounds, P_l <- Y on odd rounds),
noise included, so server and clients stay in step. The memory is the client's own residual,
computed before the channel: channel noise is never fed back. Tensors that are not compressed
(biases, norm scales) are sent as they are, without error feedback.

References: Makkuva et al., "LASER: Linear Compression in Wireless Distributed Optimization",
ICML 2024; Vogels et al., "PowerSGD", NeurIPS 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from laser.compressor import Compressor

__all__ = ["LaserCompressor", "orthogonalize", "matrix_view", "is_compressed"]


def matrix_view(shape: Sequence[int]) -> tuple[int, int] | None:
    """The ``(m, n)`` matrix view of a tensor shape, ``n = prod(shape[1:])``; ``None`` for 0-/1-D.

    >>> matrix_view((64, 3, 3, 3)), matrix_view((10,))
    ((64, 27), None)
    """
    if len(shape) < 2:
        return None
    return int(shape[0]), math.prod(int(s) for s in shape[1:])


def is_compressed(shape: Sequence[int], rank: int, min_compression_rate: float) -> bool:
    """The LASER / PowerSGD rule: compress iff ``numel / (0.5 r (m + n)) > min_compression_rate``.

    >>> is_compressed((64, 3, 3, 3), rank=4, min_compression_rate=2.0)
    True
    >>> is_compressed((10, 3), rank=4, min_compression_rate=2.0)
    False
    """
    view = matrix_view(shape)
    if view is None:
        return False
    m, n = view
    r = min(rank, m, n)
    return m * n / (0.5 * r * (m + n)) > min_compression_rate


def orthogonalize(factors: Tensor) -> Tensor:
    """Orthonormal columns for each matrix of a batch ``[L, m, r]``: the Q of a reduced QR, or for
    r = 1 each vector divided by its own norm (floor 1e-16). Unlike the reference code, rank-1
    vectors are normalised one by one, not by the norm of the whole same-shape batch.

    >>> a = orthogonalize(torch.randn(2, 5, 3, dtype=torch.float64))
    >>> torch.allclose(a.transpose(1, 2) @ a, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    True
    """
    if factors.shape[-1] == 1:
        return factors / torch.linalg.vector_norm(factors, dim=-2, keepdim=True).clamp(min=1e-16)
    return torch.linalg.qr(factors, mode="reduced").Q


@dataclass
class _Group:
    """Compressed tensors sharing one matrix shape, processed as one batch (bmm, batched QR)."""

    indices: list[int]  # positions in the parameter list
    m: int
    n: int
    rank: int
    p: Tensor  # [L, m, r] shared factor (left)
    q: Tensor  # [L, n, r] shared factor (right)


class LaserCompressor(Compressor):
    """LASER's compressor (alternating one-factor PowerSGD with per-client error feedback).

    Args:
        rank: the target rank r (>= 1); a matrix gets ``min(rank, m, n)``.
        min_compression_rate: compress a tensor only if it saves more than this factor, counting
            ``0.5 * factors_per_round * r * (m + n)`` channel uses per round.
        seed: seed of the shared query factors (the same on every client and the server, so they
            need no communication).
        factors_per_round: 1 (LASER: one factor per round, alternating sides) or 2 (PowerSGD as
            published, Vogels et al. 2019: two channel passes per round; pass 1 sends
            ``P_k = M_k orth(Q)`` with every uncompressed tensor, the server orthonormalises the
            received mean, ``P^ = orth(P)``; pass 2 sends ``Q_k = M_k^T P^``; the gradient is
            ``P^ Q^T`` and the memory ``M_k - P^ Q_k^T``). The round's energy is split over the
            passes in proportion to their channel uses.
        exponent: ``None`` (the paper's figures): a factor is one block with one energy share. A
            number e: each of the factor's r columns is its own block, and the factor's share is
            split over them in proportion to ``||x_c||^e`` (reference code's ``exponent``; e = 0
            splits equally), see :meth:`energy_groups`.

    Blocks (in parameter order): for a compressed tensor, its factor X_k flattened (``n*r`` values on
    even rounds, ``m*r`` on odd rounds; r blocks of one column each when ``exponent`` is set); for
    any other tensor, its gradient flattened. With two factors per round, pass 2 carries the
    compressed tensors' ``Q_k`` only.

    Example:
        >>> laser = LaserCompressor(rank=2)
        >>> params = [torch.zeros(20, 30), torch.zeros(20)]
        >>> laser.setup(params, num_clients=2)
        >>> blocks = laser.encode(0, [torch.randn(20, 30), torch.randn(20)])
        >>> [b.numel() for b in blocks]                  # even round: X = M^T A is 30 x 2
        [60, 20]
        >>> [g.shape for g in laser.decode(blocks)]
        [torch.Size([20, 30]), torch.Size([20])]
    """

    def __init__(
        self,
        rank: int = 4,
        min_compression_rate: float = 2.0,
        seed: int = 0,
        factors_per_round: int = 1,
        exponent: float | None = None,
    ) -> None:
        if not (isinstance(rank, int) and rank >= 1):
            raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
        if not min_compression_rate >= 0:
            raise ValueError(f"min_compression_rate must be >= 0, got {min_compression_rate!r}")
        if factors_per_round not in (1, 2):
            raise ValueError(
                f"factors_per_round must be 1 (LASER) or 2 (PowerSGD), got {factors_per_round!r}"
            )
        if exponent is not None and not (isinstance(exponent, (int, float)) and math.isfinite(exponent)):
            raise ValueError(f"exponent must be a finite number or None, got {exponent!r}")
        self.rank = rank
        self.min_compression_rate = float(min_compression_rate)
        self.seed = seed
        self.passes = factors_per_round
        self.exponent = None if exponent is None else float(exponent)

    _p_hat: list[Tensor] | None  # two passes: orth(P) between them (set by decode)

    # ----------------------------------------------------------------------------------- set-up
    def setup(self, params: Sequence[Tensor], num_clients: int) -> None:
        self.shapes = [p.shape for p in params]
        self.step = 0
        generator = torch.Generator().manual_seed(self.seed)
        by_shape: dict[tuple[int, int], list[int]] = {}
        rate = self.min_compression_rate * self.passes  # the rule counts both factors' uses
        for i, p in enumerate(params):
            if is_compressed(p.shape, self.rank, rate):
                view = matrix_view(p.shape)
                assert view is not None  # a compressed tensor has a matrix view
                by_shape.setdefault(view, []).append(i)
        self.groups: list[_Group] = []
        like = params[0] if params else torch.zeros(())
        for (m, n), indices in by_shape.items():
            r = min(self.rank, m, n)
            # drawn on the CPU from the seeded generator, so every device gets the same factors
            p = torch.randn(len(indices), m, r, generator=generator, dtype=like.dtype)
            q = torch.randn(len(indices), n, r, generator=generator, dtype=like.dtype)
            self.groups.append(_Group(indices, m, n, r, p.to(like.device), q.to(like.device)))
        self.compressed = sorted(i for g in self.groups for i in g.indices)
        self.uncompressed = [i for i in range(len(params)) if i not in set(self.compressed)]
        self._group_of = {i: (gi, j) for gi, g in enumerate(self.groups) for j, i in enumerate(g.indices)}
        # error feedback: one [L, m, n] buffer per client and group (created on first use)
        self.memory: list[list[Tensor | None]] = [[None] * len(self.groups) for _ in range(num_clients)]
        self._queries: list[Tensor] | None = None
        self._pass = 0
        self._held: list[list[Tensor] | None] = [None] * num_clients  # two passes: M_k between them
        self._received: list[Tensor] | None = None  # two passes: pass-1 estimates

    def _uses(self, even: bool) -> list[int]:
        uncompressed = sum(math.prod(self.shapes[i]) for i in self.uncompressed)
        if self.passes == 2:
            return [
                uncompressed + sum(len(g.indices) * g.rank * g.m for g in self.groups),
                sum(len(g.indices) * g.rank * g.n for g in self.groups),
            ]
        return [uncompressed + sum(len(g.indices) * g.rank * (g.n if even else g.m) for g in self.groups)]

    def channel_uses(self, step: int | None = None) -> int:
        """Real channel uses one client needs in round ``step`` (default: the next one), all passes."""
        return sum(self._uses((self.step if step is None else step) % 2 == 0))

    def pass_shares(self) -> list[float]:
        uses = self._uses(self._even)
        return [u / sum(uses) for u in uses]

    def energy_groups(self) -> tuple[list[int], float] | None:
        if self.exponent is None:
            return None
        params = self.compressed if self._pass == 1 else range(len(self.shapes))
        groups = []
        for i in params:
            groups += [i] * (self.groups[self._group_of[i][0]].rank if i in self._group_of else 1)
        return groups, self.exponent

    # ---------------------------------------------------------------------------------- a round
    @property
    def _even(self) -> bool:
        return self.step % 2 == 0

    def _sends_right_factor(self) -> bool:
        """Whether this pass's factor is ``X = M^T A`` (``n x r``; else ``M A``, ``m x r``)."""
        return self._pass == 1 if self.passes == 2 else self._even

    def queries(self) -> list[Tensor]:
        """This round's shared orthonormal query factors A, one ``[L, m or n, r]`` per group."""
        if self._queries is None:
            left = self._even and self.passes == 1
            self._queries = [orthogonalize(g.p if left else g.q) for g in self.groups]
        return self._queries

    def _factor_blocks(self, x: Tensor) -> list[Tensor]:
        """One matrix's factor ``[side, r]`` as blocks: flattened, or one block per column."""
        if self.exponent is None:
            return [x.reshape(-1)]
        return list(x.T)

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        factors: dict[int, Tensor] = {}
        held = []
        for gi, (group, a) in enumerate(zip(self.groups, self.queries())):
            # M_k = memory + gradient, [L, m, n], added into the memory's buffer matrix by matrix (it
            # is replaced by the residual below; no stacked copy of the gradients), or a fresh stack
            m = self.memory[client][gi]
            if m is not None:
                for j, i in enumerate(group.indices):
                    m[j].add_(grads[i].reshape(group.m, group.n))
            else:
                m = torch.stack([grads[i].reshape(group.m, group.n) for i in group.indices])
            if self.passes == 2:
                held.append(m)  # the memory is set in pass 2
                x = torch.bmm(m, a)  # P_k = M_k orth(Q)
            elif self._even:
                x = torch.bmm(m.transpose(1, 2), a)  # [L, n, r]
                self.memory[client][gi] = m.baddbmm_(
                    a, x.transpose(1, 2), alpha=-1
                )  # M - A X^T, no temporary
            else:
                x = torch.bmm(m, a)  # [L, m, r]
                self.memory[client][gi] = m.baddbmm_(x, a.transpose(1, 2), alpha=-1)  # M - X A^T
            for j, i in enumerate(group.indices):
                factors[i] = x[j]
        if self.passes == 2:
            self._held[client] = held
        blocks: list[Tensor] = []
        for i, g in enumerate(grads):
            blocks += self._factor_blocks(factors[i]) if i in factors else [g.reshape(-1)]
        return blocks

    def encode_many(self, clients: Sequence[int], grads: Sequence[Tensor]) -> list[list[Tensor]]:
        """Every client's matrices of a same-shape group in one batched matmul ``[C, L, ., .]``; the
        result of :meth:`encode` client by client, to float rounding (another summation order)."""
        count = len(clients)
        factors: list[dict[int, Tensor]] = [{} for _ in clients]
        held: list[list[Tensor]] = [[] for _ in clients]
        for gi, (group, a) in enumerate(zip(self.groups, self.queries())):
            m = torch.stack(
                [grads[i].reshape(count, group.m, group.n) for i in group.indices], dim=1
            )  # [C, L, m, n]
            for j, k in enumerate(clients):
                memory = self.memory[k][gi]
                if memory is not None:
                    m[j] += memory
            if self.passes == 2:
                x = m @ a  # P_k = M_k orth(Q), [C, L, m, r]
                for j in range(count):
                    held[j].append(m[j])
            elif self._even:
                x = m.transpose(-1, -2) @ a  # [C, L, n, r]
                m -= a @ x.transpose(-1, -2)
            else:
                x = m @ a  # [C, L, m, r]
                m -= x @ a.transpose(-1, -2)
            for j, k in enumerate(clients):
                if self.passes == 1:
                    self.memory[k][gi] = m[j]
                for pos, i in enumerate(group.indices):
                    factors[j][i] = x[j, pos]
        blocks = []
        for j, k in enumerate(clients):
            if self.passes == 2:
                self._held[k] = held[j]
            client_blocks: list[Tensor] = []
            for i, g in enumerate(grads):
                client_blocks += self._factor_blocks(factors[j][i]) if i in factors[j] else [g[j].reshape(-1)]
            blocks.append(client_blocks)
        return blocks

    def encode_pass(self, client: int, pass_index: int) -> list[Tensor]:
        if self.passes != 2 or pass_index != 1 or self._pass != 1:
            raise ValueError(f"pass {pass_index} is not the next pass of this round")
        held, self._held[client] = self._held[client], None
        assert held is not None and self._p_hat is not None  # set by pass 0's encode and decode
        blocks: list[Tensor] = []
        factors: dict[int, Tensor] = {}
        for gi, (group, p_hat, m) in enumerate(zip(self.groups, self._p_hat, held)):
            x = torch.bmm(m.transpose(1, 2), p_hat)  # Q_k = M_k^T P^, [L, n, r]
            self.memory[client][gi] = m.baddbmm_(p_hat, x.transpose(1, 2), alpha=-1)  # M - P^ Q_k^T
            for j, i in enumerate(group.indices):
                factors[i] = x[j]
        for i in self.compressed:
            blocks += self._factor_blocks(factors[i])
        return blocks

    def _parse(self, blocks: Sequence[Tensor], params: Sequence[int], right: bool) -> dict[int, Tensor]:
        """Split a pass's blocks back into one tensor per parameter (factors as ``[side, r]``)."""
        out, b = {}, 0
        for i in params:
            if i in self._group_of:
                group = self.groups[self._group_of[i][0]]
                side = group.n if right else group.m
                if self.exponent is None:
                    out[i] = blocks[b].reshape(side, group.rank)
                    b += 1
                else:
                    out[i] = torch.stack(list(blocks[b : b + group.rank]), dim=1)
                    b += group.rank
            else:
                out[i] = blocks[b].reshape(self.shapes[i])
                b += 1
        if b != len(blocks):
            raise ValueError(f"expected {b} blocks, got {len(blocks)}")
        return out

    def _stacked(self, group: _Group, parsed: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
        y = torch.stack([parsed[i] for i in group.indices])  # [L, side, r]
        # a factor received as exactly zero (nobody had energy, or every client's matrix was
        # zero) would make every later query zero at rank 1: the previous factor is kept instead
        silent = (y == 0).flatten(1).all(1).reshape(-1, 1, 1)
        return y, silent

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor] | None:
        right = self._sends_right_factor()
        params = self.compressed if self._pass == 1 else list(range(len(self.shapes)))
        parsed = self._parse(blocks, params, right)
        if self.passes == 2 and self._pass == 0:  # received P: orthonormalise, ask for Q
            self._received = [parsed[i] for i in self.uncompressed]
            self._p_hat = []
            for group in self.groups:
                y, silent = self._stacked(group, parsed)
                self._p_hat.append(orthogonalize(torch.where(silent, group.p, y)))
            self._pass = 1
            return None
        grads: list[Tensor | None] = [None] * len(self.shapes)
        for j, i in enumerate(self.uncompressed):
            if self.passes == 2:
                assert self._received is not None  # set by pass 0's decode
                grads[i] = self._received[j]
            else:
                grads[i] = parsed[i]
        for gi, group in enumerate(self.groups):
            y, silent = self._stacked(group, parsed)
            if self.passes == 2:
                assert self._p_hat is not None  # set by pass 0's decode
                p_hat = self._p_hat[gi]
                approx = torch.bmm(p_hat, y.transpose(1, 2))
                group.p, group.q = p_hat, torch.where(silent, group.q, y)
            elif self._even:
                a = self.queries()[gi]
                approx = torch.bmm(a, y.transpose(1, 2))  # [L, m, n]
                group.p, group.q = a, torch.where(silent, group.q, y)
            else:
                a = self.queries()[gi]
                approx = torch.bmm(y, a.transpose(1, 2))
                group.q, group.p = a, torch.where(silent, group.p, y)
            for j, i in enumerate(group.indices):
                grads[i] = approx[j].reshape(self.shapes[i])
        self.step += 1
        self._queries = None
        self._pass = 0
        self._received = self._p_hat = None
        return cast(list[Tensor], grads)  # every parameter is compressed or not: all set

    # ------------------------------------------------------------------------------ save/restore
    def state_dict(self) -> dict[str, object]:
        if self._pass != 0:
            raise ValueError("cannot save a compressor in the middle of a round (between its passes)")
        return {
            "step": self.step,
            "p": [g.p for g in self.groups],
            "q": [g.q for g in self.groups],
            # copies: encode updates the memories in place
            "memory": [[None if m is None else m.clone() for m in client] for client in self.memory],
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.step = int(cast(int, state["step"]))
        p_factors, q_factors = cast(list[Tensor], state["p"]), cast(list[Tensor], state["q"])
        for group, p, q in zip(self.groups, p_factors, q_factors, strict=True):
            group.p, group.q = p, q
        memory = cast(list[list[Tensor | None]], state["memory"])
        self.memory = [[None if m is None else m.clone() for m in client] for client in memory]
        self._queries = None
