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
noise included, and broadcasts the next round's queries A, so server and clients stay in step. The
memory is the client's own residual, computed before the channel: channel noise is never fed back.
Tensors that are not compressed (biases, norm scales) are sent as they are, without error feedback.

The server (:class:`LaserServer`) holds the factors and the round counter; each client
(:class:`LaserClient`) holds its memories and nothing shared: it encodes with the queries the
server broadcast.

References: Makkuva et al., "LASER: Linear Compression in Wireless Distributed Optimization",
ICML 2024; Vogels et al., "PowerSGD", NeurIPS 2019.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from laser.compressor import Compressor, CompressorClient, CompressorServer, Shared, check_params

__all__ = ["LaserCompressor", "LaserClient", "LaserServer", "orthogonalize", "matrix_view", "is_compressed"]


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


@dataclass(frozen=True)
class _Group:
    """Compressed tensors sharing one matrix shape, processed as one batch (bmm, batched QR)."""

    indices: list[int]  # positions in the parameter list
    m: int
    n: int
    rank: int


class _Layout:
    """Which tensors a LASER method compresses, grouped by matrix shape (the same on every side)."""

    def __init__(self, method: LaserCompressor, params: list[Tensor]) -> None:
        self.method = method
        self.shapes = [p.shape for p in params]
        by_shape: dict[tuple[int, int], list[int]] = {}
        rate = method.min_compression_rate * method.passes  # the rule counts both factors' uses
        for i, p in enumerate(params):
            view = matrix_view(p.shape)
            if view is not None and is_compressed(p.shape, method.rank, rate):
                by_shape.setdefault(view, []).append(i)
        self.groups = [_Group(ix, m, n, min(method.rank, m, n)) for (m, n), ix in by_shape.items()]
        self.compressed = sorted(i for g in self.groups for i in g.indices)
        self.uncompressed = [i for i in range(len(params)) if i not in set(self.compressed)]
        self.group_of = {i: gi for gi, g in enumerate(self.groups) for i in g.indices}

    def factor_blocks(self, x: Tensor) -> list[Tensor]:
        """One matrix's factor ``[side, r]`` as blocks: flattened, or one block per column."""
        if self.method.exponent is None:
            return [x.reshape(-1)]
        return list(x.T)

    def blocks(self, factors: Mapping[int, Tensor], grads: Sequence[Tensor] | None) -> list[Tensor]:
        """A pass's blocks in parameter order: factors of the compressed tensors, and (pass 1 only,
        ``grads`` given) copies of the others."""
        out: list[Tensor] = []
        for i in range(len(self.shapes)):
            if i in factors:
                out += self.factor_blocks(factors[i])
            elif grads is not None:
                out.append(grads[i].reshape(-1).clone())
        return out

    def sizes(self, right: bool, with_uncompressed: bool) -> list[int]:
        """The block sizes of a pass (factors ``n x r`` when ``right``, else ``m x r``)."""
        sizes: list[int] = []
        for i, shape in enumerate(self.shapes):
            if i in self.group_of:
                group = self.groups[self.group_of[i]]
                side = group.n if right else group.m
                sizes += [side * group.rank] if self.method.exponent is None else [side] * group.rank
            elif with_uncompressed:
                sizes.append(math.prod(shape))
        return sizes


def _queries(shared: Shared | None, key: str, groups: int) -> list[Tensor]:
    value = None if shared is None else shared.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != groups:
        raise ValueError(
            f"shared must be the server's broadcast() for this pass, with {key!r}: {groups} tensors"
        )
    return list(value)


