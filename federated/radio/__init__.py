"""The run's radio side around the channel model: the noisy downlink broadcast
(:mod:`federated.radio.downlink`) and a run in physical units, its clients' drop, link budget and
power caps and what a round costs in seconds, joules and dBm (:mod:`federated.radio.units`)."""
