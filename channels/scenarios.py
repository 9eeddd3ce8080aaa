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
coupling loss here is PL - 10 log10(SF) dB, minus the base station's element gain toward the client
with ``bs_pattern="sector"`` (TR 38.901's sector element, :func:`sector_gain_db`; "omni", the
default, counts none). In RMa, outdoor clients are pedestrians (Sionna's default would put them in
cars, with a car penetration loss). ``num_rings`` > 0 drops them in a hexagonal grid of cells
instead, with the other sectors' clients (:func:`drop_clients`).

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from channels._checks import check_count
from channels._sionna import import_sionna, sionna_draws_from
from channels.clusters import ClusterFading, omni_panel

__all__ = [
    "BS_PATTERNS",
    "SCENARIOS",
    "Drop",
    "DropGains",
    "cluster_drop",
    "drop_clients",
    "open_loop_power_dbm",
    "sector_gain_db",
]

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
    # the base station's element gain toward each client (dBi; None: omnidirectional, 0 dB)
    antenna_gain_db: Tensor | None = None
    # a hexagonal grid (num_rings > 0): the other sectors' clients, J of them (None without)
    num_rings: int = 0
    interferer_loss_db: Tensor | None = None  # [J] each one's coupling loss to this sector's base station
    interferer_serving_loss_db: Tensor | None = None  # [J] and to its own sector's (its power control's)

    @property
    def num_clients(self) -> int:
        return int(self.indoor.shape[0])

    @property
    def coupling_loss_db(self) -> Tensor:
        """PL + penetration - shadowing - the base station's element gain: what separates each client's
        transmit power from the power the base station receives (an omnidirectional element at the
        client's end)."""
        loss = self.path_loss_db - self.shadowing_db
        return loss if self.antenna_gain_db is None else loss - self.antenna_gain_db

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


BS_PATTERNS = ("omni", "sector")
SECTOR_MAX_GAIN_DB = 8.0  # TR 38.901 Table 7.3-1: the element's maximum directional gain
SECTOR_HALF_POWER_DEG = 65.0  # its 3 dB beamwidth, horizontally and vertically
SECTOR_FLOOR_DB = 30.0  # its front-to-back ratio and side-lobe level


def sector_gain_db(ut_loc: Tensor, bs_loc: Tensor, bs_orientation: Tensor) -> Tensor:
    """The gain in dBi of a base station's TR 38.901 sector element (Table 7.3-1: 65-degree 3 dB
    beamwidth, 30 dB front-to-back ratio, 8 dBi) toward each client, from the line of sight between
    them: the direction's zenith and azimuth angles in the element's frame, after the base station's
    bearing alpha and mechanical downtilt beta (``bs_orientation``'s first two entries, radians, as
    Sionna's topologies give them; TR 38.901 eq. 7.1-7 and 7.1-8 with no slant),

        A(theta', phi') = -min(12 ((theta' - 90) / 65)^2 + 12 (phi' / 65)^2, 30) + 8    dBi.

    Shapes broadcast: ``ut_loc`` and ``bs_loc`` ``[..., 3]`` (metres), ``bs_orientation`` ``[..., 3]``.

    >>> bs, bearing = torch.tensor([0.0, 0.0, 10.0]), torch.tensor([0.0, 0.0, 0.0])
    >>> ahead, behind = torch.tensor([100.0, 0.0, 10.0]), torch.tensor([-100.0, 0.0, 10.0])
    >>> float(sector_gain_db(ahead, bs, bearing)), float(sector_gain_db(behind, bs, bearing))
    (8.0, -22.0)
    """
    d = (ut_loc - bs_loc).double()
    azimuth = torch.atan2(d[..., 1], d[..., 0])
    zenith = torch.atan2(torch.linalg.vector_norm(d[..., :2], dim=-1), d[..., 2])
    bearing, downtilt = bs_orientation[..., 0].double(), bs_orientation[..., 1].double()
    cos_zenith = torch.cos(downtilt) * torch.cos(zenith) + torch.sin(downtilt) * torch.cos(
        azimuth - bearing
    ) * torch.sin(zenith)
    local_zenith = torch.rad2deg(torch.arccos(cos_zenith.clamp(-1.0, 1.0)))
    local_azimuth = torch.rad2deg(
        torch.atan2(
            torch.sin(azimuth - bearing) * torch.sin(zenith),
            torch.cos(downtilt) * torch.sin(zenith) * torch.cos(azimuth - bearing)
            - torch.sin(downtilt) * torch.cos(zenith),
        )
    )
    vertical = 12 * ((local_zenith - 90.0) / SECTOR_HALF_POWER_DEG) ** 2
    horizontal = 12 * (local_azimuth / SECTOR_HALF_POWER_DEG) ** 2
    return SECTOR_MAX_GAIN_DB - torch.clamp(
        torch.clamp(vertical, max=SECTOR_FLOOR_DB) + torch.clamp(horizontal, max=SECTOR_FLOOR_DB),
        max=SECTOR_FLOOR_DB,
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
    bs_pattern: str = "omni",
    num_rings: int = 0,
) -> Drop:
    """``num_clients`` clients dropped in one sector of ``scenario`` ("umi", "uma" or "rma"), every
    draw from ``generator`` (a CPU generator; see the module docstring).

    ``los`` forces every outdoor client into line of sight (True) or out of it (False); ``None``
    draws it with the scenario's probability. ``indoor`` likewise puts every client indoors or
    outdoors (None: the scenario's share). ``shadowing=False`` leaves the shadow fading out (0 dB).
    ``bs_pattern="sector"`` counts the base station's sector element in each coupling loss
    (:func:`sector_gain_db`; "omni": none, 0 dBi).

    ``num_rings`` > 0 drops them in the first sector of the centre cell of a hexagonal grid of that
    many rings around it (Sionna's ``gen_hexgrid_topology``: 3 sectors a site, 7 cells for one ring,
    19 for two; distances with wraparound), and as many clients in every other sector: the drop then
    also holds each of those clients' coupling losses to this sector's base station and to its own
    (:attr:`Drop.interferer_loss_db`, what interference from the other sectors needs). A grid needs
    the sector pattern: with omnidirectional elements a site's three sectors would hear every client
    alike.
    """
    return _drop(
        scenario,
        num_clients,
        generator,
        carrier_frequency_hz,
        los,
        indoor,
        shadowing,
        bs_pattern,
        num_rings,
        0.0,
    )[0]


