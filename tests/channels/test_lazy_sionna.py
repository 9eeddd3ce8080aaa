"""Sionna is imported on first use: ``import channels, laser`` loads neither Sionna nor matplotlib,
and the blocks built on first use draw exactly what the blocks built at import time drew."""

import json
import subprocess
import sys

import pytest
import torch

from channels.fading import RayleighFading, TDLFading
from channels.noise import ComplexNoise

HEAVY = ("sionna", "matplotlib", "dp_accounting")  # dp_accounting: imported by channels.privacy on use


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


LOADED = f"sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})"


def test_importing_channels_and_laser_loads_neither_sionna_nor_matplotlib():
    found = _run(f"import json, sys\nimport channels, laser\nprint(json.dumps({LOADED}))")
    assert found == []


def test_noiseless_and_unit_gain_calls_do_not_import_sionna_either():
    code = f"""
import json, sys, torch
import channels
from channels import AWGNChannel, FadingChannel, PathLoss, digital_link
AWGNChannel(noise_var=0.0)(torch.ones(3, 4), energy=1.0)
FadingChannel(path_loss=PathLoss(), noise_var=0.0).realize(3, 8)
digital_link(torch.ones(2), torch.ones(2), energy=3.0)
print(json.dumps({LOADED}))
"""
    assert _run(code) == []


@pytest.mark.slow
def test_the_first_noisy_call_works_and_then_sionna_is_loaded():
    code = f"""
import json, sys, torch
import channels, laser
before = {LOADED}
torch.manual_seed(0)
state = torch.get_rng_state()
out = channels.AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))(torch.ones(3, 4), 1.0)
after = {LOADED}
kept, finite = torch.equal(state, torch.get_rng_state()), bool(torch.isfinite(out.estimate).all())
print(json.dumps({{"before": before, "after": after, "global_rng_kept": kept, "finite": finite,
                   "noisy": bool((out.estimate != 1).any())}}))
"""
    result = _run(code)
    assert result["before"] == []
    assert "sionna.phy.channel" in result["after"]
    assert result["finite"] and result["noisy"]
    # Sionna's import reseeds torch's global generator at random: dropout after it would differ run to run
    assert result["global_rng_kept"]


# ------------------------------------------------------------------------------------------------------
# bit for bit: the blocks built on first use are the blocks (and the draws) of the eager imports


def _eager_blocks():
    """Today's classes as they were written before the lazy import (module-level subclasses)."""
    from sionna.phy.channel import AWGN, RayleighBlockFading
    from sionna.phy.channel.tr38901 import TDL

    class EagerAWGN(AWGN):
        def __init__(self, generator, precision, device):
            super().__init__(precision=precision, device=device)
            self.generator = generator

        @property
        def torch_rng(self):
            return self.generator

    class EagerRayleigh(RayleighBlockFading):
        def __init__(self, precision, device):
            super().__init__(
                num_rx=1, num_rx_ant=1, num_tx=1, num_tx_ant=1, precision=precision, device=device
            )
            self.generator = None

        @property
        def torch_rng(self):
            return self.generator

    class EagerTDL(TDL):
        generator = None

        @property
        def torch_rng(self):
            return self.generator

    return EagerAWGN, EagerRayleigh, EagerTDL


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_the_noise_is_bit_identical_to_the_eager_block(dtype):
    eager_awgn, _, _ = _eager_blocks()
    precision = "double" if dtype == torch.complex128 else "single"
    symbols = torch.randn(50, generator=torch.Generator().manual_seed(1), dtype=dtype)
    ours = ComplexNoise()(symbols, 0.7, torch.Generator().manual_seed(3))
    theirs = eager_awgn(torch.Generator().manual_seed(3), precision, "cpu")(symbols, 1.4)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_rayleigh_and_tdl_gains_are_bit_identical_to_the_eager_blocks(dtype):
    from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies

    _, eager_rayleigh, eager_tdl = _eager_blocks()
    precision = "double" if dtype == torch.complex128 else "single"
    block = eager_rayleigh(precision, "cpu")
    block.generator = torch.Generator().manual_seed(5)
    a, _ = block(batch_size=7, num_time_steps=1)
    ours = RayleighFading()(7, torch.Generator().manual_seed(5), dtype)
    assert torch.equal(ours, a.reshape(7, 1).to(dtype))

    tdl = eager_tdl("C", 300e-9, 3.5e9, precision=precision, device="cpu")
    tdl.generator = torch.Generator().manual_seed(6)
    frequencies = subcarrier_frequencies(8, 30e3, precision=precision, device="cpu")
    a, tau = tdl(batch_size=5, num_time_steps=1, sampling_frequency=8 * 30e3)
    expected = cir_to_ofdm_channel(frequencies, a, tau, normalize=False).reshape(5, 8).to(dtype)
    ours = TDLFading("C", 300e-9, num_subcarriers=8)(5, torch.Generator().manual_seed(6), dtype)
    assert torch.equal(ours, expected)


def test_the_generator_blocks_pickle_by_name():
    import pickle

    from channels._sionna import generator_block

    block = generator_block("AWGN")(precision="single", device="cpu")
    assert type(pickle.loads(pickle.dumps(block))) is type(block)
    with pytest.raises(ValueError, match="name"):
        generator_block("NoSuchBlock")