class LaserClient(CompressorClient):
    """One client's side of LASER: its error-feedback memories (one ``[L, m, n]`` per group of
    same-shape compressed matrices, created on first use). It encodes with the queries the server
    broadcast: ``{"step": t, "queries": [A per group]}`` (pass 1); PowerSGD's pass 2 with
    ``{"p_hat": [orth(P) per group]}``."""

    def __init__(self, method: LaserCompressor, params: Iterable[Tensor], index: int = 0) -> None:
        tensors = check_params(params, half=False)
        super().__init__(tensors, index)
        self.layout = _Layout(method, tensors)
        self.passes = method.passes
        self.memory: list[Tensor | None] = [None] * len(self.layout.groups)
        self._held: list[Tensor] | None = None  # PowerSGD: M_k between its two passes
        # the last memory-setting pass: whether it sent X = M^T A (else M A), and its A per group
        self._sent: tuple[bool, list[Tensor]] | None = None

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        grads = self._checked(grads)
        layout = self.layout
        queries = _queries(shared, "queries", len(layout.groups))
        even = int(cast(Mapping[str, Any], shared)["step"]) % 2 == 0
        factors: dict[int, Tensor] = {}
        held = []
        for gi, (group, a) in enumerate(zip(layout.groups, queries)):
            # M_k = memory + gradient, [L, m, n], added into the memory's buffer matrix by matrix (it
            # is replaced by the residual below; no stacked copy of the gradients), or a fresh stack
            m = self.memory[gi]
            if m is not None:
                for j, i in enumerate(group.indices):
                    m[j].add_(grads[i].reshape(group.m, group.n))
            else:
                m = torch.stack([grads[i].reshape(group.m, group.n) for i in group.indices])
            if self.passes == 2:
                held.append(m)  # the memory is set in pass 2
                x = torch.bmm(m, a)  # P_k = M_k orth(Q)
            elif even:
                x = torch.bmm(m.transpose(1, 2), a)  # [L, n, r]
                self.memory[gi] = m.baddbmm_(a, x.transpose(1, 2), alpha=-1)  # M - A X^T, no temporary
            else:
                x = torch.bmm(m, a)  # [L, m, r]
                self.memory[gi] = m.baddbmm_(x, a.transpose(1, 2), alpha=-1)  # M - X A^T
            for j, i in enumerate(group.indices):
                factors[i] = x[j]
        if self.passes == 2:
            self._held = held
        self._sent = None if self.passes == 2 else (even, queries)
        return layout.blocks(factors, grads)

    def encode_pass(self, pass_index: int, shared: Shared | None = None) -> list[Tensor]:
        if self.passes != 2 or pass_index != 1 or self._held is None:
            raise ValueError(f"pass_index = {pass_index} is not the next pass of this client's round")
        p_hats = _queries(shared, "p_hat", len(self.layout.groups))
        held, self._held = self._held, None
        factors: dict[int, Tensor] = {}
        for gi, (group, p_hat, m) in enumerate(zip(self.layout.groups, p_hats, held)):
            x = torch.bmm(m.transpose(1, 2), p_hat)  # Q_k = M_k^T P^, [L, n, r]
            self.memory[gi] = m.baddbmm_(p_hat, x.transpose(1, 2), alpha=-1)  # M - P^ Q_k^T
            for j, i in enumerate(group.indices):
                factors[i] = x[j]
        self._sent = (True, p_hats)
        return self.layout.blocks(factors, None)

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        """The round's last pass was not heard (all of ``blocks``, or the non-zero ones): the memory
        gets back what the factors carried, A X^T (or X A^T), so it holds M_k again."""
        if self._sent is None:
            raise ValueError("undelivered: this client has not sent the memory-setting pass of a round")
        right, queries = self._sent
        layout = self.layout
        sizes = layout.sizes(right, with_uncompressed=self.passes == 1)
        if [int(b.numel()) for b in blocks] != sizes:
            raise ValueError(
                f"blocks must be the {len(sizes)} blocks this client last sent (sizes {sizes[:8]})"
            )
        parsed, b = {}, 0
        for i in range(len(layout.shapes)):
            if i in layout.group_of:
                group = layout.groups[layout.group_of[i]]
                side = group.n if right else group.m
                if layout.method.exponent is None:
                    parsed[i] = blocks[b].reshape(side, group.rank)
                    b += 1
                else:
                    parsed[i] = torch.stack(list(blocks[b : b + group.rank]), dim=1)
                    b += group.rank
            elif self.passes == 1:
                b += 1  # an uncompressed tensor: no memory
        for gi, (group, a) in enumerate(zip(layout.groups, queries)):
            memory = self.memory[gi]
            assert memory is not None  # set by the pass that was sent
            x = torch.stack([parsed[i] for i in group.indices])
            if right:
                memory.baddbmm_(a, x.transpose(1, 2))  # + A X^T
            else:
                memory.baddbmm_(x, a.transpose(1, 2))  # + X A^T

    def _state_dict(self) -> dict[str, Any]:
        if self._held is not None:
            raise ValueError("cannot save a LASER client in the middle of a round (between its passes)")
        return {"memory": [None if m is None else m.clone() for m in self.memory]}  # encode updates in place

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        memory = list(state["memory"])
        if len(memory) != len(self.memory):
            raise ValueError(f"state holds {len(memory)} memories; this client has {len(self.memory)} groups")
        self.memory = [None if m is None else m.clone() for m in memory]
        self._held = self._sent = None


