"""Clients dropped in a 3GPP sector through Sionna: reproducible from the caller's generator alone,
the scenario's geometry and shares, the coupling loss equal to our UMi formula where it must be, the
penetration loss and the shadowing's spread, and bad arguments refused naming them."""

import math

import pytest
import torch

from channels._sionna import import_sionna, sionna_draws_from
from channels.fading import umi_path_loss_db
from channels.scenarios import SCENARIOS, Drop, DropGains, drop_clients, open_loop_power_dbm, sector_gain_db


def _same(a: Drop, b: Drop) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return all(
        torch.equal(left[k], right[k]) if isinstance(left[k], torch.Tensor) else left[k] == right[k]
        for k in left
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_drop_is_its_generators_alone_and_leaves_every_other_generator_as_it_was(scenario):
    config = import_sionna("sionna.phy").config
    torch.manual_seed(5)
    global_state, sionna_state = torch.get_rng_state(), config.torch_rng("cpu").get_state()
    first = drop_clients(scenario, 12, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(config.torch_rng("cpu").get_state(), sionna_state)
    torch.rand(3)  # another state of the global generators changes nothing
    config.torch_rng("cpu").manual_seed(123)
    assert _same(first, drop_clients(scenario, 12, torch.Generator().manual_seed(7)))
    other = drop_clients(scenario, 12, torch.Generator().manual_seed(8))
    assert not torch.equal(first.coupling_loss_db, other.coupling_loss_db)
    assert _same(first, Drop.from_state_dict(first.state_dict()))


def test_the_generator_is_given_back_after_an_error_inside_the_block():
    config = import_sionna("sionna.phy").config
    own = config.torch_rng("cpu")
    with pytest.raises(RuntimeError, match="inside"), sionna_draws_from(torch.Generator()):
        raise RuntimeError("inside")
    assert config.torch_rng("cpu") is own


@pytest.mark.parametrize("los", [True, False])
def test_outdoor_umi_without_shadowing_is_our_path_loss_formula(los):
    drop = drop_clients("umi", 40, torch.Generator().manual_seed(1), los=los, indoor=False, shadowing=False)
    assert not drop.indoor.any() and bool((drop.los == los).all())
    expected = umi_path_loss_db(drop.distance_2d_m, "umi_los" if los else "umi_nlos", 3.5e9)
    torch.testing.assert_close(drop.coupling_loss_db, expected, rtol=0, atol=0.01)


@pytest.mark.parametrize(
    "scenario, height, low, high, indoor_share",
    [("umi", 10.0, 10.0, 200 / math.sqrt(3), 0.8), ("uma", 25.0, 35.0, 500 / math.sqrt(3), 0.8)],
)
def test_the_sectors_geometry_and_indoor_share_are_the_scenarios(scenario, height, low, high, indoor_share):
    drop = drop_clients(scenario, 300, torch.Generator().manual_seed(2))
    assert drop.base_station_m.tolist() == [0.0, 0.0, height]
    assert bool((drop.positions_m[:, 2] == 1.5).all())
    assert low - 1e-6 <= float(drop.distance_2d_m.min()) and float(drop.distance_2d_m.max()) <= high + 1e-6
    ground = drop.positions_m[:, :2].norm(dim=1)
    torch.testing.assert_close(ground, drop.distance_2d_m, rtol=1e-12, atol=1e-9)
    # 300 Bernoulli(0.8) draws: a standard deviation of 0.023
    assert abs(float(drop.indoor.double().mean()) - indoor_share) < 5 * math.sqrt(0.16 / 300)


def test_indoor_clients_lose_the_penetration_and_shadowing_spreads_as_the_scenario_says():
    drop = drop_clients("umi", 60, torch.Generator().manual_seed(3), los=True, indoor=True, shadowing=False)
    basic = umi_path_loss_db(drop.distance_2d_m, "umi_los", 3.5e9)
    penetration = drop.path_loss_db - basic  # low-loss O2I below 6 GHz: 20 + 0.5 d_in, d_in in [0, 25] m
    assert float(penetration.min()) >= 20.0 - 0.01 and float(penetration.max()) <= 32.5 + 0.01
    # outdoor LOS UMi: shadow fading of 4 dB standard deviation around 0 (spatially correlated over
    # 10 m, so the sample's spread is checked loosely)
    shadowed = drop_clients("umi", 300, torch.Generator().manual_seed(4), los=True, indoor=False)
    assert 3.0 < float(shadowed.shadowing_db.std()) < 5.0 and abs(float(shadowed.shadowing_db.mean())) < 1.5
    torch.testing.assert_close(shadowed.coupling_gain, 10 ** (-shadowed.coupling_loss_db / 10))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scenario": "urban"}, r"scenario = 'urban' is not a 3GPP scenario here"),
        ({"num_clients": 0}, r"num_clients must be an integer >= 1"),
        ({"generator": None}, r"generator must be a CPU torch.Generator"),
        ({"carrier_frequency_hz": 1e6}, r"carrier_frequency_hz = 1000000.0 is out of range"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, message):
    arguments = {"scenario": "umi", "num_clients": 4, "generator": torch.Generator(), **kwargs}
    with pytest.raises(ValueError, match=message):
        drop_clients(**arguments)


def test_open_loop_with_alpha_1_and_no_limit_delivers_p0_per_resource_block():
    drop = drop_clients("uma", 12, torch.Generator().manual_seed(4))
    for blocks in (1, 51, 273):
        power = open_loop_power_dbm(
            drop.coupling_loss_db, blocks, alpha=1.0, p0_dbm=-95.0, max_dbm=300.0
        )  # no limit
        received_per_block = power - drop.coupling_loss_db - 10 * math.log10(blocks)
        assert torch.allclose(received_per_block, torch.full_like(power, -95.0), atol=1e-9)


def test_open_loop_caps_at_the_maximum_and_alpha_below_1_leaves_far_clients_weaker():
    loss = torch.tensor([80.0, 100.0, 120.0, 140.0], dtype=torch.float64)
    power = open_loop_power_dbm(loss, 51, alpha=0.8, p0_dbm=-80.0, max_dbm=23.0)
    expected = torch.clamp(-80.0 + 0.8 * loss + 10 * math.log10(51), max=23.0)
    assert torch.allclose(power, expected, atol=1e-9)
    received = power - loss
    assert bool((received[1:] < received[:-1]).all())  # fractional compensation: farther, weaker
    with pytest.raises(ValueError, match="alpha"):
        open_loop_power_dbm(loss, 51, alpha=1.5, p0_dbm=-80.0, max_dbm=23.0)


def test_drop_gains_are_the_drops_and_refuse_another_number_of_clients():
    gains = DropGains(torch.tensor([1.0, 2.0, 3.0]))
    assert gains(3, torch.Generator()).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="num_clients = 4"):
        gains(4, torch.Generator())
    with pytest.raises(ValueError, match="finite numbers > 0"):
        DropGains(torch.tensor([1.0, 0.0]))


def test_the_sector_element_has_its_38901_gains_ahead_at_the_half_power_angles_and_behind():
    bs, level = torch.tensor([0.0, 0.0, 10.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)

    def toward(azimuth_deg: float, elevation_deg: float = 0.0) -> torch.Tensor:
        a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
        unit = [math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)]
        return bs + 100 * torch.tensor(unit, dtype=torch.float64)

    gain = [float(sector_gain_db(toward(a), bs, level)) for a in (0.0, 32.5, -32.5, 65.0, 180.0)]
    assert gain == pytest.approx([8.0, 5.0, 5.0, -4.0, -22.0], abs=1e-9)  # 12 (phi / 65)^2 off 8 dBi
    assert float(sector_gain_db(toward(0.0, -32.5), bs, level)) == pytest.approx(5.0, abs=1e-9)
    # a downtilt of 10 degrees: boresight is 10 degrees below the horizon
    tilted = torch.tensor([0.0, math.radians(10.0), 0.0], dtype=torch.float64)
    assert float(sector_gain_db(toward(0.0, -10.0), bs, tilted)) == pytest.approx(8.0, abs=1e-9)
    # a bearing of 120 degrees turns it
    turned = torch.tensor([math.radians(120.0), 0.0, 0.0], dtype=torch.float64)
    assert float(sector_gain_db(toward(120.0), bs, turned)) == pytest.approx(8.0, abs=1e-9)


def test_a_hexagonal_grid_drop_serves_the_other_sectors_clients_better_from_their_own_sectors():
    drop = drop_clients("umi", 6, torch.Generator().manual_seed(2), num_rings=1, bs_pattern="sector")
    assert drop.num_clients == 6 and drop.num_rings == 1
    assert drop.interferer_loss_db.shape == (7 * 3 * 6 - 6,)  # 7 cells, 3 sectors, 6 clients each
    better = (drop.interferer_serving_loss_db < drop.interferer_loss_db).double().mean()
    assert float(better) > 0.8  # shadowing can make another sector look better to a few
    # the centre site's other two sectors are next door, but their elements face away: 8-30 dB apart
    co_sited = drop.interferer_loss_db[:12] - drop.interferer_serving_loss_db[:12]
    assert float(co_sited.median()) > 8
    again = drop_clients("umi", 6, torch.Generator().manual_seed(2), num_rings=1, bs_pattern="sector")
    assert _same(drop, again)
    with pytest.raises(ValueError, match="bs_pattern = 'sector'"):
        drop_clients("umi", 6, torch.Generator(), num_rings=1)


def test_the_38901_pattern_counts_the_sector_gain_in_the_single_sector_coupling_loss():
    omni = drop_clients("uma", 5, torch.Generator().manual_seed(9))
    sector = drop_clients("uma", 5, torch.Generator().manual_seed(9), bs_pattern="sector")
    assert omni.antenna_gain_db is None and sector.antenna_gain_db is not None
    assert torch.allclose(omni.coupling_loss_db - sector.coupling_loss_db, sector.antenna_gain_db)
    assert bool((sector.antenna_gain_db <= 8.0).all() and (sector.antenna_gain_db >= -22.0).all())
