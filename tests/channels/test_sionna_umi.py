"""Sionna's TR 38.901 UMi scenario against the project's own UMi path-loss formula
(``channels.fading.umi_path_loss_db``): with LOS or NLOS forced, outdoor clients and shadowing off,
the two agree to 0.01 dB from 10 m to 5 km, so the 3GPP scenarios that replace the formula start
from the same large-scale physics."""

import pytest
import torch

from channels._sionna import import_sionna
from channels.clusters import omni_panel
from channels.fading import umi_path_loss_db

CARRIER_HZ = 3.5e9
BS_HEIGHT_M, UT_HEIGHT_M = 10.0, 1.5


def _sionna_basic_path_loss(distances: torch.Tensor, los: bool) -> torch.Tensor:
    UMiScenario = import_sionna("sionna.phy.channel.tr38901").UMiScenario  # noqa: N806 (Sionna's class)

    scenario = UMiScenario(
        CARRIER_HZ,
        "low",
        ut_array=omni_panel(CARRIER_HZ),
        bs_array=omni_panel(CARRIER_HZ),
        direction="uplink",
        enable_shadow_fading=False,
        precision="double",
        device="cpu",
    )
    count = len(distances)
    ut_loc = torch.zeros(1, count, 3, dtype=torch.float64)
    ut_loc[0, :, 0] = distances
    ut_loc[0, :, 2] = UT_HEIGHT_M
    bs_loc = torch.tensor([[[0.0, 0.0, BS_HEIGHT_M]]], dtype=torch.float64)
    scenario.set_topology(
        ut_loc=ut_loc,
        bs_loc=bs_loc,
        ut_orientations=torch.zeros(1, count, 3, dtype=torch.float64),
        bs_orientations=torch.zeros(1, 1, 3, dtype=torch.float64),
        ut_velocities=torch.zeros(1, count, 3, dtype=torch.float64),
        in_state=torch.zeros(1, count, dtype=torch.bool),
        los=los,
    )
    return scenario.basic_pathloss[0, 0]


@pytest.mark.parametrize("los", [True, False])
def test_sionnas_umi_path_loss_is_the_formulas_from_10_m_to_5_km(los):
    distances = torch.logspace(1, torch.log10(torch.tensor(5000.0)).item(), 60, dtype=torch.float64)
    ours = umi_path_loss_db(distances, "umi_los" if los else "umi_nlos", CARRIER_HZ, BS_HEIGHT_M, UT_HEIGHT_M)
    theirs = _sionna_basic_path_loss(distances, los)
    assert theirs.shape == ours.shape
    torch.testing.assert_close(theirs, ours, rtol=0, atol=0.01)
    # and the range spans both sides of the LOS breakpoint (4 (hBS - 1)(hUT - 1) fc / c = 210 m)
    assert distances.min() <= 10.0 + 1e-9 and distances.max() >= 5000.0 - 1e-6
