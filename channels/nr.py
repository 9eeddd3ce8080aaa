"""The digital methods' uplink in physical units: OFDMA with equal resource-block shares, each
client's message at the Shannon rate (the ideal bound) or over a 5G NR PUSCH link (docs/physics.md,
section 15).

The round's K clients share the carrier by OFDMA: each gets ``floor(RB / K)`` resource blocks (the
``RB mod K`` left over stay unused) for as many slots as its message needs, all clients at once, so
the round's air time is the slowest client's. A client transmits at its power cap over its share
(what it spends is its power times the slots it occupies: pilots included, as an analog pass counts
them), so its SNR per resource element is its full-band SNR times ``RB / M`` times the ratio of its
OFDMA power to its full-band power (:class:`OFDMAUplink`'s ``snr_scale``).

- ``shannon``: the client's data REs carry log2(1 + SINR) bits each, error-free; its air time is
  bits / (that rate x its data REs per second), not rounded to slots: the ideal bound. It schedules
  the clients the NR link would (below the SINR at which MCS 0 meets the target: an outage), so the
  two links differ in their coding, not in whom they serve.
- ``nr``: link adaptation picks the MCS of PUSCH table 1 (TS 38.214 table 5.1.3.1-1, 64QAM) with
  the highest rate whose transport-block error rate (TBLER) at the client's SINR as the scheduler
  knows it stays at most ``bler_target`` (Sionna's ``InnerLoopLinkAdaptation``), minus an outer-loop
  offset driven by the HARQ feedback of earlier rounds when the CSI is imperfect
  (:class:`OuterLoop`), block by block: each new block takes the MCS the offset after the
  earlier blocks' feedback gives. One transport block a slot on the client's data REs (TBS per TS 38.214
  5.1.3.2, Sionna's ``calculate_tb_size``); the message is cut into ceil(bits / TBS) blocks, the last
  padded. Each transmission of a block succeeds with probability 1 - TBLER(MCS, SINR) (Sionna's
  ``PHYAbstraction``, our BLER tables), drawn from the run's own generator; a failed block is sent
  again up to ``harq_retx`` times, each a slot of air time and energy, each independent (no soft
  combining of retransmissions: conservative for digital). A block still lost after them is lost.
  A client for which not even MCS 0 meets the target at the SINR the scheduler expects is not
  scheduled this round (an outage: it sends nothing, spends nothing, and its message is lost whole);
  one that the outer loop's feedback takes there during the round gets no more grants (the rest of
  its message is lost).

The SINR of a round is the client's over its whole allocation (flat fading: one gain a client and
round); the BLER tables (``channels/nr_tables``, made with Sionna's own LDPC and QAM chain over AWGN,
``benchmarks/nr_bler_tables.py``) are looked up at the code-block size of the transport block, and
a block of more code blocks fails when any does, TBLER = 1 - (1 - BLER)^C.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["LinkOutcome", "NR_TABLES", "OFDMAUplink", "OuterLoop", "nr_link_tables"]

F64 = torch.float64
SLOT_SYMBOLS = 14  # OFDM symbols a slot, normal cyclic prefix
RE_PER_PRB = 12  # subcarriers of a resource block
NR_TABLES = Path(__file__).resolve().parent / "nr_tables" / "PUSCH_table1.json"
MCS_TABLE = 1  # PUSCH table 1 (TS 38.214 table 5.1.3.1-1, 64QAM)
MCS_CATEGORY = 0  # PUSCH
NUM_MCS = 28  # MCS 0..27 of table 1: our tables' (TS 38.214 also has MCS 28, R 948/1024; 29..31 reserved)


@lru_cache(maxsize=4)
def nr_link_tables(path: str = str(NR_TABLES)) -> Any:
    """Sionna's ``PHYAbstraction`` over the BLER tables at ``path`` (PUSCH, table 1), interpolated on
    a 0.05-dB grid from -15 to 35 dB and code-block sizes 24..8448 in steps of 50 (cached: built once
    a process)."""
    from sionna.sys import PHYAbstraction

    if not Path(path).is_file():  # Sionna would warn and build an empty table
        raise FileNotFoundError(
            f"the NR BLER tables {path} do not exist (benchmarks/nr_bler_tables.py makes them)"
        )
    with _one_thread():
        return PHYAbstraction(
            load_bler_tables_from=[path],
            snr_db_interp_min_max_delta=(-15.0, 35.01, 0.05),
            cbs_interp_min_max_delta=(24, 8448, 50),
            precision="single",
            device="cpu",
        )


class _one_thread:
    """Sionna's small calls on one CPU thread: on a busy 2-core machine two threads are 50-100x slower."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)


