"""The public calls of ``channels`` refuse what they cannot compute (issue 20, item 7), with a
``TypeError`` or ``ValueError`` whose message starts with the argument's name."""

import math

import pytest
import torch

from channels import (
    AWGNChannel,
    FadingChannel,
    RayleighFading,
    SignalBlocks,
    TruncatedInversion,
    bit_limit,
    db_to_linear,
    digital_link,
    energy_for_snr_db,
    snr_db_for_energy,
    uses_for_bits,
)

SIGNALS = torch.tensor([[3.0, 4.0, 1.0, 2.0], [0.0, 1.0, 2.0, 0.5]])


def _channels():
    """A noisy AWGN channel and a noisy fading channel (truncated inversion), seeded."""
    return [
        AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0)),
        FadingChannel(
            RayleighFading(),
            TruncatedInversion(0.1),
            noise_var=1.0,
            generator=torch.Generator().manual_seed(0),
        ),
    ]


def test_complex_signals_are_refused():
    """They used to lose their imaginary part (with a warning) and go through as real signals."""
    signals = torch.complex(SIGNALS, SIGNALS)
    for channel in _channels():
        with pytest.raises(TypeError, match=r"^signals must be real floating point.*complex64"):
            channel(signals, energy=25.0)
    with pytest.raises(TypeError, match=r"^client_blocks\[0\]\[1\] must be real floating point"):
        SignalBlocks([[torch.ones(2), torch.ones(3, dtype=torch.complex128)]])
    mixed = [[torch.ones(2)], [torch.ones(2, dtype=torch.complex64)]]  # a later client's block
    with pytest.raises(TypeError, match=r"^client_blocks\[1\]\[0\] must be real floating point"):
        SignalBlocks(mixed)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_and_bool_signals_are_refused(dtype):
    """They used to come back truncated: the mean of 1 and 2 as 1, of True and False as True."""
    signals = torch.tensor([[1, 0], [2, 1]]).to(dtype)
    for channel in [AWGNChannel(noise_var=0.0), *_channels()]:
        with pytest.raises(TypeError, match=rf"^signals must be real floating point.*{dtype}"):
            channel(signals, energy=25.0)
    with pytest.raises(TypeError, match=r"^client_blocks\[0\]\[0\] must be real floating point"):
        SignalBlocks([[signals[0]], [signals[1]]])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_client_with_a_nan_entry_is_refused(bad):
    """A NaN client used to be left out of the alignment scale yet counted as heard (an inf one
    made the scale 0 and the noise variance infinite); with ``check_finite`` (the default) the call
    refuses it, naming the signals and the client."""
    signals = SIGNALS.clone()
    signals[1, 2] = bad
    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^signals must be finite, got NaN or inf entries in client.*\[1\]"):
        channel(signals, energy=25.0)
    blocks = SignalBlocks([[signals[0, :3], signals[0, 3:]], [signals[1, :3], signals[1, 3:]]], pack_limit=0)
    assert blocks.packed is None  # the per-client path of the check
    with pytest.raises(ValueError, match=r"^client_blocks must be finite.*\[1\]"):
        channel.transmit(blocks, torch.full((2, 2), 25.0))


def test_check_finite_false_skips_the_check_as_documented():
    """Without the check a NaN client is what the docstring says: skipped by the scale, counted as
    heard, its energy NaN and the estimate NaN where its NaN lands."""
    signals = SIGNALS.clone()
    signals[1, 2] = math.nan
    out = AWGNChannel(noise_var=0.0, check_finite=False)(signals, energy=25.0)
    assert out.active.tolist() == [True, True]
    assert float(out.scale) == pytest.approx(5 / math.sqrt(30))  # client 0's alone
    assert math.isnan(out.energy_used[1]) and math.isnan(out.estimate[2])
    assert "check_finite=False" in repr(AWGNChannel(check_finite=False))
    with pytest.raises(TypeError, match=r"^check_finite must be True or False"):
        AWGNChannel(check_finite="no")


def test_zero_length_signals_are_refused():
    """d = 0 used to give a NaN noise variance (the mean over no entries)."""
    for channel in _channels():
        with pytest.raises(ValueError, match=r"^signals must have at least one client and one.*\(2, 0\)"):
            channel(torch.zeros(2, 0), energy=25.0)
    with pytest.raises(ValueError, match=r"^client_blocks\[0\]\[1\] must be 1-D with at least one entry"):
        SignalBlocks([[torch.ones(2), torch.ones(0)], [torch.ones(2), torch.ones(0)]])
    with pytest.raises(ValueError, match=r"^client_blocks\[0\] must hold at least one block"):
        SignalBlocks([[], []])


