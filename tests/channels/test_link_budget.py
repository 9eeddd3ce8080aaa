"""The NR link budget: bandwidth, noise, symbol rate and air time from their definitions; the
absolute (dBm, joules) and normalised (energy over noise_var) modes give the same noise on the
estimate; bad arguments refused naming them."""

import math

import pytest
import torch

from channels import FadingChannel
from channels.link_budget import (
    SUBCARRIER_SPACINGS_HZ,
    LinkBudget,
    dbm_to_watts,
    watts_to_dbm,
)

BOLTZMANN = 1.380649e-23  # J/K


def test_thermal_noise_is_kt_at_290_kelvin_and_the_band_adds_up():
    budget = LinkBudget(resource_blocks=51, subcarrier_spacing_hz=30e3, noise_figure_db=5.0)
    assert budget.bandwidth_hz == 12 * 51 * 30e3
    # -174 dBm/Hz is k T at 290 K to 0.03 dB
    assert watts_to_dbm(BOLTZMANN * 290) == pytest.approx(-174.0, abs=0.03)
    expected = 10 * math.log10(BOLTZMANN * 290 * budget.bandwidth_hz / 1e-3) + 5.0
    assert budget.noise_power_dbm == pytest.approx(expected, abs=0.03)
    assert budget.noise_power_dbm == pytest.approx(-96.36, abs=0.005)
    # per resource element N0 F, half of it per real dimension
    assert budget.noise_energy_j == pytest.approx(dbm_to_watts(-174.0 + 5.0), rel=1e-12)
    assert budget.noise_var_j == budget.noise_energy_j / 2


@pytest.mark.parametrize("spacing", SUBCARRIER_SPACINGS_HZ)
@pytest.mark.parametrize("pilots", [0, 1, 2])
def test_the_symbol_rate_is_the_data_resource_elements_per_second(spacing, pilots):
    budget = LinkBudget(subcarrier_spacing_hz=spacing, resource_blocks=24, pilot_symbols=pilots)
    mu = round(math.log2(spacing / 15e3))
    slots = 1000 * 2**mu  # a slot lasts 1 ms / 2^mu
    assert budget.slots_per_second == slots
    assert budget.re_rate == pytest.approx(12 * 24 * spacing * 14 / 15e3 * 1000, rel=1e-12)
    assert budget.symbol_rate == 12 * 24 * (14 - pilots) * slots


@pytest.mark.parametrize("uses", [0, 1, 2, 28_298, 28_299, 119_104])
def test_a_passs_air_time_is_its_complex_symbols_over_the_symbol_rate(uses):
    budget = LinkBudget()
    assert budget.air_time_s(uses) == math.ceil(uses / 2) / budget.symbol_rate
    assert budget.energy_j(23.0, uses) == pytest.approx(
        dbm_to_watts(23.0) * budget.air_time_s(uses), rel=1e-12
    )


def test_dbm_and_watts_are_inverse():
    for dbm in (-30.0, 0.0, 23.0, 46.0):
        assert watts_to_dbm(dbm_to_watts(dbm)) == pytest.approx(dbm, abs=1e-12)
    assert dbm_to_watts(23.0) == pytest.approx(0.19953, rel=1e-4)


def test_the_normalised_energy_has_the_snr_per_use_of_the_absolute_link():
    budget = LinkBudget()
    uses, gain_db = 28_298, -110.0
    snr = budget.snr_per_use(10.0, gain_db)
    energy = budget.normalised_energy(10.0, gain_db, uses)
    assert energy == pytest.approx(snr * uses, rel=1e-12)
    # the definition of the SNR per use in normalised units
    assert 10 * math.log10(energy / (1.0 * uses)) == pytest.approx(10 * math.log10(snr), abs=1e-9)
    # 10 dB more power or 10 dB less loss: 10 times the energy; noise_var scales it
    assert budget.normalised_energy(20.0, gain_db, uses) == pytest.approx(10 * energy, rel=1e-12)
    assert budget.normalised_energy(10.0, gain_db + 10, uses) == pytest.approx(10 * energy, rel=1e-12)
    assert budget.normalised_energy(10.0, gain_db, uses, noise_var=4.0) == pytest.approx(
        4 * energy, rel=1e-12
    )
    assert budget.power_dbm_for(energy, gain_db, uses) == pytest.approx(10.0, abs=1e-9)