def cluster_drop(
    scenario: str,
    num_clients: int,
    generator: torch.Generator,
    carrier_frequency_hz: float = 3.5e9,
    *,
    num_antennas: int = 1,
    speed_mps: float = 3 / 3.6,
    step_s: float = 1.0,
    los: bool | None = None,
    indoor: bool | None = None,
    shadowing: bool = True,
    bs_pattern: str = "omni",
) -> tuple[Drop, ClusterFading]:
    """The drop of :func:`drop_clients` (one sector; the same drop for the same generator) and its
    clients' small-scale channel to ``num_antennas`` antennas from the drop's own clusters
    (:class:`~channels.clusters.ClusterFading`, time steps ``step_s`` seconds apart, the clients moving
    at ``speed_mps``, 3 km/h by default as in TR 38.901's calibration), the rays drawn from
    ``generator`` after the drop.

    >>> drop, fading = cluster_drop("umi", 3, torch.Generator().manual_seed(0), num_antennas=4)
    >>> same = drop_clients("umi", 3, torch.Generator().manual_seed(0))
    >>> torch.equal(drop.coupling_loss_db, same.coupling_loss_db)
    True
    >>> fading(torch.arange(3), torch.tensor([0])).shape   # clients, steps, antennas
    torch.Size([3, 1, 4])
    """
    drop, model, lsp = _drop(
        scenario,
        num_clients,
        generator,
        carrier_frequency_hz,
        los,
        indoor,
        shadowing,
        bs_pattern,
        0,
        speed_mps,
    )
    return drop, ClusterFading(model, lsp, generator, num_antennas=num_antennas, step_s=step_s)


