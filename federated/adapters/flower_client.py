"""The client side of the Flower adapter: :func:`client_reply`, a ClientApp's reply to an
:class:`~federated.adapters.flower_strategy.OTAFedAvg` training message (the overview is
:mod:`federated.adapters.flower`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from federated.adapters.flower_records import (
    BLOCK_PREFIX,
    CLIENT_STATE_KEY,
    INDEX_KEY,
    LAYOUT_KEY,
    SHARED_KEY,
    _as_numpy,
    _check_method,
    _is_float,
    _torch,
    state_from_records,
    state_to_records,
)
from laser import Compressor

__all__ = ["client_reply"]


def client_reply(
    msg: Message,
    context: Context,
    arrays: Mapping[str, Any] | ArrayRecord,
    metrics: Mapping[str, int | float] | MetricRecord,
    compressor: Compressor | None = None,
    *,
    arrayrecord_key: str = "arrays",
    configrecord_key: str = "config",
    metricrecord_key: str = "metrics",
) -> Message:
    """The ClientApp's reply to an :class:`OTAFedAvg` training message ``msg``.

    Args:
        msg: the training message the ClientApp's train function received.
        context: the ClientApp's context (its ``state`` keeps this client's side between rounds).
        arrays: the trained model (its ``state_dict()``, or an ``ArrayRecord``), under the names of the
            arrays received.
        metrics: the train metrics, with ``num-examples`` (the client's weight).
        compressor: ``None``: the reply FedAvg expects (the arrays; the strategy computes the change).
            A compressor (the strategy's, with the same arguments): the change from the arrays
            received is encoded by this client's side, whose ``state_dict`` (error-feedback memory)
            lives in ``context.state`` between rounds (``"ota-client"``), and the reply carries the
            blocks (``"ota-block-0"``, ...) and the arrays of non-float dtypes.
        arrayrecord_key: the name of the arrays' record (FedAvg's default).
        configrecord_key: the name of the configuration's record (FedAvg's default).
        metricrecord_key: the name of the metrics' record (FedAvg's default).

    Returns:
        ``Message(content, reply_to=msg)``.
    """
    trained = _as_numpy(arrays, "arrays")
    metric_record = metrics if isinstance(metrics, MetricRecord) else MetricRecord(dict(metrics))
    if compressor is None:
        content = RecordDict(
            {
                arrayrecord_key: ArrayRecord({k: Array(np.asarray(v)) for k, v in trained.items()}),
                metricrecord_key: metric_record,
            }
        )
        return Message(content, reply_to=msg)
    _check_method(compressor)
    received = {k: v.numpy() for k, v in msg.content.array_records[arrayrecord_key].items()}
    train_config = msg.content.config_records[configrecord_key]
    if INDEX_KEY not in train_config or SHARED_KEY not in train_config or SHARED_KEY not in msg.content:
        raise ValueError(
            "the message holds no compressor broadcast: the ServerApp must run OTAFedAvg with the same "
            f"compressor ({INDEX_KEY!r} and {SHARED_KEY!r} are missing)"
        )
    if set(trained) != set(received):
        raise ValueError(
            f"arrays must have the names of the arrays received: got {sorted(trained)[:5]}..., "
            f"received {sorted(received)[:5]}..."
        )
    shared = state_from_records(msg.content.array_records[SHARED_KEY], str(train_config[SHARED_KEY]))
    floats = [k for k, v in received.items() if _is_float(v)]
    params = [_torch(received[k]) for k in floats]
    side = compressor.make_client(params, int(cast(int, train_config[INDEX_KEY])))
    if CLIENT_STATE_KEY in context.state:
        saved = context.state.array_records[CLIENT_STATE_KEY]
        layout = context.state.config_records[f"{CLIENT_STATE_KEY}-{LAYOUT_KEY}"]
        side.load_state_dict(state_from_records(saved, str(layout[LAYOUT_KEY])))
    change = [_torch(trained[k]).to(p.dtype) - p for k, p in zip(floats, params)]
    blocks = side.encode(change, shared)
    state_arrays, state_layout = state_to_records(side.state_dict())
    context.state[CLIENT_STATE_KEY] = state_arrays
    context.state[f"{CLIENT_STATE_KEY}-{LAYOUT_KEY}"] = ConfigRecord({LAYOUT_KEY: state_layout})
    reply = {f"{BLOCK_PREFIX}{b}": Array(block.detach().cpu().numpy()) for b, block in enumerate(blocks)}
    for k in received:
        if k not in set(floats):
            reply[k] = Array(np.asarray(trained[k]))
    content = RecordDict({arrayrecord_key: ArrayRecord(reply), metricrecord_key: metric_record})
    return Message(content, reply_to=msg)
