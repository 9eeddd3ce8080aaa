"""Data-parallel training over the air: DistributedDataParallel whose all-reduce is an over-the-air round.

Each rank is a wireless client holding a shard of scikit-learn's digits (offline: the data ships with
scikit-learn) and training the same small MLP. After every backward pass, the communication hook
``federated.adapters.ddp.ota_hook`` sends the ranks' gradients through an AWGN multiple-access
channel (energy 1000 per rank and step, noise variance 1), compressed by LASER (rank 2; ``--method
zsgd``: uncompressed), instead of all-reducing them; every rank decodes the same estimate of the mean
gradient and takes the same optimizer step. All gradients go in one DDP bucket
(``bucket_cap_mb=one_bucket_cap_mb(model)``): the energy is split over every block of the round.

    torchrun --nproc-per-node 2 examples/ddp_ota.py [--method laser|zsgd] [--steps 300]
    python examples/ddp_ota.py [--steps 300]          # one process: a world of one rank

gloo on CPUs (``--backend nccl`` with one GPU per rank).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn

from channels import AWGNChannel
from federated.adapters.ddp import OTAHookState, one_bucket_cap_mb, ota_hook
from laser import LaserCompressor


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=["laser", "zsgd"], default="laser")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--energy", type=float, default=1000.0)
    parser.add_argument("--noise-var", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--backend", default="gloo")
    args = parser.parse_args(argv)

    if "RANK" in os.environ:  # torchrun
        dist.init_process_group(args.backend)
    else:  # one process, no launcher: a group of one
        dist.init_process_group(args.backend, store=dist.HashStore(), rank=0, world_size=1)
    try:
        # the DDP model lives in train() only: it must be gone before the group is destroyed (a gloo
        # group destroyed by a DDP model's destructor can hang; federated.adapters.ddp, "Shutting down")
        return train(args)
    finally:
        dist.destroy_process_group()


def train(args: argparse.Namespace) -> dict[str, float]:
    """This rank's training; the test accuracy and the number of over-the-air rounds."""
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32, device=device) / 16.0
    y = torch.tensor(data.target, dtype=torch.long, device=device)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).to(x.device)
    x, y = x[order], y[order]
    x_test, y_test = x[1500:], y[1500:]
    x_mine, y_mine = x[:1500][rank::world], y[:1500][rank::world]  # this rank's shard

    torch.manual_seed(0)  # the same weights on every rank (DDP also broadcasts rank 0's)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).to(x.device)
    # the same channel on every rank: its generator seeded alike, so every rank draws the same noise
    generator = torch.Generator(device=x.device).manual_seed(0)
    channel = AWGNChannel(noise_var=args.noise_var, generator=generator)
    compressor = LaserCompressor(rank=2) if args.method == "laser" else None
    state = OTAHookState(channel, model.parameters(), energy=args.energy, compressor=compressor)
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=one_bucket_cap_mb(model))
    ddp.register_comm_hook(state, ota_hook)

    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    batches = torch.Generator().manual_seed(rank)
    for step in range(1, args.steps + 1):
        batch = torch.randint(len(y_mine), (32,), generator=batches).to(x.device)
        loss = nn.functional.cross_entropy(ddp(x_mine[batch]), y_mine[batch])
        optimizer.zero_grad()
        loss.backward()  # the hook's round: every .grad holds the over-the-air mean gradient
        optimizer.step()
        if rank == 0 and (step % 100 == 0 or step == args.steps):
            assert state.last_round is not None
            print(
                f"step {step}: loss {loss.item():.3f}; last round {state.last_round.channel_uses} "
                f"channel uses, noise variance {state.last_round.noise_var.mean().item():.1e} per entry"
            )
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    if rank == 0:
        print(f"{args.method} over the air, {world} ranks, {args.steps} steps: accuracy {accuracy:.3f}")
    return {"accuracy": accuracy, "iterations": float(state.iteration)}


if __name__ == "__main__":
    main()
