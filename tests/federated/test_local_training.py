"""Federated learning as practised: local training, client sampling, the weighted mean, and that none
of it moves a run that does not ask for it."""

import math

import pytest
import torch
from _quadratic import quadratic_clients
from scipy import stats

from federated.clients import BestChannelSampler, UniformSampler, build_sampler
from federated.config import ConfigError, load_config
from federated.distributed import check_shardable
from federated.simulation import Simulation

F64 = torch.float64
TINY = [
    "data.name=digits",
    "model.name=mlp",
    "model.width=8",
    "clients.num_clients=4",
    "clients.batch_size=8",
]


def _sim(*overrides: str) -> Simulation:
    return Simulation(load_config(None, [*TINY, "device=cpu", *overrides]))


# ------------------------------------------------------------------------------ exact identities
SCALE_EQUIVARIANT = {  # C(a g) = a C(g) for a > 0, and so is the whole round over the channel
    "laser": ["compressor.name=laser", "compressor.rank=2"],
    "powersgd": ["compressor.name=powersgd", "compressor.rank=2"],
    "zsgd": ["compressor.name=zsgd"],
    "randomk": ["compressor.name=randomk", "compressor.fraction=0.3"],
    "sketch": ["compressor.name=sketch", "compressor.fraction=0.3", "compressor.error_feedback=true"],
    "topk": ["compressor.name=topk", "compressor.fraction=0.3", "power.energy=1e6"],
}
CHANNELS = {
    "noiseless": ["channel.name=noiseless"],
    "awgn": ["channel.name=awgn", "power.energy=1000"],
    "rayleigh": ["channel.name=rayleigh", "channel.power_control=truncated", "channel.threshold=0.1"],
}


