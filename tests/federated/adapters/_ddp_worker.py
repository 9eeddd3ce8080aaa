"""One rank of test_ddp.py's gloo job, and what the test shares with it (the model, the batches, the
channel, the compressors). The test forks its ranks from its own process (Sionna, which draws the
noise, is then imported once, not once per rank); on its own: ``python _ddp_worker.py RANK WORLD PORT
OUT``.

Each rank trains nothing: it runs DDP's forward and backward passes on its own batches with the
over-the-air hook, ITERATIONS times from the same weights, and saves the gradients DDP leaves in
``.grad``, for Z-SGD and for LASER; then it checks that a model split over two buckets, and channels
seeded differently on the ranks, are refused.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from channels import AWGNChannel
from federated.adapters.ddp import OTAHookState, one_bucket_cap_mb, ota_hook
from laser import LaserCompressor, ZSGDCompressor

METHODS = ("zsgd", "laser")
ITERATIONS = 3
ENERGY = 20.0
NOISE_VAR = 0.5


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def make_channel() -> AWGNChannel:
    return AWGNChannel(noise_var=NOISE_VAR, generator=torch.Generator().manual_seed(5))


def make_compressor(method: str):
    return ZSGDCompressor() if method == "zsgd" else LaserCompressor(rank=2, seed=1)


def batch(rank: int, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 * iteration + rank)
    return torch.randn(10, 6, generator=generator), torch.randn(10, 3, generator=generator)


def loss(model: nn.Module, rank: int, iteration: int) -> torch.Tensor:
    x, y = batch(rank, iteration)
    return nn.functional.mse_loss(model(x), y)


def main(rank: int, world: int, port: int, out: Path) -> None:
    torch.set_num_threads(1)  # first: a forked rank must not enter its parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    results: dict[str, object] = {}
    for method in METHODS:
        model = make_model()
        compressor = make_compressor(method)
        state = OTAHookState(make_channel(), model.parameters(), energy=ENERGY, compressor=compressor)
        ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=one_bucket_cap_mb(model))
        ddp.register_comm_hook(state, ota_hook)
        grads = []
        for iteration in range(ITERATIONS):
            ddp.zero_grad()
            loss(ddp, rank, iteration).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        assert state.last_round is not None
        results[method] = {
            "grads": grads,
            "noise_var": state.last_round.noise_var,
            "energy_used": state.last_round.energy_used,
            "iteration": state.iteration,
        }
    # gradients in two buckets (a cap below the model's size; DDP's first iteration has one bucket, its
    # rebuilt buckets from the second on): refused, with the way out in the message
    model = make_model()
    state = OTAHookState(make_channel(), model.parameters(), energy=ENERGY)
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=50 / 2**20)  # 50 bytes
    ddp.register_comm_hook(state, ota_hook)
    results["two_buckets"] = None
    try:
        for iteration in range(2):
            loss(ddp, rank, iteration).backward()
    except RuntimeError as error:
        results["two_buckets"] = str(error)
    # channels seeded differently on the ranks: refused on the first round (every rank says so)
    model = make_model()
    channel = AWGNChannel(noise_var=NOISE_VAR, generator=torch.Generator().manual_seed(rank))
    state = OTAHookState(channel, model.parameters(), energy=ENERGY)
    results["unlike_seeds"] = None
    try:
        state.round([torch.zeros_like(p) for p in model.parameters()])
    except RuntimeError as error:
        results["unlike_seeds"] = str(error)
    torch.save(results, out / f"rank{rank}.pt")
    del ddp  # the DDP model before the group (federated.adapters.ddp: "Shutting down")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
