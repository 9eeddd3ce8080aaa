"""``clients.vectorize``: the vmapped clients give the loop's run to float rounding, and refuse
(or, with auto, fall back from) what vmap cannot do exactly."""

import pytest

from federated.config import ConfigError, load_config
from federated.simulation import Simulation
from federated.train import train


@pytest.mark.filterwarnings(
    "ignore:There is a performance drop"
)  # SDPA on CPU has no batching rule (correct, slow)
@pytest.mark.parametrize(
    "overrides",
    [
        [
            "data.name=digits",
            "model.name=mlp",
            "compressor.name=laser",
            "channel.name=rayleigh",
            "channel.power_control=truncated",
            "channel.threshold=0.2",
        ],
        [
            "data.name=mnist1d",
            "data.num_samples=1000",
            "model.name=cnn",
            "compressor.name=powersgd",
            "clients.accumulation_steps=2",
        ],
        [
            "data.name=pydoc",
            "model.name=gpt",
            "model.layers=1",
            "model.width=16",
            "model.heads=2",
            "model.context=16",
            "model.dropout=0",
            "compressor.name=zsgd",
            "optimizer.name=adamw",
            "optimizer.lr=0.003",
        ],
        [  # local training: 5 SGD steps with momentum a round (FedAvg's clients)
            "data.name=digits",
            "model.name=mlp",
            "compressor.name=laser",
            "clients.lr=0.05",
            "clients.local_steps=5",
            "clients.momentum=0.9",
            "optimizer.name=sgd",
            "optimizer.lr=1.0",
            "optimizer.momentum=0",
        ],
        [  # local training: 3 Adam steps of 2 micro-batches each
            "data.name=mnist1d",
            "data.num_samples=1000",
            "model.name=cnn",
            "compressor.name=zsgd",
            "clients.lr=0.001",
            "clients.local_steps=3",
            "clients.optimizer=adam",
            "clients.accumulation_steps=2",
            "optimizer.name=sgd",
            "optimizer.lr=1.0",
            "optimizer.momentum=0",
        ],
    ],
)
def test_vmap_gives_the_loops_run(tmp_path, overrides):
    base = [
        *overrides,
        "rounds=6",
        "eval_every=3",
        "clients.num_clients=6",
        "clients.batch_size=8",
        f"data.root={tmp_path}/data",
    ]
    loop = train(load_config(None, [*base, "clients.vectorize=loop"]), progress=False)
    vmap = train(load_config(None, [*base, "clients.vectorize=vmap"]), progress=False)
    metric = "test_perplexity" if "data.name=pydoc" in overrides else "test_accuracy"
    for a, b in zip(loop.rounds, vmap.rounds, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        # Adam divides by sqrt(v): where a gradient entry is tiny its step is rounding-sensitive, and
        # the noise variance follows the largest update (the step itself is the loop's to 1e-5 of
        # each parameter's norm: tests/federated/test_vectorized.py)
        noise_rel = 1e-3 if "clients.optimizer=adam" in overrides else 1e-4
        assert b["noise_var_mean"] == pytest.approx(a["noise_var_mean"], rel=noise_rel, abs=1e-12)
        assert b["active_clients"] == a["active_clients"]
    assert vmap.summary[metric] == pytest.approx(loop.summary[metric], rel=1e-4)


@pytest.mark.parametrize("local_steps", [None, 3])
def test_vmap_over_non_iid_shards_runs_one_pass_per_batch_shape_and_gives_the_loops_run(
    tmp_path, monkeypatch, local_steps
):
    """Dirichlet shards of unequal sizes: a client at the short end of its epoch has a batch of
    another shape, so that micro-batch runs as one vmapped pass per shape; the run is the loop's, in
    FedSGD (with accumulation) and in local training."""
    import federated.vectorized as vectorized

    base = [
        "data.name=mnist1d",
        "data.num_samples=1000",
        "data.partition=dirichlet",
        "data.alpha=0.5",
        "model.name=cnn",
        "compressor.name=laser",
        "clients.num_clients=6",
        "clients.batch_size=16",
        "clients.weighting=data_size",
        "rounds=6",
        "eval_every=3",
        f"data.root={tmp_path}/data",
    ]
    if local_steps is None:
        base += ["clients.accumulation_steps=2"]
    else:
        base += ["clients.lr=0.05", f"clients.local_steps={local_steps}", "optimizer.name=sgd"]
        base += ["optimizer.lr=1.0", "optimizer.momentum=0"]
    groups: list[int] = []
    split = vectorized._shape_groups

    def spy(batch):
        groups.append(len(split(batch)))
        return split(batch)

    monkeypatch.setattr(vectorized, "_shape_groups", spy)
    loop = train(load_config(None, [*base, "clients.vectorize=loop"]), progress=False)
    assert groups == []
    vmap = train(load_config(None, [*base, "clients.vectorize=vmap"]), progress=False)
    assert max(groups) > 1  # some micro-batch had clients of two shapes
    for a, b in zip(loop.rounds, vmap.rounds, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["noise_var_mean"] == pytest.approx(a["noise_var_mean"], rel=1e-4, abs=1e-12)
    assert vmap.summary["test_accuracy"] == pytest.approx(loop.summary["test_accuracy"], rel=1e-4)


def test_vmap_is_refused_where_it_is_not_the_loop_and_auto_falls_back(tmp_path):
    local = [
        "data.name=digits",
        "model.name=mlp",
        "clients.lr=0.1",
        "clients.local_steps=2",
        f"data.root={tmp_path}/data",
    ]
    assert Simulation(load_config(None, [*local, "clients.vectorize=vmap"])).vectorized is not None
    with pytest.raises(ConfigError, match="clients.vectorize.*clients.keep_state"):
        Simulation(load_config(None, [*local, "clients.keep_state=true", "clients.vectorize=vmap"]))
    assert (
        Simulation(
            load_config(None, [*local, "clients.keep_state=true", "clients.vectorize=auto"])
        ).vectorized
        is None
    )
    with pytest.raises(ConfigError, match="clients.vectorize.*BatchNorm"):
        Simulation._vectorized(_bare_resnet(), "vmap")
    assert Simulation._vectorized(_bare_resnet(), "auto") is None
    noisy = Simulation(
        load_config(
            None,
            [
                "data.name=digits",
                "model.name=mlp",
                "downlink.snr_db=20",
                f"data.root={tmp_path}/data",
                "clients.vectorize=auto",
            ],
        )
    )
    assert noisy.vectorized is None
    with pytest.raises(ConfigError, match="downlink"):
        Simulation(
            load_config(
                None,
                [
                    "data.name=digits",
                    "model.name=mlp",
                    "downlink.snr_db=20",
                    f"data.root={tmp_path}/data",
                    "clients.vectorize=vmap",
                ],
            )
        )
    plain = Simulation(
        load_config(
            None,
            ["data.name=digits", "model.name=mlp", f"data.root={tmp_path}/data", "clients.vectorize=auto"],
        )
    )
    assert plain.vectorized is not None


def _bare_resnet():
    """A Simulation-like object holding just a ResNet and no downlink (no CIFAR data needed)."""
    from types import SimpleNamespace

    from federated.models.resnet import ResNet18

    return SimpleNamespace(model=ResNet18(num_classes=10, width=4), downlink=None)
