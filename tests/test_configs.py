"""Every shipped YAML file loads, says what it reproduces and how to run it, and the paper's
configs follow the protocol of the paper's figures."""

from pathlib import Path

import pytest

from federated import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_every_config_loads_and_starts_with_its_command(path):
    load_config(path)
    text = path.read_text()
    assert text.startswith("# ") and "laser run" in text.split("\n\n")[0]


def test_the_paper_configs_cover_every_line_of_the_papers_figures():
    names = {p.stem for p in (CONFIGS / "paper").glob("*.yaml")}
    expected = {
        f"{task}_{method}"
        for task in ("cifar10", "cifar100")
        for method in ("laser", "zsgd", "randomk", "sketch")
    }
    expected |= {f"gpt2_{method}" for method in ("laser", "zsgd", "randomk", "sketch", "signum")}
    assert names == expected


@pytest.mark.parametrize("task, classes, epochs", [("cifar10", 10, 150), ("cifar100", 100, 200)])
def test_cifar_configs_follow_the_protocol(task, classes, epochs):
    for method in ("laser", "zsgd", "randomk", "sketch"):
        c = load_config(CONFIGS / "paper" / f"{task}_{method}.yaml")
        assert (c.data.name, c.model.name, c.model.width) == (task, "resnet18", 64)
        assert (c.clients.num_clients, c.clients.batch_size) == (16, 128)
        assert c.rounds == epochs * 25  # 3,125 images per client, batch 128: 25 rounds an epoch
        o = c.optimizer
        assert (o.name, o.lr, o.momentum, o.weight_decay, o.milestones) == (
            "sgd",
            0.01,
            0.9,
            1e-4,
            (3750, 6250),
        )
        assert c.ema == 0.99 and c.seed == 42 and c.compressor.name == method
        if method in ("randomk", "sketch"):
            assert c.compressor.fraction == 0.2


def test_gpt2_configs_follow_the_protocol():
    for method in ("laser", "zsgd", "randomk", "sketch", "signum"):
        c = load_config(CONFIGS / "paper" / f"gpt2_{method}.yaml")
        m = c.model
        assert (m.layers, m.heads, m.width, m.context, m.dropout) == (12, 12, 768, 512, 0.2)
        assert (c.data.name, c.data.tokenizer, c.rounds, c.seed) == ("wikitext103", "gpt2", 20000, 0)
        assert (c.clients.num_clients, c.clients.batch_size, c.clients.accumulation_steps) == (16, 55, 3)
        o = c.optimizer
        assert (o.name, o.lr, o.betas, o.weight_decay) == ("adamw", 2e-3, (0.9, 0.95), 1e-3)
        assert (o.schedule, o.warmup_fraction, o.div_factor, o.final_lr_fraction) == (
            "onecycle",
            0.02,
            100,
            0.2,
        )
        assert c.compressor.name == method and c.precision == "bf16"
