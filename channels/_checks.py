"""Argument checks shared by the public calls of :mod:`channels`.

Each check refuses what the channels cannot compute with a ``TypeError`` (the wrong kind of value:
a string for a number, a complex or integer signal, an object that is not a generator) or a
``ValueError`` (the right kind, an impossible value: an empty shape, a meta tensor, NaN), whose
message starts with the argument's name: ``"<name> must be ..., got <value>"``. The checks look at
types, dtypes and devices only (no pass over a tensor's data), so they cost microseconds per call;
those of client weights and client indices also read their K values.
"""

from __future__ import annotations

import operator
import reprlib
from collections.abc import Sequence
from typing import SupportsIndex, cast

import torch
from torch import Tensor

__all__ = [
    "brief",
    "brief_values",
    "check_count",
    "check_data",
    "check_generator",
    "check_number",
    "check_probability",
    "check_weights",
    "client_index",
    "per_client",
    "real_tensor",
]

_REPR = reprlib.Repr()
_REPR.maxstring = 40
_REPR.maxother = 60
_REPR.maxlist = 6


def brief(value: object) -> str:
    """A repr of ``value`` bounded to about 80 characters (a tensor: its shape, dtype and device).

    >>> brief(torch.zeros(1000, 3)), brief("x" * 100)
    ('a tensor of shape (1000, 3), torch.float32 on cpu', "'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx'")
    """
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}, {value.dtype} on {value.device}"
    return _REPR.repr(value)


def brief_values(tensor: Tensor) -> str:
    """The first few values of ``tensor`` (flattened), for an error message.

    >>> brief_values(torch.arange(10.0))
    '[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, ...]'
    """
    return _REPR.repr(tensor.detach().flatten()[: _REPR.maxlist + 1].tolist())


def check_data(tensor: Tensor, name: str) -> None:
    """Refuse a tensor without data (on the meta device): nothing can be computed from it."""
    if tensor.is_meta:
        raise ValueError(f"{name} must hold data (a CPU or accelerator tensor), got a meta tensor")


def check_number(value: object, name: str) -> float:
    """``float(value)`` for a real number (a Python or NumPy number, or a one-element real tensor);
    a ``TypeError`` naming ``name`` for anything else (a string, a bool, a complex number). The
    caller keeps computing with ``value`` itself, so valid results do not change.

    >>> check_number(3, "energy")
    3.0
    >>> check_number("3", "energy")
    Traceback (most recent call last):
    ...
    TypeError: energy must be a real number, got '3' (str)
    """
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex() or value.numel() != 1:
            raise TypeError(f"{name} must be a real number, got {brief(value)}")
        check_data(value, name)
    elif isinstance(value, (str, bytes, bool, complex)):
        raise TypeError(f"{name} must be a real number, got {brief(value)} ({type(value).__name__})")
    try:
        return float(value)  # type: ignore[arg-type]  # anything with __float__, refused below if not
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"{name} must be a real number, got {brief(value)} ({type(value).__name__})"
        ) from error


def check_probability(value: object, name: str) -> float:
    """``value`` as a float in (0, 1] (a probability that something happens at all), or a
    ``ValueError`` naming ``name``.

    >>> check_probability(0.05, "participation")
    0.05
    >>> check_probability(0, "participation")
    Traceback (most recent call last):
    ...
    ValueError: participation = 0 is out of range; expected a number in (0, 1]
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} = {value!r} is out of range; expected a number in (0, 1]")
    return float(value)


def real_tensor(
    value: object, name: str, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> Tensor:
    """``torch.as_tensor(value, dtype=dtype, device=device)`` (the very call, so the values are those
    it gives), refusing first what is not real numbers: strings, bools, complex values (TypeError)
    and meta tensors (ValueError), naming ``name``."""
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must be real numbers, got {brief(value)}")
        check_data(value, name)
        return torch.as_tensor(value, dtype=dtype, device=device)
    if isinstance(value, (str, bytes, bool, complex)):
        raise TypeError(f"{name} must be real numbers, got {brief(value)} ({type(value).__name__})")
    try:
        tensor = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"{name} must be real numbers, got {brief(value)} ({type(value).__name__})"
        ) from error
    if tensor.dtype == torch.bool or tensor.is_complex():  # e.g. a list of bools, without a dtype
        raise TypeError(f"{name} must be real numbers, got {brief(value)}")
    return tensor


def check_generator(generator: object, name: str = "generator") -> None:
    """Refuse anything but a ``torch.Generator`` or ``None`` (TypeError naming ``name``)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {brief(generator)}")


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: a TypeError (not an integer: a bool, a float, a string) or a
    ValueError (too small) naming ``name``.

    >>> check_count(3, "num_clients")
    3
    >>> check_count(True, "num_clients")
    Traceback (most recent call last):
    ...
    TypeError: num_clients must be an integer >= 1, got True
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        count = operator.index(cast(SupportsIndex, value))  # an int, a NumPy integer, an integer tensor
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {brief(value)}") from None
    if count < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {count}")
    return count


