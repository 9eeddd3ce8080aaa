"""One round's uplink: every client's blocks, the energy split across blocks, one channel call per pass.

This is where ``laser`` (power allocation) meets ``channels`` (the physics); the round loop calls
:func:`transmit`, which sends each channel pass of an analog compressor with :func:`uplink` and a
digital compressor's messages with :func:`digital_uplink`, and logs the round with
:func:`channel_record`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from channels import FadingChannel, SignalBlocks, energy_for_snr_db
from channels.digital import digital_link
from federated.config import Config
from federated.distributed import Shard
from laser import Compressor, DigitalCompressor
from laser.allocation import Allocation, allocate_energy, allocate_grouped_energy

__all__ = ["UplinkResult", "uplink", "digital_uplink", "transmit", "channel_record"]


@dataclass(frozen=True)
class UplinkResult:
    """What the server received in one round, and what it cost.

    Attributes:
        estimates: the server's estimate of the mean of each block (B tensors ``[d_b]``).
        energy_used: ``[K]``, each client's energy over all its blocks this round.
        channel_uses: real channel uses of the round (analog: shared by all clients; digital: the
            sum of the clients' orthogonal allocations).
        noise_var: ``[B]``, the effective per-entry noise variance of each decoded block.
        active: ``[K]`` bool, the clients heard in at least one block.
        bits: ``[K]``, digital only: each client's message size in bits.
    """

    estimates: list[Tensor]
    energy_used: Tensor
    channel_uses: int
    noise_var: Tensor
    active: Tensor
    bits: Tensor | None = None

    @property
    def noise_energy(self) -> float:
        """Expected squared error of all decoded blocks together, sum_b d_b * noise_var_b."""
        dims = torch.tensor([e.numel() for e in self.estimates], dtype=self.noise_var.dtype)
        return float((dims * self.noise_var.cpu()).sum())


def uplink(
    channel: FadingChannel,
    client_blocks: Sequence[Sequence[Tensor]],
    *,
    energy: float | None = None,
    snr_db: float | None = None,
    allocation: Allocation = "norm",
    budget_scale: Tensor | None = None,
    groups: tuple[Sequence[int], float] | None = None,
    shard: Shard | None = None,
) -> UplinkResult:
    """Send ``client_blocks[k][b]`` (client k, block b, 1-D) through ``channel``, blocks one after another.

    One channel realization serves the whole round (block fading), the blocks following each other
    in its channel uses. Each client's round budget (``energy``, or ``snr_db`` per channel use times
    the round's channel uses, times ``budget_scale[k]`` if given) is split over the blocks by
    ``allocation`` (see :func:`laser.allocation.allocate_energy`), or with ``groups = (labels,
    exponent)`` over groups of blocks and then within each group
    (:func:`laser.allocation.allocate_grouped_energy`).

    With ``shard`` (clients split over processes, :mod:`federated.distributed`), ``client_blocks``
    are this process's clients: the block norms are gathered for the energy split, every process
    draws the whole round's channel, and the channel all-reduces the superposition; the result is
    every client's, as with one process.

    Example:
        >>> from channels import AWGNChannel
        >>> blocks = [[torch.ones(3), torch.ones(1)], [torch.ones(3), -torch.ones(1)]]
        >>> out = uplink(AWGNChannel(noise_var=0.0), blocks, energy=10.0)
        >>> [[round(v, 6) for v in e.tolist()] for e in out.estimates], out.channel_uses
        ([[1.0, 1.0, 1.0], [0.0]], 4)
    """
    num_clients = len(client_blocks) if shard is None else shard.num_clients
    num_blocks = len(client_blocks[0])
    if num_blocks == 0:  # nothing to send this pass (PowerSGD's second pass when no tensor is compressed)
        nobody = torch.zeros(num_clients, dtype=torch.float64)
        return UplinkResult([], nobody, 0, torch.zeros(0, dtype=torch.float64), nobody.bool())
    signals = SignalBlocks(client_blocks)
    dims = torch.tensor(signals.dims)
    channel_uses = int(dims.sum())
    budget: float | Tensor | None = energy
    if snr_db is not None:
        budget = energy_for_snr_db(snr_db, channel_uses, channel.noise_var)
    assert budget is not None, "uplink needs energy or snr_db"
    norms = signals.norms()  # [K, B] float64
    if shard is not None:
        norms = shard.gather(norms)  # every client's, for the split
    if budget_scale is not None:
        budget = budget * budget_scale.to(norms.device)
    if groups is None:
        block_energy = allocate_energy(norms, dims.to(norms.device), budget, allocation)  # [K, B]
    else:
        block_energy = allocate_grouped_energy(norms, dims.to(norms.device), budget, allocation, *groups)
    cdtype = torch.complex128 if signals.dtype == torch.float64 else torch.complex64
    state = channel.realize(num_clients, channel_uses, dtype=cdtype)
    if shard is not None:
        state, block_energy = state.clients(shard.index), block_energy[shard.index]
    out = channel.transmit(signals, block_energy, state=state, reduce=shard)
    energy_used = out.energy_used.double().T.contiguous().sum(0)  # [K], summed in block order
    active = out.active.any(1)
    if shard is not None:
        energy_used, active = shard.gather(energy_used), shard.gather(active.to(torch.uint8)).bool()
    return UplinkResult(
        estimates=out.estimates,
        energy_used=energy_used,
        channel_uses=channel_uses,
        noise_var=out.noise_var.double(),
        active=active,
    )


def digital_uplink(
    channel: FadingChannel,
    client_messages: Sequence[Sequence[Tensor]],
    bits: Sequence[int],
    *,
    energy: float | None = None,
    snr_db: float | None = None,
    budget_scale: Tensor | None = None,
    shard: Shard | None = None,
) -> UplinkResult:
    """Deliver each client's digital message on its own orthogonal link; average what arrives.

    Client k's message of ``bits[k]`` bits goes at the Shannon rate of its link (error-free; see
    :func:`channels.digital.digital_link`): with an energy budget it spends the whole budget over the
    fewest channel uses that carry the message, and stays silent if no number of uses can (outage);
    at a per-use SNR it needs ``ceil(bits / rate)`` uses. The link's power gain is the client's mean
    ``|h|^2`` over this round's channel realization (fading and path loss; the transmitter knows it
    and adapts its rate). The server averages the delivered messages exactly; if none arrives the
    estimate is zero (no update). With ``shard``, ``client_messages`` and ``bits`` are this
    process's clients' and the sum of the delivered messages is all-reduced.

    Example:
        >>> from channels import AWGNChannel
        >>> messages = [[torch.ones(2)], [3 * torch.ones(2)]]
        >>> out = digital_uplink(AWGNChannel(noise_var=1.0), messages, [8, 8], energy=100.0)
        >>> out.estimates[0].tolist(), out.active.tolist(), out.channel_uses   # 4 uses each: 2 log2(26) >= 8
        ([2.0, 2.0], [True, True], 8)
    """
    num_clients = len(client_messages) if shard is None else shard.num_clients
    state = channel.realize(num_clients, 1, dtype=torch.complex128)
    gains = (state.gains.abs() ** 2).flatten(1).mean(1).cpu()  # [K]
    bits_t = torch.tensor([float(b) for b in bits], dtype=torch.float64)
    if shard is not None:
        bits_t = shard.gather(bits_t)
    budget: float | Tensor | None = energy
    if energy is not None and budget_scale is not None:
        budget = float(energy) * budget_scale.double().cpu()
    elif snr_db is not None and budget_scale is not None:
        raise ValueError("heterogeneous budgets (power.spread_db) apply to energy budgets only")
    sent = digital_link(bits_t, gains, energy=budget, snr_db=snr_db, noise_var=channel.noise_var)
    delivered = sent.delivered
    mine = delivered if shard is None else delivered[shard.index]
    count = max(int(delivered.sum()), 1)
    estimates = []
    for b in range(len(client_messages[0])):
        stacked = torch.stack([m[b] for m in client_messages])  # [K, d_b]
        total = mine.to(stacked.device, stacked.dtype) @ stacked
        estimates.append((total if shard is None else shard.sum(total)) / count)
    return UplinkResult(
        estimates=estimates,
        energy_used=sent.energy_used,
        channel_uses=int(sent.total_channel_uses),
        noise_var=torch.zeros(len(estimates), dtype=torch.float64),
        active=delivered,
        bits=bits_t,
    )


def transmit(
    compressor: Compressor,
    channel: FadingChannel,
    client_blocks: list[list[Tensor]],
    config: Config,
    budget_scale: Tensor | None,
    shard: Shard | None = None,
) -> tuple[list[Tensor], list[UplinkResult]]:
    """One round's communication: every channel pass of ``compressor`` through ``channel`` and the
    server's decoding. Returns the gradient estimate and what each pass received.

    An analog compressor's blocks go over the air (:func:`federated.uplink.uplink`), pass by pass,
    each pass with its share of the energy budget and its own channel state; a digital one's
    messages go on orthogonal links (:func:`federated.uplink.digital_uplink`). With ``shard``,
    ``client_blocks`` are this process's clients' (:mod:`federated.distributed`).
    """
    power = config.power
    clients = range(len(client_blocks)) if shard is None else shard.local
    if not compressor.analog:
        # digital compressors are DigitalCompressor subclasses (laser.compressor); cast, not isinstance,
        # so that the branch keeps testing the analog flag alone
        digital = cast(DigitalCompressor, compressor)
        bits = [digital.message_bits(k) for k in clients]
        received = digital_uplink(
            channel,
            client_blocks,
            bits,
            energy=power.energy,
            snr_db=power.snr_db,
            budget_scale=budget_scale,
            shard=shard,
        )
        for j, k in enumerate(clients):
            if not received.active[k]:
                digital.undelivered(k, client_blocks[j])
        return digital.decode(received.estimates, received.noise_var), [received]
    results, shares, g_hat = [], compressor.pass_shares(), None
    for p in range(compressor.passes):
        if p > 0:
            client_blocks = [compressor.encode_pass(k, p) for k in clients]
        energy = None if power.energy is None else power.energy * shares[p]
        received = uplink(
            channel,
            client_blocks,
            energy=energy,
            snr_db=power.snr_db,
            allocation=power.allocation,
            budget_scale=budget_scale,
            groups=compressor.energy_groups(),
            shard=shard,
        )
        results.append(received)
        g_hat = compressor.decode(received.estimates, received.noise_var)
    if g_hat is None:
        raise RuntimeError(f"{type(compressor).__name__}.decode returned None after its last pass")
    return g_hat, results


def channel_record(passes: list[UplinkResult]) -> dict[str, object]:
    """The per-round channel log (DESIGN.md section 4) over all passes of a round."""
    energy = torch.stack([r.energy_used.double().cpu() for r in passes]).sum(0)
    uses = sum(r.channel_uses for r in passes)
    noise_energy = sum(r.noise_energy for r in passes)
    record = {
        "energy_max": float(energy.max()),
        "energy_mean": float(energy.mean()),
        "channel_uses": uses,
        "noise_var_mean": noise_energy / uses if uses else 0.0,
        "noise_var": [float(v) for r in passes for v in r.noise_var],
        "active_clients": int(torch.stack([r.active.cpu() for r in passes]).any(0).sum()),
    }
    if passes[0].bits is not None:
        record["bits_mean"] = float(passes[0].bits.mean())
    return record
