"""LASER and its baselines: the encoding side of over-the-air federated learning.

A compressor is a method (:class:`Compressor`) with two sides: one per client
(:class:`CompressorClient`: encodes, keeps its error-feedback memory) and the server's
(:class:`CompressorServer`: decodes, keeps the shared state and broadcasts it). Power allocation
splits a client's energy over its blocks; :func:`transmit_round` sends a whole round of any
compressor through a ``channels`` channel (the one place ``laser`` imports ``channels``; it never
imports ``federated``).
"""

from laser.adsgd import ADSGDCompressor
from laser.allocation import ALLOCATIONS, allocate_energy, allocate_grouped_energy
from laser.baselines import CountSketchCompressor, RandomKCompressor, SignumCompressor
from laser.compressor import (
    Compressor,
    CompressorClient,
    CompressorServer,
    DigitalClient,
    DigitalCompressor,
    DigitalServer,
    NonFiniteGradientError,
    ZSGDCompressor,
)
from laser.digital import (
    NaturalCompressor,
    NaturalDitheringCompressor,
    QSGDCompressor,
    QSparseCompressor,
    SignSGDCompressor,
    TopKCompressor,
    TopKDitheringCompressor,
)
from laser.lowrank import LaserClient, LaserCompressor, LaserServer, is_compressed, matrix_view, orthogonalize
from laser.ota import (
    NonFiniteNoiseError,
    PassOptions,
    PassRecord,
    RoundResult,
    transmit_blocks,
    transmit_round,
)
from laser.warmup import WarmUp

__all__ = [
    "ALLOCATIONS",
    "allocate_energy",
    "allocate_grouped_energy",
    "Compressor",
    "CompressorClient",
    "CompressorServer",
    "DigitalCompressor",
    "DigitalClient",
    "DigitalServer",
    "NonFiniteGradientError",
    "NonFiniteNoiseError",
    "ZSGDCompressor",
    "LaserCompressor",
    "LaserClient",
    "LaserServer",
    "is_compressed",
    "matrix_view",
    "orthogonalize",
    "RandomKCompressor",
    "CountSketchCompressor",
    "SignumCompressor",
    "ADSGDCompressor",
    "TopKCompressor",
    "QSGDCompressor",
    "QSparseCompressor",
    "NaturalCompressor",
    "NaturalDitheringCompressor",
    "TopKDitheringCompressor",
    "SignSGDCompressor",
    "PassOptions",
    "PassRecord",
    "RoundResult",
    "transmit_round",
    "transmit_blocks",
    "WarmUp",
]