class LaserServer(CompressorServer):
    """The server's side of LASER: the shared factors P_l, Q_l (drawn from the method's seed) and
    the round counter; it decodes, warm-starts the factors and broadcasts the next queries."""

    def __init__(self, method: LaserCompressor, params: Iterable[Tensor]) -> None:
        tensors = check_params(params, half=False)
        super().__init__(tensors)
        self.layout = _Layout(method, tensors)
        self.passes = method.passes
        self.exponent = method.exponent
        self.step = 0
        generator = torch.Generator().manual_seed(method.seed)
        like = tensors[0]
        self.p: list[Tensor] = []  # [L, m, r] per group, left factors
        self.q: list[Tensor] = []  # [L, n, r] per group, right factors
        for group in self.layout.groups:
            # drawn on the CPU from the seeded generator, so every device gets the same factors
            p = torch.randn(len(group.indices), group.m, group.rank, generator=generator, dtype=like.dtype)
            q = torch.randn(len(group.indices), group.n, group.rank, generator=generator, dtype=like.dtype)
            self.p.append(p.to(like.device))
            self.q.append(q.to(like.device))
        self._queries: list[Tensor] | None = None
        self._received: list[Tensor] | None = None  # two passes: the uncompressed tensors of pass 1
        self._p_hat: list[Tensor] | None = None  # two passes: orth(P) between them

    @property
    def groups(self) -> list[_Group]:
        return self.layout.groups

    @property
    def compressed(self) -> list[int]:
        return self.layout.compressed

    @property
    def uncompressed(self) -> list[int]:
        return self.layout.uncompressed

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
            self._queries = [orthogonalize(p if left else q) for p, q in zip(self.p, self.q)]
        return self._queries

    def broadcast(self) -> dict[str, Any]:
        if self._pass == 1:
            assert self._p_hat is not None
            return {"step": self.step, "p_hat": self._p_hat}
        return {"step": self.step, "queries": self.queries()}

    def block_sizes(self) -> list[int]:
        return self.layout.sizes(self._sends_right_factor(), with_uncompressed=self._pass == 0)

    def _uses(self, even: bool) -> list[int]:
        uncompressed = sum(math.prod(self.shapes[i]) for i in self.uncompressed)
        groups = self.groups
        if self.passes == 2:
            return [
                uncompressed + sum(len(g.indices) * g.rank * g.m for g in groups),
                sum(len(g.indices) * g.rank * g.n for g in groups),
            ]
        return [uncompressed + sum(len(g.indices) * g.rank * (g.n if even else g.m) for g in groups)]

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
        labels = []
        for i in params:
            labels += [i] * (self.groups[self.layout.group_of[i]].rank if i in self.layout.group_of else 1)
        return labels, self.exponent

    def _parse(self, blocks: Sequence[Tensor], params: Sequence[int], right: bool) -> dict[int, Tensor]:
        """Split a pass's blocks back into one tensor per parameter (factors as ``[side, r]``)."""
        out, b = {}, 0
        for i in params:
            if i in self.layout.group_of:
                group = self.groups[self.layout.group_of[i]]
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
        return out

    def _stacked(self, group: _Group, parsed: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
        y = torch.stack([parsed[i] for i in group.indices])  # [L, side, r]
        # a factor received as exactly zero (nobody had energy, or every client's matrix was
        # zero) would make every later query zero at rank 1: the previous factor is kept instead
        silent = (y == 0).flatten(1).all(1).reshape(-1, 1, 1)
        return y, silent

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor] | None:
        right = self._sends_right_factor()
        params = self.compressed if self._pass == 1 else list(range(len(self.shapes)))
        parsed = self._parse(blocks, params, right)
        if self.passes == 2 and self._pass == 0:  # received P: orthonormalise, ask for Q
            self._received = [parsed[i].clone() for i in self.uncompressed]
            self._p_hat = [
                orthogonalize(torch.where(silent, p, y))
                for p, (y, silent) in zip(self.p, (self._stacked(g, parsed) for g in self.groups))
            ]
            self._pass = 1
            return None
        grads: list[Tensor | None] = [None] * len(self.shapes)
        for j, i in enumerate(self.uncompressed):
            if self.passes == 2:
                assert self._received is not None
                grads[i] = self._received[j]
            else:
                grads[i] = parsed[i].clone()
        for gi, group in enumerate(self.groups):
            y, silent = self._stacked(group, parsed)
            if self.passes == 2:
                assert self._p_hat is not None
                p_hat = self._p_hat[gi]
                approx = torch.bmm(p_hat, y.transpose(1, 2))
                self.p[gi], self.q[gi] = p_hat, torch.where(silent, self.q[gi], y)
            elif self._even:
                a = self.queries()[gi]
                approx = torch.bmm(a, y.transpose(1, 2))  # [L, m, n]
                self.p[gi], self.q[gi] = a, torch.where(silent, self.q[gi], y)
            else:
                a = self.queries()[gi]
                approx = torch.bmm(y, a.transpose(1, 2))
                self.q[gi], self.p[gi] = a, torch.where(silent, self.p[gi], y)
            for j, i in enumerate(group.indices):
                grads[i] = approx[j].reshape(self.shapes[i])
        self.step += 1
        self._queries = None
        self._pass = 0
        self._received = self._p_hat = None
        return cast(list[Tensor], grads)

    def _state_dict(self) -> dict[str, Any]:
        if self._pass != 0:
            raise ValueError("cannot save a LASER server in the middle of a round (between its passes)")
        return {"step": self.step, "p": list(self.p), "q": list(self.q)}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        p, q = list(state["p"]), list(state["q"])
        if len(p) != len(self.p) or len(q) != len(self.q):
            raise ValueError(f"state holds {len(p)} factor groups; this server has {len(self.p)}")
        self.step = int(state["step"])
        self.p, self.q = p, q
        self._queries = None
        self._pass = 0