@dataclass
class OuterLoop:
    """Outer-loop link adaptation (Sionna's ``OuterLoopLinkAdaptation`` rule): an SINR offset per
    client (dB) that each transmission's HARQ feedback moves, up by ``delta_up`` on a NACK and down by
    ``delta_up T / (1 - T)`` on an ACK, so that in the long run the share of failed transmissions is
    the target T whatever the bias of the SINR the scheduler knows (then 0 = sum of the steps =
    delta_up (NACKs - T / (1 - T) ACKs)). Clamped to [-20, 20] dB, as Sionna's. The offsets stay
    with the run (a client's offset carries over to its next round).

    >>> loop = OuterLoop(2, bler_target=0.1, delta_up=0.5)
    >>> offset = loop.feedback(loop.offset_db, torch.tensor([False, True]), torch.tensor([True, True]))
    >>> [round(v, 6) for v in offset.tolist()]   # a NACK: +0.5; an ACK: -0.5 x 0.1 / 0.9
    [0.5, -0.055556]
    """

    num_clients: int
    bler_target: float = 0.1
    delta_up: float = 0.5
    offset_db: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.offset_db = torch.zeros(self.num_clients, dtype=F64)

    def feedback(self, offset: Tensor, success: Tensor, sent: Tensor) -> Tensor:
        """The offsets ``offset`` after one transmission of the clients where ``sent`` (ACK where
        ``success``); the others keep theirs."""
        down = self.delta_up * self.bler_target / (1 - self.bler_target)
        step = torch.where(success, -down, self.delta_up)
        return torch.where(sent, (offset + step).clamp(-20.0, 20.0), offset)


@dataclass(frozen=True)
class LinkOutcome:
    """One round of the OFDMA uplink, per client of the round (all ``[K]`` unless said).

    Fields:
        blocks: int64, the transport blocks it sent (0 on a Shannon link, or for 0 bits).
        lost: per client, the bit ranges ``[start, end)`` of its message that did not arrive: the
            transport blocks lost after every retransmission, and what it could not send (an outage:
            the whole message; none on a Shannon link that carried it).
        lost_blocks: int64, how many of its blocks were lost.
        transmissions: int64, transport-block transmissions, retransmissions included (0 on Shannon).
        air_time_s: float64, the seconds the client occupies its share (the round's: their max).
        energy_j: float64, the energy it transmits (its power times its air time).
        sinr_db: float64, its SINR per resource element this round (the true one).
        mcs: float64, its mean MCS index over its transmissions (NaN on a Shannon link or when it
            sent nothing).
        channel_uses: float64, the real channel uses (two a resource element) its data occupied,
            retransmissions and the last block's padding included.
        scheduled: bool, whether it was scheduled (False: an NR link's outage, nothing sent).
        prbs: resource blocks each client had.
    """

    blocks: Tensor
    lost: list[list[tuple[int, int]]]
    lost_blocks: Tensor
    transmissions: Tensor
    air_time_s: Tensor
    energy_j: Tensor
    sinr_db: Tensor
    mcs: Tensor
    channel_uses: Tensor
    scheduled: Tensor
    prbs: int

    @property
    def delivered(self) -> Tensor:
        """``[K]`` bool: every bit of the client's message arrived."""
        return torch.tensor([not lost for lost in self.lost], dtype=torch.bool)


@dataclass(frozen=True)
class _Tables:
    """What the NR link needs of the BLER tables for one allocation of ``res`` data REs a slot: per
    MCS its transport-block size, and its TBLER on Sionna's SNR grid (``[28, S]``)."""

    tbs: Tensor  # [28] int64
    tbler: Tensor  # [28, S] float64
    best: Tensor  # [S] int64: the highest MCS whose TBLER <= the target there (-1: none)
    abstraction: Any

    def index(self, sinr_db: Tensor) -> Tensor:
        """The SNR grid's index of each SINR (dB), as Sionna's lookup rounds it."""
        with _one_thread():
            return self.abstraction.get_idx_from_grid(sinr_db.float(), "snr").to(torch.long)


