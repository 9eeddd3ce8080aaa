"""Clients dropped in a 3GPP TR 38.901 sector (UMi, UMa, RMa) through Sionna's system-level
scenarios, with each client's large-scale coupling loss fixed for the run.

A drop is what stays fixed while a federated run goes on: where the clients are, whether each is
indoors and in line of sight, and its coupling loss, the basic path loss plus the outdoor-to-indoor
penetration loss minus the shadow fading (TR 38.901 sections 7.4.1-7.4.3; small-scale fading, drawn
anew between rounds, is not part of it). Sionna computes every term: ``gen_single_sector_topology``
drops the clients uniformly over one 120-degree sector of a hexagonal cell (UMi: inter-site distance
200 m, base station 10 m high, clients 10-115 m away; UMa 500 m, 25 m, 35-289 m; RMa 5,000 m, 35 m,
35-2,887 m; clients 1.5 m high, indoors with probability 0.8, 0.8 and 0.5), the scenario's
``set_topology`` draws the indoor distances and the LOS states, and its LSP generator the shadow
fading (spatially correlated over the clients of one drop, so they are drawn together) and the
penetration losses. Sionna combines them in its channel as the amplitude 10^(-PL / 20) sqrt(SF); the
coupling loss here is PL - 10 log10(SF) dB, without antenna gains. In RMa, outdoor clients are
pedestrians (Sionna's default would put them in cars, with a car penetration loss).

Every draw comes from the caller's generator (:func:`channels._sionna.sionna_draws_from`), on the
CPU in float64 whatever the run's device, so a drop is the same on any machine for the same seed;
Sionna's own generator and torch's global ones are left as they were. The draws depend on the number
of clients (each stage draws all of them at once).

>>> drop = drop_clients("umi", 4, torch.Generator().manual_seed(0))
>>> drop.coupling_loss_db.shape, bool((drop.coupling_loss_db > 60).all())
(torch.Size([4]), True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from channels._checks import check_count
from channels._sionna import import_sionna, sionna_draws_from

__all__ = ["SCENARIOS", "Drop", "drop_clients"]

SCENARIOS = ("umi", "uma", "rma")


@dataclass(frozen=True)
class Drop:
    """Where the clients of one run are and what separates each from the base station (float64
    tensors of shape ``[K]`` unless said otherwise, dB for losses)."""

    scenario: str
    carrier_frequency_hz: float
    positions_m: Tensor  # [K, 3]: x, y, height; the base station at (0, 0, its height)
    base_station_m: Tensor  # [3]
    indoor: Tensor  # bool
    los: Tensor  # bool: line of sight (indoor clients: that of the building's outer wall)
    distance_2d_m: Tensor
    path_loss_db: Tensor  # the basic path loss plus the penetration loss (indoors)
    shadowing_db: Tensor  # the shadow fading, 10 log10(SF): positive is a gain

    @property
    def num_clients(self) -> int:
        return int(self.indoor.shape[0])

    @property
    def coupling_loss_db(self) -> Tensor:
        """PL + penetration - shadowing: what separates each client's transmit power from the power
        the base station receives (one omnidirectional element at each end)."""
        return self.path_loss_db - self.shadowing_db

    @property
    def coupling_gain(self) -> Tensor:
        """10^(-coupling loss / 10): the received power over the transmitted, per client."""
        return torch.pow(10.0, -self.coupling_loss_db / 10)

    def state_dict(self) -> dict[str, Any]:
        """Everything of the drop (a run's checkpoint keeps it; :meth:`from_state_dict` restores it)."""
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Drop:
        return cls(**state)


def omni_element(carrier_frequency_hz: float) -> Any:
    """One vertically polarised omnidirectional element (Sionna's ``PanelArray`` of one element, CPU,
    float64): the antenna at each end of a drop's link, so the coupling loss has no antenna gain."""
    return import_sionna("sionna.phy.channel.tr38901").PanelArray(
        num_rows_per_panel=1,
        num_cols_per_panel=1,
        polarization="single",
        polarization_type="V",
        antenna_pattern="omni",
        carrier_frequency=carrier_frequency_hz,
        precision="double",
        device="cpu",
    )


def _check(scenario: object, num_clients: object, generator: object, carrier_frequency_hz: object) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario = {scenario!r} is not a 3GPP scenario here; expected one of {SCENARIOS}")
    check_count(num_clients, "num_clients")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (drops are drawn on the CPU, the same on any "
            f"machine), got {generator!r}"
        )
    if (
        isinstance(carrier_frequency_hz, bool)
        or not isinstance(carrier_frequency_hz, (int, float))
        or not (math.isfinite(carrier_frequency_hz) and 0.5e9 <= carrier_frequency_hz <= 100e9)
    ):
        raise ValueError(
            f"carrier_frequency_hz = {carrier_frequency_hz!r} is out of range; expected 0.5e9 to 100e9 "
            "(TR 38.901's range)"
        )


def drop_clients(
    scenario: str,
    num_clients: int,
    generator: torch.Generator,
    carrier_frequency_hz: float = 3.5e9,
    *,
    los: bool | None = None,
    indoor: bool | None = None,
    shadowing: bool = True,
) -> Drop:
    """``num_clients`` clients dropped in one sector of ``scenario`` ("umi", "uma" or "rma"), every
    draw from ``generator`` (a CPU generator; see the module docstring).

    ``los`` forces every outdoor client into line of sight (True) or out of it (False); ``None``
    draws it with the scenario's probability. ``indoor`` likewise puts every client indoors or
    outdoors (None: the scenario's share). ``shadowing=False`` leaves the shadow fading out (0 dB).
    """
    _check(scenario, num_clients, generator, carrier_frequency_hz)
    channel = import_sionna("sionna.phy.channel")
    tr38901 = import_sionna("sionna.phy.channel.tr38901")
    options = {"precision": "double", "device": "cpu"}  # as omni_element's

    common = {"enable_shadow_fading": shadowing, **options}
    with sionna_draws_from(generator):
        topology = list(channel.gen_single_sector_topology(1, num_clients, scenario, **options))
        if indoor is not None:
            topology[5] = torch.full((1, num_clients), indoor, dtype=torch.bool)
        ut, bs = omni_element(carrier_frequency_hz), omni_element(carrier_frequency_hz)
        extra: dict[str, Any] = {}
        if scenario == "umi":
            model = tr38901.UMiScenario(carrier_frequency_hz, "low", ut, bs, "uplink", **common)
        elif scenario == "uma":
            model = tr38901.UMaScenario(carrier_frequency_hz, "low", ut, bs, "uplink", **common)
        else:
            model = tr38901.RMaScenario(carrier_frequency_hz, ut, bs, "uplink", **common)
            extra["in_car"] = torch.zeros(1, num_clients, dtype=torch.bool)  # pedestrians
        model.set_topology(*topology, los=los, **extra)
        lsp_generator = tr38901.LSPGenerator(model)
        lsp_generator.topology_updated_callback()
        lsp = lsp_generator()
    shadow = 10 * torch.log10(lsp.sf[0, 0]) if shadowing else torch.zeros(num_clients, dtype=torch.float64)
    return Drop(
        scenario=scenario,
        carrier_frequency_hz=float(carrier_frequency_hz),
        positions_m=topology[0][0].clone(),
        base_station_m=topology[1][0, 0].clone(),
        indoor=model.indoor[0].clone(),
        los=model.los[0, 0].clone(),
        distance_2d_m=model.distance_2d[0, 0].clone(),
        path_loss_db=lsp.pathloss[0, 0].clone(),
        shadowing_db=shadow.clone(),
    )