class LaserCompressor(Compressor):
    """LASER's compressor (alternating one-factor PowerSGD with per-client error feedback).

    Args:
        rank: the target rank r (>= 1); a matrix gets ``min(rank, m, n)``.
        min_compression_rate: compress a tensor only if it saves more than this factor, counting
            ``0.5 * factors_per_round * r * (m + n)`` channel uses per round.
        seed: seed of the shared query factors (the server draws them; clients receive the queries).
        factors_per_round: 1 (LASER: one factor per round, alternating sides) or 2 (PowerSGD as
            published, Vogels et al. 2019: two channel passes per round; pass 1 sends
            ``P_k = M_k orth(Q)`` with every uncompressed tensor, the server orthonormalises the
            received mean, ``P^ = orth(P)``; pass 2 sends ``Q_k = M_k^T P^``; the gradient is
            ``P^ Q^T`` and the memory ``M_k - P^ Q_k^T``). The round's energy is split over the
            passes in proportion to their channel uses.
        exponent: ``None`` (the paper's figures): a factor is one block with one energy share. A
            number e: each of the factor's r columns is its own block, and the factor's share is
            split over them in proportion to ``||x_c||^e`` (reference code's ``exponent``; e = 0
            splits equally), see :meth:`LaserServer.energy_groups`.

    Blocks (in parameter order): for a compressed tensor, its factor X_k flattened (``n*r`` values on
    even rounds, ``m*r`` on odd rounds; r blocks of one column each when ``exponent`` is set); for
    any other tensor, its gradient flattened. With two factors per round, pass 2 carries the
    compressed tensors' ``Q_k`` only. Parameters must be float32 or float64 (the QR).

    Example:
        >>> laser = LaserCompressor(rank=2)
        >>> params = [torch.zeros(20, 30), torch.zeros(20)]
        >>> client, server = laser.make_client(params), laser.make_server(params)
        >>> blocks = client.encode([torch.randn(20, 30), torch.randn(20)], server.broadcast())
        >>> [b.numel() for b in blocks]                  # even round: X = M^T A is 30 x 2
        [60, 20]
        >>> [g.shape for g in server.decode(blocks)]
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
        if isinstance(rank, bool) or not (isinstance(rank, int) and rank >= 1):
            raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
        if not (isinstance(min_compression_rate, (int, float)) and min_compression_rate >= 0):
            raise ValueError(f"min_compression_rate must be a number >= 0, got {min_compression_rate!r}")
        if factors_per_round not in (1, 2):
            raise ValueError(
                f"factors_per_round must be 1 (LASER) or 2 (PowerSGD), got {factors_per_round!r}"
            )
        if exponent is not None and not (isinstance(exponent, (int, float)) and math.isfinite(exponent)):
            raise ValueError(f"exponent must be a finite number or None, got {exponent!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
        self.rank = rank
        self.min_compression_rate = float(min_compression_rate)
        self.seed = seed
        self.passes = factors_per_round
        self.exponent = None if exponent is None else float(exponent)

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> LaserClient:
        return LaserClient(self, params, index)

    def make_server(self, params: Iterable[Tensor]) -> LaserServer:
        return LaserServer(self, params)

    def encode_many(self, clients: Sequence[int], grads: Sequence[Tensor]) -> list[list[Tensor]]:
        """Every client's matrices of a same-shape group in one batched matmul ``[C, L, ., .]``; the
        result of :meth:`encode` client by client, to float rounding (another summation order)."""
        sides = [cast(LaserClient, self._side(k)) for k in clients]
        shared = self._server().broadcast()
        queries = _queries(shared, "queries", len(sides[0].layout.groups) if sides else 0)
        even = int(shared["step"]) % 2 == 0
        count = len(sides)
        layout = sides[0].layout if sides else None
        factors: list[dict[int, Tensor]] = [{} for _ in sides]
        held: list[list[Tensor]] = [[] for _ in sides]
        for gi, (group, a) in enumerate(zip(layout.groups if layout else [], queries)):
            m = torch.stack(
                [grads[i].reshape(count, group.m, group.n) for i in group.indices], dim=1
            )  # [C, L, m, n]
            for j, side in enumerate(sides):
                memory = side.memory[gi]
                if memory is not None:
                    m[j] += memory
            if self.passes == 2:
                x = m @ a  # P_k = M_k orth(Q), [C, L, m, r]
                for j in range(count):
                    held[j].append(m[j])
            elif even:
                x = m.transpose(-1, -2) @ a  # [C, L, n, r]
                m -= a @ x.transpose(-1, -2)
            else:
                x = m @ a  # [C, L, m, r]
                m -= x @ a.transpose(-1, -2)
            for j, side in enumerate(sides):
                if self.passes == 1:
                    side.memory[gi] = m[j]
                for pos, i in enumerate(group.indices):
                    factors[j][i] = x[j, pos]
        blocks = []
        for j, side in enumerate(sides):
            if self.passes == 2:
                side._held = held[j]
            side._sent = None if self.passes == 2 else (even, queries)
            blocks.append(side.layout.blocks(factors[j], [g[j] for g in grads]))
        return blocks

    def __repr__(self) -> str:
        exponent = "" if self.exponent is None else f", exponent={self.exponent}"
        return (
            f"LaserCompressor(rank={self.rank}, min_compression_rate={self.min_compression_rate}, "
            f"factors_per_round={self.passes}, seed={self.seed}{exponent})"
        )