class OFDMAUplink:
    """The digital clients' uplink in physical units (module docstring): OFDMA, equal shares.

    Args:
        slot_s: a slot's duration (1 ms / 2^mu).
        data_symbols: OFDM symbols a slot that carry data (14 less the pilots).
        resource_blocks: the carrier's RB.
        power_w: ``[K_all]`` each client's transmit power on its share (W), by client index.
        unit_j: ``[K_all]`` the joules of one unit of energy in the analog pass's units (the
            client's full-band cap for one real channel use), to record a round's energy in them.
        snr_scale: ``[K_all]`` what multiplies a client's channel power gain |h|^2 (in the analog
            pass's units: its received SNR per use at its full-band cap) to give its SNR per resource
            element on its share at ``power_w``, over the thermal noise.
        noise_var: the noise (and interference) variance in those units (1 + I).
        link: ``shannon`` or ``nr``.
        bler_target: the NR link's block-error target for link adaptation (``digital.bler_target``).
        harq_retx: retransmissions of a failed transport block (``digital.harq_retx``).
        outer_loop: adapt with the outer loop's offset too (:class:`OuterLoop`).
        delta_up: the outer loop's step up on a NACK, dB (``digital.olla_step_db``).
        tables: the BLER tables (default ours, :data:`NR_TABLES`).
        prbs: the resource blocks of each client's share that ``power_w`` and ``snr_scale`` are for
            (``send`` refuses a round whose clients would get another share); ``None``: RB // K of
            each round's K clients.
    """

    def __init__(
        self,
        *,
        slot_s: float,
        data_symbols: int,
        resource_blocks: int,
        power_w: Tensor,
        snr_scale: Tensor,
        unit_j: Tensor | None = None,
        noise_var: float = 1.0,
        link: Literal["shannon", "nr"] = "nr",
        bler_target: float = 0.1,
        harq_retx: int = 3,
        outer_loop: bool = False,
        delta_up: float = 0.5,
        tables: str | Path | None = None,
        prbs: int | None = None,
    ) -> None:
        if link not in ("shannon", "nr"):
            raise ValueError(f"link must be shannon or nr, got {link!r}")
        if not 0 < bler_target < 1:
            raise ValueError(f"bler_target must be in (0, 1), got {bler_target!r}")
        if isinstance(harq_retx, bool) or not isinstance(harq_retx, int) or harq_retx < 0:
            raise ValueError(f"harq_retx must be an integer >= 0, got {harq_retx!r}")
        if not (slot_s > 0 and 0 < data_symbols <= SLOT_SYMBOLS and resource_blocks >= 1):
            raise ValueError(
                f"slot_s > 0, data_symbols in 1..14 and resource_blocks >= 1, got {slot_s}, "
                f"{data_symbols}, {resource_blocks}"
            )
        self.slot_s, self.data_symbols, self.resource_blocks = (
            float(slot_s),
            int(data_symbols),
            resource_blocks,
        )
        self.power_w = power_w.to(F64).cpu()
        self.snr_scale = snr_scale.to(F64).cpu()
        self.unit_j = torch.ones_like(self.power_w) if unit_j is None else unit_j.to(F64).cpu()
        if not (self.power_w.shape == self.snr_scale.shape == self.unit_j.shape and self.power_w.dim() == 1):
            raise ValueError(
                f"power_w, snr_scale and unit_j must all be [K], got {tuple(self.power_w.shape)}, "
                f"{tuple(self.snr_scale.shape)} and {tuple(self.unit_j.shape)}"
            )
        self.noise_var = float(noise_var)
        self.link = link
        self.bler_target, self.harq_retx = float(bler_target), int(harq_retx)
        self.tables_path = str(NR_TABLES if tables is None else tables)
        self._tables: dict[int, _Tables] = {}
        self.outer = OuterLoop(len(self.power_w), self.bler_target, delta_up) if outer_loop else None
        if prbs is not None and not (isinstance(prbs, int) and 1 <= prbs <= resource_blocks):
            raise ValueError(f"prbs must be an integer in 1..{resource_blocks}, got {prbs!r}")
        self.share = prbs

    def prbs(self, num_clients: int) -> int:
        """Each client's resource blocks when ``num_clients`` share the carrier (refused below one)."""
        share = self.resource_blocks // max(num_clients, 1)
        if self.share is not None and share != self.share and num_clients > 0:
            raise ValueError(
                f"{num_clients} clients would share {self.resource_blocks} resource blocks {share} each, but "
                f"this uplink's powers and SNRs are for {self.share} each"
            )
        if share < 1:
            raise ValueError(
                f"{num_clients} clients cannot share {self.resource_blocks} resource blocks by OFDMA "
                "(at least one each)"
            )
        return share

    def send(
        self,
        bits: Tensor,
        clients: Tensor,
        gain: Tensor,
        known_gain: Tensor,
        generator: torch.Generator | None,
    ) -> LinkOutcome:
        """One round: client ``clients[k]`` sends ``bits[k]`` bits with channel power gain ``gain[k]``
        (|h|^2, the analog pass's units) while its scheduler knows ``known_gain[k]`` (|h_hat|^2: the
        same with perfect CSI). HARQ outcomes are drawn from ``generator`` (on its device)."""
        bits = bits.to(F64).cpu()
        clients = clients.to(torch.long).cpu()
        count = len(clients)
        prbs = self.prbs(count)
        scale = self.snr_scale[clients] / self.noise_var
        sinr = gain.to(F64).cpu() * scale
        known = known_gain.to(F64).cpu() * scale
        power = self.power_w[clients]
        res_per_slot = prbs * RE_PER_PRB * self.data_symbols
        sinr_db = 10 * torch.log10(sinr)
        if self.link == "shannon":  # at the true SINR: the ideal bound
            per_slot = res_per_slot * torch.log2(1 + sinr)  # bits a slot at capacity
            # the NR link's scheduler: a client whose expected SINR is below what MCS 0 needs for the
            # target is not scheduled (without it the cell edge's -30 dB clients would take hours)
            tables = self.tables(res_per_slot)
            scheduled = tables.best[tables.index(10 * torch.log10(known))] >= 0
            heard = ((per_slot > 0) & scheduled) | (bits <= 0)  # else an outage
            slots = torch.where((bits > 0) & heard, bits / per_slot.clamp(min=1e-300), 0.0)
            seconds = slots * self.slot_s
            none = torch.zeros(count, dtype=torch.long)
            return LinkOutcome(
                none,
                [[] if ok else [(0, int(b))] for ok, b in zip(heard.tolist(), bits.tolist())],
                none.clone(),
                none.clone(),
                seconds,
                power * seconds,
                sinr_db,
                torch.full((count,), torch.nan, dtype=F64),
                2 * slots * res_per_slot,
                heard,
                prbs,
            )
        return self._nr(bits, clients, sinr, known, power, res_per_slot, prbs, generator)

    def tables(self, res: int) -> _Tables:
        """The BLER tables for an allocation of ``res`` data REs a slot (computed once a size)."""
        if res not in self._tables:
            from sionna.phy.nr.utils import calculate_tb_size, decode_mcs_index

            abstraction = nr_link_tables(self.tables_path)
            low, high, step = abstraction.snr_db_interp_min_max_delta
            with _one_thread():  # Sionna's grid: its last index is where an SNR above its top lands
                size = int(abstraction.get_idx_from_grid(torch.tensor([high + 10 * step]), "snr")[0]) + 1
            grid = torch.pow(10.0, (low + step * torch.arange(size, dtype=F64)) / 10)
            mcs = torch.arange(NUM_MCS)
            with _one_thread():
                order, rate = decode_mcs_index(mcs, table_index=MCS_TABLE, is_pusch=True)
                tbs, cbs, num_cb, *_ = calculate_tb_size(order, rate, num_coded_bits=order * res)
                bler = torch.stack(
                    [
                        abstraction.get_bler(m, MCS_TABLE, MCS_CATEGORY, int(cbs[m]), grid.float()).double()
                        for m in range(NUM_MCS)
                    ]
                )
            available = torch.isfinite(bler).all(1)  # a missing table row reads inf
            if not bool(available.any()):
                raise ValueError(f"the BLER tables {self.tables_path} hold no PUSCH table-1 MCS")
            bler = bler.clamp(0.0, 1.0)  # a missing row: a certain failure
            tbler = 1 - torch.pow(1 - bler, num_cb.to(F64)[:, None])
            meets = tbler <= self.bler_target
            best = torch.where(
                meets.any(0), NUM_MCS - 1 - meets.flip(0).to(torch.int8).argmax(0), torch.tensor(-1)
            )
            self._tables[res] = _Tables(tbs.to(torch.long), tbler, best.to(torch.long), abstraction)
        return self._tables[res]

    def _nr(
        self,
        bits: Tensor,
        clients: Tensor,
        sinr: Tensor,
        known: Tensor,
        power: Tensor,
        res_per_slot: int,
        prbs: int,
        generator: torch.Generator | None,
    ) -> LinkOutcome:
        """Slot by slot, every client at once: a new transport block takes the MCS that the inner
        loop picks at the SINR the scheduler knows (less the outer loop's offset), is sent until it
        succeeds or its retransmissions run out, and its feedback moves the offset."""
        count = len(clients)
        tables = self.tables(res_per_slot)
        true_index = tables.index(10 * torch.log10(sinr))
        known_db = 10 * torch.log10(known)
        offset = (
            torch.zeros(count, dtype=F64) if self.outer is None else self.outer.offset_db[clients].clone()
        )
        # not scheduled: not even MCS 0 meets the target at the SINR the scheduler expects
        scheduled = (tables.best[tables.index(known_db - offset)] >= 0) | (bits <= 0)
        total = bits.to(torch.long).clamp(min=0)
        position = torch.zeros(count, dtype=torch.long)  # bits of the message sent or lost so far
        position[~scheduled] = total[~scheduled]
        mcs = torch.zeros(count, dtype=torch.long)
        attempt = torch.zeros(count, dtype=torch.long)  # of the block in flight (0: a new block)
        transmissions = torch.zeros(count, dtype=torch.long)
        mcs_sum = torch.zeros(count, dtype=F64)
        blocks = torch.zeros(count, dtype=torch.long)
        lost_blocks = torch.zeros(count, dtype=torch.long)
        lost: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        rows = torch.arange(count)
        device = "cpu" if generator is None else generator.device  # the run's channel generator's
        while bool((busy := position < total).any()):
            new = busy & (attempt == 0)
            if bool(new.any()):  # link adaptation for the new blocks
                chosen = tables.best[tables.index(known_db - offset)]
                # the outer loop's feedback took the client below MCS 0's target: no more grants this
                # round, the rest of its message unsent (lost, as an outage's)
                stop = new & (chosen < 0)
                for k in rows[stop].tolist():
                    lost[k].append((int(position[k]), int(total[k])))
                position = torch.where(stop, total, position)
                busy, new = busy & ~stop, new & ~stop
                mcs = torch.where(new, chosen, mcs)
                blocks += new.to(torch.long)
                if not bool(busy.any()):
                    break
            draw = torch.rand(count, dtype=F64, generator=generator, device=device).cpu()
            success = draw >= tables.tbler[mcs, true_index]
            transmissions += busy.to(torch.long)
            mcs_sum += torch.where(busy, mcs.to(F64), 0.0)
            if self.outer is not None:  # every transmission's HARQ feedback
                offset = self.outer.feedback(offset, success, busy)
            done = busy & (success | (attempt == self.harq_retx))
            failed = done & ~success
            size = tables.tbs[mcs]
            for k in rows[failed].tolist():
                lost[k].append((int(position[k]), int(min(position[k] + size[k], total[k]))))
            lost_blocks += failed.to(torch.long)
            position = torch.where(done, position + size, position)
            attempt = torch.where(done, 0, torch.where(busy, attempt + 1, attempt))
        for k in rows[~scheduled & (total > 0)].tolist():
            lost[k] = [(0, int(total[k]))]
        if self.outer is not None:
            self.outer.offset_db[clients] = offset
        seconds = transmissions.to(F64) * self.slot_s
        mean_mcs = torch.where(transmissions > 0, mcs_sum / transmissions.clamp(min=1), torch.nan)
        return LinkOutcome(
            blocks,
            lost,
            lost_blocks,
            transmissions,
            seconds,
            power * seconds,
            10 * torch.log10(sinr),
            mean_mcs,
            2.0 * transmissions.to(F64) * res_per_slot,
            scheduled,
            prbs,
        )

    def state_dict(self) -> dict[str, Tensor]:
        """The outer loop's offsets (empty without it), for a checkpoint."""
        return {} if self.outer is None else {"offset_db": self.outer.offset_db.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if self.outer is not None:
            self.outer.offset_db = state["offset_db"].to(F64).cpu().clone()
