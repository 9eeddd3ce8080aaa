"""The paper's tasks end to end on small files in the real formats, and the server-side pieces they
need: gradient accumulation, client 0's batch-norm statistics, AdamW's decay set, the schedules,
the weight EMA."""

import json
import math

import pytest
import torch
from torch import nn

from federated import load_config
from federated.config import OptimizerConfig
from federated.data.tasks import cross_entropy
from federated.optim import WeightEMA, build_optimizer, build_scheduler
from federated.simulation import Simulation
from federated.train import train


def _cifar(root, *overrides):
    return load_config(
        None,
        [
            f"data.root={root}",
            "data.name=cifar10",
            "data.download=false",
            "model.name=resnet18",
            "model.width=4",
            "clients.num_clients=4",
            "clients.batch_size=8",
            "rounds=4",
            "eval_every=2",
            "checkpoint_every=0",
            *overrides,
        ],
    )


def _gpt(root, *overrides):
    return load_config(
        None,
        [
            f"data.root={root}",
            "model.name=gpt",
            "model.layers=2",
            "model.heads=2",
            "model.width=32",
            "model.context=32",
            "clients.num_clients=3",
            "clients.batch_size=4",
            "rounds=4",
            "eval_every=2",
            "checkpoint_every=0",
            *overrides,
        ],
    )


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_resnet_runs_end_to_end_with_ema(tmp_path, write_cifar, name):
    write_cifar(tmp_path, name, num_train=64, num_test=20)
    config = _cifar(
        tmp_path,
        f"data.name={name}",
        "ema=0.9",
        "optimizer.schedule=multistep",
        "optimizer.milestones=[2]",
        "optimizer.lr=0.1",
    )
    history = train(config, tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= summary["test_accuracy"] <= 1 and 0 <= summary["ema_test_accuracy"] <= 1
    assert summary["best_ema_test_accuracy"] >= summary["ema_test_accuracy"]
    assert [r["lr"] for r in history.rounds] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert history.rounds[0]["channel_uses"] > 0


@pytest.mark.parametrize(
    "data",
    [["data.name=wikitext103", "data.download=false"], ["data.name=pydoc"]],
    ids=["wikitext103", "pydoc"],
)
def test_gpt_runs_end_to_end_and_reports_perplexity(tmp_path, write_wikitext, data):
    write_wikitext(tmp_path)
    config = _gpt(
        tmp_path,
        *data,
        "optimizer.name=adamw",
        "optimizer.lr=1e-3",
        "optimizer.schedule=onecycle",
        "optimizer.weight_decay=1e-3",
        "clients.accumulation_steps=2",
        "model.dropout=0.2",
    )
    history = train(config, tmp_path / "run", progress=False)
    last = history.rounds[-1]
    assert last["test_perplexity"] == pytest.approx(math.exp(last["test_loss"]))
    assert 1 < history.summary["test_perplexity"] < 2 * 256  # a byte model that has barely trained
    assert "test_accuracy" not in history.summary


def test_a_model_that_does_not_fit_the_data_is_a_config_error():
    with pytest.raises(
        ValueError, match="model.name = 'gpt' is not accepted; expected a model for data.name=mnist1d"
    ):
        load_config(None, ["model.name=gpt", "model.heads=4"])


def test_a_context_longer_than_the_text_is_a_config_error(tmp_path, write_wikitext):
    write_wikitext(tmp_path)
    config = _gpt(tmp_path, "data.name=wikitext103", "data.download=false", "model.context=100000")
    with pytest.raises(ValueError, match="model.context"):
        Simulation(config)


def test_gradient_accumulation_sums_the_micro_batch_gradients(tmp_path):
    sim = Simulation(_gpt(tmp_path, "data.name=pydoc", "clients.accumulation_steps=3"))
    state = sim.task.state_dict()
    loss, grads = sim.client_gradient(0)
    sim.task.load_state_dict(state)  # the same three micro-batches again
    expected, losses = None, []
    for _ in range(3):
        x, y = sim.task.batch(0)
        step_loss = cross_entropy(sim.model(x), y)
        g = torch.autograd.grad(step_loss, sim.params)
        expected = g if expected is None else [a + b for a, b in zip(expected, g)]
        losses.append(step_loss)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(loss, torch.stack(losses).mean().detach())


def test_the_server_keeps_client_0s_batch_norm_statistics(tmp_path, write_cifar):
    write_cifar(tmp_path, "cifar10", num_train=64, num_test=20)
    sim = Simulation(_cifar(tmp_path, "channel.name=noiseless", "data.augment=false"))
    bn = sim.model.bn1
    before = bn.running_mean.clone()
    state = sim.task.state_dict()
    x, _ = sim.task.batch(0)  # client 0's first batch
    sim.task.load_state_dict(state)
    sim.round(0)
    with torch.no_grad():  # a fresh copy of the model sees client 0's batch alone
        reference = Simulation(_cifar(tmp_path, "channel.name=noiseless", "data.augment=false")).model
        reference.train()
        reference(x)
    torch.testing.assert_close(bn.running_mean, reference.bn1.running_mean)
    assert not torch.equal(bn.running_mean, before)


def test_adamw_decays_linear_weights_only_and_sgd_decays_everything():
    from federated.models.gpt import GPT

    model = GPT(vocab_size=64, context=8, layers=2, heads=2, width=16)
    adamw = build_optimizer(OptimizerConfig(name="adamw", weight_decay=0.1), model)
    decayed = {id(p) for g in adamw.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert names == {
        f"transformer.h.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }
    assert sum(len(g["params"]) for g in adamw.param_groups) == len(list(model.parameters()))
    sgd = build_optimizer(OptimizerConfig(name="sgd", weight_decay=0.1), model)
    assert [g["weight_decay"] for g in sgd.param_groups] == [0.1]


def test_adamw_decay_is_decoupled():
    """One AdamW step with a zero gradient only shrinks a decayed weight by lr * wd."""
    model = nn.Sequential(nn.Linear(3, 3, bias=False))
    weight = model[0].weight.detach().clone()
    optimizer = build_optimizer(OptimizerConfig(name="adamw", lr=0.1, weight_decay=0.5), model)
    model[0].weight.grad = torch.zeros_like(weight)
    optimizer.step()
    torch.testing.assert_close(model[0].weight.detach(), weight * (1 - 0.1 * 0.5))


def test_one_cycle_schedule_matches_the_paper():
    """2% warm-up from lr/100 to lr, cosine down to lr/5 at the last round."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-3)
    rounds = 1000
    schedule = build_scheduler(OptimizerConfig(lr=2e-3, schedule="onecycle"), opt, rounds)
    lrs = []
    for _ in range(rounds):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs[0] == pytest.approx(2e-5)
    assert max(lrs) == pytest.approx(2e-3) and lrs.index(max(lrs)) == pytest.approx(0.02 * rounds, abs=1)
    assert lrs[-1] == pytest.approx(2e-3 / 5, rel=1e-6)
    mid = 20 + (rounds - 1 - 20) // 2  # half-way through the cosine: the mean of lr and lr/5
    assert lrs[mid] == pytest.approx((2e-3 + 4e-4) / 2, rel=1e-2)


def test_weight_ema_is_the_bias_corrected_average_including_buffers():
    model = nn.BatchNorm1d(2)
    ema = WeightEMA(model, decay=0.9)
    values = [1.0, 2.0, 4.0]
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
            model.running_mean.fill_(-v)
        model.num_batches_tracked.fill_(int(v))
        ema.update(model)
    weights = [0.9**2 * 0.1, 0.9 * 0.1, 0.1]
    expected = sum(w * v for w, v in zip(weights, values)) / (1 - 0.9**3)
    averaged = ema.model(model)
    torch.testing.assert_close(averaged.weight.detach(), torch.full((2,), expected))
    torch.testing.assert_close(averaged.running_mean, torch.full((2,), -expected))
    assert int(averaged.num_batches_tracked) == 4  # integer buffers are copied, not averaged


def test_bf16_autocast_trains_with_float32_weights_and_gradients(tmp_path):
    sim = Simulation(_gpt(tmp_path, "data.name=pydoc", "precision=bf16", "eval_every=1"))
    loss, grads = sim.client_gradient(0)
    assert torch.isfinite(loss) and all(g.dtype == torch.float32 for g in grads)
    with sim.autocast():
        assert sim.model(sim.task.batch(0)[0]).dtype == torch.bfloat16  # the forward did run in bf16
    record = sim.round(0)  # evaluated: eval_every=1
    assert math.isfinite(record["test_perplexity"]) and all(p.dtype == torch.float32 for p in sim.params)
