"""The checks of an over-the-air round's call (:func:`laser.transmit_round`,
:func:`laser.transmit_blocks`): its server, its participants (client sides or the indices of clients
living apart, each once, each of this server) and a channel state drawn before the round. The
options of a pass check themselves (:class:`laser.PassOptions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
from torch import Tensor

from channels import ChannelState
from channels.processes import Processes
from laser.compressor import CompressorClient, CompressorServer

__all__ = ["bind", "check_call", "check_state", "indices"]


def indices(clients: Sequence[CompressorClient] | Sequence[int]) -> list[int]:
    """The client index of each participant (a client side's ``index``, or the index itself)."""
    return [c.index if isinstance(c, CompressorClient) else int(c) for c in clients]


def check_call(
    server: CompressorServer,
    clients: Sequence[CompressorClient] | Sequence[int],
    processes: Processes | None,
) -> bool:
    """Refuse what a round cannot be run with; whether ``clients`` are client objects (True) or
    the indices of clients living apart from the server (False)."""
    if not isinstance(server, CompressorServer):
        raise TypeError(
            f"server must be a CompressorServer (method.make_server(params)), got {type(server).__name__}"
        )
    accepted = (
        "clients must be a sequence of CompressorClient objects (method.make_client(params, k)), or of "
        "the integer indices of clients that live apart from the server"
    )
    if isinstance(clients, (CompressorClient, Tensor, str, bytes)) or not isinstance(clients, Sequence):
        raise TypeError(f"{accepted}, got {type(clients).__name__}")
    live = all(isinstance(c, CompressorClient) for c in clients)
    if not live and not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in clients):
        kinds = ", ".join(sorted({type(c).__name__ for c in clients}))
        raise TypeError(f"{accepted} (not a mix), got {kinds}")
    if not clients and processes is None:
        raise ValueError("clients is empty: a round needs at least one participating client")
    seen: dict[int, int] = {}
    objects: dict[int, int] = {}
    for j, c in enumerate(cast(Sequence[CompressorClient | int], clients)):
        if live and objects.setdefault(id(c), j) != j:
            raise ValueError(
                f"clients[{objects[id(c)]}] and clients[{j}] are the same client object: each participant "
                "sends once a round, with its own side (method.make_client(params, k) for client k)"
            )
        index = c.index if isinstance(c, CompressorClient) else int(c)
        if index < 0:
            raise ValueError(f"clients[{j}] has index {index}; client indices are >= 0")
        if index in seen:
            raise ValueError(
                f"clients[{seen[index]}] and clients[{j}] are both client {index}: participants need "
                "distinct indices (their channels and random streams are their own)"
            )
        seen[index] = j
    if live:
        for j, side in enumerate(cast(Sequence[CompressorClient], clients)):
            if side.server_identity is not None and side.server_identity != server.identity:
                raise ValueError(
                    f"clients[{j}] (client {side.index}) belongs to another server than this one (it took "
                    "part in another server's rounds, or was made by another Compressor.setup): a "
                    "client side keeps its server's shared state in its error feedback; make new sides "
                    "with method.make_client(params, k) for a new server or run"
                )
    return live


def bind(server: CompressorServer, clients: Sequence[CompressorClient] | Sequence[int]) -> None:
    """The clients' sides now belong to ``server`` (checked by :func:`check_call`)."""
    for c in clients:
        if isinstance(c, CompressorClient):
            c.server_identity = server.identity


def check_state(state: ChannelState, num_clients: int) -> None:
    if not isinstance(state, ChannelState):
        raise TypeError(f"state must be a ChannelState (channel.realize(...)), got {type(state).__name__}")
    if state.gains.shape[0] != num_clients:
        raise ValueError(
            f"state has {state.gains.shape[0]} clients' channels; the round has {num_clients} participating "
            "clients (realize it for them, or take their rows with state.clients(index))"
        )
