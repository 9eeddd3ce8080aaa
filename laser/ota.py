"""One over-the-air round of a compressor: encode, split the energy, transmit every pass, decode.

:func:`transmit_round` is the public call for any compressor and any ``channels`` channel: it takes
each participating client's gradient (tensors in parameter order), encodes it with the client's
side, sends each channel pass of the method through the channel (one channel realization per pass,
the blocks one after another in its channel uses, each client's budget split over the blocks),
decodes with the server's side, and returns the decoded tensors with a record of what the round
cost (:class:`RoundResult`). :func:`transmit_blocks` starts from blocks already encoded, for loops
that encode each client as soon as its gradient exists (no K gradients held at once); the round
loop of ``federated`` uses it. A digital method's messages go on orthogonal links instead
(:func:`channels.digital.digital_link`), averaged exactly as they arrive.

Both take optional client ``weights`` w_k > 0 (``[K]``, e.g. data sizes): the server then estimates
the weighted mean sum_k w_k g_k / sum_k w_k over the clients heard instead of the plain mean (the
channel's physics: :meth:`channels.FadingChannel.transmit`), and an optional ``state``: the round's
channel realization, drawn before the round (channel-aware client sampling), for its first pass.

Energy: each client's round budget (``energy``, or ``snr_db`` per channel use times the round's
channel uses; times ``budget_scale[k]`` if given) is shared by the passes in proportion to their
channel uses (:meth:`~laser.compressor.CompressorServer.pass_shares`) and split over a pass's
blocks by ``allocation`` (:func:`laser.allocation.allocate_energy`; per group of blocks when the
method says so, :func:`laser.allocation.allocate_grouped_energy`).

Example (LASER over the paper's AWGN channel, 4 clients, energy 100 each):
    >>> import torch
    >>> from channels import AWGNChannel
    >>> from laser import LaserCompressor
    >>> params = [torch.zeros(20, 30), torch.zeros(20)]
    >>> method = LaserCompressor(rank=2)
    >>> server = method.make_server(params)
    >>> clients = [method.make_client(params, k) for k in range(4)]
    >>> channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    >>> grads = [[torch.randn(20, 30), torch.randn(20)] for _ in clients]
    >>> out = transmit_round(channel, server, clients, grads, energy=100.0)
    >>> [g.shape for g in out.gradient], out.channel_uses, int(out.active.sum())
    ([torch.Size([20, 30]), torch.Size([20])], 80, 4)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence, Sized
from typing import cast

import torch
from torch import Tensor

from channels import (
    ChannelState,
    FadingChannel,
    SignalBlocks,
    block_clips,
    clip_blocks,
    clipped_off,
    energy_for_snr_db,
    flat_clip,
)
from channels.digital import digital_link
from channels.fading_channel import check_weights
from channels.nr import OFDMAUplink
from channels.processes import Processes
from laser._checks import bind, check_call, check_state, indices
from laser.allocation import Allocation, allocate_energy, allocate_grouped_energy
from laser.compressor import CompressorClient, CompressorServer, DigitalClient
from laser.options import PassOptions, _options
from laser.records import NonFiniteNoiseError, PassRecord, RoundResult

__all__ = [
    "PassOptions",
    "PassRecord",
    "RoundResult",
    "Processes",
    "NonFiniteNoiseError",
    "transmit_round",
    "transmit_blocks",
]


def _budget(
    energy: float | Tensor | None, snr_db: float | None, channel_uses: int, noise_var: float
) -> float | Tensor:
    """A client's budget for a pass of ``channel_uses`` (exactly one of energy and snr_db: PassOptions
    checked it)."""
    if snr_db is not None:
        return energy_for_snr_db(snr_db, channel_uses, noise_var)
    assert energy is not None
    return energy


def _realize(
    channel: FadingChannel,
    clients: Sequence[CompressorClient] | Sequence[int],
    processes: Processes | None,
    channel_uses: int,
    dtype: torch.dtype,
) -> ChannelState:
    """A new realization of the round's participating clients for one pass: each keeps its own
    large-scale gain (path loss), drawn for the run's K clients at the channel's first realization
    (:meth:`channels.FadingChannel.realize` with ``clients=``)."""
    count = len(clients) if processes is None else processes.num_clients
    if channel.num_clients is None:  # no large-scale gains drawn yet (or none to keep)
        index = indices(clients)
        if processes is None and channel.path_loss is not None and index != list(range(count)):
            raise ValueError(
                f"clients are clients {index[:8]}{'...' if count > 8 else ''} of a larger set, but the "
                "channel has not drawn its clients' path loss yet: realize every client once first, "
                "channel.realize(K), or pass the round's state=channel.realize(K).clients(their indices)"
            )
        return channel.realize(count, channel_uses, dtype=dtype)
    local = torch.tensor(indices(clients), dtype=torch.long)
    everyone = local if processes is None else processes.gather(local)
    return channel.realize(None, channel_uses, dtype=dtype, clients=everyone)


def _analog_pass(
    channel: FadingChannel,
    clients: Sequence[CompressorClient] | Sequence[int],
    client_blocks: Sequence[Sequence[Tensor]],
    *,
    energy: float | Tensor | None,
    snr_db: float | None,
    allocation: Allocation,
    budget_scale: Tensor | None,
    groups: tuple[list[int], float] | None,
    processes: Processes | None,
    weights: Tensor | None = None,
    state: ChannelState | None = None,
    clip: float | None = None,
    min_noise_multiplier: float | None = None,
    min_energy_scale: float | None = None,
    participation: float | None = None,
) -> tuple[PassRecord, Tensor]:
    """One pass over the air; the record and ``[K_local, B]``: which of this process's clients
    were heard in each block. ``weights``: this process's clients' (the channel's reduce sums them);
    ``state``: every participating client's channel for this pass (default: a new realization of
    ``clients``, each with its own large-scale gain); ``clip``: privacy mode (:class:`PassOptions`)."""
    num_clients = len(client_blocks) if processes is None else processes.num_clients
    num_blocks = len(client_blocks[0]) if client_blocks else 0
    if num_blocks == 0:  # nothing to send this pass (PowerSGD's second pass when no tensor is compressed)
        nobody = torch.zeros(num_clients, dtype=torch.float64)
        record = PassRecord([], nobody, 0, torch.zeros(0, dtype=torch.float64), nobody.bool())
        return record, torch.ones(len(client_blocks), 0, dtype=torch.bool)
    clips = None
    if clip is not None:  # privacy mode: each client clips what it transmits, block by block
        clips = block_clips([int(t.numel()) for t in client_blocks[0]], clip)
        client_blocks = clip_blocks(client_blocks, clips)
    signals = SignalBlocks(client_blocks)
    dims = torch.tensor(signals.dims)
    channel_uses = int(dims.sum())
    budget = _budget(energy, snr_db, channel_uses, channel.noise_var)
    norms = signals.norms()  # [K, B] float64
    if processes is not None:
        norms = processes.gather(norms)  # every client's, for the split
    if budget_scale is not None:
        budget = budget * budget_scale.to(norms.device)
    if clips is not None:  # fixed in advance from the clips: E_b = E C_b^2 / C^2
        per_client = torch.as_tensor(budget, dtype=torch.float64, device=norms.device).reshape(-1, 1)
        share = (clips.square() / clips.square().sum()).to(norms.device)
        block_energy = (per_client * share[None, :]).expand(norms.shape[0], -1).contiguous()
    elif groups is None:
        block_energy = allocate_energy(norms, dims.to(norms.device), budget, allocation)  # [K, B]
    else:
        block_energy = allocate_grouped_energy(norms, dims.to(norms.device), budget, allocation, *groups)
    cdtype = torch.complex128 if signals.dtype == torch.float64 else torch.complex64
    if state is None:
        state = _realize(channel, clients, processes, channel_uses, cdtype)
    else:  # its coherence blocks spread over this pass's symbols, as realize would cut them
        per_block = max(1, math.ceil(math.ceil(channel_uses / 2) / state.gains.shape[1]))
        state = dataclasses.replace(state, symbols_per_block=per_block)
    if processes is not None:
        state, block_energy = state.clients(processes.index), block_energy[processes.index]
    out = channel.transmit(
        signals,
        block_energy,
        state=state,
        reduce=processes,
        weights=weights,
        clips=clips,
        min_noise_multiplier=min_noise_multiplier,
        min_energy_scale=min_energy_scale,
        participation=participation,
    )
    energy_used = out.energy_used.double().T.contiguous().sum(0)  # [K], summed in block order
    heard = out.active
    every_heard = heard if processes is None else processes.gather(heard.to(torch.uint8)).bool()
    active = every_heard.any(1)
    if processes is not None:
        energy_used = processes.gather(energy_used)
    record = PassRecord(
        out.estimates,
        energy_used,
        channel_uses,
        out.noise_var.double(),
        active,
        heard=every_heard,
        noise_multiplier=out.noise_multiplier,
        energy_scale=out.energy_scale,
        artificial_noise_var=out.artificial_noise_var,
    )
    return record, heard


def _digital_pass(
    channel: FadingChannel,
    clients: Sequence[CompressorClient],
    client_messages: Sequence[Sequence[Tensor]],
    *,
    energy: float | Tensor | None,
    snr_db: float | None,
    budget_scale: Tensor | None,
    processes: Processes | None,
    weights: Tensor | None = None,
    state: ChannelState | None = None,
    uplink: OFDMAUplink | None = None,
) -> tuple[PassRecord, Tensor]:
    """Each client's message on its own orthogonal link at the Shannon rate of its mean |h|^2 this
    round (error-free; silent when no number of uses carries it: outage); the server averages what
    arrives exactly (zero if nothing does): sum_delivered m_k / K_delivered, or with ``weights`` (this
    process's clients') sum_delivered w_k m_k / sum_delivered w_k. ``state``: every participating
    client's channel (default: a new realization). ``uplink``: physical units' link instead
    (:func:`_uplink_pass`). Returns the record and the delivered local clients."""
    if state is None:
        state = _realize(channel, clients, processes, 1, torch.complex128)
    if uplink is not None:
        return _uplink_pass(channel, uplink, clients, client_messages, weights, state)
    gains = state.quality().cpu()  # [K], mean |h|^2
    bits = torch.tensor([float(_digital_client(c).message_bits()) for c in clients], dtype=torch.float64)
    if processes is not None:
        bits = processes.gather(bits)
    if energy is not None and budget_scale is not None:
        energy = energy * budget_scale.double().cpu()
    elif snr_db is not None and budget_scale is not None:
        raise ValueError(
            "budget_scale applies to energy budgets only for digital methods (snr_db is per use)"
        )
    sent = digital_link(bits, gains, energy=energy, snr_db=snr_db, noise_var=channel.noise_var)
    delivered = sent.delivered
    mine = delivered if processes is None else delivered[processes.index]
    if weights is None:
        factors, count = mine, float(max(int(delivered.sum()), 1))
    else:  # sum_delivered w_k m_k / sum_delivered w_k, the weights summed over every process's clients
        every = weights if processes is None else processes.gather(weights)
        heard = float(every.cpu()[delivered.cpu()].sum())
        factors, count = torch.where(mine.cpu(), weights.cpu(), 0.0), heard if heard > 0 else 1.0
    estimates = []
    for b in range(len(client_messages[0])):
        stacked = torch.stack([m[b] for m in client_messages])  # [K, d_b]
        total = factors.to(stacked.device, stacked.dtype) @ stacked
        estimates.append((total if processes is None else processes.sum(total)) / count)
    record = PassRecord(
        estimates=estimates,
        energy_used=sent.energy_used,
        channel_uses=int(sent.total_channel_uses),
        noise_var=torch.zeros(len(estimates), dtype=torch.float64),
        active=delivered,
        bits=bits,
        heard=delivered.cpu()[:, None].expand(-1, len(estimates)),
    )
    return record, mine


def _uplink_pass(
    channel: FadingChannel,
    uplink: OFDMAUplink,
    clients: Sequence[CompressorClient],
    client_messages: Sequence[Sequence[Tensor]],
    weights: Tensor | None,
    state: ChannelState,
) -> tuple[PassRecord, Tensor]:
    """A digital pass over physical units' OFDMA uplink (:class:`channels.OFDMAUplink`): each
    client's SINR from its gain this round (its estimate for the link adaptation), its message's
    transport blocks and their HARQ outcomes drawn from the channel's generator. A client keeps in
    its error feedback what was lost (:meth:`~laser.compressor.DigitalClient.lost_part`: the lost
    entries of a sparsifier's message, a quantiser's whole message); the server averages what
    arrived over the clients whose message arrived at least in part (the weighted mean with
    ``weights``). Returns the record and which clients' messages arrived at least in part."""
    if state.gains.shape[1:] != (1, 1):
        raise ValueError(
            "uplink: the digital link in physical units needs flat fading, one gain a client and round "
            f"(the state has {state.gains.shape[1]} coherence blocks and {state.gains.shape[2]} subcarriers)"
        )
    sides = [_digital_client(c) for c in clients]
    bits = torch.tensor([float(c.message_bits()) for c in sides], dtype=torch.float64)
    index = torch.tensor(indices(clients), dtype=torch.long)
    gain = state.gains[:, 0, 0].abs().double().cpu() ** 2
    if state.vector_norms is not None:  # many antennas: maximum-ratio combining, ||h||^2
        gain = state.vector_norms[:, 0, 0].double().cpu() ** 2
    known = state.csi[:, 0, 0].abs().double().cpu() ** 2
    outcome = uplink.send(bits, index, gain, known, channel.generator)
    arrived, reached = [], []
    for k, (side, message) in enumerate(zip(sides, client_messages)):
        lost = outcome.lost[k]
        if not lost:
            arrived.append(list(message))
            reached.append(True)
            continue
        part = side.lost_part(message, lost)  # the lost entries (a quantiser's: the whole message)
        side.undelivered(part)
        arrived.append([m - p for m, p in zip(message, part)])
        # heard: some of its message arrived (an entry the lost part does not hold)
        reached.append(any(bool((p != m).any()) for p, m in zip(part, message)))
    heard = torch.tensor(reached, dtype=torch.bool)
    if weights is None:
        factors = heard.to(torch.float64)
        count = float(max(int(heard.sum()), 1))
    else:
        factors = torch.where(heard, weights.double().cpu(), 0.0)
        count = float(factors.sum()) if bool(heard.any()) else 1.0
    estimates = []
    for b in range(len(client_messages[0])):
        stacked = torch.stack([m[b] for m in arrived])  # [K, d_b]
        estimates.append((factors.to(stacked.device, stacked.dtype) @ stacked) / count)
    record = PassRecord(
        estimates=estimates,
        energy_used=outcome.energy_j / uplink.unit_j[index],
        channel_uses=int(outcome.channel_uses.sum()),
        noise_var=torch.zeros(len(estimates), dtype=torch.float64),
        active=heard,
        bits=bits,
        heard=heard[:, None].expand(-1, len(estimates)),
        link=outcome,
    )
    return record, heard


