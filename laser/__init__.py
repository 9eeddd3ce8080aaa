"""LASER and its baselines: compressors, error feedback and power allocation (the encoding side).

Imports nothing from ``channels`` or ``federated``.
"""

from laser.adsgd import ADSGDCompressor
from laser.allocation import ALLOCATIONS, allocate_energy
from laser.baselines import CountSketchCompressor, RandomKCompressor, SignumCompressor
from laser.compressor import Compressor, DigitalCompressor, ZSGDCompressor
from laser.digital import (
    NaturalCompressor,
    NaturalDitheringCompressor,
    QSGDCompressor,
    SignSGDCompressor,
    TopKCompressor,
    TopKDitheringCompressor,
)
from laser.lowrank import LaserCompressor, is_compressed, matrix_view, orthogonalize

__all__ = [
    "ALLOCATIONS",
    "allocate_energy",
    "Compressor",
    "DigitalCompressor",
    "ZSGDCompressor",
    "LaserCompressor",
    "is_compressed",
    "matrix_view",
    "orthogonalize",
    "RandomKCompressor",
    "CountSketchCompressor",
    "SignumCompressor",
    "ADSGDCompressor",
    "TopKCompressor",
    "QSGDCompressor",
    "NaturalCompressor",
    "NaturalDitheringCompressor",
    "TopKDitheringCompressor",
    "SignSGDCompressor",
]
