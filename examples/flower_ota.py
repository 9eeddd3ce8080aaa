"""Flower 1.42 over a wireless uplink: a ServerApp whose FedAvg mean goes over the air, and its ClientApp.

scikit-learn's handwritten digits (offline: the data ships with scikit-learn), a small MLP, each
client a shard of the training set and a few local SGD steps a round. The server's strategy is
``federated.adapters.flower.OTAFedAvg``: the clients' model changes reach it through an AWGN
multiple-access channel (energy 100 per client and round, noise variance 1), compressed by LASER
(rank 2; ``--method zsgd``: uncompressed), weighted by each client's number of examples as FedAvg
weighs them. Each ClientApp encodes its change with ``client_reply`` and keeps LASER's
error-feedback memory in its ``context.state`` between rounds; the server tells it the method in the
train config, so both sides build the same compressor.

Run it with Flower's simulation engine, which needs Ray: after the README's set-up,
``pip install -e ".[flower]"`` (Flower 1.42 with its simulation extra, which brings Ray; the ``dev``
extra has it too), then::

    python examples/flower_ota.py [--method laser|zsgd] [--rounds 20] [--clients 8]

Without Ray it exits with status 2 and the line to install it.

``server_app`` and ``client_app`` are ordinary Flower apps (``flwr run`` can name them as its
components; ``num-server-rounds`` and ``method`` are read from the run config). Ray's workers unpickle
the ClientApp by reference to its module, so what it needs lives in this module, which they import,
never in ``__main__`` (the end of the file says why). The tests drive the same two apps in one
process, without Ray, and load the ClientApp the way Ray's workers do
(``tests/federated/adapters/test_flower.py``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from functools import cache
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result
from sklearn.datasets import load_digits
from torch import Tensor, nn

from channels import AWGNChannel
from federated.adapters.flower import OTAFedAvg, client_reply
from laser import Compressor, LaserCompressor

SETTINGS = {"method": "laser", "rounds": 20}  # the ServerApp's defaults (the command line sets them)
ENERGY, NOISE_VAR = 100.0, 1.0  # each client's energy per round; the channel's noise per real use
LR, LOCAL_STEPS, BATCH = 0.1, 5, 32


def make_compressor(method: str) -> Compressor | None:
    """The method's compressor, the same on both sides (``None``: Z-SGD, the raw change)."""
    if method not in ("laser", "zsgd"):
        raise ValueError(f"method must be laser or zsgd, got {method!r}")
    return LaserCompressor(rank=2) if method == "laser" else None


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@cache
def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The digits, shuffled once: 1500 to train on, 297 to test."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1500], y[:1500], x[1500:], y[1500:]


# ----------------------------------------------------------------------------------------------- client
client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """Local SGD steps from the global model on this client's shard, then the over-the-air reply."""
    config = msg.content["config"]
    partition = int(context.node_config["partition-id"])
    partitions = int(context.node_config["num-partitions"])
    x_train, y_train, _, _ = digits()
    x, y = x_train[partition::partitions], y_train[partition::partitions]
    model = make_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=float(config["lr"]))
    generator = torch.Generator().manual_seed(1_000_003 * int(config["server-round"]) + partition)
    loss = torch.zeros(())
    for _ in range(int(config["local-steps"])):
        batch = torch.randint(len(y), (BATCH,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    metrics = {"num-examples": len(y), "train-loss": loss.item()}
    compressor = make_compressor(str(config["method"]))
    return client_reply(msg, context, model.state_dict(), metrics, compressor=compressor)


# ----------------------------------------------------------------------------------------------- server
server_app = ServerApp()


def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    """The global model's accuracy and loss on the test digits (the server's own evaluation)."""
    _, _, x, y = digits()
    model = make_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    with torch.no_grad():
        logits = model(x)
    accuracy = float((logits.argmax(1) == y).float().mean())
    return MetricRecord({"accuracy": accuracy, "loss": float(nn.functional.cross_entropy(logits, y))})


def run(grid: Grid, method: str, rounds: int) -> tuple[OTAFedAvg, Result]:
    """``rounds`` rounds of over-the-air FedAvg on ``grid``'s nodes; the strategy (with its channel
    records) and Flower's result."""
    strategy = OTAFedAvg(
        AWGNChannel(noise_var=NOISE_VAR, generator=torch.Generator().manual_seed(0)),
        energy=ENERGY,
        compressor=make_compressor(method),
        fraction_evaluate=0.0,  # the server evaluates the global model itself
    )
    torch.manual_seed(0)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(make_model().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": LR, "local-steps": LOCAL_STEPS, "method": method}),
        evaluate_fn=evaluate,
    )
    return strategy, result


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    method = str(context.run_config.get("method", SETTINGS["method"]))
    rounds = int(context.run_config.get("num-server-rounds", SETTINGS["rounds"]))
    strategy, result = run(grid, method, rounds)
    if rounds not in strategy.records:  # every ClientApp failed: say so rather than a KeyError
        raise RuntimeError(f"no ClientApp replied in round {rounds}: their errors are logged above")
    accuracy = result.evaluate_metrics_serverapp[rounds]["accuracy"]
    last = strategy.records[rounds]
    print(
        f"{method} over the air: test accuracy {accuracy:.3f} after {rounds} rounds; last round "
        f"{last.channel_uses} channel uses, energy per client {float(last.energy_used.mean()):.1f}, "
        f"noise variance {float(last.noise_var.mean()):.2e} per entry"
    )


# ------------------------------------------------------------------------------------------ command line
RAY_MISSING = "Flower's simulation engine needs Ray: pip install 'flwr[simulation]==1.42.*'"


def simulate(argv: list[str] | None = None) -> None:
    """The command line: this module's two apps under Flower's simulation engine, one SuperNode per
    client. Without Ray, exit 2 with the one line that installs it (a usage error, as argparse's)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=["laser", "zsgd"], default="laser")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    if importlib.util.find_spec("ray") is None:
        print(RAY_MISSING, file=sys.stderr)
        raise SystemExit(2)
    SETTINGS.update(method=args.method, rounds=args.rounds)  # the ServerApp runs in this process
    from flwr.simulation import run_simulation

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=args.clients,
        backend_config={"client_resources": {"num_cpus": 1}},
    )


if __name__ == "__main__":
    # Run as a script, this file is the module `__main__`. Ray ships the ClientApp to its worker
    # processes with cloudpickle, which copies a function of `__main__` by value but pickles the
    # globals it calls that are not plain functions (``digits``, a ``functools.cache`` object) by
    # reference, as ``__main__.digits``; a worker's `__main__` is Ray's own worker script, so the
    # worker fails with "Can't get attribute 'digits' on <module '__main__'>" and no client replies.
    # So the simulation gets the apps of this file imported under its own name: everything they
    # need is then pickled by reference to that module, which each worker imports (Ray puts the
    # script's directory on its workers' sys.path) and where it rebuilds its own digits cache.
    importlib.import_module(Path(__file__).stem).simulate()
