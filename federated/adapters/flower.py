"""Flower 1.42 over the air: a FedAvg whose mean of the clients' model changes goes through a channel.

Flower's ``FedAvg`` averages the clients' models exactly. :class:`OTAFedAvg` keeps its sampling,
its messages and its metrics, but its aggregate is one over-the-air round of the clients' model
*changes* (each reply's arrays minus the arrays the strategy sent): a ``channels`` channel
(``AWGNChannel``, ``FadingChannel``) superposes them, weighted by each reply's ``num-examples`` as
FedAvg weighs them, and the new global model is the sent model plus the decoded mean change.

* **Z-SGD** (no compressor): the ClientApp replies as for FedAvg (its trained arrays and a
  ``num-examples`` metric); the strategy computes each change and sends the raw changes over the
  channel (:func:`laser.transmit_round`). Over a noiseless channel the aggregate is FedAvg's.
* **Compressed** (``compressor=``, e.g. ``LaserCompressor``): each message the strategy sends also
  carries the compressor server side's ``broadcast()`` (its tensors in an ``ArrayRecord`` named
  ``"ota-shared"``, their layout and the client's index in the config record); the ClientApp calls
  :func:`client_reply` with the same compressor, which encodes the change with the client's own
  side, kept between rounds in ``context.state`` (its ``state_dict`` as Flower records), and
  replies with the blocks; the strategy sends them over the channel (:func:`laser.transmit_blocks`).
  Analog methods of one channel pass per round only (LASER, Z-SGD, Random-K, count sketch, ...):
  PowerSGD's second pass would need a second round trip, and a digital method's undelivered
  messages would have to go back to the remote client's memory.

Client indices: Flower names nodes by large integer ids; the strategy gives each node a stable index
0, 1, 2, ... in the order it first samples them (new nodes of one round by increasing id), kept in
:attr:`OTAFedAvg.client_indices`, and sends it to the client (``"ota-client-index"`` in the config
record) to make its compressor side. A round's participants go through the channel in index order.

Every floating-point array goes over the air, buffers included (BatchNorm's running statistics
average like the weights, as in FedAvg). Arrays of an integer or bool dtype (BatchNorm's
``num_batches_tracked``) are no model change to send over the air: they are averaged exactly
(weighted by ``num-examples``) and rounded back to their dtype.

The channel's record of each round (:class:`laser.RoundResult`: energy per client, noise variance
per block, channel uses, clients heard) is kept in :attr:`OTAFedAvg.records`, and its summary joins
the round's train metrics (``ota-energy-used``, ``ota-noise-var``, ``ota-channel-uses``,
``ota-clients-heard``).

A ServerApp and its ClientApp (``examples/flower_ota.py`` is a whole one)::

    strategy = OTAFedAvg(AWGNChannel(noise_var=1.0), energy=100.0, compressor=LaserCompressor(rank=2))
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=10)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        ...  # local training
        return client_reply(msg, context, model.state_dict(), {"num-examples": n},
                            compressor=LaserCompressor(rank=2))

Flower's records carry what a compressor keeps and broadcasts through :func:`state_to_records` and
:func:`state_from_records` (tensors as numpy arrays, the rest as JSON).

This module is what users import; the code is in :mod:`~federated.adapters.flower_strategy` (the
ServerApp's strategy), :mod:`~federated.adapters.flower_client` (the ClientApp's reply) and
:mod:`~federated.adapters.flower_records` (the records and their names).
"""

from federated.adapters.flower_client import client_reply
from federated.adapters.flower_records import (
    BLOCK_PREFIX,
    CLIENT_STATE_KEY,
    INDEX_KEY,
    LAYOUT_KEY,
    SHARED_KEY,
    state_from_records,
    state_to_records,
)
from federated.adapters.flower_strategy import OTAFedAvg

__all__ = [
    "OTAFedAvg",
    "client_reply",
    "state_to_records",
    "state_from_records",
    "INDEX_KEY",
    "SHARED_KEY",
    "BLOCK_PREFIX",
    "CLIENT_STATE_KEY",
    "LAYOUT_KEY",
]
