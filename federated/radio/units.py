"""A run in physical units (``channel.scenario``): the clients' drop in a 3GPP sector, the link
budget, each client's power cap, the channel's large-scale gains in the units the alignment rule
uses, and what a round costs in seconds, joules and dBm (docs/physics.md, "Physical units").

The over-the-air physics is the normalised mode's, in units where the noise variance per real use is
1 (N0 F / 2 joules): client k's large-scale gain is its received SNR per channel use at its power cap
P_k, averaged over the small-scale fading,

    beta_k = P_k G_k / (RE_rate N0 F),

and its budget for a pass of n real uses is n (one unit of energy per use: P_k for the pass's air
time), so the alignment scale of a block, eta = min_k sqrt(E_k) |h_k| / ||s_k||, is the power-limited
rule min_k sqrt(P_k T) |h_k| / ||s_k|| (average power over the pass, not peak). With the other
cells' interference (``channel.inter_cell: full``) the noise variance is 1 + I in these units and
the budget stays n (:attr:`PhysicalUnits.budget_snr_db`). A client that is not the weakest
transmits below its cap; what it spends, E_used,k of the n, is the share of its cap it used, so its
energy is E_used,k / n x P_k x T joules.

>>> from federated.config import load_config
>>> config = load_config(None, ["channel.scenario=umi", "power.energy=null", "power.max_dbm=23",
...                             "clients.num_clients=4"])
>>> units = PhysicalUnits(config, seed=0)
>>> [round(p, 1) for p in units.power_dbm.tolist()]   # everyone at 23 dBm (power.control: max)
[23.0, 23.0, 23.0, 23.0]
>>> round(units.budget.air_time_s(1000) * 1e6, 2)   # µs for 1,000 real uses over 51 resource blocks
31.42
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from channels import (
    ClusterFading,
    DropGains,
    LinkBudget,
    LinkOutcome,
    OFDMAUplink,
    cluster_drop,
    drop_clients,
    open_loop_power_dbm,
)
from federated.config import Config
from laser import RoundResult

__all__ = ["PhysicalUnits", "snr_per_use_db"]


class PhysicalUnits:
    """The drop, the link budget and each client's power cap of a run with ``channel.scenario`` (drawn
    from ``seed``, the run's topology stream: the same seed, the same drop on any machine)."""

    def __init__(self, config: Config, seed: int) -> None:
        channel, power = config.channel, config.power
        assert channel.scenario != "none" and power.max_dbm is not None  # the config's checks
        self.budget = LinkBudget(
            carrier_frequency_hz=channel.carrier_frequency_hz,
            subcarrier_spacing_hz=channel.subcarrier_spacing_hz,
            resource_blocks=channel.resource_blocks,
            noise_figure_db=channel.noise_figure_db,
            pilot_symbols=channel.pilot_symbols,
        )
        generator = torch.Generator().manual_seed(seed)
        # channel.name scenario: the drop's own clusters as the small-scale channel (channels.clusters),
        # their rays drawn after the drop (which stays the same)
        self.small_scale: ClusterFading | None = None
        if channel.name == "scenario":
            self.drop, self.small_scale = cluster_drop(
                channel.scenario,
                config.clients.num_clients,
                generator,
                channel.carrier_frequency_hz,
                num_antennas=channel.rx_antennas,
                speed_mps=channel.speed_mps,
                step_s=channel.round_duration_s,
                bs_pattern=channel.bs_pattern,
            )
        else:
            self.drop = drop_clients(
                channel.scenario,
                config.clients.num_clients,
                generator,
                channel.carrier_frequency_hz,
                bs_pattern=channel.bs_pattern,
                num_rings=channel.num_rings,
            )
        loss = self.drop.coupling_loss_db
        self.power_dbm = self._caps(config, loss)
        # the received SNR per use at the cap, over the fading's mean: the channel's large-scale gains
        noise_db = 10 * math.log10(self.budget.re_rate * self.budget.noise_energy_j) + 30  # dBm per RE rate
        self.snr_db = self.power_dbm - loss - noise_db
        self.gains = DropGains(torch.pow(10.0, self.snr_db / 10))
        # the other sectors' clients at their own caps, received here (inter_cell: full): their mean
        # power per use over the thermal noise, which the channel's noise variance adds (as noise)
        self._noise_db = noise_db
        self.interference = self._interference(config, channel.resource_blocks)

    def _interference(self, config: Config, resource_blocks: int) -> float:
        """The other sectors' clients at their own caps for ``resource_blocks`` each, received here
        (``inter_cell: full``): their mean power per resource element over the thermal noise, which the
        channel's noise variance adds (as noise); 0 without them. Over the whole band (analog) every
        client transmits on every RE; by OFDMA on M of RB blocks each RE carries one client at its
        M-block power, P_M G / (RE rate x M / RB), a share M / RB of the REs: P_M G / RE rate on
        average, the same formula at the M-block power."""
        others = self.drop.interferer_loss_db
        if config.channel.inter_cell != "full" or others is None:
            return 0.0
        assert self.drop.interferer_serving_loss_db is not None  # set with the losses
        caps = self._caps(config, self.drop.interferer_serving_loss_db, resource_blocks)
        return float(torch.pow(10.0, (caps - others - self._noise_db) / 10).sum())

    @staticmethod
    def _caps(config: Config, loss: Tensor, resource_blocks: int | None = None) -> Tensor:
        """The transmit power caps (dBm) of clients with the coupling losses ``loss`` to their own base
        station on ``resource_blocks`` (default the carrier's): ``power.max_dbm``, or open-loop power
        control's below it."""
        power, channel = config.power, config.channel
        assert power.max_dbm is not None  # the config's checks
        blocks = channel.resource_blocks if resource_blocks is None else resource_blocks
        if power.control == "open_loop":
            return open_loop_power_dbm(
                loss, blocks, alpha=power.alpha, p0_dbm=power.p0_dbm, max_dbm=power.max_dbm
            )
        return torch.full_like(loss, float(power.max_dbm))

    @property
    def budget_snr_db(self) -> float:
        """The SNR per use (dB, over the channel's noise variance) of a budget of one unit per channel
        use, the client's cap: 0 dB over the thermal noise alone, -10 log10(1 + I) with interference
        (``laser.PassOptions.snr_db`` counts it over the channel's whole noise variance)."""
        return -10 * math.log10(self.noise_var)

    @property
    def noise_var(self) -> float:
        """The noise variance per real use in these units: 1 (the thermal noise) plus the other
        sectors' interference where it is on."""
        return 1.0 + self.interference

    @property
    def power_w(self) -> Tensor:
        """Each client's cap in watts (float64 ``[K]``)."""
        return torch.pow(10.0, (self.power_dbm - 30) / 10)

    def uplink(self, config: Config) -> OFDMAUplink:
        """The digital methods' link (``digital.*``, :class:`channels.OFDMAUplink`): each of a round's
        clients gets M = ``RB // clients a round`` resource blocks and transmits on them at its cap,
        ``power.max_dbm`` or open-loop power control's for M resource blocks (so its power per
        resource element is its full-band one, higher where the full band's hit the cap); the other
        sectors' clients (``inter_cell: full``) share their bands alike."""
        channel, power, digital = config.channel, config.power, config.digital
        per_round = config.clients.per_round or config.clients.num_clients
        prbs = channel.resource_blocks // per_round
        assert power.max_dbm is not None and prbs >= 1  # the config's checks
        caps = self._caps(config, self.drop.coupling_loss_db, prbs)
        outer = digital.link == "nr" and (
            digital.adaptation == "outer"
            or (digital.adaptation == "auto" and channel.power_control == "imperfect_csi")
        )
        return OFDMAUplink(
            slot_s=1.0 / self.budget.slots_per_second,
            data_symbols=14 - channel.pilot_symbols,
            resource_blocks=channel.resource_blocks,
            power_w=torch.pow(10.0, (caps - 30) / 10),
            snr_scale=torch.pow(10.0, (caps - self.power_dbm) / 10) * (channel.resource_blocks / prbs),
            unit_j=self.power_w / (2 * self.budget.symbol_rate),
            # the other sectors' digital clients, by OFDMA too: at their M-block powers
            noise_var=1.0 + self._interference(config, prbs),
            prbs=prbs,
            link=digital.link,
            bler_target=digital.bler_target,
            harq_retx=digital.harq_retx,
            outer_loop=outer,
            delta_up=digital.olla_step_db,
        )

    def record(self, result: RoundResult, participants: Sequence[int]) -> dict[str, float]:
        """A round's cost in physical units: its air time (every pass's, the clients transmitting at
        once over the whole carrier), each participant's energy in joules and average transmit power
        over the air time in dBm (max and mean), and the participants' mean received SNR per use at
        their caps (dB, over the fading's mean). A round nobody took part in (hidden Poisson sampling)
        spends nothing and has no received SNR."""
        index = torch.tensor(list(participants), dtype=torch.long)
        cap = self.power_w[index]
        air_time = 0.0
        joules = torch.zeros(len(index), dtype=torch.float64)
        link: dict[str, float] = {}
        for one in result.passes:
            if one.link is not None:  # a digital pass: the slowest client's air time, each one's joules
                air_time += float(one.link.air_time_s.max()) if len(index) else 0.0
                joules += one.link.energy_j
                link = _link_record(one.link)
                continue
            if one.channel_uses == 0:
                continue
            seconds = self.budget.air_time_s(one.channel_uses)
            air_time += seconds
            joules += one.energy_used.double().cpu() / one.channel_uses * cap * seconds
        watts = joules / air_time if air_time > 0 else torch.zeros_like(joules)
        if len(index) == 0:
            return {"air_time_s": air_time, "energy_j_max": 0.0, "energy_j_mean": 0.0}
        record = {
            "air_time_s": air_time,
            "energy_j_max": float(joules.max()),
            "energy_j_mean": float(joules.mean()),
            "rx_snr_db": 10 * math.log10(float(self.gains.gains[index].mean())),  # the linear SNRs
            **link,
        }
        if bool((watts > 0).any()):
            record["tx_power_dbm_max"] = 10 * math.log10(float(watts.max())) + 30
            record["tx_power_dbm_mean"] = 10 * math.log10(float(watts.mean())) + 30
        return record

    def summary(self) -> dict[str, object]:
        """The cell and every client of the drop, for summary.json: the carrier, its bandwidth and
        noise power, the data symbol rate, and per client its distance, indoor and LOS states, coupling
        loss, power cap and mean received SNR per use at the cap."""
        drop, budget = self.drop, self.budget

        def rounded(values: Tensor, digits: int = 2) -> list[float]:
            return [round(float(v), digits) for v in values]

        return {
            "scenario": drop.scenario,
            "bandwidth_hz": budget.bandwidth_hz,
            "noise_power_dbm": round(budget.noise_power_dbm, 3),
            "symbol_rate": budget.symbol_rate,
            "bs_pattern": "omni" if drop.antenna_gain_db is None else "sector",
            "num_rings": drop.num_rings,
            "interferers": 0 if drop.interferer_loss_db is None else len(drop.interferer_loss_db),
            "interference_to_noise_db": (
                round(10 * math.log10(self.interference), 3) if self.interference > 0 else None
            ),
            "distance_2d_m": rounded(drop.distance_2d_m, 1),
            "indoor": [bool(v) for v in drop.indoor],
            "los": [bool(v) for v in drop.los],
            "coupling_loss_db": rounded(drop.coupling_loss_db),
            "power_dbm": rounded(self.power_dbm),
            "rx_snr_db": rounded(self.snr_db),
        }


