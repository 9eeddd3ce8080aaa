"""Figures of ``laser plot``: a metric against a swept key, a metric against the round, and a
run's partition of the training data over the clients (a heat map).

Each figure has its own module, and this one gathers their public names:

- :mod:`federated.experiments.plot_vs_x`: a final metric against a swept key
  (:func:`plot_metric_vs_x`), and the captions that head the figures (:func:`interval_caption`,
  :func:`metric_caption`, :func:`shortened_note`, :func:`runs_subtitle`);
- :mod:`federated.experiments.plot_vs_round`: a metric against the round
  (:func:`plot_metric_vs_round`), the round axis started at round 0;
- :mod:`federated.experiments.plot_partition`: a run's partition as a heat map
  (:func:`partition_heatmap`), with its file stem and title (:func:`partition_stem`,
  :func:`partition_title`);
- :mod:`federated.experiments.plot_common`: what the figures share: the rc parameters, each method's
  style, the strip of diverged runs, the headings, the reference lines and the files written
  (``STEM.png`` and ``STEM.pdf``).

None of them imports matplotlib before it draws a figure.
"""

from __future__ import annotations

from federated.experiments.plot_partition import _draw_partition_heatmap as _draw_partition_heatmap
from federated.experiments.plot_partition import (
    partition_heatmap,
    partition_stem,
    partition_title,
)
from federated.experiments.plot_vs_round import _draw_metric_vs_round as _draw_metric_vs_round
from federated.experiments.plot_vs_round import plot_metric_vs_round
from federated.experiments.plot_vs_x import _draw_metric_vs_x as _draw_metric_vs_x
from federated.experiments.plot_vs_x import (
    interval_caption,
    metric_caption,
    plot_metric_vs_x,
    runs_subtitle,
    shortened_note,
)

__all__ = [
    "interval_caption",
    "metric_caption",
    "partition_heatmap",
    "partition_stem",
    "partition_title",
    "plot_metric_vs_round",
    "plot_metric_vs_x",
    "runs_subtitle",
    "shortened_note",
]