def check_weights(
    weights: Tensor | Sequence[float], num_clients: int, device: torch.device | str | None = None
) -> Tensor:
    """``weights`` as a float64 ``[K]`` tensor on ``device``, checked: real numbers, finite, > 0.

    Raises TypeError (not real numbers) or ValueError (another shape than ``[num_clients]``, a value
    <= 0, NaN or infinite), naming ``weights``.

    >>> check_weights([1, 2.5], 2).tolist()
    [1.0, 2.5]
    """
    if isinstance(weights, Tensor):
        probe = weights.detach()
    else:
        try:
            probe = torch.as_tensor(weights)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"weights must be a [K] tensor or list of numbers, got {weights!r}") from error
    if probe.dtype == torch.bool or probe.is_complex():
        raise TypeError(f"weights must be real numbers, got a tensor of {probe.dtype}")
    check_data(probe, "weights")
    if isinstance(weights, Tensor):
        values = probe.to(device=device, dtype=torch.float64)
    else:  # straight to float64: no float32 rounding of Python floats on the way
        values = torch.as_tensor(weights, dtype=torch.float64, device=device)
    if values.shape != (num_clients,):
        raise ValueError(
            f"weights must have shape [{num_clients}] (one per client), got {tuple(values.shape)}"
        )
    bad = ~(torch.isfinite(values) & (values > 0))
    if bool(bad.any()):
        raise ValueError(f"weights must be finite and > 0, got {values[bad][:5].tolist()} among them")
    return values


def client_index(clients: Tensor | Sequence[int], num_clients: int | None) -> Tensor:
    """``clients`` as a 1-D long tensor of distinct client indices in ``0 .. num_clients-1`` (any
    index >= 0 when ``num_clients`` is None); a TypeError or ValueError naming ``clients``."""
    try:
        index = torch.as_tensor(clients)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"clients must be a 1-D tensor or list of client indices, got {brief(clients)}"
        ) from None
    if index.numel() == 0:
        raise ValueError("clients is empty: realize at least one client")
    if index.dim() != 1 or index.dtype == torch.bool or index.is_floating_point() or index.is_complex():
        raise TypeError(f"clients must be a 1-D tensor or list of client indices, got {brief(clients)}")
    check_data(index, "clients")
    index = index.long().cpu()
    high = int(index.max())
    if int(index.min()) < 0 or (num_clients is not None and high >= num_clients):
        accepted = f"in 0..{num_clients - 1}" if num_clients is not None else ">= 0"
        raise ValueError(f"clients must be client indices {accepted}, got {brief_values(index)}")
    if index.unique().numel() != index.numel():
        raise ValueError(f"clients must be distinct client indices, got {brief_values(index)}")
    return index


def per_client(energy: float | Tensor, num_clients: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A block's budget, a float or ``[K]``, as ``[K, 1]`` (one block; values checked by ``transmit``)."""
    energy = real_tensor(energy, "energy", dtype=dtype, device=device)
    if energy.dim() > 1 or (energy.dim() == 1 and energy.numel() != num_clients):
        raise ValueError(f"energy must be a float or have shape [{num_clients}], got {tuple(energy.shape)}")
    return energy.expand(num_clients).unsqueeze(1)