def test_fading_with_nan_signals_is_refused():
    """A lone NaN client used to make the scale infinite: a fading channel reported zero noise."""
    signals = torch.tensor([[1.0, math.nan, 2.0, 3.0]])
    channel = FadingChannel(RayleighFading(), noise_var=1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^signals must be finite"):
        channel(signals, energy=25.0)
    with pytest.raises(ValueError, match=r"^signals must be finite"):
        channel(signals, snr_db=10.0, state=channel.realize(1, 4))


def test_zero_clients_are_refused():
    """K = 0 used to raise an IndexError ("list index out of range")."""
    for channel in _channels():
        with pytest.raises(ValueError, match=r"^signals must have at least one client.*\(0, 4\)"):
            channel(torch.zeros(0, 4), energy=25.0)
    with pytest.raises(ValueError, match=r"^client_blocks must hold at least one client"):
        SignalBlocks([])
    with pytest.raises(ValueError, match=r"^num_clients must be an integer >= 1, got 0"):
        _channels()[1].realize(0, 4)


def test_meta_tensors_are_refused():
    """Meta tensors (no data) used to fail deep inside with RuntimeError or NotImplementedError."""
    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^signals must hold data.*meta"):
        channel(SIGNALS.to("meta"), energy=25.0)
    with pytest.raises(ValueError, match=r"^energy must hold data.*meta"):
        channel(SIGNALS, energy=torch.ones(2, device="meta"))
    with pytest.raises(ValueError, match=r"^weights must hold data.*meta"):
        channel(SIGNALS, energy=25.0, weights=torch.ones(2, device="meta"))
    with pytest.raises(ValueError, match=r"^client_blocks\[0\]\[0\] must hold data"):
        SignalBlocks([[torch.ones(2, device="meta")]])
    with pytest.raises(ValueError, match=r"^bits must hold data"):
        digital_link(torch.ones(2, device="meta"), torch.ones(2), energy=3.0)


def test_string_energies_are_refused():
    """Strings for numbers used to raise TypeErrors that do not name the argument."""
    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"^energy must be real numbers, got '25'"):
        channel(SIGNALS, energy="25")
    with pytest.raises(TypeError, match=r"^energy must be real numbers"):
        channel.transmit(SignalBlocks(SIGNALS), [["25"], ["25"]])
    with pytest.raises(TypeError, match=r"^snr_db must be a real number, got '10'"):
        channel(SIGNALS, snr_db="10")
    with pytest.raises(TypeError, match=r"^noise_var must be a real number, got '1.0'"):
        AWGNChannel(noise_var="1.0")
    with pytest.raises(TypeError, match=r"^symbol_offset must be an integer >= 0, got '0'"):
        channel(SIGNALS, energy=25.0, symbol_offset="0")
    with pytest.raises(TypeError, match=r"^energy must be real numbers, got '3'"):
        digital_link(torch.ones(2), torch.ones(2), energy="3")
    with pytest.raises(TypeError, match=r"^noise_var must be a real number"):
        digital_link(torch.ones(2), torch.ones(2), energy=3.0, noise_var="1")
    with pytest.raises(TypeError, match=r"^bits must be real numbers"):
        uses_for_bits(torch.ones(2, dtype=torch.complex64), 1.0, 1.0, 1.0)  # used to drop the imaginary part
    with pytest.raises(TypeError, match=r"^gain must be real numbers"):
        bit_limit(1.0, "1", 1.0)
    with pytest.raises(TypeError, match=r"^snr_db must be a real number"):
        energy_for_snr_db("10", channel_uses=5, noise_var=1.0)
    with pytest.raises(TypeError, match=r"^value_db must be a real number"):
        db_to_linear("10")
    with pytest.raises(TypeError, match=r"^energy must be a real number"):
        snr_db_for_energy("500", channel_uses=50, noise_var=1.0)
    with pytest.raises(ValueError, match=r"^energy must not be NaN"):  # used to return NaN
        snr_db_for_energy(math.nan, channel_uses=50, noise_var=1.0)
    with pytest.raises(ValueError, match=r"^noise_var must be a finite number >= 0"):  # used to return NaN
        energy_for_snr_db(10.0, channel_uses=5, noise_var=math.nan)


def test_a_non_generator_generator_is_refused():
    """A generator that is not a ``torch.Generator`` used to be accepted, then fail on first use
    with an AttributeError ("'int' object has no attribute 'device'")."""
    with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got 42"):
        AWGNChannel(noise_var=1.0, generator=42)
    with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None"):
        FadingChannel(RayleighFading(), generator="seed")
    for channel in _channels():
        with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got 42"):
            channel(SIGNALS, energy=25.0, generator=42)
        with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got 42"):
            channel.realize(2, 4, generator=42)
