"""Flower's records and the compressors' state: what the Flower adapter sends besides the model.

A compressor's ``state_dict()`` (its client side's error-feedback memory, kept in ``context.state``)
and its server side's ``broadcast()`` (sent with each training message) are nested dicts, lists and
tuples of tensors, numbers and strings; Flower's records hold arrays and flat configs.
:func:`state_to_records` and :func:`state_from_records` carry one as the other. The record names the
strategy (:mod:`federated.adapters.flower_strategy`) and the ClientApp's
:func:`~federated.adapters.flower_client.client_reply` agree on are here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from numpy.typing import NDArray
from torch import Tensor

from laser import Compressor

__all__ = [
    "state_to_records",
    "state_from_records",
    "INDEX_KEY",
    "SHARED_KEY",
    "BLOCK_PREFIX",
    "CLIENT_STATE_KEY",
    "LAYOUT_KEY",
]

INDEX_KEY = "ota-client-index"  # config record: the client's stable index
SHARED_KEY = "ota-shared"  # message: ArrayRecord of the server's broadcast; config record: its layout
BLOCK_PREFIX = "ota-block-"  # reply ArrayRecord: the encoded blocks, "ota-block-0", "ota-block-1", ...
CLIENT_STATE_KEY = "ota-client"  # context.state: the client side's state_dict (ArrayRecord + ConfigRecord)
LAYOUT_KEY = "layout"  # context.state[f"{CLIENT_STATE_KEY}-layout"][LAYOUT_KEY]: that state's layout


def state_to_records(state: Any) -> tuple[ArrayRecord, str]:
    """A compressor's ``state_dict()`` or ``broadcast()`` (nested dicts, lists and tuples of tensors,
    numpy arrays, numbers, strings and None) as what Flower's records carry: an ``ArrayRecord`` of its
    tensors (numpy arrays, CPU) and a JSON layout string of the rest (for a ``ConfigRecord``).

    Example:
        >>> arrays, layout = state_to_records({"step": 3, "queries": [torch.ones(2)], "memory": [None]})
        >>> list(arrays), json.loads(layout)["dict"][0]
        (['0'], ['step', {'value': 3}])
        >>> state_from_records(arrays, layout)
        {'step': 3, 'queries': [tensor([1., 1.])], 'memory': [None]}
    """
    arrays: dict[str, Array] = {}

    def pack(value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, Tensor):
            key = str(len(arrays))
            tensor = value.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                raise TypeError(
                    f"{path} is a bfloat16 tensor, which numpy (and so Flower's records) cannot hold"
                )
            arrays[key] = Array(np.asarray(tensor.numpy()))
            return {"tensor": key}
        if isinstance(value, np.ndarray):
            key = str(len(arrays))
            arrays[key] = Array(np.asarray(value))
            return {"ndarray": key}
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"value": value}
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{path} has a key that is not a string; Flower's records need string keys")
            return {"dict": [[k, pack(v, f"{path}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [pack(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        raise TypeError(
            f"{path} is a {type(value).__name__}; Flower's records carry tensors, numpy arrays, numbers, "
            "strings, None, and dicts, lists and tuples of them"
        )

    layout = json.dumps(pack(state, "state"))
    return ArrayRecord(arrays), layout


def state_from_records(arrays: ArrayRecord, layout: str, device: torch.device | str | None = None) -> Any:
    """What :func:`state_to_records` made, rebuilt: tensors (on ``device``, default the CPU), numpy
    arrays, numbers, strings, None, and the dicts, lists and tuples around them."""

    def unpack(node: Any) -> Any:
        if not (isinstance(node, dict) and len(node) == 1):
            raise ValueError(f"layout is not one that state_to_records wrote (at {node!r})")
        ((kind, value),) = node.items()
        if kind == "tensor":
            return torch.from_numpy(arrays[value].numpy()).to(device)
        if kind == "ndarray":
            return arrays[value].numpy()
        if kind == "value":
            return value
        if kind == "dict":
            return {k: unpack(v) for k, v in value}
        if kind == "list":
            return [unpack(v) for v in value]
        if kind == "tuple":
            return tuple(unpack(v) for v in value)
        raise ValueError(f"layout is not one that state_to_records wrote (kind {kind!r})")

    return unpack(json.loads(layout))


def _is_float(array: NDArray[Any]) -> bool:
    return bool(np.issubdtype(array.dtype, np.floating))


def _as_numpy(arrays: Mapping[str, Any] | ArrayRecord, name: str) -> dict[str, NDArray[Any]]:
    """An ArrayRecord, or a mapping of names to tensors or numpy arrays (a ``state_dict``), as numpy."""
    if isinstance(arrays, ArrayRecord):
        return {k: v.numpy() for k, v in arrays.items()}
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{name} must be an ArrayRecord or a state_dict (names to tensors), got {arrays!r}")
    out: dict[str, NDArray[Any]] = {}
    for k, v in arrays.items():
        if isinstance(v, Tensor):
            out[k] = v.detach().cpu().numpy()
        elif isinstance(v, np.ndarray):
            out[k] = v
        else:
            raise TypeError(f"{name}[{k!r}] must be a tensor or a numpy array, got {type(v).__name__}")
    return out


def _torch(array: NDArray[Any]) -> Tensor:
    return torch.from_numpy(np.array(array, copy=True))


def _check_method(compressor: Compressor) -> None:
    if not isinstance(compressor, Compressor):
        raise TypeError(f"compressor must be a laser Compressor (or None: Z-SGD), got {compressor!r}")
    if not compressor.analog or compressor.passes != 1:
        raise ValueError(
            f"{compressor!r}: over Flower, a compressor must be analog and send one channel pass per round "
            "(a second pass, or a digital method's undelivered messages, would need another round trip "
            "to the clients)"
        )
