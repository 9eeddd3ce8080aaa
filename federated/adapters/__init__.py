"""Adapters: the over-the-air round inside the training frameworks people already use.

Modules (each imported on its own; this package imports nothing):

* :mod:`federated.adapters.flower`: Flower 1.42 (message API). ``OTAFedAvg``, a ``FedAvg`` whose
  mean of the clients' model changes goes through a ``channels`` channel (Z-SGD, or any analog
  compressor with ``client_reply`` on the ClientApp side); needs ``pip install "laser-ota[flower]"``
  (its code in ``flower_strategy``, ``flower_client`` and ``flower_records``).
* :mod:`federated.adapters.ddp`: PyTorch ``DistributedDataParallel``. ``ota_hook`` and its
  ``OTAHookState``, a communication hook that replaces the gradient all-reduce with an
  over-the-air round, each rank a client.
"""
