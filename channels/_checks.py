"""Argument checks shared by the public calls of :mod:`channels`.

Each check refuses what the channels cannot compute with a ``TypeError`` (the wrong kind of value:
a string for a number, a complex or integer signal, an object that is not a generator) or a
``ValueError`` (the right kind, an impossible value: an empty shape, a meta tensor, NaN), whose
message starts with the argument's name: ``"<name> must be ..., got <value>"``. The checks look at
types, dtypes and devices only (no pass over a tensor's data), so they cost microseconds per call.
"""

from __future__ import annotations

import reprlib

import torch
from torch import Tensor

__all__ = ["brief", "brief_values", "check_data", "check_generator", "check_number", "real_tensor"]

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
