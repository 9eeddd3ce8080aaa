"""A run's partition of the training data over the clients as a heat map
(:func:`partition_heatmap`), with a file stem (:func:`partition_stem`) and a title
(:func:`partition_title`) that name the partition by its settings. The drawing shared with the other
figures is in :mod:`federated.experiments.plot_common`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from federated.experiments.plot_common import _RC, _save

__all__ = ["partition_heatmap", "partition_stem", "partition_title"]

# partition heat maps: each cell annotated with its count up to this many cells
_ANNOTATE_MAX_CELLS = 300
# short names of the partition parameters in file names
_PARAMETER_TAGS = {"alpha": "alpha", "min_partition_size": "min", "shards_per_client": "shards"}


def _draw_partition_heatmap(table: dict, *, title: str | None = None) -> Figure:
    """The figure of :func:`partition_heatmap`, not saved."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    counts = np.asarray(table.get("counts") or [], dtype=float)
    if counts.ndim != 2 or counts.size == 0:
        raise ValueError("partition_heatmap: the table has no client x class counts")
    clients, classes = counts.shape
    annotate = counts.size <= _ANNOTATE_MAX_CELLS
    with matplotlib.rc_context(_RC):
        fig = Figure(
            figsize=(min(9.0, 1.6 + 0.42 * classes), min(9.0, 1.3 + 0.3 * clients)), layout="constrained"
        )
        ax = fig.add_subplot()
        image = ax.imshow(counts, cmap="Blues", vmin=0, aspect="auto", interpolation="nearest")
        ax.grid(False)
        ax.set(xlabel="class", ylabel="client (training samples)" if clients <= 32 else "client")
        if classes <= 20:
            ax.set_xticks(range(classes))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if clients <= 32:  # each client's total beside its index
            ax.set_yticks(range(clients), [f"{k} ({int(n)})" for k, n in enumerate(counts.sum(axis=1))])
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(length=0)
        if annotate:
            top = counts.max()
            for (k, c), value in np.ndenumerate(counts):
                ax.text(
                    c,
                    k,
                    f"{int(value)}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if value > 0.6 * top else "0.15",
                )
        fig.colorbar(image, ax=ax, label="training samples", shrink=0.9)
        if title:
            ax.set_title(title)
    return fig


def partition_stem(table: dict, data: str | None = None) -> str:
    """A file stem that names a partition by its settings: ``partition``, the dataset, the
    partition's name and parameters, the number of clients.

    >>> partition_stem({"partition": "dirichlet", "parameters": {"alpha": 0.5, "min_partition_size": 10},
    ...                 "num_clients": 16}, data="digits")
    'partition_digits_dirichlet_alpha0.5_min10_K16'
    """
    parts = ["partition", *([data] if data else []), str(table.get("partition", "unknown"))]
    parts += [
        f"{_PARAMETER_TAGS.get(k, k)}{v:g}" if isinstance(v, float) else f"{_PARAMETER_TAGS.get(k, k)}{v}"
        for k, v in (table.get("parameters") or {}).items()
    ]
    if "num_clients" in table:
        parts.append(f"K{table['num_clients']}")
    return "_".join(parts)


def partition_title(table: dict, data: str | None = None, seeds: Sequence[object] = ()) -> str:
    """A heat map's title: the dataset, the partition and its parameters, the clients, the seeds.

    >>> partition_title({"partition": "dirichlet", "parameters": {"alpha": 0.1, "min_partition_size": 10},
    ...                  "num_clients": 8}, data="mnist1d", seeds=[0, 1])
    'mnist1d: dirichlet (alpha = 0.1, min_partition_size = 10), 8 clients, seeds 0, 1'
    """
    parameters = ", ".join(
        f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in (table.get("parameters") or {}).items()
    )
    text = f"{data}: " if data else ""
    text += str(table.get("partition", "partition")) + (f" ({parameters})" if parameters else "")
    if "num_clients" in table:
        text += f", {table['num_clients']} clients"
    if seeds:
        shown = (
            [str(seed) for seed in seeds]
            if len(seeds) <= 6
            else [*map(str, seeds[:3]), "...", str(seeds[-1])]
        )
        text += f", seed{'s' if len(seeds) > 1 else ''} " + ", ".join(shown)
    return text


def partition_heatmap(table: dict, path_stem: str | Path, *, title: str | None = None) -> list[Path]:
    """A run's partition as a heat map: clients down, classes across, each client's samples of each
    class as the colour (annotated with the count when the table has at most 300 cells; each client's
    total beside its index when there are at most 32).

    ``table`` is a run's ``partition.json`` (:meth:`~federated.data.tasks.Task.partition`): it needs
    ``counts``, the client x class counts. Writes ``{path_stem}.png`` and ``{path_stem}.pdf`` and
    returns their paths.

    >>> import pathlib, shutil, tempfile
    >>> table = {"partition": "shards", "parameters": {"shards_per_client": 1}, "num_clients": 2,
    ...          "counts": [[5, 0, 0], [0, 3, 2]]}
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / partition_stem(table)
    >>> [p.name for p in partition_heatmap(table, stem, title="digits")]
    ['partition_shards_shards1_K2.png', 'partition_shards_shards1_K2.pdf']
    >>> shutil.rmtree(stem.parent)
    """
    return _save(_draw_partition_heatmap(table, title=title), path_stem)
