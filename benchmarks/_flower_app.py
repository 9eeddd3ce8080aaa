"""The Flower ClientApp of ``benchmarks/flower.py`` (a module of its own so that Ray's workers import
it by name instead of unpickling a copy of it with every message).

Each client gets the global CNN, computes the gradient of one minibatch of 32 samples of its IID
shard of MNIST-1D, takes one SGD step (``lr`` from the server's config) and returns the updated
parameters; FedAvg's mean of these is one SGD step on the mean gradient, what the simulator's
``zsgd`` over a ``noiseless`` channel with a momentum-free optimizer does.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from federated.config import load_config  # noqa: E402
from federated.data.datasets import iid_split, load_dataset  # noqa: E402
from federated.data.tasks import cross_entropy  # noqa: E402
from federated.models import build_model  # noqa: E402

CONFIG = REPO / "configs" / "mnist1d_noiseless.yaml"
BATCH_SIZE = 32
_WORKER: dict[str, object] = {}  # per worker process: data, shards, a model to load weights into


def config_overrides(data_root: str) -> list[str]:
    return [f"data.root={data_root}"]


def _worker(num_clients: int, data_root: str) -> dict[str, object]:
    if not _WORKER:
        torch.set_num_threads(1)  # one Ray actor per CPU
        config = load_config(str(CONFIG), config_overrides(data_root))
        data = load_dataset(config.data)
        _WORKER.update(
            x=data.x_train,
            y=data.y_train,
            shards=iid_split(len(data.y_train), num_clients, torch.Generator().manual_seed(0)),
            model=build_model(
                config.model, {"num_features": data.num_features, "num_classes": data.num_classes}, seed=0
            ),
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
    idx = shard[torch.randint(len(shard), (BATCH_SIZE,), generator=generator)]
    loss = cross_entropy(model(state["x"][idx]), state["y"][idx])
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(float(config["lr"]) * g)
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"num-examples": BATCH_SIZE, "train_loss": float(loss)}),
        }
    )
    return Message(content=content, reply_to=msg)
