"""Digital (non-summable) compressors: each client's message is bits on its own orthogonal link.

Top-k supports, per-client norms and random rounding make these compressors non-linear, so the sum
of the clients' messages cannot be formed over the air. A
client's ``encode`` returns the message as the server decodes it (one flattened tensor per
parameter tensor, same dtype and device as the gradient, a new tensor) and records its exact size
in ``client.bits`` (:meth:`~laser.compressor.DigitalClient.message_bits`); the digital link
(``channels.digital``) turns bits into channel uses. The server (:class:`~laser.compressor.DigitalServer`,
or :class:`SignSGDServer` for the majority vote) decodes the mean of the delivered messages; it
keeps nothing between rounds and broadcasts nothing.

Bit conventions (:class:`~laser.compressor.DigitalCompressor`), per parameter tensor of d entries,
summed over tensors: a float 32 bits, an index ``ceil(log2 d)`` bits, a sign 1 bit, one of L levels
``ceil(log2 L)`` bits.

Client state: the error-feedback memory (top-k, top-k + dithering), the momentum (signSGD), the
bits of the last message and, for the methods that round at random (QSGD, natural compression,
natural dithering, top-k + dithering), the client's own CPU ``torch.Generator``, seeded with
:func:`~laser.compressor.client_seed` ``(seed, index)``: a client's draws depend on the method's
``seed`` and its index only, not on which other clients take part or in which order they encode.
Uniforms are drawn on the CPU in the gradient's dtype and moved to its device, so a run is
reproducible on any device.

The methods, by family: :mod:`laser.digital.sparsifiers` (top-k, top-k + dithering),
:mod:`laser.digital.quantisers` (QSGD, natural compression, natural dithering, signSGD) and
:mod:`laser.digital.qsparse` (Qsparse-local-SGD); :mod:`laser.digital.common` holds what they share
(the bit count of an index, the argument checks, the clients' common part). Every name is importable
from ``laser.digital`` as before.
"""

from laser.digital.qsparse import QSparseClient, QSparseCompressor
from laser.digital.qsparse import qsparse_beta as qsparse_beta  # not in __all__; imported from here
from laser.digital.quantisers import (
    NaturalClient,
    NaturalCompressor,
    NaturalDitheringClient,
    NaturalDitheringCompressor,
    QSGDClient,
    QSGDCompressor,
    SignSGDClient,
    SignSGDCompressor,
    SignSGDServer,
)
from laser.digital.sparsifiers import TopKClient, TopKCompressor, TopKDitheringClient, TopKDitheringCompressor

__all__ = [
    "NaturalClient",
    "NaturalCompressor",
    "NaturalDitheringClient",
    "NaturalDitheringCompressor",
    "QSGDClient",
    "QSGDCompressor",
    "QSparseClient",
    "QSparseCompressor",
    "SignSGDClient",
    "SignSGDCompressor",
    "SignSGDServer",
    "TopKClient",
    "TopKCompressor",
    "TopKDitheringClient",
    "TopKDitheringCompressor",
]
