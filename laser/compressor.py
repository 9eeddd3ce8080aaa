"""The compressor interface: a method, its client side and its server side; Z-SGD as the simplest.

A compressor turns each client's gradient into *blocks*: real vectors whose meaning is the same for
every client, so that the channel's sum of the clients' blocks is meaningful. The server decodes the
channel's estimate of the mean block back into a gradient. Three objects share the work:

* a :class:`Compressor` is the *method*: its hyperparameters, and a factory of its two sides;
* a :class:`CompressorClient` is one client's side (:meth:`Compressor.make_client`): it encodes the
  client's gradient and keeps what is the client's own (error-feedback memory, momentum, its
  generator for random rounding);
* a :class:`CompressorServer` is the server's side (:meth:`Compressor.make_server`): it decodes and
  keeps what every client shares (LASER's factors, the round's random supports), which it
  :meth:`~CompressorServer.broadcast`\\ s before each pass: the only thing a client needs from it.

So a client can live in its own process: per pass, the server sends ``server.broadcast()`` (a dict
of tensors and ints), the client returns ``client.encode(grads, shared)``, the channel averages
the blocks, and ``server.decode(mean_blocks)`` gives the gradient. Each side has ``state_dict``.
For a simulation of every client in one process, :meth:`Compressor.setup` builds the server and K
clients in the method object (``server``, ``clients``), and ``encode(k, grads)`` /
``decode(blocks)`` drive them. :func:`laser.transmit_round` runs a whole round over a channel.

Two families share the interface:

* **analog** (``analog = True``): the blocks are linear in the client's data given the shared
  state, so the multiple-access channel's superposition is the sum of the messages (LASER, Z-SGD,
  Random-K, count sketch, A-DSGD; Signum, whose majority vote needs only the sum of signs).
* **digital** (:class:`DigitalCompressor`, ``analog = False``): each client's message is a bit
  string sent on its own orthogonal link; ``encode`` returns the message *as the server decodes it*
  and :meth:`DigitalClient.message_bits` its size, which the link turns into channel uses.

Nothing a compressor keeps or returns aliases the caller's tensors: blocks, memories and decoded
gradients are copies, so a training loop may reuse its ``.grad`` buffers.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from channels.privacy import block_clips, clipped_off

__all__ = [
    "Compressor",
    "CompressorClient",
    "CompressorServer",
    "DigitalCompressor",
    "DigitalClient",
    "DigitalServer",
    "ZSGDCompressor",
    "ClientSides",
    "Shared",
    "NonFiniteGradientError",
    "check_params",
    "client_seed",
]

Shared = Mapping[str, Any]  # what the server broadcasts before a pass: tensors, ints, lists of tensors


class NonFiniteGradientError(ValueError):
    """A client's gradient holds a NaN or an infinity (refused by ``encode`` when ``check_finite``)."""


def check_params(
    params: Iterable[Tensor], name: str = "params", *, half: bool = True, data: bool = False
) -> list[Tensor]:
    """``params`` (any iterable of tensors or parameters) as a list, refusing what no compressor
    can work on: no tensors, a non-tensor, an empty tensor, a non-float dtype (or, with
    ``half=False``, a 16-bit float, for methods whose linear algebra needs float32 or float64).

    With ``data=True`` a meta tensor is refused too (a ``ValueError``: it has no data), for methods
    that keep state on the parameters' device; by default it passes, since most methods read only
    shapes and dtypes here (e.g. counting a model's channel uses on the meta device).

    >>> check_params([torch.empty(4, 4, device="meta")], data=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: params[0] is a meta tensor, which has no data; move the model to a real device first ...
    """
    if isinstance(params, Tensor):
        raise TypeError(f"{name} must be an iterable of tensors (e.g. model.parameters()), got one tensor")
    try:
        tensors = list(params)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of tensors, got {type(params).__name__}") from None
    if not tensors:
        raise ValueError(f"{name} is empty: there is nothing to compress")
    for i, p in enumerate(tensors):
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}[{i}] must be a tensor, got {type(p).__name__}")
        if p.numel() == 0:
            raise ValueError(f"{name}[{i}] has no entries (shape {tuple(p.shape)}); leave it out")
        if not p.is_floating_point() or (not half and p.element_size() < 4):
            accepted = "a floating-point dtype" if half else "float32 or float64"
            raise TypeError(f"{name}[{i}] has dtype {p.dtype}; this compressor needs {accepted}")
        if data and p.is_meta:
            raise ValueError(
                f"{name}[{i}] is a meta tensor, which has no data; move the model to a real device first "
                '(e.g. model.to_empty(device="cpu"), then initialise or load its weights)'
            )
    return tensors


