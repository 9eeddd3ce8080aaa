"""A run: :class:`~federated.simulation.Simulation` round after round, with its run directory
(config, history, summary, checkpoints, TensorBoard), the progress bar and ``--resume``."""

from __future__ import annotations

import functools
import os
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import torch
from tqdm.auto import tqdm

from federated.checkpoint import CheckpointError, checkpoint_name, resume_state, rotate, save_checkpoint
from federated.config import Config, ConfigError, config_to_dict
from federated.distributed import init_shard, world_size_from_env
from federated.history import History
from federated.outputs import RUN_LOCK_HELD, RunDirectory, TensorBoardLog, claim, lock_run, write_config_once
from federated.reproducible import environment, pin_cpu_isa, pin_state, resolve_cpu_isa
from federated.simulation import NonFiniteError, Simulation, resolve_device

__all__ = ["train"]


def _require_tensorboard() -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(
            "tensorboard",
            True,
            "false, or install the tensorboard extra: pip install 'laser-ota[tensorboard]'",
        ) from None


def _owns_directory(out_dir: str | Path) -> bool:
    """Whether this process locks and claims the run directory: a run's only process, or process 0 of
    a ``torchrun`` job; not the processes that ``laser run --nproc`` starts (it holds the directory
    for them, naming it in ``$LASER_RUN_LOCK_HELD``, and they would find their own lock taken)."""
    if os.environ.get(RUN_LOCK_HELD) == str(Path(out_dir).resolve()):
        return False
    return world_size_from_env() <= 1 or os.environ.get("RANK", "0") == "0"


_P = ParamSpec("_P")


def _holding_the_directory(run: Callable[_P, History]) -> Callable[_P, History]:
    """``train``, with its run directory locked from before it is claimed until the run ends, however
    it ends (:func:`federated.outputs.lock_run`: another run into it is refused with RunLockedError)."""

    @functools.wraps(run)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> History:
        out_dir = kwargs["out_dir"] if "out_dir" in kwargs else args[1] if len(args) > 1 else None
        if not isinstance(out_dir, (str, Path)) or not _owns_directory(out_dir):  # (None: no directory)
            return run(*args, **kwargs)
        with lock_run(out_dir):
            return run(*args, **kwargs)

    return locked


