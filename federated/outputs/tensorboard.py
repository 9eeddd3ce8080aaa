"""A run's history as TensorBoard scalars (``tensorboard: true``), beside its ``history.jsonl``."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """Writes each round's numbers as TensorBoard scalars, at step ``round + 1`` (rounds done),
    tagged by group: ``train/train_loss``, ``test/test_accuracy``, ``channel/energy_max``, ``optim/lr``.

    ``purge_step`` (a resumed run: the checkpoint's rounds + 1) makes TensorBoard drop the steps
    from there on that an earlier, killed writer logged, so that every step has one value (a fresh
    run: 1, dropping an earlier run's in the same directory). TensorBoard keeps scalars as float32.
    """

    def __init__(self, path: str | Path, purge_step: int | None = None) -> None:
        # imported here: tensorboard is an optional extra
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(path), purge_step=purge_step)

    @staticmethod
    def tag(key: str) -> str:
        """The scalar's name: the record's key under its group.

        >>> [TensorBoardLog.tag(k) for k in ("train_loss", "ema_test_loss", "noise_var_mean", "lr")]
        ['train/train_loss', 'test/ema_test_loss', 'channel/noise_var_mean', 'optim/lr']
        """
        if key.startswith(("test_", "ema_test_")):
            return f"test/{key}"
        if key.startswith("train_"):
            return f"train/{key}"
        if key.startswith(
            (
                "energy_",
                "noise_",
                "channel_",
                "active_clients",
                "bits_",
                "snr_",
                "air_time",
                "tx_power",
                "rx_snr",
            )
        ):
            return f"channel/{key}"
        return "optim/lr" if key == "lr" else f"other/{key}"

    def append(self, record: dict) -> None:
        step = record["round"] + 1
        for key, value in record.items():
            if (
                key != "round"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self._writer.add_scalar(self.tag(key), value, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