def _digital_client(client: CompressorClient) -> DigitalClient:
    if not isinstance(client, DigitalClient):
        raise TypeError(
            f"clients of a digital method must be DigitalClient objects, got {type(client).__name__}"
        )
    return client


def _shown_variances(noise_var: Tensor | float) -> str:
    values = torch.as_tensor(noise_var, dtype=torch.float64).flatten().tolist()
    return ", ".join(f"{v:.3g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")


def _give_back(
    clients: Sequence[CompressorClient],
    sent: Sequence[Sequence[Tensor]],
    heard: Tensor,
    keep_unheard: bool,
    off: Sequence[Sequence[Tensor]] | None,
) -> None:
    """After a round's last pass, each client's error feedback gets back what the channel did not
    carry: with ``keep_unheard`` a block it was not heard in, whole; with ``off`` (each client's part
    of its blocks the clip cut off) that part of every other block, heard or not (one
    :meth:`~laser.compressor.CompressorClient.undelivered` call a client, the two parts added:
    undelivered is linear in its blocks)."""
    if off is None:
        if keep_unheard and not bool(heard.all()):
            for side, blocks, mask in zip(clients, sent, heard.cpu()):
                side.keep_unheard(blocks, mask)
        return
    for side, blocks, cut, mask in zip(clients, sent, off, heard.cpu().tolist()):
        back = [b if keep_unheard and not h else o for b, o, h in zip(blocks, cut, mask)]
        if any(bool(t.any()) for t in back):
            side.undelivered(back)