def _drop(
    scenario: str,
    num_clients: int,
    generator: torch.Generator,
    carrier_frequency_hz: float,
    los: bool | None,
    indoor: bool | None,
    shadowing: bool,
    bs_pattern: str,
    num_rings: int,
    speed_mps: float,
) -> tuple[Drop, Any, Any]:
    """:func:`drop_clients`'s drop, with the Sionna scenario object it set and its large-scale
    parameters (None, None for a grid). ``speed_mps`` gives every client that speed in a random planar
    direction (Sionna's topology draws the direction whatever the speed, so the drop is the same for
    any speed): what :func:`cluster_drop`'s channel turns with."""
    _check(scenario, num_clients, generator, carrier_frequency_hz)
    if isinstance(speed_mps, bool) or not (
        isinstance(speed_mps, (int, float)) and math.isfinite(speed_mps) and 0 <= speed_mps <= 140
    ):
        raise ValueError(f"speed_mps = {speed_mps!r} is out of range; expected a number of m/s in [0, 140]")
    if bs_pattern not in BS_PATTERNS:
        raise ValueError(f"bs_pattern = {bs_pattern!r} is not accepted; expected one of {BS_PATTERNS}")
    check_count(num_rings, "num_rings", minimum=0)
    if num_rings > 0:
        if bs_pattern != "sector":
            raise ValueError(
                f"num_rings = {num_rings} needs bs_pattern = 'sector' (with omnidirectional elements a "
                "site's three sectors would hear every client alike)"
            )
        grid = _hexgrid_drop(
            scenario, num_clients, generator, carrier_frequency_hz, los, indoor, shadowing, num_rings
        )
        return grid, None, None
    channel = import_sionna("sionna.phy.channel")
    speed = float(speed_mps)
    with sionna_draws_from(generator):
        topology = list(
            channel.gen_single_sector_topology(
                1,
                num_clients,
                scenario,
                min_ut_velocity=speed,
                max_ut_velocity=speed,
                precision="double",
                device="cpu",
            )
        )
        if indoor is not None:
            topology[5] = torch.full((1, num_clients), indoor, dtype=torch.bool)
        model, lsp = _large_scale(scenario, carrier_frequency_hz, shadowing, topology, los)
    shadow = 10 * torch.log10(lsp.sf[0, 0]) if shadowing else torch.zeros(num_clients, dtype=torch.float64)
    drop = Drop(
        scenario=scenario,
        carrier_frequency_hz=float(carrier_frequency_hz),
        positions_m=topology[0][0].clone(),
        base_station_m=topology[1][0, 0].clone(),
        indoor=model.indoor[0].clone(),
        los=model.los[0, 0].clone(),
        distance_2d_m=model.distance_2d[0, 0].clone(),
        path_loss_db=lsp.pathloss[0, 0].clone(),
        shadowing_db=shadow.clone(),
        antenna_gain_db=(
            None
            if bs_pattern == "omni"
            else sector_gain_db(topology[0][0], topology[1][0, 0], topology[3][0, 0]).clone()
        ),
    )
    return drop, model, lsp


def _large_scale(
    scenario: str,
    carrier_frequency_hz: float,
    shadowing: bool,
    topology: Sequence[Tensor],
    los: bool | None,
    **more: Tensor,
) -> tuple[Any, Any]:
    """Sionna's system-level scenario object (uplink, omnidirectional elements, CPU, float64) set to
    ``topology`` (a topology generator's first six outputs; ``more``: its other ``set_topology``
    arguments), and the large-scale parameters its LSP generator draws for it (under the caller's
    :func:`~channels._sionna.sionna_draws_from`). In RMa the outdoor clients are pedestrians."""
    tr38901 = import_sionna("sionna.phy.channel.tr38901")
    ut, bs = omni_panel(carrier_frequency_hz), omni_panel(carrier_frequency_hz)
    common = {"enable_shadow_fading": shadowing, "precision": "double", "device": "cpu"}
    if scenario == "umi":
        model = tr38901.UMiScenario(carrier_frequency_hz, "low", ut, bs, "uplink", **common)
    elif scenario == "uma":
        model = tr38901.UMaScenario(carrier_frequency_hz, "low", ut, bs, "uplink", **common)
    else:
        model = tr38901.RMaScenario(carrier_frequency_hz, ut, bs, "uplink", **common)
        more = {**more, "in_car": torch.zeros(1, topology[0].shape[1], dtype=torch.bool)}
    model.set_topology(*topology[:6], los=los, **more)
    lsp_generator = tr38901.LSPGenerator(model)
    lsp_generator.topology_updated_callback()
    return model, lsp_generator()


