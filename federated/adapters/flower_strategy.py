"""The server side of the Flower adapter: :class:`OTAFedAvg`, a FedAvg whose mean of the clients'
model changes goes through a ``channels`` channel (the overview is :mod:`federated.adapters.flower`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Any, cast

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.exception import AggregationError
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency
from numpy.typing import NDArray
from torch import Tensor

from channels import FadingChannel
from federated.adapters.flower_records import (
    BLOCK_PREFIX,
    INDEX_KEY,
    SHARED_KEY,
    _check_method,
    _is_float,
    _torch,
    state_to_records,
)
from laser import Compressor, CompressorServer, PassOptions, RoundResult, ZSGDCompressor, transmit_blocks
from laser.allocation import Allocation

__all__ = ["OTAFedAvg"]


def _check_same_arrays(got: Mapping[str, NDArray[Any]], sent: Mapping[str, NDArray[Any]], who: str) -> None:
    if set(got) != set(sent):
        missing, extra = sorted(set(sent) - set(got)), sorted(set(got) - set(sent))
        raise AggregationError(
            reason=f"{who} does not hold the arrays that were sent (missing {missing[:5]}, extra {extra[:5]})"
        )
    for k, array in sent.items():
        if got[k].shape != array.shape:
            raise AggregationError(
                reason=f"{who}: array {k!r} has shape {got[k].shape}; the one sent has {array.shape}"
            )


@dataclass(frozen=True)
class _Reply:
    """One training reply as the aggregation reads it."""

    index: int  # the node's client index
    node: int
    weight: float
    arrays: dict[str, NDArray[Any]]
    content: RecordDict

    @classmethod
    def of(cls, message: Message, index: int, weighted_by_key: str) -> _Reply:
        content = message.content
        weight = next(iter(content.metric_records.values()))[weighted_by_key]
        arrays = next(iter(content.array_records.values()))
        return cls(
            index,
            message.metadata.src_node_id,
            float(cast(float, weight)),
            {k: v.numpy() for k, v in arrays.items()},
            content,
        )


# ----------------------------------------------------------------------------------------------- server
class OTAFedAvg(FedAvg):
    """Flower's ``FedAvg`` with an over-the-air aggregate of the clients' model changes.

    Args:
        channel: the uplink, a ``channels`` channel (``AWGNChannel(noise_var)``, ``FadingChannel``); give
            it a seeded ``generator`` for reproducible rounds.
        energy: each client's energy per round (a float), or ``snr_db``: a per-channel-use SNR (the
            round's energy grows with its channel uses). Exactly one of them.
        compressor: ``None`` (Z-SGD: the raw changes, from ordinary FedAvg replies), or an analog
            one-pass ``laser`` compressor, the same as the ClientApp gives :func:`client_reply`.
        allocation: the split of a client's energy over its blocks (``"norm"``, LASER's).
        **fedavg: any argument of ``FedAvg`` (``fraction_train``, ``min_train_nodes``,
            ``weighted_by_key`` (default ``"num-examples"``), ``arrayrecord_key``, ...).

    Attributes:
        records: ``{server_round: laser.RoundResult}``, what the channel did in each round (energy
            per client, noise variance per block, channel uses, clients heard, in client-index
            order).
        server: the compressor's server side (made from the first global model the strategy sends).

    Example (a round driven by hand, as the tests do; Flower's grid does it in a real run)::

        strategy = OTAFedAvg(AWGNChannel(noise_var=0.0), energy=1.0)
        messages = strategy.configure_train(1, arrays, ConfigRecord(), grid)
        replies = [...]   # one ClientApp reply per message: its trained arrays, {"num-examples": n}
        new_arrays, metrics = strategy.aggregate_train(1, replies)   # FedAvg's, over a noiseless channel
    """

    def __init__(
        self,
        channel: FadingChannel,
        *,
        energy: float | None = None,
        snr_db: float | None = None,
        compressor: Compressor | None = None,
        allocation: Allocation = "norm",
        **fedavg: Any,
    ) -> None:
        super().__init__(**fedavg)
        if not isinstance(channel, FadingChannel):
            raise TypeError(
                f"channel must be a channels channel (AWGNChannel, FadingChannel), got {channel!r}"
            )
        if (energy is None) == (snr_db is None):
            raise ValueError("give exactly one of energy (per client and round) or snr_db (per channel use)")
        if compressor is not None:
            _check_method(compressor)
        self.channel = channel
        self.energy = energy
        self.snr_db = snr_db
        self.compressor = compressor
        self.allocation: Allocation = allocation
        self.records: dict[int, RoundResult] = {}
        self.server: CompressorServer | None = None
        self._method: Compressor = compressor if compressor is not None else ZSGDCompressor()
        self._indices: dict[int, int] = {}
        self._sent: tuple[int, dict[str, NDArray[Any]]] | None = None  # the round and the arrays sent
        self._float_keys: list[str] = []

    # ------------------------------------------------------------------------------------ client indices
    @property
    def client_indices(self) -> dict[int, int]:
        """``{node_id: client index}`` of every node seen so far (indices in first-seen order)."""
        return dict(self._indices)

    def client_index(self, node_id: int) -> int:
        """The stable index of Flower node ``node_id`` (a new node gets the next free index)."""
        node_id = int(node_id)
        if node_id not in self._indices:
            self._indices[node_id] = len(self._indices)
        return self._indices[node_id]

    def summary(self) -> None:
        """Log the over-the-air settings, then FedAvg's."""
        budget = f"energy {self.energy}" if self.energy is not None else f"snr_db {self.snr_db}"
        method = "Z-SGD (raw changes)" if self.compressor is None else repr(self.compressor)
        log(INFO, "\t├──> Over the air: %r, %s per client and round", self.channel, budget)
        log(INFO, "\t│\t└── %s, allocation %s", method, self.allocation)
        super().summary()

    # ------------------------------------------------------------------------------------------ a round
    def _params(self, sent: Mapping[str, NDArray[Any]]) -> list[Tensor]:
        return [torch.from_numpy(sent[k]) for k in self._float_keys]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's training messages, each with its client's index and (compressed) the server's
        broadcast; keeps the arrays sent, whose changes :meth:`aggregate_train` sends over the air."""
        messages = list(super().configure_train(server_round, arrays, config, grid))
        if not messages:
            return messages
        sent = {k: v.numpy() for k, v in arrays.items()}
        floats = [k for k, v in sent.items() if _is_float(v)]
        if not floats:
            raise ValueError(
                "arrays hold no floating-point array: there is no model change to send over the air"
            )
        if self.server is None:
            self._float_keys = floats
            self.server = self._method.make_server(self._params(sent))
        elif floats != self._float_keys or [tuple(s) for s in self.server.shapes] != [
            sent[k].shape for k in floats
        ]:
            raise ValueError(
                "the global arrays changed names or shapes since the first round; the compressor's server "
                "side was made for the first ones"
            )
        self._sent = (server_round, sent)
        for node in sorted({m.metadata.dst_node_id for m in messages}):
            self.client_index(node)  # first seen: new nodes in increasing id order
        shared: ArrayRecord | None = None
        layout = ""
        if self.compressor is not None:
            shared, layout = state_to_records(self.server.broadcast())
        for message in messages:
            content = message.content
            train_config = ConfigRecord(dict(content.config_records[self.configrecord_key]))
            train_config[INDEX_KEY] = self.client_index(message.metadata.dst_node_id)
            records: dict[str, Any] = {
                self.arrayrecord_key: content[self.arrayrecord_key],
                self.configrecord_key: train_config,
            }
            if shared is not None:
                train_config[SHARED_KEY] = layout
                records[SHARED_KEY] = shared
            message.content = RecordDict(records)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The sent arrays plus the over-the-air weighted mean of the replies' changes, and FedAvg's
        aggregate of the train metrics with the channel's summary (``ota-*``) added."""
        valid = self._valid_replies(list(replies))
        if not valid:
            return None, None
        sent = self._sent_arrays(server_round)
        heard, weights = self._heard(valid)
        if not heard:
            return None, None
        params = self._params(sent)
        options = PassOptions(
            energy=self.energy, snr_db=self.snr_db, allocation=self.allocation, weights=weights
        )
        # the clients live apart: the server has their blocks and indices alone
        clients = [r.index for r in heard]
        server = self.server
        assert server is not None  # made by configure_train (_sent_arrays checked it)
        self.channel.time_step = server_round - 1  # a time-correlated channel (ClusterFading) samples it
        result = transmit_blocks(self.channel, server, clients, self._blocks(heard, sent, params), options)
        self.records[server_round] = result
        out = ArrayRecord(
            {
                k: Array(np.asarray(v))
                for k, v in self._new_arrays(sent, params, result, heard, weights).items()
            }
        )
        metrics = self.train_metrics_aggr_fn([r.content for r in heard], self.weighted_by_key)
        if metrics is not None:
            metrics.update(_channel_metrics(result))
        return out, metrics

    def _valid_replies(self, replies: list[Message]) -> list[Message]:
        """The replies without an error (those with one logged), checked for FedAvg's consistency."""
        valid = [m for m in replies if not m.has_error()]
        log(
            INFO,
            "aggregate_train: Received %s results and %s failures",
            len(valid),
            len(replies) - len(valid),
        )
        for m in replies:
            if m.has_error():
                log(
                    INFO,
                    "\t> Received error in reply from node %d: %s",
                    m.metadata.src_node_id,
                    m.error.reason,
                )
        if valid:
            validate_message_reply_consistency(
                [m.content for m in valid], weighted_by_key=self.weighted_by_key, check_arrayrecord=True
            )
        return valid

    def _sent_arrays(self, server_round: int) -> dict[str, NDArray[Any]]:
        """The arrays :meth:`configure_train` sent (a warning if they were another round's)."""
        if self._sent is None or self.server is None:
            raise AggregationError(reason="aggregate_train before configure_train: no arrays were sent")
        sent_round, sent = self._sent
        if sent_round != server_round:
            log(
                WARNING, "aggregate_train: round %s, the arrays sent are round %s's", server_round, sent_round
            )
        return sent

    def _heard(self, valid: list[Message]) -> tuple[list[_Reply], Tensor]:
        """The replies the channel hears, in client-index order whatever the order of arrival, and their
        weights (FedAvg's weight 0 leaves a reply out: the channel needs w > 0)."""
        replied = sorted(
            (_Reply.of(m, self.client_index(m.metadata.src_node_id), self.weighted_by_key) for m in valid),
            key=lambda r: r.index,
        )
        if len({r.index for r in replied}) != len(replied):
            nodes = [r.node for r in replied]
            raise AggregationError(reason=f"more than one reply from a node: nodes {nodes}")
        heard = [r for r in replied if r.weight > 0]
        if len(heard) < len(replied):
            log(
                WARNING,
                "aggregate_train: %s replies with %s = 0 left out",
                len(replied) - len(heard),
                self.weighted_by_key,
            )
        weights = torch.tensor([r.weight for r in heard], dtype=torch.float64)
        if heard and not bool(torch.isfinite(weights).all()):
            raise AggregationError(reason=f"{self.weighted_by_key} must be finite, got {weights.tolist()}")
        return heard, weights

    def _blocks(
        self, heard: list[_Reply], sent: dict[str, NDArray[Any]], params: list[Tensor]
    ) -> list[list[Tensor]]:
        """What each heard client sends: its model change, one block per float array (Z-SGD, no
        compressor), or the blocks its ClientApp encoded (:func:`client_reply`)."""
        if self.compressor is None:
            for r in heard:
                _check_same_arrays(r.arrays, sent, f"the reply of node {r.node}")
            return [
                [(_torch(r.arrays[k]).to(p.dtype) - p).reshape(-1) for k, p in zip(self._float_keys, params)]
                for r in heard
            ]
        assert self.server is not None  # made by configure_train (_sent_arrays checked it)
        names = [f"{BLOCK_PREFIX}{b}" for b in range(len(self.server.block_sizes()))]
        others = [k for k in sent if k not in set(self._float_keys)]
        for r in heard:
            if any(name not in r.arrays for name in [*names, *others]):
                raise AggregationError(
                    reason=f"the reply of node {r.node} does not hold the {len(names)} encoded blocks "
                    f"{BLOCK_PREFIX}0.. (and the non-float arrays): its ClientApp must reply with "
                    "federated.adapters.flower.client_reply(..., compressor=...), the same compressor"
                )
        return [[_torch(r.arrays[name]) for name in names] for r in heard]

    def _new_arrays(
        self,
        sent: dict[str, NDArray[Any]],
        params: list[Tensor],
        result: RoundResult,
        heard: list[_Reply],
        weights: Tensor,
    ) -> dict[str, NDArray[Any]]:
        """The global arrays after the round, in the order sent: the float arrays plus the decoded mean
        change; counters and flags their exact weighted mean, rounded back to their dtype."""
        new: dict[str, NDArray[Any]] = {}
        for k, p, change in zip(self._float_keys, params, result.gradient):
            new[k] = (p + change.to(p.dtype)).numpy()
        share = (weights / weights.sum()).tolist()
        for k in (k for k in sent if k not in set(self._float_keys)):
            mean = sum(w * r.arrays[k].astype(np.float64) for w, r in zip(share, heard))
            dtype = sent[k].dtype
            new[k] = (
                (np.asarray(mean) >= 0.5).astype(dtype) if dtype == np.bool_ else np.rint(mean).astype(dtype)
            )
        return {k: new[k] for k in sent}


def _channel_metrics(result: RoundResult) -> dict[str, float | int]:
    """A round's channel record in numbers a MetricRecord holds."""
    entries = sum(sum(int(e.numel()) for e in p.estimates) for p in result.passes)
    noise = sum(p.noise_energy for p in result.passes)
    return {
        "ota-energy-used": float(result.energy_used.mean()),  # per client
        "ota-noise-var": noise / max(entries, 1),  # per decoded entry
        "ota-channel-uses": int(result.channel_uses),
        "ota-clients-heard": int(result.active.sum()),
    }