@pytest.mark.parametrize("channel", list(CHANNELS))
@pytest.mark.parametrize("method", list(SCALE_EQUIVARIANT))
def test_one_local_sgd_step_with_a_unit_server_rate_is_fedsgd(method, channel):
    """H = 1, client SGD lr eta, server SGD lr 1 with momentum mu and weight decay eta * lambda
    equals FedSGD with server lr eta, momentum mu, decay lambda (float64, 10 rounds, 1e-10)."""
    eta, mu, lam = 0.05, 0.9, 1e-3
    # MNIST-1D: continuous features, so no two gradient entries tie exactly (top-k breaks a tie by
    # position, and x - (x - eta g) rounds differently from eta g there)
    common = ["precision=fp64", "data.name=mnist1d", *SCALE_EQUIVARIANT[method], *CHANNELS[channel]]
    if method == "topk" and channel == "awgn":
        common.remove("power.energy=1000")
    fedsgd = _sim(*common, f"optimizer.lr={eta}", f"optimizer.momentum={mu}", f"optimizer.weight_decay={lam}")
    local = _sim(
        *common,
        f"clients.lr={eta}",
        "clients.local_steps=1",
        "optimizer.lr=1.0",
        f"optimizer.momentum={mu}",
        f"optimizer.weight_decay={eta * lam}",
    )
    for t in range(10):
        fedsgd.round(t)
        local.round(t)
    for a, b in zip(fedsgd.model.parameters(), local.model.parameters(), strict=True):
        assert a.dtype == F64
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_local_steps_on_a_quadratic_equal_the_closed_form(monkeypatch, steps):
    """SGD on 1/2 (w - c)^T diag(a) (w - c): w_H - c = (1 - eta a)^H (w_0 - c), so the model change
    is (1 - (1 - eta a)^H) (w_0 - c)."""
    a = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=F64)
    w0, c, eta = (
        torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64),
        torch.tensor([0.0, 1.0, 1.0, -1.0], dtype=F64),
        0.1,
    )
    model, clients = quadratic_clients(monkeypatch, a, w0, c, steps, eta)
    loss, (change,) = clients.local_update(0)
    torch.testing.assert_close(change, (1 - (1 - eta * a) ** steps) * (w0 - c), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(model.w.detach(), w0)  # the server's model is untouched
    assert math.isfinite(float(loss))


def test_without_the_new_keys_a_run_is_fedsgd_over_every_client():
    sim = _sim()
    assert not sim.clients.local and sim.sampler.everyone and sim.weights is None
    assert "participants" not in sim.round(0)


# ----------------------------------------------------------------------------------- participation
def test_absent_clients_keep_their_error_feedback_untouched():
    sim = _sim("clients.per_round=2", "compressor.name=laser", "compressor.rank=2")
    for t in range(5):
        before = [[None if m is None else m.clone() for m in c.memory] for c in sim.compressor.clients]
        record = sim.round(t)
        assert len(record["participants"]) == 2
        for k, client in enumerate(sim.compressor.clients):
            if k not in record["participants"]:
                for old, new in zip(before[k], client.memory):
                    assert (old is None and new is None) or torch.equal(old, new)
    assert sum(sim.participation()) == 5 * 2


def test_the_uniform_sampler_is_uniform():
    """5,000 rounds of 3 of 10 clients: each client's frequency passes a chi-square test."""
    sampler = UniformSampler(10, 3, seed=0)
    counts = torch.zeros(10)
    for _ in range(5000):
        chosen = sampler.sample()
        assert len(set(chosen)) == 3 and chosen == sorted(chosen)
        counts[chosen] += 1
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_every_client_taking_part_draws_nothing():
    sampler = build_sampler(load_config(None).clients, seed=0)
    state = sampler.state_dict()["generator"].clone()
    assert sampler.sample() == list(range(16)) and torch.equal(sampler.state_dict()["generator"], state)


def test_channel_aware_sampling_takes_the_strongest_channels():
    sampler = BestChannelSampler(5, 2)
    assert sampler.sample(torch.tensor([0.1, 3.0, 0.5, 3.0, 2.0], dtype=F64)) == [1, 3]
    with pytest.raises(ValueError, match="quality"):
        sampler.sample(None)
    sim = _sim("clients.per_round=2", "clients.sampling=best_channel", "channel.name=rayleigh")
    for t in range(3):
        assert len(sim.round(t)["participants"]) == 2


def test_local_training_with_adam_kept_state_and_weights_runs():
    sim = _sim(
        "clients.lr=0.01",
        "clients.local_steps=3",
        "clients.optimizer=adam",
        "clients.keep_state=true",
        "clients.per_round=3",
        "clients.weighting=data_size",
        "optimizer.lr=1.0",
        "optimizer.momentum=0.0",
    )
    for t in range(3):
        record = sim.round(t)
        assert math.isfinite(record["train_loss"])
    assert set(sim.clients.states) <= set(range(4)) and sim.clients.states


# ---------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "overrides, key",
    [
        (["clients.local_steps=0"], "clients.local_steps"),
        (["clients.local_steps=5"], "clients.local_steps"),  # without clients.lr
        (["clients.per_round=0"], "clients.per_round"),
        (["clients.per_round=17"], "clients.per_round"),
        (["data.partition=dirichlet", "data.alpha=0"], "data.alpha"),
        (["data.partition=dirichlet", "data.alpha=.nan"], "data.alpha"),
        (["clients.optimizer=rmsprop"], "clients.optimizer"),
        (["clients.sampling=random"], "clients.sampling"),
        (["optimizer.name=fedprox"], "optimizer.name"),
        (
            ["data.name=pydoc", "model.name=gpt", "model.heads=4", "clients.weighting=data_size"],
            "clients.weighting",
        ),
        (["clients.lr=0.1", "clients.keep_state=true", "clients.vectorize=vmap"], "clients.vectorize"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, overrides)


def test_sampling_is_refused_over_several_processes():
    with pytest.raises(ConfigError, match="clients.per_round"):
        check_shardable(load_config(None, ["clients.per_round=4"]), world=2)


def test_local_training_sets_the_batch_norm_statistics_to_the_participants_mean(
    tmp_path, write_cifar, monkeypatch
):
    """With local steps the server's running statistics are the mean of the participants' after their
    steps: their sum divided by the number of participants (3 of 4 here), not by anything else (a
    ResNet has far more statistics buffers than participants)."""
    from federated.clients import Clients

    root = write_cifar(tmp_path, "cifar10", num_train=64, num_test=8)
    config = load_config(
        None,
        [
            "data.name=cifar10",
            f"data.root={root}",
            "model.name=resnet18",
            "model.width=4",
            "clients.num_clients=4",
            "clients.per_round=3",
            "clients.batch_size=4",
            "clients.lr=0.01",
            "clients.local_steps=2",
            "compressor.name=zsgd",
            "channel.name=noiseless",
            "rounds=2",
            "device=cpu",
        ],
    )
    sim = Simulation(config)
    after: list[list[torch.Tensor]] = []
    original = Clients.local_update

    def recorded(self, client, *args, **kwargs):
        out = original(self, client, *args, **kwargs)
        after.append([b.clone() for b in sim.model.buffers() if b.is_floating_point()])
        return out

    monkeypatch.setattr(Clients, "local_update", recorded)
    sim.round()
    assert len(after) == 3 and len(sim.buffers) > 3
    expected = after[0]
    for client in after[1:]:
        expected = [a + b for a, b in zip(expected, client)]
    for got, total in zip(sim.buffers, expected, strict=True):
        assert torch.equal(got, total / 3)