@_holding_the_directory
def train(
    config: Config,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> History:
    """Run one federated training job as ``config`` says; return its history.

    With ``out_dir`` the run directory (config, per-round history, summary, every
    ``config.checkpoint_every`` rounds a checkpoint and, with ``config.tensorboard``, TensorBoard
    scalars) is written as it goes. ``resume=True`` continues the run in ``out_dir`` from its
    checkpoint to the result an uninterrupted run gets. A directory that already holds a run is
    refused (:class:`~federated.outputs.RunExistsError`) unless ``overwrite=True`` replaces it (only
    the files a run writes: :func:`~federated.outputs.held_run`), and so is a directory that another
    live process is writing (:class:`~federated.outputs.RunLockedError`: ``out_dir`` is locked for the
    whole run, resumed or not).
    Torch's global generator (dropout) is seeded from the run's seed and torch's CPU threads are set
    to ``config.threads``; both are restored afterwards.

    Example:
        >>> from federated.config import load_config
        >>> cfg = load_config(None, ["data.name=digits", "model.name=linear", "rounds=3",
        ...                          "clients.num_clients=4"])
        >>> history = train(cfg, progress=False)
        >>> len(history.rounds), 0.0 <= history.summary["test_accuracy"] <= 1.0
        (3, True)
    """
    if config.tensorboard and out_dir is not None:
        _require_tensorboard()  # before any work: a ConfigError
    if out_dir is not None and not resume and _owns_directory(out_dir):
        claim(out_dir, overwrite=overwrite)  # never overwrite a run without being asked
    _check_cpu_isa(config)  # before the run's first tensor operation
    device = resolve_device(config.device)
    if device.type == "cuda" and world_size_from_env() > 1:  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    shard = init_shard(config, device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # the run's numbers depend on it: set here, not by the environment
    try:
        with torch.random.fork_rng(devices=cuda):
            sim = Simulation(config, device, shard)
            torch.manual_seed(sim.dropout_seed)
            return _train(
                sim, Path(out_dir) if out_dir is not None else None, progress and sim.main_process, resume
            )
    finally:
        torch.set_num_threads(threads)


def _progress_line(record: dict, t: int, rounds: int, metric: str, started: float) -> str:
    """One line of progress for logs: round, training loss, the metric if evaluated, time so far."""
    shown = f"round {t + 1}/{rounds}: train loss {record['train_loss']:.4g}"
    if metric in record:
        shown += f", {metric} {record[metric]:.4g}"
    return shown + f" ({time.perf_counter() - started:.0f} s)"


def _train(sim: Simulation, out_dir: Path | None, progress: bool, resume: bool) -> History:
    """The run's rounds from where it stands (its checkpoint, with ``resume``), each recorded,
    checkpointed and shown; the summary written whether the run finishes or diverges."""
    if out_dir is not None:
        _resume(sim, out_dir, resume)
    start = sim.rounds_done
    run, board = (
        _open_run(sim, out_dir, resume, start) if out_dir is not None and sim.main_process else (None, None)
    )
    started = time.perf_counter()
    shown = _RoundsShown(sim, start, progress, started)
    try:
        for t in shown.rounds:
            record = sim.round(t)
            shown.update(record, t)
            if run is not None:
                run.append(record)
                if board is not None:
                    board.append(record)
            _checkpoint(sim, out_dir, t, board)
    except NonFiniteError as error:
        # a result (of too little energy, too large a rate): not a failure
        _summarize(sim, run, started, status="diverged", error=str(error))
        raise
    finally:
        shown.close()
        if board is not None:
            board.close()
    _summarize(sim, run, started, status="finished", **({"resumed_from_round": start} if resume else {}))
    return sim.history


def _resume(sim: Simulation, out_dir: Path, resume: bool) -> None:
    """Make the run directory; with ``resume``, load its checkpoint into ``sim`` (none: a run killed
    before its first checkpoint starts over, with the same result)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        return
    state = resume_state(out_dir, sim.device, sim.shard, sim.check_state)
    if state is not None:
        try:
            sim.load_state_dict(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{out_dir}'s checkpoint does not fit this run ({error})") from None


def _open_run(
    sim: Simulation, out_dir: Path, resume: bool, start: int
) -> tuple[RunDirectory, TensorBoardLog | None]:
    """The run directory the main process writes (reopened on resume), with the partition of the data
    written once, and the TensorBoard log if the config asks for it."""
    config = sim.config
    if resume:
        run = RunDirectory.reopen(out_dir, sim.history.rounds)
    else:
        run = RunDirectory(out_dir, config_to_dict(config))
        if config.data.partition != "iid" or config.clients.weighting != "uniform":
            run.write_partition(sim.task.partition())  # who holds what: partition.json
    board = TensorBoardLog(out_dir / "tensorboard", purge_step=start + 1) if config.tensorboard else None
    return run, board


class _RoundsShown:
    """The rounds to run, shown: a terminal gets a progress bar with the loss and metric; a log file
    (or pipe) one line per tenth of the run instead of hundreds of carriage-return updates."""

    def __init__(self, sim: Simulation, start: int, progress: bool, started: float) -> None:
        self.sim, self.started = sim, started
        rounds = sim.config.rounds
        terminal = sys.stderr.isatty()
        self.log_every = max(1, rounds // 10) if progress and not terminal else 0
        self.rounds = tqdm(
            range(start, rounds),
            desc="rounds",
            disable=not progress or not terminal,
            dynamic_ncols=True,
            initial=start,
            total=rounds,
        )

    def update(self, record: dict, t: int) -> None:
        """Show round ``t``'s ``record``."""
        metric, rounds = self.sim.task.metric, self.sim.config.rounds
        if metric in record:
            self.rounds.set_postfix(
                loss=f"{record['train_loss']:.3f}",
                **{metric.removeprefix("test_")[:4]: f"{record[metric]:.3f}"},
            )
        if self.log_every and ((t + 1) % self.log_every == 0 or t + 1 == rounds):
            print(_progress_line(record, t, rounds, metric, self.started), file=sys.stderr)

    def close(self) -> None:
        self.rounds.close()


def _checkpoint(sim: Simulation, out_dir: Path | None, t: int, board: TensorBoardLog | None) -> None:
    """After round ``t``, every ``checkpoint_every`` rounds and at the end: every process saves its own
    clients' state (error-feedback memories) beside the run's, keeping its previous one until the
    next save (see previous_checkpoint)."""
    every, rounds = sim.config.checkpoint_every, sim.config.rounds
    if out_dir is None or not every or not ((t + 1) % every == 0 or t + 1 == rounds):
        return
    shard = sim.shard
    path = out_dir / checkpoint_name(0 if shard is None else shard.rank)
    if shard is not None:
        rotate(path)
    save_checkpoint(path, sim.state_dict())
    if shard is not None and shard.rank > 0:  # a node's own --out (torchrun over nodes): resumable
        write_config_once(out_dir, config_to_dict(sim.config))
    if board is not None:
        board.flush()


def _summarize(sim: Simulation, run: RunDirectory | None, started: float, **outcome: object) -> None:
    """The history's summary (``outcome``: status and its details), written to the run directory."""
    sim.history.summarize(
        metric=sim.task.metric,
        **outcome,
        **_participation(sim),
        **_machine(sim.config),
        **({} if sim.units is None else {"cell": sim.units.summary()}),
        wall_time_s=round(time.perf_counter() - started, 3),
    )
    if run is not None:
        run.finish(sim.history.summary)


_warned_cpu_isa = False


def _check_cpu_isa(config: Config) -> None:
    """Pin the instruction set as ``config.cpu_isa`` asks (``$LASER_CPU_ISA`` overriding it), which
    works where nothing has run a tensor operation yet, and warn once per process where the pin was
    asked for on a CPU with AVX2 but cannot hold (torch had already chosen other kernels): the numbers
    then differ from an AVX2 machine's in the last digits (docs/reproducibility.md)."""
    global _warned_cpu_isa
    result = pin_cpu_isa(config.cpu_isa)
    holds, state = pin_state(result.setting)
    if holds is False and not _warned_cpu_isa:
        _warned_cpu_isa = True
        warnings.warn(
            f"cpu_isa {state}: {result.reason}; this run's numbers may differ from an AVX2 machine's in "
            "the last digits. Call federated.reproducible.pin_cpu_isa() before the process's first tensor "
            "operation, or set cpu_isa: native to accept the CPU's own kernels (docs/reproducibility.md)",
            stacklevel=_outside_this_module(),
        )


def _outside_this_module() -> int:
    """The ``stacklevel`` of the first frame outside this module (train()'s caller, through its
    wrappers), counted from the function that calls this one."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _machine(config: Config) -> dict[str, object]:
    """What the process ran with, for summary.json: ``cpu_isa`` (whether the pin held, in a few words)
    and ``environment`` (torch, the CPU, torch's capability, the pin's variables, the kernels'
    fingerprint: :func:`federated.reproducible.environment`)."""
    return {"cpu_isa": pin_state(resolve_cpu_isa(config.cpu_isa))[1], "environment": environment()}


def _participation(sim: Simulation) -> dict[str, list[int]]:
    """With clients sampled each round: how many rounds each took part in (the summary's record)."""
    return {} if sim.sampler.everyone else {"participation": sim.participation()}
