"""The Flower ClientApp of ``benchmarks/flower.py`` (a module of its own so that Ray's workers import
it by name instead of unpickling a copy of it with every message).

Each client holds its shard of the benchmark's Dirichlet partition of MNIST-1D (the simulator's own
partition of the same configuration, so both sides train on the same shards), loads the global CNN,
takes H local SGD steps (``local-steps``; batches of 32 drawn with replacement from its shard, ``lr``
from the server's config) and returns its weights with its shard's size, which FedAvg weights by:
plain FedAvg, the algorithm the simulator runs with LASER over the air.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from flower import BATCH_SIZE, CONFIG, workload_overrides  # noqa: E402
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from federated.components import split_seed  # noqa: E402
from federated.config import load_config  # noqa: E402
from federated.data.tasks import build_task, cross_entropy  # noqa: E402
from federated.models import build_model  # noqa: E402

_WORKER: dict[str, object] = {}  # per worker process: data, shards, a model to load weights into


def _worker(num_clients: int, data_root: str) -> dict[str, object]:
    if not _WORKER:
        torch.set_num_threads(1)  # one Ray actor per CPU
        config = load_config(str(CONFIG), workload_overrides(num_clients, data_root))
        streams = split_seed(config.seed)
        task = build_task(config, torch.device("cpu"), streams.data)
        _WORKER.update(
            x=task.x_train,
            y=task.y_train,
            shards=task.parts,
            model=build_model(config.model, task.model_inputs, seed=streams.model),
        )
    return _WORKER


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    client = int(context.node_config["partition-id"])
    state = _worker(int(context.node_config["num-partitions"]), str(config["data-root"]))
    model: torch.nn.Module = state["model"]
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    shard = state["shards"][client]
    generator = torch.Generator().manual_seed(1_000_003 * int(config["server-round"]) + client)
    params = list(model.parameters())
    lr = float(config["lr"])
    for _ in range(int(config["local-steps"])):
        idx = shard[torch.randint(len(shard), (BATCH_SIZE,), generator=generator)]
        loss = cross_entropy(model(state["x"][idx]), state["y"][idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"num-examples": len(shard), "train_loss": float(loss)}),
        }
    )
    return Message(content=content, reply_to=msg)
