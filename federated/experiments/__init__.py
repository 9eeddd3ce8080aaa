"""Experiments over many runs: sweeps of configurations (:mod:`federated.experiments.sweep`), their
tables with confidence intervals and energy to a target (:mod:`federated.experiments.results`),
and their figures (:mod:`federated.experiments.plots`).

Importing this package loads nothing heavy; import the module you need.
"""