def _hexgrid_drop(
    scenario: str,
    num_clients: int,
    generator: torch.Generator,
    carrier_frequency_hz: float,
    los: bool | None,
    indoor: bool | None,
    shadowing: bool,
    num_rings: int,
) -> Drop:
    """:func:`drop_clients` over a hexagonal grid: the clients of sector 0 of the centre cell (the
    grid's clients come cell by cell, sector by sector, ``num_clients`` a sector), and the others'
    coupling losses to it and to their own sectors, the sector elements' gains counted."""
    sys = import_sionna("sionna.sys")
    with sionna_draws_from(generator):
        topology = list(
            sys.gen_hexgrid_topology(1, num_rings, num_clients, scenario, precision="double", device="cpu")
        )
        ut_loc, bs_loc, bs_orient, virtual = topology[0], topology[1], topology[3], topology[7]
        total = ut_loc.shape[1]
        if indoor is not None:
            topology[5] = torch.full((1, total), indoor, dtype=torch.bool)
        model, lsp = _large_scale(
            scenario, carrier_frequency_hz, shadowing, topology, los, bs_virtual_loc=virtual
        )
    shadow = 10 * torch.log10(lsp.sf[0]) if shadowing else torch.zeros_like(lsp.pathloss[0])  # [BS, UT]
    # each sector's element toward each client, from the sector's mirror site nearest that client
    gain = sector_gain_db(ut_loc[0][None], virtual[0], bs_orient[0][:, None])  # [BS, UT]
    loss = lsp.pathloss[0] - shadow - gain  # every client's coupling loss to every sector
    ours, others = torch.arange(num_clients), torch.arange(num_clients, total)
    serving = others // num_clients  # each other client's own sector, in the grid's order
    return Drop(
        scenario=scenario,
        carrier_frequency_hz=float(carrier_frequency_hz),
        positions_m=ut_loc[0, ours].clone(),
        base_station_m=bs_loc[0, 0].clone(),
        indoor=model.indoor[0, ours].clone(),
        los=model.los[0, 0, ours].clone(),
        distance_2d_m=model.distance_2d[0, 0, ours].clone(),
        path_loss_db=lsp.pathloss[0, 0, ours].clone(),
        shadowing_db=shadow[0, ours].clone(),
        antenna_gain_db=gain[0, ours].clone(),
        num_rings=num_rings,
        interferer_loss_db=loss[0, others].clone(),
        interferer_serving_loss_db=loss[serving, others].clone(),
    )


def open_loop_power_dbm(
    coupling_loss_db: Tensor,
    resource_blocks: int,
    *,
    alpha: float,
    p0_dbm: float,
    max_dbm: float,
) -> Tensor:
    """Each client's transmit power in dBm under 3GPP open-loop uplink power control (TS 38.213
    section 7.1.1, through Sionna's ``open_loop_uplink_power_control``), over ``resource_blocks``
    allocated resource blocks:

        P_k = min(P0 + alpha PL_k + 10 log10 M_RB, P_max)        dBm,

    with PL_k the coupling loss (the loss the client measures on the downlink's reference signals:
    path loss, penetration and shadowing). With alpha = 1 below P_max the base station receives P0
    per resource block from every client; alpha < 1 compensates only part of the loss, so a farther
    client arrives weaker (fractional power control: less interference to other cells, less power
    spent at the cell edge). As Sionna's, P0 is per resource block of the carrier's numerology mu:
    TS 38.213's 10 log10(2^mu M_RB) takes P0 per 15 kHz block, 10 log10(2^mu) dB lower; closed-loop
    corrections and the transport format's offset are left out.

    >>> caps = open_loop_power_dbm(torch.tensor([100.0, 140.0]), 51, alpha=1.0, p0_dbm=-100.0, max_dbm=23.0)
    >>> [round(float(p), 2) for p in caps]   # -100 + 100 + 10 log10(51); the far client at its maximum
    [17.08, 23.0]
    """
    check_count(resource_blocks, "resource_blocks", minimum=1)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha = {alpha!r} is out of range; expected a number in [0, 1]")
    loss = torch.as_tensor(coupling_loss_db, dtype=torch.float64).cpu()
    sys = import_sionna("sionna.sys")
    watts = sys.open_loop_uplink_power_control(
        torch.pow(10.0, loss / 10),
        torch.full(loss.shape, 12 * resource_blocks, dtype=torch.int64),
        alpha=float(alpha),
        p0_dbm=float(p0_dbm),
        ut_max_power_dbm=float(max_dbm),
        precision="double",
    )
    return 10 * torch.log10(watts.to(torch.float64).cpu()) + 30


class DropGains(nn.Module):
    """Fixed large-scale power gains, one per client of a run (a drop's), as a
    :class:`~channels.FadingChannel`'s ``path_loss``: called with the run's K and a generator it
    returns them (on the generator's device) and draws nothing.

    >>> gains = DropGains(torch.tensor([2.0, 0.5]))
    >>> gains(2, torch.Generator()).tolist()
    [2.0, 0.5]
    """

    def __init__(self, gains: Tensor) -> None:
        super().__init__()
        gains = torch.as_tensor(gains, dtype=torch.float64)
        if gains.dim() != 1 or not bool((torch.isfinite(gains) & (gains > 0)).all()):
            raise ValueError("gains must be a [K] tensor of finite numbers > 0")
        self.gains = gains.clone()

    def forward(self, num_clients: int, generator: torch.Generator) -> Tensor:
        """The gains, for the run's ``num_clients`` (their number: anything else is refused)."""
        if num_clients != len(self.gains):
            raise ValueError(
                f"num_clients = {num_clients}, but these gains are the {len(self.gains)} of a drop"
            )
        return self.gains.to(generator.device)
