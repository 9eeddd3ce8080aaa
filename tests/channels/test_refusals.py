"""The public calls of ``channels`` refuse what they cannot compute (issue 20, item 7), with a
``TypeError`` or ``ValueError`` whose message starts with the argument's name."""

import math
import warnings

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
from channels.antennas import ReceiveArray, exponential_correlation
from channels.beamforming import (
    effective_gains,
    eigen_beamformer,
    matched_beamformer,
    maxmin_beamformer,
    min_power,
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


# ------------------------------------------------------------------ receive antennas and beamformers
# (issue 27, item 5: these used to raise raw torch errors, or to return a result for vectors of
# another array)
def _vectors(*shape, dtype=torch.complex128):
    """Seeded CN(0, 1) channel vectors of ``shape``."""
    pair = torch.randn(*shape, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.view_as_complex(pair).to(dtype)


@pytest.mark.parametrize("design", [matched_beamformer, eigen_beamformer, maxmin_beamformer])
def test_beamformers_refuse_nan_meta_and_unsupported_dtypes(design):
    """NaN or inf channels used to give a NaN beamformer (or an arbitrary one); a meta tensor raised
    "Tensor.item() cannot be called on meta tensors"; complex32 "not implemented for 'ComplexHalf'"."""
    for bad in (math.nan, math.inf):
        h = _vectors(3, 4)
        h[1, 2] = bad
        with pytest.raises(ValueError, match=r"^channels must be finite, got .* at index \(1, 2\)"):
            design(h)
    with pytest.raises(ValueError, match=r"^channels must hold data.*meta"):
        design(_vectors(3, 4).to("meta"))
    with warnings.catch_warnings():  # torch warns once that ComplexHalf is experimental
        warnings.simplefilter("ignore", UserWarning)
        half = _vectors(3, 4, dtype=torch.complex64).to(torch.complex32)
    for wrong in (half, _vectors(3, 4).real, torch.ones(3, 4, dtype=torch.int64)):  # real: was a ValueError
        with pytest.raises(TypeError, match=r"^channels must be complex64 or complex128"):
            design(wrong)
    with pytest.raises(TypeError, match=r"^channels must be a complex \[\.\.\., K, N\] tensor, got \[\[1j"):
        design([[1j, 1.0]])


def test_maxmin_refuses_step_counts_that_are_not_integers():
    """A string used to fail inside range() ("'str' object cannot be interpreted as an integer")."""
    with pytest.raises(TypeError, match=r"^iterations must be an integer >= 0, got '5'"):
        maxmin_beamformer(_vectors(3, 4), iterations="5")
    with pytest.raises(ValueError, match=r"^polish must be an integer >= 0, got -1"):
        maxmin_beamformer(_vectors(3, 4), polish=-1)


def test_effective_gains_refuses_another_n_and_unbroadcastable_batches():
    """A beamformer of 3 entries for 4 antennas used to raise "The size of tensor a (4) must match",
    and one of a single entry was broadcast over the 4 antennas without a word."""
    h = _vectors(3, 4)
    for m in (_vectors(3), _vectors(1)):
        with pytest.raises(ValueError, match=rf"^beamformer must have N = 4 .*got shape \({m.shape[0]},\)"):
            effective_gains(m, h)
        with pytest.raises(ValueError, match=r"^beamformer must have N = 4"):
            min_power(m, h)
    with pytest.raises(ValueError, match=r"^beamformer's batch dimensions \(2,\) must broadcast"):
        effective_gains(_vectors(2, 4), _vectors(5, 3, 4))
    with pytest.raises(TypeError, match=r"^beamformer must be a complex \[\.\.\., N\] tensor"):
        effective_gains([1j] * 4, h)  # was AttributeError: 'list' object has no attribute 'conj'
    with pytest.raises(TypeError, match=r"^channels must be a complex"):
        effective_gains(_vectors(4), torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"^channels must be \[\.\.\., K, N\], got shape \(4,\)"):
        effective_gains(_vectors(4), _vectors(4))
    with pytest.raises(ValueError, match=r"^channels must have K >= 1 clients"):  # was an IndexError
        min_power(_vectors(4), _vectors(0, 4))
    with pytest.raises(ValueError, match=r"^beamformer must hold data"):
        effective_gains(_vectors(4).to("meta"), h)
    # what fits still goes through: a batch of beamformers over one set of channels, real ones too
    assert effective_gains(_vectors(2, 4), h).shape == (2, 3)
    assert torch.equal(effective_gains(_vectors(4).real, h), effective_gains(_vectors(4).real + 0j, h))


def test_a_receive_array_refuses_vectors_of_another_number_of_antennas():
    """``ReceiveArray(4)`` used to design a beamformer from estimates of 3 antennas, and to combine
    gains of 3 antennas (or of another client count than the estimates') without a word."""
    array = ReceiveArray(4)
    with pytest.raises(ValueError, match=r"^estimates must have N = 4 antennas \(the array's\).*\(3, 3\)"):
        array.design(_vectors(3, 3))
    gains = _vectors(3, 2, 1, 4)  # [K, C, N_sub, N]
    with pytest.raises(ValueError, match=r"^gains must have N = 4 antennas.*\(3, 2, 1, 3\)"):
        array.combine(gains[..., :3], gains[..., :3])
    with pytest.raises(ValueError, match=r"^csi must have N = 4 antennas"):  # was a RuntimeError
        array.combine(gains, gains[..., :3])
    with pytest.raises(
        ValueError, match=r"^csi must have the shape of gains, \(3, 2, 1, 4\), got \(2, 2, 1, 4\)"
    ):
        array.combine(gains, gains[:2])
    with pytest.raises(ValueError, match=r"^gains must be \[K, C, N_sub, N\].*got shape \(2, 1, 4\)"):
        array.combine(gains[0], gains[0])  # was "permute(sparse_coo): number of dimensions ..."
    with pytest.raises(ValueError, match=r"^gains must be \[K, C, N_sub, N\].*\(0, 2, 1, 4\)"):
        array.combine(gains[:0], gains[:0])
    nan = gains.clone()
    nan[1, 0, 0, 2] = math.nan
    with pytest.raises(ValueError, match=r"^csi must be finite, got .* at index \(1, 0, 0, 2\)"):
        array.combine(gains, nan)  # was torch.linalg's "The algorithm failed to converge"
    with pytest.raises(ValueError, match=r"^gains must be finite"):
        array.combine(nan, gains)
    with pytest.raises(TypeError, match=r"^gains must be a complex"):
        array.combine([1], [1])


def test_a_receive_array_draw_refuses_bad_counts_generators_and_dtypes():
    """These used to fail inside torch (num_draws 0 or -1, 2.5, a string), with an AttributeError
    (no generator), or return real channel vectors (no fading model, dtype float32)."""
    array, generator = ReceiveArray(4), torch.Generator().manual_seed(0)
    for count, error in [
        (0, ValueError),
        (-1, ValueError),
        (2.5, TypeError),
        ("3", TypeError),
        (True, TypeError),
    ]:
        with pytest.raises(error, match=r"^num_draws must be an integer >= 1"):
            array.draw(RayleighFading(), count, generator)
    for wrong in (None, 42):
        with pytest.raises(TypeError, match=r"^generator must be a torch.Generator"):
            array.draw(RayleighFading(), 3, wrong)
    with pytest.raises(TypeError, match=r"^fading must be a fading model.*'rayleigh'"):
        array.draw("rayleigh", 3, generator)
    with pytest.raises(
        ValueError, match=r"^dtype must be torch.complex64 or torch.complex128, got torch.float32"
    ):
        array.draw(None, 3, generator, torch.float32)
    with pytest.raises(TypeError, match=r"^dtype must be"):
        array.draw(None, 3, generator, "complex64")


def test_exponential_correlation_refuses_what_has_no_factor():
    """A fractional N used to be rounded up (2.5: a 3 x 3 factor), rho = 1.5 raised "math domain
    error", NaN gave a NaN factor, an integer dtype truncated the factor to 0s and 1s."""
    for count, error in [
        (2.5, TypeError),
        ("3", TypeError),
        (True, TypeError),
        (0, ValueError),
        (-1, ValueError),
    ]:
        with pytest.raises(error, match=r"^num_antennas must be an integer >= 1"):
            exponential_correlation(count, 0.5)
    for rho in (1.5, -1.5, math.nan):
        with pytest.raises(ValueError, match=r"^rho must be a real number in \[-1, 1\]"):
            exponential_correlation(3, rho)
    with pytest.raises(TypeError, match=r"^rho must be a real number, got '0.5'"):
        exponential_correlation(3, "0.5")
    with pytest.raises(ValueError, match=r"^dtype must be a floating-point or complex torch dtype"):
        exponential_correlation(3, 0.5, torch.int64)
    # the closed form holds on all of [-1, 1]: L L^T = R
    lag = (torch.arange(4)[:, None] - torch.arange(4)[None, :]).abs().double()
    for rho in (-0.9, -0.5, 1.0):
        factor = exponential_correlation(4, rho)
        torch.testing.assert_close(factor @ factor.T, torch.tensor(rho, dtype=torch.float64) ** lag)