def _central_noise(record: PassRecord, channel: FadingChannel, nu: float, clip: float) -> PassRecord:
    """A central-DP pass (``PassOptions.central``): the server adds Gaussian noise of standard deviation
    nu C / K to every entry of the mean of K clients' flat-clipped blocks (Flower's
    ``compute_stdv(noise_multiplier, clipping_norm, num_sampled_clients)``), drawn from the channel's
    generator; the record carries that noise variance and nu."""
    if not record.estimates:  # nothing sent this pass (PowerSGD's second with nothing compressed)
        return record
    count = max(int(record.active.sum()), 1)
    std = nu * clip / count
    generator = channel.generator
    noisy = []
    for e in record.estimates:
        device = e.device if generator is None else generator.device
        draw = torch.randn(e.shape, generator=generator, dtype=e.dtype, device=device)
        noisy.append(e + (std * draw).to(e.device))
    noise_var = record.noise_var + std**2  # a noisy channel's own noise, and the server's
    return dataclasses.replace(record, estimates=noisy, noise_var=noise_var, noise_multiplier=nu)


def transmit_blocks(
    channel: FadingChannel,
    server: CompressorServer,
    clients: Sequence[CompressorClient] | Sequence[int],
    blocks: Sequence[Sequence[Tensor]],
    options: PassOptions | None = None,
    *,
    energy: float | Tensor | None = None,
    snr_db: float | None = None,
    allocation: Allocation = "norm",
    budget_scale: Tensor | None = None,
    keep_unheard: bool = False,
    processes: Processes | None = None,
    weights: Tensor | None = None,
    state: ChannelState | None = None,
) -> RoundResult:
    """A round from the first pass's blocks already encoded: ``blocks[j]`` by ``clients[j]`` (with
    ``server.broadcast()``). The method's further passes are encoded here (``encode_pass``).

    ``clients``: the participants' client sides (``method.make_client(params, k)``; each belongs to
    one server: a side that took part in another server's rounds is refused), or, for clients that
    live apart from the server (other processes or machines, Flower), their integer indices k: the
    server needs of them only the blocks they encoded with its broadcast, and their index (which
    keeps each client's own channel, e.g. its path loss). Indices support one-pass analog methods
    (a second pass, or a digital message's size, needs the client's side); the result's
    :attr:`RoundResult.heard` says what each was heard in, for the clients to keep what was not
    (:meth:`~laser.compressor.CompressorClient.keep_unheard`). The same client twice is refused.

    ``options``: a :class:`PassOptions` holding ``energy``, ``snr_db``, ``allocation``,
    ``budget_scale``, ``weights``, ``keep_unheard`` and ``processes``; or give them as keyword
    arguments (as :func:`transmit_round` documents them), not both.

    ``weights``: ``[K]`` client weights w_k > 0 (finite), in the order of ``clients``: the server's
    estimate is the weighted mean of what it hears. An analog pass sends them to the channel
    (``channel.transmit(..., weights=...)``: client k pre-scales its signal by w_k, the server divides
    by eta times the weight heard, estimate_j = sum_{k in A_j} w_k u_kj / sum_{k in A_j} w_k per
    symbol j, renormalised over the clients heard; see :meth:`channels.FadingChannel.transmit`); a
    digital pass averages the delivered messages exactly, sum_delivered w_k m_k / sum_delivered w_k
    (zero if none arrives). ``None``: the plain mean, as with all weights 1.

    ``state``: the round's channel realization drawn before the round (``channel.realize``, e.g. for
    channel-aware client sampling, which must see the channel before choosing; take the chosen
    clients' rows with ``state.clients(index)``), for the participating clients only: K =
    ``len(clients)``, or ``processes.num_clients`` with ``processes`` (every process passes the whole
    state; its clients' rows are taken here). The first pass goes through it instead of a new draw
    (its coherence blocks spread over the pass's channel uses). Every other pass draws a new
    realization of the same clients, ``channel.realize(..., clients=their indices)``: new
    small-scale fading, each client's own large-scale gain (drawn once for the run's clients).

    ``keep_unheard``: a client the channel did not hear in a block of the round's last pass (the
    power-control policy silenced it, or its budget was 0) gets that block back through
    ``keep_unheard``, so its error feedback keeps what it could not send (default False: the
    memory assumes it was sent, and the unheard content is lost). Digital methods always keep an
    undelivered message. With ``processes``, ``clients`` and ``blocks`` are this process's clients'
    (``processes.index``); the result is every client's, as with one process.
    """
    options = _options(
        options,
        energy=energy,
        snr_db=snr_db,
        allocation=allocation,
        budget_scale=budget_scale,
        weights=weights,
        keep_unheard=keep_unheard,
        processes=processes,
    )
    energy, snr_db, allocation = options.energy, options.snr_db, options.allocation
    budget_scale, keep_unheard, processes = options.budget_scale, options.keep_unheard, options.processes
    weights, clip = options.weights, options.clip
    live = check_call(server, clients, processes)
    if len(blocks) != len(clients):
        raise ValueError(f"blocks has {len(blocks)} clients' blocks; clients has {len(clients)}")
    if not live:
        if not server.analog or server.passes > 1:
            kind = "a digital method's message sizes" if not server.analog else f"{server.passes} passes"
            raise ValueError(
                f"clients are indices (clients living apart from the server), but {type(server).__name__} "
                f"needs the client sides for {kind}: pass the client objects"
            )
        if keep_unheard:
            raise ValueError(
                "keep_unheard=True needs the client objects; with clients as indices, send each client its "
                "row of the result's heard and let it call client.keep_unheard(its blocks, that row)"
            )
    if weights is not None:
        weights = check_weights(weights, len(clients))
    if state is not None:
        check_state(state, len(clients) if processes is None else processes.num_clients)
    bind(server, clients)
    passes: list[PassRecord] = []
    if clip is not None and not server.analog:
        raise ValueError(f"clip (privacy mode) needs an analog method; {type(server).__name__} is digital")
    if clip is not None and options.keep_clipped and live:
        for side in cast(Sequence[CompressorClient], clients):
            if not side.partial_feedback:
                raise ValueError(
                    f"keep_clipped: {type(side).__name__} takes back only a whole message, not the part a "
                    "clip cut off (leave keep_clipped off for this method)"
                )
    if options.participation is not None and (server.passes > 1 or processes is not None):
        raise ValueError(
            f"participation (hidden participation) needs a single-pass method on one process; "
            f"{type(server).__name__} sends {server.passes} passes"
            + ("" if processes is None else " and the clients are split over processes")
        )
    if not server.analog:
        sides = cast(Sequence[CompressorClient], clients)  # live: checked above
        record, delivered = _digital_pass(
            channel,
            sides,
            blocks,
            energy=energy,
            snr_db=snr_db,
            budget_scale=budget_scale,
            processes=processes,
            weights=weights,
            state=state,
            uplink=options.uplink,
        )
        for client, message, ok in zip(sides, blocks, delivered.tolist()):
            if not ok and options.uplink is None:  # the uplink gave back what it lost itself
                client.undelivered(message)
        gradient = server.decode(record.estimates, record.noise_var)
        assert gradient is not None
        return RoundResult(gradient, [record])
    shares = server.pass_shares()
    # each pass at least sqrt(P) times the round's floor: P of them compose to at least the floor
    floor = options.min_noise_multiplier
    if floor is not None:
        floor = floor * math.sqrt(server.passes)
    # Flower-style central DP: each pass a Gaussian at sqrt(P) nu, so that the round composes to nu
    central = None if options.central is None else options.central * math.sqrt(server.passes)
    gradient = None
    current = blocks
    for p in range(server.passes):
        if p > 0:
            shared = server.broadcast()
            current = [cast(CompressorClient, client).encode_pass(p, shared) for client in clients]
        sent, off = current, None
        if central is not None:  # each client clips its blocks as one vector; the server adds the noise
            assert clip is not None  # PassOptions checked it
            parts = [flat_clip(client_blocks, clip) for client_blocks in current]
            sent, off = [part[0] for part in parts], [part[1] for part in parts]
        record, heard = _analog_pass(
            channel,
            clients,
            sent,
            energy=None if energy is None else energy * shares[p],
            snr_db=snr_db,
            allocation=allocation,
            budget_scale=budget_scale,
            groups=server.energy_groups(),
            processes=processes,
            weights=weights,
            state=state if p == 0 else None,
            clip=clip if central is None else None,
            min_noise_multiplier=floor,
            min_energy_scale=options.min_energy_scale,
            participation=options.participation,
        )
        if central is not None:
            assert clip is not None
            record = _central_noise(record, channel, central, clip)
        passes.append(record)
        if not bool(torch.as_tensor(record.noise_var).isfinite().all()):
            raise NonFiniteNoiseError(
                f"pass {p}: the effective noise variance is not finite "
                f"({_shown_variances(record.noise_var)}): a client's signal is too large for its energy "
                "and channel gain (the alignment scale underflowed)"
            )
        if p == server.passes - 1 and live:
            if not options.keep_clipped:
                off = None
            elif clip is not None and off is None:  # the block clips' cut (channel mode)
                off = [clipped_off(b, block_clips([int(t.numel()) for t in b], clip)) for b in current]
            _give_back(cast(Sequence[CompressorClient], clients), current, heard, keep_unheard, off)
        gradient = server.decode(record.estimates, record.noise_var)
    if gradient is None:
        raise RuntimeError(f"{type(server).__name__}.decode returned None after its last pass")
    return RoundResult(gradient, passes)