@pytest.mark.parametrize("uses", [6, 7])
def test_the_absolute_and_normalised_modes_give_the_channel_the_same_noise_on_the_estimate(uses):
    """One AWGN pass of a client at 15 dBm through a 100 dB coupling loss: in joules (noise_var
    N0 F / 2, the energy received on the data symbols) and in normalised units (noise_var 1, the
    normalised energy) the estimate's noise variance is the same, and so is the estimate's noise."""
    budget = LinkBudget(resource_blocks=10)
    signal = torch.arange(1.0, uses + 1.0, dtype=torch.float64)[None]  # [K = 1, d]
    received = budget.received_energy_j(15.0, -100.0, uses)
    normalised = budget.normalised_energy(15.0, -100.0, uses)
    absolute = FadingChannel(noise_var=budget.noise_var_j).forward(
        signal, torch.tensor([received], dtype=torch.float64), generator=torch.Generator().manual_seed(3)
    )
    relative = FadingChannel(noise_var=1.0).forward(
        signal, torch.tensor([normalised], dtype=torch.float64), generator=torch.Generator().manual_seed(3)
    )
    # an odd pass spends its last symbol's energy on one real value: the SNR per use counts d uses
    scale = uses / (2 * math.ceil(uses / 2))
    assert float(absolute.noise_var) == pytest.approx(float(relative.noise_var) * scale, rel=1e-9)
    # the same draws, scaled (to the rounding of the received signal's subtraction, ~1e-8 here)
    torch.testing.assert_close(
        absolute.estimate - signal[0], (relative.estimate - signal[0]) * math.sqrt(scale), rtol=1e-7, atol=0
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resource_blocks": 0}, r"resource_blocks = 0 is out of range"),
        ({"resource_blocks": 300}, r"resource_blocks = 300 is out of range"),
        ({"resource_blocks": 5.0}, r"resource_blocks must be an integer"),
        ({"subcarrier_spacing_hz": 20e3}, r"subcarrier_spacing_hz = 20000.0 is not an NR spacing"),
        ({"noise_figure_db": -1.0}, r"noise_figure_db = -1.0 is out of range"),
        ({"noise_figure_db": math.nan}, r"noise_figure_db must be a finite number"),
        ({"carrier_frequency_hz": -3.5e9}, r"carrier_frequency_hz = -3500000000.0 is out of range"),
        ({"pilot_symbols": 14}, r"pilot_symbols = 14 is out of range"),
    ],
)
def test_bad_settings_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinkBudget(**kwargs)


def test_bad_call_arguments_are_refused_naming_them():
    budget = LinkBudget()
    with pytest.raises(ValueError, match=r"real_uses must be an integer >= 0"):
        budget.air_time_s(-1)
    with pytest.raises(ValueError, match=r"power_dbm = 80.0 is out of range"):
        budget.energy_j(80.0, 10)
    with pytest.raises(ValueError, match=r"coupling_gain_db must be a finite number"):
        budget.snr_per_use(10.0, math.inf)
    with pytest.raises(ValueError, match=r"real_uses must be an integer >= 1"):
        budget.normalised_energy(10.0, -100.0, 0)
    with pytest.raises(ValueError, match=r"energy must be a finite number > 0"):
        budget.power_dbm_for(0.0, -100.0, 10)
    with pytest.raises(ValueError, match=r"watts must be a finite number > 0"):
        watts_to_dbm(0.0)
