"""A client's micro-batches are drawn one at a time as the round uses them, so memory does not grow
with ``clients.accumulation_steps`` (10^6 of them once built every batch up front and died in the
allocator at about 92 GB); the draws, and so every history, are those of earlier versions (the golden
histories in tests/test_reproducibility.py)."""

import contextlib
import subprocess
import sys
import weakref

import pytest
import torch
from torch import nn

from federated.clients import Clients
from federated.config import load_config


class _CountingTask:
    """A task whose micro-batches count themselves while they live (``alive``, ``most``)."""

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(0)
        self.alive = self.most = self.drawn = 0

    def _gone(self) -> None:
        self.alive -= 1

    def batch(self, client: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(2, 4, generator=self.generator)
        y = torch.randint(0, 3, (2,), generator=self.generator)
        self.alive += 1
        self.drawn += 1
        self.most = max(self.most, self.alive)
        weakref.finalize(x, self._gone)
        return x, y


def _clients(*overrides: str) -> tuple[Clients, _CountingTask]:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    task = _CountingTask()
    config = load_config(None, ["data.name=digits", "model.name=linear", *overrides]).clients
    return Clients(model, model, task, config, None, contextlib.nullcontext), task


STEPS = 500


@pytest.fixture(autouse=True)
def _one_thread():
    """As a run does (key threads): on a busy machine more threads make each tiny step ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "what, overrides",
    [
        ("gradient", []),  # FedSGD: one gradient summed over the micro-batches
        ("local_update", ["clients.lr=0.1", "clients.local_steps=2"]),  # each local step's micro-batches
        ("skip", ["clients.lr=0.1", "clients.local_steps=2"]),  # another process's client: draws only
    ],
)
def test_a_client_holds_one_micro_batch_at_a_time(what, overrides):
    clients, task = _clients(f"clients.accumulation_steps={STEPS}", *overrides)
    getattr(clients, what)(0)
    assert task.drawn == STEPS * clients.config.local_steps
    assert task.most <= 2  # the one in use and the next being drawn; every one of them once
    assert task.alive <= 1


# one FedSGD client step of 10^6 micro-batches of one digit each, in a fresh process: the growth of
# its peak resident memory (Linux: the peak is reset first; elsewhere the growth of the peak so far)
_MILLION = """
import sys, torch
from federated.config import load_config
from federated.simulation import Simulation

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

config = load_config(None, ["data.name=digits", "model.name=linear", "clients.num_clients=2",
                            "clients.batch_size=1", "clients.accumulation_steps=1000000",
                            f"data.root={sys.argv[1]}"])
torch.set_num_threads(1)
sim = Simulation(config, torch.device("cpu"), None)
sim.clients.task.batch(0)  # the first draw's one-off allocations
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak is now the current resident memory
before = kib("VmRSS")
sim.clients.skip(0)  # the round's path for a client another process computes: every draw, no compute
print((kib("VmHWM") - before) / 1024)
"""


@pytest.mark.slow  # 10^6 draws: about 30 s
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_a_million_accumulation_steps_stay_under_200_mb(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _MILLION, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    growth = float(result.stdout.strip().splitlines()[-1])
    assert growth < 200, f"{growth:.0f} MB for one step of 10^6 micro-batches"