def transmit_round(
    channel: FadingChannel,
    server: CompressorServer,
    clients: Sequence[CompressorClient],
    grads: Iterable[Sequence[Tensor]],
    options: PassOptions | None = None,
    *,
    energy: float | Tensor | None = None,
    snr_db: float | None = None,
    allocation: Allocation = "norm",
    budget_scale: Tensor | None = None,
    keep_unheard: bool = False,
    processes: Processes | None = None,
    weights: Tensor | None = None,
    state: ChannelState | None = None,
) -> RoundResult:
    """One over-the-air round of a compressor: every participating client encodes its tensors
    (``grads[j]`` for ``clients[j]``, in parameter order) with the server's broadcast, every pass
    goes through ``channel``, the server decodes. Returns the decoded tensors and the round's record.

    Args:
        channel: a ``channels`` channel (``AWGNChannel``, ``FadingChannel``); one realization per pass.
        options: the pass options below as one :class:`PassOptions` (a run builds it once); or give
            them as keyword arguments, not both.
        server: the method's server side (``method.make_server(params)``).
        clients: the method's client sides (``method.make_client(params, k)``), the round's
            participants.
        grads: each participant's tensors, consumed one client at a time (a generator may compute
            them lazily).
        energy: each client's energy for the round (a float, or ``[K]``), or ``snr_db``: a
            per-channel-use SNR (the round's energy grows with its channel uses).
        allocation: the split of a budget over a pass's blocks (``norm``, LASER's; ``norm_sqrt_dim``;
            ``uniform``).
        budget_scale: ``[K]`` multipliers of the budgets (heterogeneous clients).
        weights: ``[K]`` client weights w_k > 0 in the order of ``clients`` (this process's clients'
            with ``processes``; e.g. data sizes): the decoded tensors estimate the weighted mean
            sum_k w_k g_k / sum_k w_k over the clients heard (analog: the channel's weighted
            superposition, renormalised per symbol over the clients heard; digital: the delivered
            messages, sum_delivered w_k m_k / sum_delivered w_k, zero if none arrives). ``None``:
            the plain mean.
        state: the round's channel drawn beforehand (``channel.realize(K, ...)``, K the participating
            clients, all processes' with ``processes``), used by the first pass instead of a new
            realization; later passes draw their own.
        keep_unheard: give unheard blocks back to error feedback, see :func:`transmit_blocks`.
        processes: clients split over processes, see :func:`transmit_blocks`.

    Example (Z-SGD, noiseless: the weighted mean exactly):
        >>> from channels import AWGNChannel
        >>> from laser import ZSGDCompressor
        >>> params = [torch.zeros(2)]
        >>> zsgd = ZSGDCompressor()
        >>> server, clients = zsgd.make_server(params), [zsgd.make_client(params, k) for k in range(2)]
        >>> grads = [[torch.tensor([1.0, 0.0])], [torch.tensor([0.0, 4.0])]]
        >>> out = transmit_round(AWGNChannel(noise_var=0.0), server, clients, grads, energy=1.0,
        ...                      weights=torch.tensor([3.0, 1.0]))
        >>> out.gradient[0].tolist()                        # (3 g_1 + 1 g_2) / 4
        [0.75, 1.0]
    """
    options = _options(
        options,
        energy=energy,
        snr_db=snr_db,
        allocation=allocation,
        budget_scale=budget_scale,
        weights=weights,
        keep_unheard=keep_unheard,
        processes=processes,
    )
    if not check_call(server, clients, options.processes) and clients:
        raise TypeError("transmit_round encodes with the client objects: clients must be client sides")
    sides = cast(Sequence[CompressorClient], clients)
    if isinstance(grads, Sized) and len(grads) != len(clients):  # before any client encodes
        raise ValueError(f"grads holds {len(grads)} clients' tensors; clients has {len(clients)}, one each")
    shared = server.broadcast()
    blocks = []
    given = iter(grads)
    for client, tensors in zip(sides, given):
        blocks.append(client.encode(tensors, shared))
    if len(blocks) != len(clients) or next(given, None) is not None:
        count = f"{len(blocks)}" if len(blocks) < len(clients) else "more than " + str(len(clients))
        raise ValueError(f"grads holds {count} clients' tensors; clients has {len(clients)}, one each")
    return transmit_blocks(channel, server, clients, blocks, options, state=state)