def client_seed(seed: int, index: int) -> int:
    """A seed of client ``index``'s own generator, independent across clients (NumPy's SeedSequence).

    >>> client_seed(0, 1) != client_seed(0, 2) and client_seed(0, 1) == client_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)


_IDENTITY_KEYS = ("index", "server")  # what a client's state_dict says of who it is


def _warn_anonymous_state() -> None:
    warnings.warn(
        "a client state saved before clients recorded their index and server (an older checkpoint): "
        "loaded without checking that it is this client's",
        UserWarning,
        stacklevel=3,
    )


def _check_index(index: object, name: str, count: int | None = None) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(index).__name__}")
    index = int(index)
    if index < 0 or (count is not None and index >= count):
        accepted = f"in 0..{count - 1}" if count is not None else ">= 0"
        raise ValueError(f"{name} = {index} is out of range; expected an integer {accepted}")
    return index


def _norms_finite(tensors: list[Tensor]) -> bool:
    """Whether every tensor's norm is finite, in one fused pass and one host sync: a finite norm
    proves its tensor finite (NaN and inf propagate through it); False does not prove the opposite."""
    norms = list(torch._foreach_norm(tensors))
    if len({(n.dtype, n.device) for n in norms}) > 1:  # parameters of several dtypes or devices
        norms = [n.to(torch.float64).cpu() for n in norms]
    # norms are >= 0 or NaN: their sum is finite iff each is (an overflowing sum is settled later)
    return math.isfinite(torch.stack(norms).sum().item())


class CompressorClient(ABC):
    """One client's side of a compressor: encodes its gradient into blocks, keeps its own state.

    ``grads`` are the client's tensors in parameter order, shaped and typed like the parameters it
    was made for; ``shared`` is what the server broadcast for this pass. Checks: the number, shapes
    and dtypes of ``grads`` (a ``ValueError`` or ``TypeError`` naming the argument), and, with
    ``check_finite`` (default), that they are finite: a NaN or inf is refused before it can reach
    the memory or, through the channel, the shared state.
    """

    # whether undelivered() takes back any part of a block (linear in its blocks), so that
    # keep_clipped can give back what a clip cut off; False: only a whole block, or zeros (A-DSGD)
    partial_feedback: ClassVar[bool] = True

    def __init__(self, params: Iterable[Tensor], index: int = 0, *, check_finite: bool = True) -> None:
        tensors = check_params(params)
        self.index = _check_index(index, "index")
        self.shapes = [p.shape for p in tensors]
        self.dtypes = [p.dtype for p in tensors]
        self.check_finite = bool(check_finite)
        # the server this side belongs to (its CompressorServer.identity): set by Compressor.setup, or
        # by the first round it takes part in; a server refuses the side of another
        self.server_identity: int | None = None

    def _checked(self, grads: Sequence[Tensor] | Iterable[Tensor]) -> list[Tensor]:
        if isinstance(grads, Tensor):
            raise TypeError("grads must be a sequence of tensors in parameter order, got one tensor")
        grads = list(grads)
        if len(grads) != len(self.shapes):
            raise ValueError(
                f"grads has {len(grads)} tensors; expected {len(self.shapes)}, one per parameter"
            )
        for i, (g, shape, dtype) in enumerate(zip(grads, self.shapes, self.dtypes)):
            if not isinstance(g, Tensor):
                raise TypeError(f"grads[{i}] must be a tensor, got {type(g).__name__}")
            if g.shape != shape:
                raise ValueError(
                    f"grads[{i}] has shape {tuple(g.shape)}; expected {tuple(shape)} (parameter order)"
                )
            if g.dtype != dtype:
                raise TypeError(f"grads[{i}] has dtype {g.dtype}; expected {dtype}, the parameter's")
            if g.is_meta:
                raise ValueError(
                    f"grads[{i}] is a meta tensor, which has no data; move the model to a real device first"
                )
        if self.check_finite and not _norms_finite(grads):
            # a non-finite norm is NaN or inf entries, or finite ones whose squares overflow: settled
            # entry by entry
            finite = [bool(g.isfinite().all()) for g in grads]  # (tensors on any devices)
            if not all(finite):
                bad = finite.index(False)
                raise NonFiniteGradientError(
                    f"grads[{bad}] is not finite (NaN or inf); refused before it reaches the error-feedback "
                    "memory or the shared state (check_finite=False skips this check)"
                )
        return grads

    @abstractmethod
    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        """This client's blocks for the round's first pass (1-D tensors, new memory); updates its
        own state (error feedback). ``shared``: the server's :meth:`~CompressorServer.broadcast`."""

    def encode_pass(self, pass_index: int, shared: Shared | None = None) -> list[Tensor]:
        """This client's blocks for pass ``pass_index >= 1`` of the round (methods with ``passes > 1``)."""
        raise ValueError(f"pass_index = {pass_index}: {type(self).__name__} sends one pass per round")

    def undelivered(self, blocks: Sequence[Tensor]) -> None:  # noqa: B027 (most clients keep nothing)
        """The channel did not hear ``blocks`` (a digital outage, a client the power control
        silenced): undo what :meth:`encode` assumed was sent, so error feedback keeps it."""

    def keep_unheard(self, blocks: Sequence[Tensor], heard: Sequence[bool] | Tensor) -> None:
        """Give the blocks this client sent in a round's last pass, ``blocks``, that the channel did not
        hear (``heard[b]`` False: the power control silenced it, or its budget was 0) back to its
        error feedback (:meth:`undelivered` with the heard blocks zeroed); nothing when every block
        was heard. A client that lives apart from the server calls it with its row of
        :attr:`laser.RoundResult.heard`; ``transmit_blocks(..., keep_unheard=True)`` does it for the
        client objects it is given."""
        flags = [bool(h) for h in (heard.tolist() if isinstance(heard, Tensor) else heard)]
        if len(flags) != len(blocks):
            raise ValueError(f"heard has {len(flags)} entries; blocks has {len(blocks)}, one per block")
        if not all(flags):
            self.undelivered([torch.zeros_like(b) if ok else b for b, ok in zip(blocks, flags)])

    def keep_clipped(self, blocks: Sequence[Tensor], clip: float) -> None:
        """Give the part of ``blocks`` (what this client encoded for a round's last pass) that a
        clipped pass cut off (privacy mode, clip C: block b to C_b = C sqrt(d_b / sum d)) back to its
        error feedback (:meth:`undelivered` with :func:`channels.privacy.clipped_off`), so the memory
        holds what the channel did not carry: for LASER, M_k = G_k + M_k - Q P_clipped^T. Nothing when
        every block was within its clip, or for a method without error feedback (the part is lost).
        ``transmit_blocks`` does it for the client objects it is given (``PassOptions.keep_clipped``);
        a client that lives apart calls it itself with its blocks and the run's clip."""
        if not self.partial_feedback:
            raise ValueError(
                f"keep_clipped: {type(self).__name__} takes back only a whole message, not the part a clip "
                "cut off (leave keep_clipped off for this method)"
            )
        off = clipped_off(blocks, block_clips([int(b.numel()) for b in blocks], clip))
        if any(bool(t.any()) for t in off):
            self.undelivered(off)

    def state_dict(self) -> dict[str, Any]:
        """Everything this client needs to continue bit-identically (tensors, ints, lists): its own
        state (:meth:`_state_dict`) and who it is, its ``index`` and its server's identity."""
        return {**self._state_dict(), "index": self.index, "server": self.server_identity}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned: refused (``ValueError`` naming ``state``) when it
        was saved by a client of another index; a state saved before clients recorded who they are
        loads with one warning."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a client's state_dict() (a mapping), got {type(state).__name__}")
        if "index" not in state:
            _warn_anonymous_state()
        elif state["index"] != self.index:
            raise ValueError(
                f"state was saved by client {state['index']}; this is client {self.index} (each client's "
                "error feedback is its own: load client k's state into client k)"
            )
        self._load_state_dict({k: v for k, v in state.items() if k not in _IDENTITY_KEYS})
        if state.get("server") is not None:
            self.server_identity = int(state["server"])

    def _state_dict(self) -> dict[str, Any]:
        """This client's own state, for :meth:`state_dict` (none by default)."""
        return {}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 (stateless by default)
        """Restore what :meth:`_state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(index={self.index}, tensors={len(self.shapes)})"


class CompressorServer(ABC):
    """The server's side: the shared state, what it broadcasts before each pass, and the decoder.

    Life cycle of a round: ``broadcast()`` (clients encode with it), the channel, then
    ``decode(mean_blocks)``; with ``passes > 1``, ``decode`` returns ``None`` until the last pass,
    each pass preceded by a new ``broadcast()``.
    """

    analog: ClassVar[bool] = True  # False: the blocks are messages on orthogonal links (digital)
    passes: int = 1

    def __init__(self, params: Iterable[Tensor]) -> None:
        tensors = check_params(params)
        self.shapes = [p.shape for p in tensors]
        self.dtypes = [p.dtype for p in tensors]
        self._pass = 0
        # who this server is, for its clients' sides (CompressorClient.server_identity): a random
        # number, not from the run's generators (it changes no result), kept in the state dict
        self.identity = secrets.randbits(62)

    def broadcast(self) -> dict[str, Any]:
        """What every client needs from the server to encode the next pass (empty by default)."""
        return {}

    @abstractmethod
    def block_sizes(self) -> list[int]:
        """The length of each block of the next pass (what :meth:`decode` will expect)."""

    @abstractmethod
    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor] | None:
        """:meth:`decode` after its checks."""

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor] | None:
        """The gradient estimate, shaped like the parameters (new tensors), from the mean blocks of
        the round's last pass; ``None`` after an earlier pass. ``noise_var``: the per-entry noise
        variance of each block (``[B]``; ``None``: noiseless), which noise-aware decoders weigh."""
        if isinstance(blocks, Tensor):
            raise TypeError("blocks must be a sequence of 1-D tensors, one per block, got one tensor")
        blocks = list(blocks)
        expected = self.block_sizes()
        sizes = [int(b.numel()) if isinstance(b, Tensor) else -1 for b in blocks]
        if sizes != expected:
            raise ValueError(
                f"blocks do not match this pass: got {len(blocks)} blocks of sizes {sizes[:8]}"
                f"{'...' if len(sizes) > 8 else ''}; expected {len(expected)} of sizes {expected[:8]}"
                f"{'...' if len(expected) > 8 else ''}"
            )
        variances = None
        if noise_var is not None:
            variances = torch.as_tensor(noise_var, dtype=torch.float64).flatten().cpu()
            if variances.numel() != len(blocks) or not bool(
                (variances >= 0).all() and variances.isfinite().all()
            ):
                raise ValueError(
                    f"noise_var must hold one finite value >= 0 per block ({len(blocks)}), got {noise_var!r}"
                )
        return self._decode(blocks, variances)

    def pass_shares(self) -> list[float]:
        """The share of the round's energy budget each pass may spend (one per pass, summing to 1)."""
        return [1.0]

    def energy_groups(self) -> tuple[list[int], float] | None:
        """Blocks that share one energy budget, for the uplink's allocation: ``(group of each block,
        exponent e)``. The group gets its share as one block (norm of the concatenation) and splits
        it over its blocks in proportion to ``||block||^e``. ``None``: every block is its own group."""
        return None

    def channel_uses(self) -> int:
        """Real channel uses one client needs in the next round, all passes (analog methods)."""
        return sum(self.block_sizes())

    def state_dict(self) -> dict[str, Any]:
        """Everything the server needs to continue bit-identically (tensors, ints, lists): its own
        state (:meth:`_state_dict`) and its ``identity``, which its clients' sides record."""
        return {**self._state_dict(), "identity": self.identity}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (with the identity saved, if any: a state saved
        before servers had one keeps this server's)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a server's state_dict() (a mapping), got {type(state).__name__}")
        self._load_state_dict({k: v for k, v in state.items() if k != "identity"})
        if state.get("identity") is not None:
            self.identity = int(state["identity"])

    def _state_dict(self) -> dict[str, Any]:
        """The server's own state, for :meth:`state_dict` (none by default)."""
        return {}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 (stateless by default)
        """Restore what :meth:`_state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tensors={len(self.shapes)}, passes={self.passes})"


def _negative(index: object) -> bool:
    return isinstance(index, (int, np.integer)) and not isinstance(index, bool) and int(index) < 0


class ClientSides(Sequence[CompressorClient]):
    """The K client sides of a simulation (:meth:`Compressor.setup`), each made the first time it
    is used: a client that never takes part costs nothing, not even its side, so K can be 10^5
    with the memory of the clients that took part. ``sides[k]`` makes (or returns) client k's
    side; :attr:`made` holds the ones made, by index. Iterating makes every side.

    A side is made with ``method.make_client(params, k)`` (its own index and seed: when it is made
    does not change what it does) and belongs to the method's server.

    >>> import torch
    >>> method = ZSGDCompressor()
    >>> method.setup([torch.zeros(3)], num_clients=100_000)
    >>> len(method.clients), sorted(method.clients.made)
    (100000, [])
    >>> method.clients[42].index, sorted(method.clients.made)
    (42, [42])
    """

    def __init__(self, method: Compressor, params: list[Tensor], count: int) -> None:
        self._method, self._params, self._count = method, params, count
        self.made: dict[int, CompressorClient] = {}

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:  # int -> CompressorClient, slice -> list of them
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(self._count))]
        k = _check_index(index, "client", None) if not _negative(index) else int(index) + self._count
        if not 0 <= k < self._count:
            raise IndexError(f"client = {index} is out of range; expected an integer in 0..{self._count - 1}")
        side = self.made.get(k)
        if side is None:
            side = self.made[k] = self._method.make_client(self._params, k)
            side.server_identity = self._method.server.identity
        return side

    def __iter__(self) -> Iterator[CompressorClient]:
        return (self[k] for k in range(self._count))

    def __repr__(self) -> str:
        return f"ClientSides({self._count} clients, {len(self.made)} made)"


class Compressor(ABC):
    """A compression method: its hyperparameters, and a factory of its client and server sides.

    :meth:`make_client` and :meth:`make_server` make the two sides for a model's parameters (any iterable of
    tensors: shapes, dtypes and device are what they need). :meth:`setup` builds the server and K
    clients inside this object, for a simulation of every client in one process; then
    ``encode(k, grads)``, ``encode_pass(k, p)``, ``undelivered(k, blocks)`` and ``decode(blocks)``
    drive them, with the server's broadcast handed to the clients as it would be sent.

    A method that needs more than one channel pass per round (PowerSGD as published sends P, then Q
    computed from the received P) has ``passes > 1``: after ``decode`` of pass p returns ``None``,
    the loop collects ``encode_pass(k, p + 1)`` from every client, sends it, and decodes again; the
    last pass's ``decode`` returns the gradient.
    """

    analog: ClassVar[bool] = True  # blocks add up over the air (False: digital, one link per client)
    passes: int = 1  # channel passes per round

    @abstractmethod
    def make_client(self, params: Iterable[Tensor], index: int = 0) -> CompressorClient:
        """Client ``index``'s side for a model with these parameters."""

    @abstractmethod
    def make_server(self, params: Iterable[Tensor]) -> CompressorServer:
        """The server's side for a model with these parameters."""

    # ---------------------------------------------------------- every client in one object (simulations)
    def setup(self, params: Iterable[Tensor], num_clients: int) -> None:
        """Build the server and ``num_clients`` clients here (a simulation of every client): the
        clients' sides are :class:`ClientSides`, each made the first time it is used."""
        tensors = check_params(params)
        num_clients = _check_index(num_clients, "num_clients")
        if num_clients < 1:
            raise ValueError("num_clients = 0 is out of range; expected an integer >= 1")
        self.server = self.make_server(tensors)
        self.clients = ClientSides(self, tensors, num_clients)  # each made on first use

    def _sides(self) -> ClientSides:
        if not hasattr(self, "clients"):
            raise RuntimeError(f"{type(self).__name__}.setup(params, num_clients) must come first")
        return self.clients

    def _side(self, client: object) -> CompressorClient:
        sides = self._sides()
        return sides[_check_index(client, "client", len(sides))]

    @contextlib.contextmanager
    def _using(self, client: object) -> Iterator[CompressorClient]:
        """Client ``client``'s side for a call; a side made for a call that fails (a refused
        gradient) is forgotten again: a client that never took part has no side."""
        sides = self._sides()
        k = _check_index(client, "client", len(sides))
        new = k not in sides.made
        try:
            yield sides[k]
        except BaseException:
            if new:
                sides.made.pop(k, None)
            raise

    def _server(self) -> CompressorServer:
        if not hasattr(self, "server"):
            raise RuntimeError(f"{type(self).__name__}.setup(params, num_clients) must come before decode")
        return self.server

    def encode(self, client: int, grads: Sequence[Tensor]) -> list[Tensor]:
        """Client ``client``'s blocks for this round's first pass; updates its error feedback."""
        with self._using(client) as side:
            return side.encode(grads, self._server().broadcast())

    def encode_many(self, clients: Sequence[int], grads: Sequence[Tensor]) -> list[list[Tensor]]:
        """:meth:`encode` for several clients at once, ``grads[i]`` stacking their gradients of
        parameter ``i`` as ``[len(clients), *shape]`` (the vectorised clients' layout). This default
        encodes one client after another; a method may batch them (to float rounding)."""
        return [self.encode(k, tuple(g[j] for g in grads)) for j, k in enumerate(clients)]

    def encode_pass(self, client: int, pass_index: int) -> list[Tensor]:
        """Client ``client``'s blocks for pass ``pass_index >= 1`` of this round (``passes > 1`` only)."""
        with self._using(client) as side:
            return side.encode_pass(pass_index, self._server().broadcast())

    def undelivered(self, client: int, blocks: Sequence[Tensor]) -> None:
        """Client ``client``'s ``blocks`` were not heard: its error feedback keeps them."""
        with self._using(client) as side:
            side.undelivered(blocks)

    def decode(
        self, blocks: Sequence[Tensor], noise_var: Sequence[float] | Tensor | None = None
    ) -> list[Tensor] | None:
        """The server's gradient estimate (shaped like the parameters) from the mean blocks; ``None``
        after a pass that is not the round's last (``passes > 1``)."""
        return self._server().decode(blocks, noise_var)

    def pass_shares(self) -> list[float]:
        """The share of the round's energy budget each pass may spend (one per pass, summing to 1)."""
        return self._server().pass_shares()

    def energy_groups(self) -> tuple[list[int], float] | None:
        """Blocks that share one energy budget (see :meth:`CompressorServer.energy_groups`)."""
        return self._server().energy_groups()

    def channel_uses(self) -> int:
        """Real channel uses one client needs in the next round, all passes."""
        return self._server().channel_uses()

    def state_dict(self) -> dict[str, Any]:
        """The server's state and the state of every client side made so far, by client index (a
        client that never took part has none)."""
        server, made = self._server(), self._sides().made
        return {"server": server.state_dict(), "clients": {k: made[k].state_dict() for k in sorted(made)}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (after :meth:`setup` with the same arguments):
        exactly the client sides it holds are made and loaded. A list of every client's state (what
        versions before lazy sides saved) is accepted too."""
        sides = self._sides()
        clients = state.get("clients") if isinstance(state, Mapping) else None
        if isinstance(clients, Sequence) and not isinstance(clients, (str, bytes)):
            clients = dict(enumerate(clients))
        if (
            not isinstance(clients, Mapping)
            or "server" not in state
            or not all(_in(k, len(sides)) for k in clients)
        ):
            got = f"{len(clients)} client states" if isinstance(clients, Mapping) else "no client states"
            raise ValueError(
                f"state must be a {type(self).__name__}.state_dict(): the server's state and client "
                f"states by index in 0..{len(sides) - 1}; got {got}"
                + (f" (indices {sorted(map(str, clients))[:8]})" if isinstance(clients, Mapping) else "")
            )
        self._server().load_state_dict(state["server"])
        sides.made.clear()  # exactly the sides saved
        for k, saved in sorted(clients.items()):
            sides[int(k)].load_state_dict(saved)


def _in(key: object, count: int) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= int(key) < count


class DigitalClient(CompressorClient):
    """A digital client: :meth:`encode` returns its message as the server decodes it (exact: the
    link is error-free), and :meth:`message_bits` its size."""

    bits: int = 0
    # whether a message survives the loss of some of its bits (a sparsifier's entries are decoded one
    # by one: :meth:`lost_part` gives the lost ones); otherwise a lost bit loses the whole message
    partial_delivery: ClassVar[bool] = False

    def message_bits(self) -> int:
        """Bits of the message :meth:`encode` last returned."""
        return self.bits

    def lost_part(self, message: Sequence[Tensor], lost: Sequence[tuple[int, int]]) -> list[Tensor]:
        """What a link that lost the bit ranges ``lost`` (``[start, end)`` of the message's bits, sent
        in order) took of ``message`` (what :meth:`encode` last returned): the message's blocks with
        the lost entries kept and the others zero. Here a lost bit loses the whole message (a
        quantiser's stream cannot be decoded in part); sparsifiers override it (``partial_delivery``).

        >>> from laser.digital import QSGDCompressor
        >>> client = QSGDCompressor(levels=4).make_client([torch.zeros(3)], 0)
        >>> message = client.encode([torch.tensor([1.0, -2.0, 0.5])])
        >>> client.lost_part(message, [])[0].tolist(), client.lost_part(message, [(0, 1)])[0].abs().sum() > 0
        ([0.0, 0.0, 0.0], tensor(True))
        """
        if not lost:
            return [torch.zeros_like(b) for b in message]
        return [b.clone() for b in message]


class DigitalServer(CompressorServer):
    """The server of a digital method: it averages the delivered messages (one block per tensor)."""

    analog: ClassVar[bool] = False

    def block_sizes(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor]:
        """The mean of the delivered messages, reshaped (override for a non-linear server step)."""
        return [b.reshape(shape).clone() for b, shape in zip(blocks, self.shapes, strict=True)]


class DigitalCompressor(Compressor):
    """A method whose messages are bits on orthogonal links (not summable over the air).

    ``encode(k, grads)`` returns client k's message as the server reconstructs it (one flattened
    block per parameter tensor; exact, since the digital link is error-free) and records its size
    for :meth:`message_bits`. The link delivers each client's message on its own channel uses (their
    number follows from the bits and the link's Shannon rate); the server averages the delivered
    messages and ``decode`` turns that mean into the gradient estimate.

    Bit-count conventions (every subclass): a float costs 32 bits, an index into a tensor of d
    entries ``ceil(log2 d)`` bits, a sign 1 bit, one of L quantisation levels ``ceil(log2 L)`` bits.
    """

    analog: ClassVar[bool] = False

    def make_server(self, params: Iterable[Tensor]) -> CompressorServer:
        return DigitalServer(params)

    def message_bits(self, client: int) -> int:
        """Bits of the message ``encode`` last returned for ``client``."""
        side = self._side(client)
        assert isinstance(side, DigitalClient)
        return side.message_bits()


class _ZSGDClient(CompressorClient):
    def encode(self, grads: Sequence[Tensor], shared: Shared | None = None) -> list[Tensor]:
        return [g.reshape(-1).clone() for g in self._checked(grads)]


class _ZSGDServer(CompressorServer):
    def block_sizes(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    def _decode(self, blocks: list[Tensor], noise_var: Tensor | None) -> list[Tensor]:
        return [b.reshape(shape).clone() for b, shape in zip(blocks, self.shapes, strict=True)]


class ZSGDCompressor(Compressor):
    """Z-SGD: every gradient entry is sent, one block per parameter tensor; no error feedback.

    Over a noisy channel this is uncompressed analog over-the-air SGD (LASER paper, Z-SGD); over a
    noiseless channel it is plain synchronous SGD, the reference line.

    Example:
        >>> import torch
        >>> zsgd = ZSGDCompressor()
        >>> params = [torch.zeros(2, 3), torch.zeros(3)]
        >>> client, server = zsgd.make_client(params), zsgd.make_server(params)
        >>> [b.shape for b in client.encode([torch.ones(2, 3), torch.ones(3)])]
        [torch.Size([6]), torch.Size([3])]
        >>> [g.shape for g in server.decode([torch.ones(6), torch.ones(3)])]
        [torch.Size([2, 3]), torch.Size([3])]
    """

    def make_client(self, params: Iterable[Tensor], index: int = 0) -> CompressorClient:
        return _ZSGDClient(params, index)

    def make_server(self, params: Iterable[Tensor]) -> CompressorServer:
        return _ZSGDServer(params)

    def __repr__(self) -> str:
        return "ZSGDCompressor()"
