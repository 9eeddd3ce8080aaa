"""The LASER paper's models: ResNet-18 (CIFAR) and the GPT-2 124M decoder (shapes, compressed
tensors, channel uses)."""

import math

import pytest
import torch

from federated.models.gpt import GPT, padded_vocab
from federated.models.resnet import ResNet18
from laser import LaserCompressor, is_compressed


def _seeded(build, seed: int = 0):
    """Build a model with its initialisation drawn from ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@pytest.fixture(scope="module")
def resnet10() -> ResNet18:
    return _seeded(lambda: ResNet18(num_classes=10))


@pytest.fixture(scope="module")
def resnet100() -> ResNet18:
    return _seeded(lambda: ResNet18(num_classes=100))


@pytest.fixture(scope="module")
def gpt2() -> GPT:
    """The paper's GPT-2 124M, on the meta device: shapes only, no memory, no arithmetic."""
    with torch.device("meta"):
        return GPT(padded_vocab(50257), context=512, layers=12, heads=12, width=768)


def _shape_rule(model: torch.nn.Module) -> tuple[int, int, int, int]:
    """(tensors, compressed, uncompressed, floats in uncompressed) at rank 4, min rate 2."""
    params = list(model.parameters())
    kept = [p for p in params if not is_compressed(p.shape, rank=4, min_compression_rate=2.0)]
    return len(params), len(params) - len(kept), len(kept), sum(p.numel() for p in kept)


def _channel_uses(model: torch.nn.Module) -> tuple[int, int, int, int]:
    laser = LaserCompressor(rank=4)
    laser.setup(list(model.parameters()), num_clients=1)
    return tuple(laser.server.channel_uses(step) for step in range(4))


# ----------------------------------------------------------------------------- exact identities
def test_parameter_counts(resnet10, resnet100, gpt2):
    assert sum(p.numel() for p in resnet10.parameters()) == 11_173_962
    assert sum(p.numel() for p in resnet100.parameters()) == 11_220_132
    assert padded_vocab(50257) == 50304
    assert sum(p.numel() for p in gpt2.parameters()) == 123_980_544


def test_gpt_parameter_names_follow_nanogpt(gpt2):
    names = [name for name, _ in gpt2.named_parameters()]
    per_layer = ["ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"]
    expected = (
        ["transformer.wte.weight", "transformer.wpe.weight"]
        + [f"transformer.h.{i}.{part}.weight" for i in range(12) for part in per_layer]
        + ["transformer.ln_f.weight"]
    )
    assert names == expected  # 75 tensors; the tied head is not listed again


def test_shape_rule_counts(resnet10, gpt2):
    assert _shape_rule(resnet10) == (62, 21, 41, 9_610)
    assert _shape_rule(gpt2) == (75, 50, 25, 19_200)


@pytest.mark.parametrize(
    "model, even, odd",
    [
        ("resnet10", 135_670, 28_850),
        ("resnet100", 135_760, 29_300),
        ("gpt2", 283_392, 554_240),
    ],
)
def test_laser_channel_uses_per_round(request, model, even, odd):
    assert _channel_uses(request.getfixturevalue(model)) == (even, odd, even, odd)


def test_gpt_is_causal():
    model = _seeded(lambda: GPT(vocab_size=50, context=16, layers=2, heads=2, width=32)).eval()
    idx = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(idx)
        for t in (0, 5, 15):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1) % 50
            other = model(changed)
            assert torch.equal(other[:, :t], logits[:, :t])
            assert not torch.equal(other[:, t], logits[:, t])


def test_gpt_head_is_tied_to_token_embedding():
    model = GPT(vocab_size=20, context=4, layers=1, heads=1, width=8)
    wte, head = model.transformer.wte.weight, model.lm_head.weight
    assert head is wte and head.data_ptr() == wte.data_ptr()
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    assert wte.grad is not None and head.grad is wte.grad  # both uses accumulate in one gradient


def test_gpt_output_shapes_and_context_limit():
    model = GPT(vocab_size=20, context=6, layers=1, heads=2, width=8)
    assert model(torch.zeros(3, 6, dtype=torch.long)).shape == (3, 6, 20)
    assert model(torch.zeros(1, 1, dtype=torch.long)).shape == (1, 1, 20)
    with pytest.raises(ValueError, match="7.*6"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="heads"):
        GPT(vocab_size=20, context=6, layers=1, heads=3, width=8)


def test_resnet_forward_backward():
    model = _seeded(lambda: ResNet18(num_classes=10, width=8))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    assert logits.shape == (2, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ----------------------------------------------------------------------------- statistical checks
@pytest.mark.parametrize(
    "suffix, std",
    [
        ("c_proj.weight", 0.02 / math.sqrt(2 * 4)),
        ("c_attn.weight", 0.02),
        ("c_fc.weight", 0.02),
        ("wte.weight", 0.02),
    ],
)
def test_gpt_initialisation_std(suffix, std):
    model = _seeded(lambda: GPT(vocab_size=256, context=16, layers=4, heads=2, width=64))
    w = torch.cat([p.detach().flatten() for name, p in model.named_parameters() if name.endswith(suffix)])
    n = w.numel()
    # i.i.d. normal samples: the sample std has standard error std/sqrt(2n), the mean std/sqrt(n);
    # five standard errors makes a false failure a ~1e-6 event (and this seed is fixed anyway)
    assert abs(w.std().item() / std - 1) < 5 / math.sqrt(2 * n)
    assert abs(w.mean().item()) < 5 * std / math.sqrt(n)
