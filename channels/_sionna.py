"""How our modules use Sionna: imported on first use, its blocks drawing from an explicit generator,
and the device and precision Sionna fixes at construction.

Importing any part of ``sionna.phy`` runs ``sionna/phy/__init__.py``, which loads the whole PHY
library (FEC, NR, MIMO, OFDM, matplotlib and torch._dynamo: several seconds and ~150 MB). So no
module of ``channels`` imports Sionna at its top: :func:`sionna_channel` imports it on the first
call that draws a random number through it (noise, Rayleigh, Rician or TDL fading), and
:func:`generator_block` builds our subclasses of its blocks then.

Sionna's import reseeds torch's global generators from the operating system's entropy (its config
seeds them when ``sionna.phy.config.seed`` is unset), which would make everything drawn from them
afterwards (dropout, a user's own ``torch.rand``) differ from run to run. :func:`import_sionna`
imports it inside :func:`torch.random.fork_rng`, so the global generators are as they were.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import torch

__all__ = ["sionna_args", "import_sionna", "sionna_channel", "generator_block", "sionna_draws_from"]

# our name of a Sionna block -> (the module that defines it, its name there)
_BLOCKS = {
    "AWGN": ("sionna.phy.channel", "AWGN"),
    "RayleighBlockFading": ("sionna.phy.channel", "RayleighBlockFading"),
    "TDL": ("sionna.phy.channel.tr38901", "TDL"),
}
_TYPES: dict[str, type] = {}  # "Generator" + block name -> the subclass, built on first use


def sionna_args(generator: torch.Generator, dtype: torch.dtype) -> tuple[str, str]:
    """(precision, device) for a Sionna block that draws from ``generator`` and outputs complex ``dtype``.

    >>> sionna_args(torch.Generator(), torch.complex128)
    ('double', 'cpu')
    """
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    device = generator.device
    if device.type == "cuda" and device.index is None:  # Sionna names devices "cuda:N"
        device = torch.device("cuda", torch.cuda.current_device())
    return ("double" if dtype == torch.complex128 else "single"), str(device)


def import_sionna(module: str) -> ModuleType:
    """The Sionna module ``module``, imported without changing torch's global generators (CPU and
    every CUDA device's), which Sionna's import reseeds at random.

    >>> state = torch.get_rng_state()
    >>> _ = import_sionna("sionna.phy.channel")
    >>> torch.equal(state, torch.get_rng_state())
    True
    """
    if module in sys.modules:
        return sys.modules[module]
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []  # Sionna inits CUDA
    with torch.random.fork_rng(devices=devices):
        return importlib.import_module(module)


def sionna_channel() -> ModuleType:
    """``sionna.phy.channel``, imported on the first call (later calls find it in ``sys.modules``)."""
    return import_sionna("sionna.phy.channel")


@contextlib.contextmanager
def sionna_draws_from(generator: torch.Generator) -> Iterator[torch.Generator]:
    """Within the block, every draw Sionna makes on ``generator``'s device comes from ``generator``:
    ``sionna.phy.config.torch_rng(device)`` returns it, and with it every block's ``torch_rng`` and
    the topology helpers and LOS draws that call the config directly (which a block subclass, see
    :func:`generator_block`, would miss). Sionna's own generator for the device and torch's global
    generators are neither used nor changed (``config.seed`` would reseed torch's). Eager mode only;
    not thread-safe.

    >>> config = import_sionna("sionna.phy").config
    >>> mine = torch.Generator().manual_seed(0)
    >>> with sionna_draws_from(mine):
    ...     config.torch_rng("cpu") is mine
    True
    >>> config.torch_rng("cpu") is mine
    False
    """
    config = import_sionna("sionna.phy").config
    device = generator.device
    if device.type == "cuda" and device.index is None:  # Sionna names devices "cuda:N"
        device = torch.device("cuda", torch.cuda.current_device())
    key = str(device)
    missing = object()
    saved = config._torch_rngs.get(key, missing)
    config._torch_rngs[key] = generator
    try:
        yield generator
    finally:
        rngs = config._torch_rngs  # read again: setting config.seed meanwhile replaces the dict
        if saved is missing:
            rngs.pop(key, None)
        else:
            rngs[key] = saved


class _ExplicitGenerator:
    """Mixed into a Sionna block: its random numbers come from ``self.generator`` (set by the caller
    before every draw), never from Sionna's global generator or torch's."""

    generator: torch.Generator | None = None

    @property
    def torch_rng(self) -> torch.Generator:
        assert self.generator is not None, "set the block's generator before drawing"
        return self.generator


def generator_block(name: str) -> type:
    """Sionna's block ``name`` ("AWGN", "RayleighBlockFading" or "TDL") subclassed to draw from its
    ``generator`` attribute: the class ``channels._sionna.Generator<name>``, built (and Sionna
    imported) on the first call.

    >>> awgn = generator_block("AWGN")(precision="single", device="cpu")
    >>> awgn.generator = torch.Generator().manual_seed(0)
    >>> awgn.torch_rng is awgn.generator, type(awgn).__name__
    (True, 'GeneratorAWGN')
    """
    qualname = f"Generator{name}"
    if qualname not in _TYPES:
        if name not in _BLOCKS:
            raise ValueError(f"name must be one of {sorted(_BLOCKS)}, got {name!r}")
        module, attribute = _BLOCKS[name]
        base = getattr(import_sionna(module), attribute)
        cls = type(qualname, (_ExplicitGenerator, base), {"__module__": __name__, "__qualname__": qualname})
        _TYPES[qualname] = cls
    return _TYPES[qualname]


def __getattr__(name: str) -> type:
    """``channels._sionna.GeneratorAWGN`` and the others, so that pickle finds the classes by name."""
    if name.startswith("Generator") and name.removeprefix("Generator") in _BLOCKS:
        return generator_block(name.removeprefix("Generator"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
