"""Warm-up: the first rounds uncompressed, then the method (PyTorch PowerSGD's ``start_powerSGD_iter``).

Compressing from the first round can slow the start of training, when gradients change fast and
error feedback has little to work with; PyTorch's PowerSGD hook therefore all-reduces plainly for
its first ``start_powerSGD_iter`` iterations. :class:`WarmUp` does the same over the air: for the
first ``rounds`` rounds every client sends its whole gradient (Z-SGD: one block per tensor, no
error feedback), then the wrapped method takes over from its own first round (its error feedback
starts empty, its shared state as the method's seed draws it). The server broadcasts which phase a
round is in (``{"warmup": True}``), so clients need no round counter of their own.

Example:
    >>> import torch
    >>> from laser import LaserCompressor
    >>> method = WarmUp(LaserCompressor(rank=2), rounds=1)
    >>> params = [torch.zeros(20, 30)]
    >>> client, server = method.make_client(params), method.make_server(params)
    >>> for _ in range(2):
    ...     blocks = client.encode([torch.ones(20, 30)], server.broadcast())
    ...     print([b.numel() for b in blocks])
    ...     _ = server.decode(blocks)
    [600]
    [60]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor

from laser.compressor import (
    Compressor,
    CompressorClient,
    CompressorServer,
    Shared,
    ZSGDCompressor,
    check_params,
)

__all__ = ["WarmUp"]


def _warming(shared: Shared | None) -> bool:
    if shared is None or "warmup" not in shared:
        raise ValueError("shared must be the server's broadcast() for this round, with 'warmup'")
    return bool(shared["warmup"])


class _WarmUpClient(CompressorClient):
    def __init__(self, method: WarmUp, params: list[Tensor], index: int) -> None:
        super().__init__(params, index)
        self.plain = ZSGDCompressor().make_client(params, index)
        self.inner = method.method.make_client(params, index)
        self._warm = False

    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        self._warm = _warming(shared)
        return self.plain.encode(grads) if self._warm else self.inner.encode(grads, shared)

    def encode_pass(self, pass_index: int, shared: Shared | None = None) -> list[Tensor]:
        if self._warm:
            raise ValueError(f"pass_index = {pass_index}: a warm-up round has one pass")
        return self.inner.encode_pass(pass_index, shared)

    def undelivered(self, blocks: Sequence[Tensor]) -> None:
        if not self._warm:  # a warm-up round keeps no memory
            self.inner.undelivered(blocks)

    def _state_dict(self) -> dict[str, Any]:  # the inner side's own state: who it is is this side's
        return {"inner": self.inner._state_dict()}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner._load_state_dict(state["inner"])


class _WarmUpServer(CompressorServer):
    def __init__(self, method: WarmUp, params: list[Tensor]) -> None:
        super().__init__(params)
        self.rounds = method.rounds
        self.done = 0  # rounds decoded
        self.plain = ZSGDCompressor().make_server(params)
        self.inner = method.method.make_server(params)

    @property
    def warming(self) -> bool:
        return self.done < self.rounds

    @property
    def passes(self) -> int:  # type: ignore[override]  # the class attribute, per round here
        return 1 if self.warming else self.inner.passes

    def _side(self) -> CompressorServer:
        return self.plain if self.warming else self.inner

    def broadcast(self) -> dict[str, Any]:
        return {"warmup": True} if self.warming else {"warmup": False, **self.inner.broadcast()}

    def block_sizes(self) -> list[int]:
        return self._side().block_sizes()

    def pass_shares(self) -> list[float]:
        return self._side().pass_shares()

    def energy_groups(self) -> tuple[list[int], float] | None:
        return self._side().energy_groups()

    def channel_uses(self) -> int:
        return self._side().channel_uses()

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor] | None:
        out = self._side().decode(blocks, noise_var)
        if out is not None:
            self.done += 1
        return out

    def _state_dict(self) -> dict[str, Any]:  # the inner side's own state: the identity is this server's
        return {"done": self.done, "inner": self.inner._state_dict()}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.done = int(state["done"])
        self.inner._load_state_dict(state["inner"])


class WarmUp(Compressor):
    """``method``, after ``rounds`` uncompressed rounds (Z-SGD) at the start of training.

    Args:
        method: an analog compressor (LASER, PowerSGD, Random-K, ...).
        rounds: uncompressed rounds first (>= 0; 0 is ``method`` itself).
    """

    def __init__(self, method: Compressor, rounds: int) -> None:
        if not isinstance(method, Compressor):
            raise TypeError(f"method must be a Compressor, got {type(method).__name__}")
        if not method.analog:
            raise TypeError(
                f"method must be analog: a digital method ({type(method).__name__}) has no plain phase"
            )
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
        self.method, self.rounds = method, rounds
        self.passes = method.passes

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> CompressorClient:
        return _WarmUpClient(self, check_params(params), index)

    def make_server(self, params: Iterable[Tensor]) -> CompressorServer:
        return _WarmUpServer(self, check_params(params))

    def __repr__(self) -> str:
        return f"WarmUp({self.method!r}, rounds={self.rounds})"