def _link_record(link: LinkOutcome) -> dict[str, float]:
    """A digital round's link in the record: the clients' mean SINR per resource element (dB, of the
    linear SINRs), the clients not scheduled (an outage: NR's when no MCS meets the target, Shannon's
    at a gain of 0) and, over an NR link that sent anything, the mean MCS of the transmissions, the
    transport blocks' transmissions, the blocks lost after every retransmission and the share of
    transmissions that failed."""
    record = {"sinr_db_mean": 10 * math.log10(float(torch.pow(10.0, link.sinr_db / 10).mean()))}
    record["unscheduled"] = float((~link.scheduled).sum())
    sent = int(link.transmissions.sum())
    if sent > 0:  # an NR link's transport blocks (a Shannon link sends none)
        delivered = int((link.blocks - link.lost_blocks).sum())
        weights = link.transmissions.double()
        record.update(
            mcs_mean=float((torch.nan_to_num(link.mcs) * weights).sum() / weights.sum()),
            tb_transmissions=float(sent),
            tb_lost=float(link.lost_blocks.sum()),
            tb_failed_share=(sent - delivered) / sent,
        )
    return record


def snr_per_use_db(config: Config, channel_uses: int) -> float | None:
    """The normalised mode's SNR per channel use of a round of ``channel_uses`` real uses:
    10 log10(E / (noise_var x channel_uses)) for ``power.energy`` E, or ``power.snr_db`` itself; None
    where it is not finite (no noise, no energy, infinite energy, no uses)."""
    power, noise_var = config.power, config.channel.noise_var
    if power.snr_db is not None:
        return float(power.snr_db)
    energy = power.energy
    if energy is None or config.channel.name == "noiseless" or noise_var == 0 or channel_uses == 0:
        return None
    if not (math.isfinite(energy) and energy > 0):
        return None
    return 10 * math.log10(energy / (noise_var * channel_uses))
