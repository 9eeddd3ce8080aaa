"""Over-the-air multiple access through fading channels, with a power-control policy.

A round draws one channel state (block fading: constant within a coherence block, by default the
whole round), then every block of the round goes through it:

    y = sum_k h_k * x_k + z,        x_k = m_k * (eta / h_hat_k) * u_k,        z ~ CN(0, 2 noise_var)

per complex symbol (u_k: client k's block packed as I/Q symbols; h_k: its gain on that symbol's
subcarrier and coherence block; h_hat_k: the gain it believes, see :mod:`channels.power_control`;
m_k: 1 where the policy lets it transmit). The server estimates the mean of the active clients per
symbol as y / (eta * K_a), with K_a the number of clients transmitting on that symbol. With client
weights w_k (``weights``), client k sends w_k u_k instead and the server divides by eta * sum_{A_j} w_k:
the weighted mean of the clients heard (derived in :meth:`FadingChannel.transmit`).

Gains are small-scale fading (``fading``, E|h|^2 = 1) times the square root of a large-scale gain per
client (``path_loss``, drawn once per run: client positions do not change between rounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from channels._checks import (
    brief,
    check_count,
    check_data,
    check_generator,
    check_number,
    check_probability,
    check_weights,
    client_index,
    per_client,
    real_tensor,
)
from channels.antennas import ReceiveArray
from channels.blocks import BlocksOutput, SignalBlocks
from channels.budget import energy_for_snr_db
from channels.clusters import ClusterFading
from channels.noise import ComplexNoise, from_symbols
from channels.power_control import PerfectInversion, PowerControl
from channels.privacy import noise_multiplier
from channels.processes import Processes
from channels.state import ChannelOutput, ChannelState
from channels.superposition import Precoded, alignment, normalised_weights

__all__ = [
    "BlocksOutput",
    "ChannelOutput",
    "ChannelState",
    "FadingChannel",
    "Reduction",
    "SignalBlocks",
    "check_weights",
]


# the name the channel's ``reduce`` argument had: the same protocol as a round's and a checkpoint's
Reduction = Processes


class FadingChannel(nn.Module):
    """Over-the-air multiple access through a fading channel under a power-control policy.

    Args:
        fading: a small-scale model called as ``fading(K, generator, dtype) -> [K, N]`` complex
            (see :mod:`channels.fading`), or a :class:`~channels.clusters.ClusterFading` (see below);
            ``None``: all gains 1 (then this is :class:`AWGNChannel`).
        policy: a :class:`~channels.power_control.PowerControl` (default perfect inversion).
        noise_var: noise variance per real channel use.
        path_loss: large-scale model called as ``path_loss(K, generator) -> [K]`` power gains,
            drawn on the first round and kept (``None``: every client's mean gain is 1).
        coherence_blocks: independent fading draws per round (the round's channel uses are cut into
            this many equal coherence blocks; 1: block fading per round).
        generator: default generator of fading, CSI errors and noise.
        antennas: the base station's N receive antennas and its receive beamformer m
            (:class:`~channels.antennas.ReceiveArray`): client k's gain is then g_k = m^H h_k, m designed
            by the server from every client's (estimated) channel vector, and everything above holds
            with h_k replaced by g_k (docs/physics.md, "Many receive antennas"); ``None`` or N = 1:
            one antenna, bit for bit.
        check_finite: refuse signals with NaN or infinite entries (a ``ValueError`` naming the
            signals and the clients holding them), before anything is drawn. Its cost is one sum over
            the signals (a finite sum proves every entry finite; only a non-finite one is settled
            entry by entry, see :meth:`SignalBlocks.check_finite`): 0.15-0.2 ms for K = 16 clients x
            d = 100_000 float32 entries on one CPU thread, where the whole AWGN call takes about
            9.3 ms (+0.5 ms, ~5%, on the median call time; medians of 200 interleaved calls with and
            without the check in one process; ``torch.isfinite(...).all()`` would take 6.4 ms).
            ``False`` skips it, and non-finite entries then go through the physics unchecked: a NaN
            entry makes its client's block norm NaN, which the alignment scale's min passes over, so
            the client is counted as heard (``active``) but left out of the scale, its ``energy_used``
            is NaN and the estimate NaN where its NaN entries land (a lone such client makes the
            scale infinite: the block reports zero noise); an infinite entry makes the scale 0:
            an infinite noise variance and a NaN or infinite estimate. Turn it off only for signals
            known to be finite.

    A :class:`~channels.clusters.ClusterFading` (a drop's own clusters) is called with the clients'
    indices and the time: ``time_step`` is the round the next realizations belong to (its coherence
    blocks are time steps ``time_step * C ... time_step * C + C - 1``), so every realization of one
    round sees the same small-scale channel (CSI errors are drawn anew); whoever runs the rounds sets it
    (the federated simulation does, from the round's number), otherwise every round is round 0.
    Other fading models draw independent realizations and ignore it.

    Call: like :class:`~channels.awgn.AWGNChannel`, plus ``state`` (from :meth:`realize`; default a fresh
    realization for this block alone), ``symbol_offset`` (where the block starts in the round),
    ``reduce`` (clients split over processes: ``signals``, ``energy``, ``state`` and ``weights`` are
    this process's clients, the superposition is all-reduced, and every process draws the same noise
    from identically seeded generators; ``energy_used`` and ``active`` are then this process's
    clients') and ``weights`` (``[K]`` client weights w_k > 0: the estimate is the weighted mean
    sum_A w_k u_k / sum_A w_k of the clients heard, see :meth:`transmit`; ``None``: the plain mean).
    :meth:`transmit` sends a whole round's blocks (:class:`SignalBlocks`) in one call, each block
    with its own budget, scale and noise, as one call per block would.

    Example:
        >>> from channels.power_control import TruncatedInversion
        >>> g = torch.Generator().manual_seed(0)
        >>> channel = FadingChannel(policy=TruncatedInversion(0.5), noise_var=0.0, generator=g)
        >>> state = channel.realize(num_clients=2, channel_uses=4)
        >>> out = channel(torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 1.0, 0.0]]), 10.0, state=state)
        >>> out.estimate.tolist(), out.active.tolist()
        ([2.0, 2.0, 2.0, 2.0], [True, True])
        >>> out = channel(torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 1.0, 0.0]]), 10.0, state=state,
        ...               weights=[1.0, 3.0])                  # (1 u_1 + 3 u_2) / 4
        >>> out.estimate.tolist()
        [2.5, 2.0, 1.5, 1.0]
    """

    def __init__(
        self,
        fading: nn.Module | None = None,
        policy: PowerControl | None = None,
        noise_var: float = 1.0,
        path_loss: nn.Module | None = None,
        coherence_blocks: int = 1,
        generator: torch.Generator | None = None,
        *,
        check_finite: bool = True,
        antennas: ReceiveArray | None = None,
    ) -> None:
        super().__init__()
        if antennas is not None and not isinstance(antennas, ReceiveArray):
            raise TypeError(f"antennas must be a ReceiveArray or None, got {brief(antennas)}")
        if not (math.isfinite(check_number(noise_var, "noise_var")) and noise_var >= 0):
            raise ValueError(f"noise_var must be a finite number >= 0, got {noise_var}")
        if isinstance(coherence_blocks, bool) or not (
            isinstance(coherence_blocks, int) and coherence_blocks >= 1
        ):
            raise ValueError(f"coherence_blocks must be an integer >= 1, got {brief(coherence_blocks)}")
        check_generator(generator)
        if not isinstance(check_finite, bool):
            raise TypeError(f"check_finite must be True or False, got {brief(check_finite)}")
        self.check_finite = check_finite
        self.fading, self.path_loss = fading, path_loss
        self.policy = policy if policy is not None else PerfectInversion()
        self.noise_var = float(noise_var)
        self.coherence_blocks = coherence_blocks
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        self.generator = generator
        self.large_scale: Tensor | None = None  # [K] mean power gains, fixed for the run
        self.antennas = antennas  # N receive antennas and the beamformer (None or N = 1: one antenna)
        if isinstance(fading, ClusterFading):
            wanted = 1 if antennas is None else antennas.num_antennas
            if fading.num_antennas != wanted:
                raise ValueError(
                    f"fading has {fading.num_antennas} antennas (ClusterFading), but antennas has {wanted}: "
                    "the drop's clusters and the beamformer must see the same array"
                )
            if antennas is not None and antennas.correlation != 0:
                raise ValueError(
                    f"antennas.correlation = {antennas.correlation}, but with ClusterFading the antennas' "
                    "correlation comes from the clusters' angles: give 0"
                )
        self._time_step = 0  # the round the next realizations belong to (see the class docstring)
        self._noise = ComplexNoise()

    @property
    def time_step(self) -> int:
        """The round the next realizations belong to (a :class:`~channels.clusters.ClusterFading`
        samples its response there; other fading models ignore it)."""
        return self._time_step

    @time_step.setter
    def time_step(self, value: int) -> None:
        self._time_step = check_count(value, "time_step", minimum=0)

    def extra_repr(self) -> str:
        parts = [f"policy={self.policy!r}", f"noise_var={self.noise_var}"]
        if self.coherence_blocks != 1:
            parts.append(f"coherence_blocks={self.coherence_blocks}")
        if not self.check_finite:
            parts.append("check_finite=False")
        return ", ".join(parts)

    def random_state(self) -> dict[str, Tensor | None]:
        """The channel's random state: its generator and the run's large-scale gains (for checkpoints;
        ``state_dict`` stays the ``nn.Module`` one)."""
        return {"generator": self.generator.get_state(), "large_scale": self.large_scale}

    def set_random_state(self, state: dict[str, Tensor | None]) -> None:
        """Restore what :meth:`random_state` returned (from tensors on any device)."""
        generator_state = state["generator"]
        assert generator_state is not None  # random_state always saves the generator's state
        self.generator.set_state(generator_state.cpu())
        large_scale = state["large_scale"]
        self.large_scale = None if large_scale is None else large_scale.to(self.generator.device)

    @property
    def num_clients(self) -> int | None:
        """K, the clients whose large-scale gains (``path_loss``) this channel drew for the run; None
        before its first realization or without a path-loss model (then nothing per client persists
        from round to round, and any K may be realized)."""
        if isinstance(self.fading, ClusterFading):  # a drop's clusters: its clients, from the start
            return self.fading.num_clients
        return None if self.large_scale is None else int(self.large_scale.shape[0])

    def realize(
        self,
        num_clients: int | None,
        channel_uses: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.complex64,
        *,
        clients: Tensor | Sequence[int] | None = None,
    ) -> ChannelState:
        """Draw one round's channel for ``channel_uses`` real uses.

        Args:
            num_clients: K, every client the channel serves in the run. The large-scale gains
                (``path_loss``) are drawn for all K at the first realization and kept for the run
                (client positions do not change between rounds): a later call with another K is
                refused with a ``ValueError``, never answered by a new draw. ``None`` (with
                ``clients``): the K of the gains already drawn.
            channel_uses: the real channel uses the state must cover (needed with several
                coherence blocks).
            generator: default the channel's own.
            dtype: complex dtype of the gains.
            clients: the indices (in ``0 .. K-1``, distinct) of the clients to realize, e.g. a round's
                participants: the state holds their rows in that order, small-scale fading drawn for
                them alone and each with its own large-scale gain. Default: all K in order.

        Example (8 clients at fixed distances; a round of 3 of them keeps their own path loss):
            >>> from channels.fading import PathLoss, RayleighFading
            >>> g = torch.Generator().manual_seed(0)
            >>> channel = FadingChannel(RayleighFading(), path_loss=PathLoss(shadowing=False), generator=g)
            >>> everyone = channel.realize(8)
            >>> some = channel.realize(8, clients=[5, 2, 7])
            >>> some.gains.shape[0], channel.num_clients
            (3, 8)
            >>> channel.realize(3)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: num_clients = 3, but this channel's large-scale gains (path_loss) were drawn for 8 ...
        """
        if num_clients is None:
            if clients is None:
                raise ValueError("num_clients = None needs clients (the indices of the clients to realize)")
            drawn = self.num_clients
            if drawn is None and self.path_loss is not None:
                raise ValueError(
                    "num_clients = None, but this channel has not drawn its clients' large-scale gains "
                    "(path_loss) yet: realize all K clients once, realize(K), before a round of some of them"
                )
        else:
            check_count(num_clients, "num_clients", minimum=1)
            drawn = int(num_clients)
        index = None if clients is None else client_index(clients, drawn)
        if channel_uses is not None:
            check_count(channel_uses, "channel_uses", minimum=0)
        check_generator(generator)
        large_scale = self.large_scale
        if self.path_loss is not None and large_scale is not None and len(large_scale) != drawn:
            raise ValueError(
                f"num_clients = {drawn}, but this channel's large-scale gains (path_loss) were drawn for "
                f"{len(large_scale)} clients, once for the run (client positions do not change); realize "
                "some of them with clients=[their indices]"
            )
        if isinstance(self.fading, ClusterFading) and drawn != self.fading.num_clients:
            raise ValueError(
                f"num_clients = {drawn}, but this channel's clusters (ClusterFading) are those of a drop of "
                f"{self.fading.num_clients} clients; realize some of them with clients=[their indices]"
            )
        generator = generator if generator is not None else self.generator
        count = drawn if index is None else int(index.numel())
        assert count is not None  # an int here: given, or drawn above, or the indices' count
        blocks = self.coherence_blocks
        if blocks > 1 and channel_uses is None:
            raise ValueError("channel_uses is needed to cut a round into coherence blocks")
        array = self.antennas if self.antennas is not None and self.antennas.num_antennas > 1 else None
        if isinstance(self.fading, ClusterFading):  # each client's own clusters at this round's time
            rows = torch.arange(count) if index is None else index
            steps = self.time_step * blocks + torch.arange(blocks)  # the round's coherence blocks
            gains = self.fading(rows, steps, dtype, generator.device).unsqueeze(2)  # [K, C, 1, N]
            if array is None:
                gains = gains[..., 0]
        elif array is not None:  # [K, C, N_sub, N] channel vectors, combined by the beamformer below
            draws = array.draw(self.fading, count * blocks, generator, dtype)
            gains = draws.reshape(blocks, count, *draws.shape[1:]).transpose(0, 1)
        elif self.fading is None:
            gains = torch.ones(count, blocks, 1, dtype=dtype, device=generator.device)
        else:
            draws = self.fading(count * blocks, generator, dtype)  # [K*C, N]
            gains = draws.reshape(blocks, count, -1).transpose(0, 1)  # [K, C, N]
        if self.path_loss is not None:
            if self.large_scale is None:  # the run's first realization: every client's, once
                assert drawn is not None  # checked above: None only once the gains are drawn
                self.large_scale = self.path_loss(drawn, generator).to(generator.device)
            assert self.large_scale is not None
            beta = self.large_scale if index is None else self.large_scale[index.to(self.large_scale.device)]
            scale = beta.sqrt().to(gains.real.dtype)  # [K] -> over clients, any antennas
            gains = gains * scale.reshape(-1, *[1] * (gains.dim() - 1))
        csi = self.policy.estimate_csi(gains, generator)  # with antennas: h_hat = h + e on every antenna
        norms = None
        if array is not None:  # the server designs m from the estimates: g = m^H h, g_hat = m^H h_hat
            norms = torch.linalg.vector_norm(gains, dim=-1)  # ||h_k||, for a privacy bound
            gains, csi = array.combine(gains, csi)
        symbols = math.ceil((channel_uses or 0) / 2)
        return ChannelState(
            gains, csi, symbols_per_block=max(1, math.ceil(symbols / blocks)), vector_norms=norms
        )

    def forward(
        self,
        signals: Tensor,
        energy: float | Tensor | None = None,
        *,
        snr_db: float | None = None,
        state: ChannelState | None = None,
        symbol_offset: int = 0,
        generator: torch.Generator | None = None,
        reduce: Processes | None = None,
        weights: Tensor | Sequence[float] | None = None,
    ) -> ChannelOutput:
        """One block over the air: ``signals`` ``[K, d]`` (real), each client's ``energy`` for it (a
        float or ``[K]``) or a per-use ``snr_db``; returns a :class:`ChannelOutput` (see the class
        docstring for ``state``, ``symbol_offset``, ``generator``, ``reduce`` and ``weights``; the
        weighted physics is derived in :meth:`transmit`)."""
        if (energy is None) == (snr_db is None):
            raise ValueError("give exactly one of energy (per block) or snr_db (per channel use)")
        if not isinstance(signals, Tensor):
            raise TypeError(f"signals must be a [K, d] tensor, got {brief(signals)}")
        blocks = SignalBlocks(signals)  # checks the [K, d] shape and the dtype (real floating point)
        num_clients, dim = signals.shape
        if snr_db is not None:
            energy = energy_for_snr_db(snr_db, channel_uses=dim, noise_var=self.noise_var)
        assert energy is not None  # given, or computed from snr_db just above
        out = self.transmit(
            blocks,
            per_client(energy, num_clients, torch.float64, signals.device),  # transmit checks underflow
            state=state,
            symbol_offset=symbol_offset,
            generator=generator,
            reduce=reduce,
            weights=weights,
        )
        return ChannelOutput(
            estimate=out.estimates[0],
            energy_used=out.energy_used[:, 0],
            noise_var=out.noise_var[0],
            active=out.active[:, 0],
            scale=out.scale[0],
        )

    def transmit(
        self,
        blocks: SignalBlocks,
        energy: Tensor,
        *,
        state: ChannelState | None = None,
        symbol_offset: int = 0,
        generator: torch.Generator | None = None,
        reduce: Processes | None = None,
        weights: Tensor | Sequence[float] | None = None,
        clips: Tensor | Sequence[float] | None = None,
        min_noise_multiplier: float | None = None,
        min_energy_scale: float | None = None,
        participation: float | None = None,
    ) -> BlocksOutput:
        """Send a round's blocks one after another through one channel state: ``energy`` ``[K, B]`` is
        each client's budget per block (>= 0; ``inf``: noiseless). The physics is per block: each
        block b has its own alignment scale eta_b = min_k sqrt(E_kb) / ||m_k u_kb / h_hat_k||, so each
        client spends at most E_kb on it, and its own effective noise variance noise_var / (eta_b
        K_a)^2 (see the module docstring). The computation is fused over the pass: block norms come
        from the real I/Q values (float64 accumulation), the clients' symbols are summed once and
        scaled by their block's eta, and one noise draw covers every symbol of the pass (the same
        distribution as one draw per block, another stream). Signals packed one client at a time (a
        round above ``SignalBlocks``'s ``pack_limit``) are summed over the clients in another order:
        the same result to float rounding. With ``reduce``, ``blocks``, ``energy``, ``state`` and
        ``weights`` are this process's clients (as in ``forward``).

        Clipped (``clips``: ``[B]`` clips C_b > 0, every client's block b of norm at most C_b, no
        weights): the scale is the public bound eta_b = min_k sqrt(E_kb) / (C_b max_{j in b} m_kj /
        |h_hat_kj|), fixed by the clips, the budgets and the channel (no client's norm enters it), and
        the output reports the pass's ``noise_multiplier`` as a Gaussian mechanism (docs/physics.md,
        section 14; :mod:`channels.privacy`). ``min_noise_multiplier`` (with ``clips``): where the
        pass's noise multiplier would fall below it, every client lowers its energy by the same factor
        alpha = (nu / min_noise_multiplier)^2, so that the channel's noise alone meets it (the scale
        falls by sqrt(alpha)). In a clipped pass ``energy_used`` is what each client's own signal
        spends at the public scale, at most its budget. ``min_energy_scale`` (alpha_f in (0, 1], with
        ``min_noise_multiplier``; one receive antenna, perfect CSI, no ``participation``): the clients
        lower their energy at most to alpha_f of it, and where the floor needs more noise than the
        channel's at that energy, they send it: artificial noise of per-real-dimension variance
        sigma_a^2 = noise_var ((min_noise_multiplier / nu_f)^2 - 1) at the antenna, nu_f the pass's
        noise multiplier at alpha_f, split evenly over the K_j clients heard on each symbol (client k
        sends CN(0, 2 sigma_a^2 / K_j) / h_kj, which arrives as CN(0, 2 sigma_a^2 / K_j)); each
        client's share is counted in its ``energy_used``; the budget is then the client's over the pass
        (its blocks' E_kb pooled: a block's share of the noise follows its symbols' gains, not E_kb).
        Where a client's budget cannot carry its share
        at alpha_f, alpha stops lower, at the most every budget carries (public quantities only). The
        server's estimate has the same noise as lowering the energy alone would give; the output
        reports alpha and sigma_a^2.

        Hidden participation (``participation``: q in (0, 1], with ``clips``, without ``reduce``): the
        clients given are the whole population, each of which took part with probability q without
        the server knowing which (an absent client's blocks are zeros: it sends nothing and spends
        nothing). The scale is the clipped pass's public bound over the population, the noise
        multiplier's sensitivity the largest over the population, and the server divides by q
        K_j, q times the clients that could be heard on symbol j (public: the channel and the power
        control decide it, not who took part): the expected count, so that the estimate is unbiased
        for the population's mean of what it would send, sum_{k heard} u_kj / K_j.

        Weighted mean (``weights``: ``[K]`` client weights w_k > 0 and finite, e.g. data sizes; ``None``
        or all 1: the plain mean above, bit for bit). The estimate of symbol j is the weighted mean of
        the clients heard on it, A_j (self-normalised over the heard set: when truncation or a zero
        budget leaves clients out, the weights renormalise over the others):

            estimate_j = sum_{k in A_j} w_k u_kj / W_j,        W_j = sum_{k in A_j} w_k.

        Client k pre-scales its signal by w_k before the alignment, x_kj = eta_b w_k m_kj u_kj /
        h_hat_kj, so the common scale is set by the largest *weighted* need,

            eta_b = min_k sqrt(E_kb) / ||w_k m_k u_kb / h_hat_k||,

        and client k spends eta_b^2 w_k^2 ||m_k u_kb / h_hat_k||^2 <= E_kb (the tightest exactly
        E_kb). A common factor on every client's signal, such as the K_A / sum_A w of a formulation
        normalised to the plain mean's scale, is divided out by the min in eta_b: it changes no
        transmitted signal. Derivation (perfect CSI, h_hat = h): the antenna receives

            y_j = sum_k h_kj x_kj + z_j = eta_b sum_{k in A_j} w_k u_kj + z_j,    z_j ~ CN(0, 2 noise_var),

        the server divides by eta_b W_j (W_j all-reduced over processes with ``reduce``, like the
        counts), and

            y_j / (eta_b W_j) = sum_{A_j} w_k u_kj / W_j + z_j / (eta_b W_j):

        the weighted mean plus an error z_j / (eta_b W_j) of zero mean and per-entry (I or Q)
        variance noise_var / (eta_b W_j)^2, averaged over the block's symbols in ``noise_var``. With
        all w_k = 1, W_j = K_a and this is the unweighted channel. The weighted mean is that of the
        clients given: when they are a random sample of a population weighted by data size, the
        self-normalised estimate (a ratio of two random sums) is a biased, consistent estimate of the
        population's weighted mean, as Flower's FedAvg is.

        Example:
            >>> blocks = SignalBlocks([[torch.tensor([3.0, 4.0]), torch.tensor([1.0])],
            ...                        [torch.tensor([0.0, 1.0]), torch.tensor([3.0])]])
            >>> out = FadingChannel(noise_var=0.0).transmit(blocks, torch.full((2, 2), 25.0))
            >>> [e.tolist() for e in out.estimates], out.scale.tolist()
            ([[1.5, 2.5], [2.0]], [1.0, 1.6666666269302368])
            >>> out = FadingChannel(noise_var=0.0).transmit(blocks, torch.full((2, 2), 25.0), weights=[3, 1])
            >>> [e.tolist() for e in out.estimates], out.energy_used[:, 0].tolist()   # 3 u_1 needs 15
            ([[2.25, 3.25], [1.5]], [25.0, 0.1111111119389534])
        """
        generator, state, energy = self._checked(blocks, energy, state, symbol_offset, generator, reduce)
        clip = self._clips(clips, blocks, weights)
        if participation is not None:
            check_probability(participation, "participation")
            if clip is None or reduce is not None:
                raise ValueError(
                    "participation needs clips and no reduce (hidden participation: the clients given are "
                    "the whole population, on one process)"
                )
        weight, shift = normalised_weights(weights, blocks, reduce)
        sent = Precoded(self.policy, blocks, state, energy, symbol_offset)
        # pass 1: each client's need per block, the common scale eta per block and what it spends
        need, count, kept = sent.needs(weight, clip)
        self._refuse_overflow(need, blocks.dtype)
        eta, finite, energy_used = alignment(need, energy, reduce)
        if min_noise_multiplier is not None and (
            clip is None or not (math.isfinite(min_noise_multiplier) and min_noise_multiplier > 0)
        ):
            raise ValueError(
                f"min_noise_multiplier = {min_noise_multiplier!r} needs clips and a finite number > 0"
            )
        if min_energy_scale is not None:
            self._check_energy_floor(min_energy_scale, min_noise_multiplier, participation, reduce, state)
        nu = None if clip is None else self._noise_multiplier(sent, eta, finite, clip, reduce, need)
        energy_scale, artificial = None if min_noise_multiplier is None else 1.0, 0.0
        shares: Tensor | None = None  # [K, B]: each client's energy per unit of artificial noise variance
        if min_noise_multiplier is not None and nu is not None and self.noise_var > 0:
            if 0 < nu < min_noise_multiplier:  # lower every client's energy by alpha = this squared
                factor = nu / min_noise_multiplier
                energy_scale = factor**2
                if min_energy_scale is not None and energy_scale < min_energy_scale:
                    # lowered only toward the floor: the clients send the rest of the noise
                    shares = sent.noise_energy(1.0, count)  # one process: the count is every client's
                    energy_scale = self._afforded(shares, need, eta, finite, energy, factor, min_energy_scale)
                    artificial = self.noise_var * (energy_scale / factor**2 - 1)
                    factor = math.sqrt(energy_scale)
                # nu scales as 1 / eta and as the root of the noise: the lowered pass's nu is the floor
                eta, nu = eta * factor, min_noise_multiplier
        if clip is not None:  # what each client spends: its own signal at the public scale (<= E_kb)
            assert sent.actual is not None  # needs() keeps the norms with clips
            energy_used = torch.where(finite, eta.square() * sent.actual.square(), energy_used)
        # pass 2: the channel adds h_k x_k over the clients (eta common to a symbol: scaled once), the
        # server receives them with the noise and divides by eta K_a (or eta W)
        summed, active = sent.superpose(weight, kept)
        if reduce is not None:
            summed, count = reduce.sum(summed), reduce.sum(count)
        if artificial > 0:  # each client's share of the artificial noise, counted in its energy
            assert shares is not None
            energy_used = energy_used + (artificial * shares).to(energy_used)
        if participation is not None:  # hidden: the expected count q K_j (K_j > 0 where it is > 0)
            count = count.double() * participation
        estimates, noise_var = self._receive(
            sent,
            summed,
            count,
            eta,
            finite,
            weighted=weight is not None or participation is not None,
            generator=generator,
            artificial=artificial,
        )
        work = blocks.dtype
        return BlocksOutput(
            estimates=estimates,
            energy_used=energy_used.to(work),
            noise_var=noise_var.to(torch.float64),
            active=torch.cat(active),
            scale=torch.where(finite, torch.ldexp(eta, torch.tensor(-shift)), math.inf).to(work),
            noise_multiplier=nu,
            energy_scale=energy_scale,
            artificial_noise_var=artificial,
        )

    def _afforded(
        self,
        shares: Tensor,
        need: Tensor,
        eta: Tensor,
        finite: Tensor,
        energy: Tensor,
        factor: float,
        floor: float,
    ) -> float:
        """The energy fraction alpha in [factor^2, floor] the clients' signals keep when they send the
        rest of the noise: the floor, or less where a client's budget cannot carry its share. At alpha
        the signal's public bound costs client k alpha P_k (P_k = sum_b eta_b^2 need_kb^2) and its share
        of the artificial noise noise_var (alpha / factor^2 - 1) N_k (N_k: ``shares`` summed over the
        blocks, :meth:`Precoded.noise_energy` per unit variance), so alpha <= (E_k + noise_var N_k) /
        (P_k + noise_var N_k / factor^2): public quantities only (the clips, the budgets, the channel)."""
        scale = torch.where(finite, eta, 0.0).double()  # a block nobody sends on costs nothing (eta inf)
        public = (scale.square()[None, :] * need.double().square()).sum(1)  # [K]
        unit = self.noise_var * shares.sum(1).double().to(public.device)  # [K]: noise_var N_k
        budget = energy.double().sum(1).to(public.device)
        heard = unit > 0
        if not bool(heard.any()):
            return floor
        afford = ((budget + unit) / (public + unit / factor**2))[heard]
        if not bool(torch.isfinite(afford).all()):
            raise ValueError(
                f"min_energy_scale: the clients' affordable energy is not finite ({afford.tolist()[:4]})"
            )
        return max(factor**2, min(floor, float(afford.min())))

    @staticmethod
    def _check_energy_floor(
        floor: object,
        min_noise_multiplier: float | None,
        participation: float | None,
        reduce: Processes | None,
        state: ChannelState,
    ) -> None:
        """``min_energy_scale``: a number in (0, 1] with ``min_noise_multiplier``, and a pass whose
        clients' noise shares arrive as they are sent (one antenna, perfect CSI, known participants)."""
        check_probability(floor, "min_energy_scale")  # a fraction of the budget, in (0, 1]
        if min_noise_multiplier is None:
            raise ValueError(
                "min_energy_scale needs a min_noise_multiplier (the floor it keeps the energy for)"
            )
        if (
            participation is not None
            or reduce is not None
            or state.vector_norms is not None
            or not bool((state.gains == state.csi).all())
        ):
            raise ValueError(
                "min_energy_scale (artificial noise) needs one receive antenna, perfect CSI, no "
                "participation and one process: otherwise the clients' noise shares do not arrive as "
                "they are sent"
            )

    @staticmethod
    def _clips(
        clips: Tensor | Sequence[float] | None, blocks: SignalBlocks, weights: object
    ) -> Tensor | None:
        """A clipped pass's ``[B]`` clips (float64), checked: finite, > 0, one per block, every client's
        block within its clip (clip them first: :func:`channels.privacy.clip_blocks`), no weights."""
        if clips is None:
            return None
        clip = torch.as_tensor(clips, dtype=torch.float64).flatten().cpu()
        if clip.numel() != len(blocks.dims) or not bool((torch.isfinite(clip) & (clip > 0)).all()):
            raise ValueError(
                f"clips must be {len(blocks.dims)} finite numbers > 0 (one per block), got {clip.tolist()}"
            )
        if weights is not None:
            raise ValueError("weights must be None with clips: a clipped pass sends uniform weights")
        norms = blocks.norms().cpu()  # [K, B] float64
        if bool((norms > clip[None, :] * (1 + 1e-6)).any()):
            k, b = divmod(int((norms / clip[None, :]).argmax()), len(blocks.dims))
            raise ValueError(
                f"signals exceed their clips: client {k}'s block {b} has norm {float(norms[k, b]):.6g} > "
                f"{float(clip[b]):.6g}; clip them first (channels.privacy.clip_blocks)"
            )
        return clip

    def _noise_multiplier(
        self,
        sent: Precoded,
        eta: Tensor,
        finite: Tensor,
        clip: Tensor,
        reduce: Processes | None,
        need: Tensor,
    ) -> float:
        """A clipped pass's noise multiplier: sqrt(noise_var) over the largest client's sensitivity
        sqrt(sum_b eta_b^2 C_b^2 r_kb^2), r_kb the largest ||h_kj|| / |g_hat_kj| over the symbols of
        block b it sends on (0 where it is silent: a silent client releases nothing). 0 (no privacy)
        when the pass is noiseless or a block someone sends on has no finite scale (an infinite
        budget: sent without noise)."""
        if self.noise_var == 0:
            return 0.0
        sending = need > 0  # [K, B]: who sends each block (a public bound > 0)
        _, csi = sent.state.at(sent.offset, sent.total)
        sends = sent.policy.transmits(csi) & (csi != 0)
        ratio = torch.where(sends, sent.state.gain_ratio(sent.offset, sent.total), 0.0)  # [K, S] or [K, 1]
        if ratio.shape[1] == 1:
            per_block = ratio.expand(-1, len(sent.spans))
        else:
            per_block = torch.stack([ratio[:, span].max(1).values for span in sent.spans], 1)
        per_block = torch.where(sending.to(per_block.device), per_block, 0.0).cpu()
        # sent without noise (an infinite budget) or louder than any bound (an estimate of 0): 0
        exposed = bool((~finite.cpu() & sending.any(0).cpu()).any()) or not bool(
            torch.isfinite(per_block).all()
        )
        scale = torch.where(finite, eta, 0.0).double().cpu()
        local = 0.0 if exposed else noise_multiplier(self.noise_var, scale, clip, per_block)  # inf: none sent
        if reduce is None:
            return local
        # every process takes part in the collective, whatever it found: nu is the least over them
        return float(reduce.min(torch.tensor([local], dtype=torch.float64, device=eta.device)).reshape(()))

    def _checked(
        self,
        blocks: SignalBlocks,
        energy: Tensor,
        state: ChannelState | None,
        symbol_offset: int,
        generator: torch.Generator | None,
        reduce: Processes | None,
    ) -> tuple[torch.Generator, ChannelState, Tensor]:
        """:meth:`transmit`'s arguments checked: the generator to draw with, the state (drawn here when
        none is given, without ``reduce``) and the budgets in the signals' dtype ``[K, B]``."""
        if not isinstance(blocks, SignalBlocks):
            raise TypeError(f"blocks must be a SignalBlocks (the clients' signals), got {brief(blocks)}")
        check_generator(generator)
        check_count(symbol_offset, "symbol_offset", minimum=0)
        if state is not None:
            if not isinstance(state, ChannelState):
                raise TypeError(f"state must be a ChannelState (from realize), got {brief(state)}")
            check_data(state.gains, "state")
            check_data(state.csi, "state")
        if self.check_finite:
            blocks.check_finite()
        generator = generator if generator is not None else self.generator
        num_clients, work = blocks.num_clients, blocks.dtype
        cdtype = torch.complex128 if work == torch.float64 else torch.complex64
        if state is None:
            if reduce is not None:  # each process would draw its own, different channel
                raise ValueError(
                    "with reduce, pass the round's state (realized for every client, then sliced)"
                )
            state = self.realize(num_clients, sum(blocks.dims), generator, cdtype)
        if state.gains.shape[0] != num_clients:
            raise ValueError(
                f"the channel state has {state.gains.shape[0]} clients, signals have {num_clients}"
            )
        given = real_tensor(energy, "energy", device=blocks.device)
        energy = given.to(work)
        if energy.shape != (num_clients, len(blocks.dims)):
            raise ValueError(
                f"energy must have shape [{num_clients}, {len(blocks.dims)}] (clients, blocks), "
                f"got {tuple(energy.shape)}"
            )
        if not bool(torch.all(energy >= 0)):  # also rejects NaN
            raise ValueError(f"energy must be >= 0 and not NaN, got {energy.min().item()} at the lowest")
        if bool(((given > 0) & (energy == 0)).any()):  # a budget would silently act as none
            raise ValueError(
                f"energy holds positive budgets that underflow to 0 in {work} (the smallest "
                f"{given[given > 0].min().item():.3g}): no client would be heard; budgets of at least "
                f"{torch.finfo(work).tiny:.3g} per block are needed"
            )
        return generator, state, energy

    def _refuse_overflow(self, need: Tensor, work: torch.dtype) -> None:
        """The clients' sum of a block is at most the sum of their needs: beyond the work dtype's range it
        would overflow (an infinite or NaN estimate), so such signals are refused (with
        check_finite=False, non-finite entries go through as the class docstring says)."""
        finite_need = torch.isfinite(need)
        reach = torch.where(finite_need, need, 0.0).sum(0) if not self.check_finite else need.sum(0)
        if (self.check_finite and not bool(finite_need.all())) or bool((reach > torch.finfo(work).max).any()):
            worst = int(torch.nan_to_num(reach, nan=math.inf).argmax())
            raise ValueError(
                f"signals are too large for {work}: block {worst}'s norms (divided by the channel gains, "
                f"times the weights) sum to {reach[worst].item():.3g} over the clients, beyond "
                f"{torch.finfo(work).max:.3g}, so the over-the-air sum would overflow; scale them down or "
                "send float64 signals"
            )

    def _receive(
        self,
        sent: Precoded,
        summed: Tensor,
        count: Tensor,
        eta: Tensor,
        finite: Tensor,
        *,
        weighted: bool,
        generator: torch.Generator,
        artificial: float = 0.0,
    ) -> tuple[list[Tensor], Tensor]:
        """The server's side of a pass: the antenna's y = eta * sum + z (one noise draw for the whole
        pass, CN(0, 2 noise_var) per symbol; eta = inf: noiseless, z left out) divided by eta K_a, or by
        eta W with weights; the estimate of each block and its effective noise variance.
        ``artificial``: the clients' artificial noise at the antenna (per real dimension), drawn with
        the receiver's in one Gaussian of variance noise_var + artificial (their sum's distribution)."""
        blocks, spans, block_of = sent.blocks, sent.spans, sent.block_of
        work = blocks.dtype
        heard = count > 0  # with weights, W_j > 0 exactly where someone is heard (every w_k > 0)
        if not weighted:
            denominator = count.clamp(min=1).to(work)  # [S], the clients heard on each symbol
        else:
            denominator = torch.where(heard, count, 1.0).to(work)  # [S], W_j = sum_{A_j} w_k
        noisy = self.noise_var > 0
        variance = self.noise_var + artificial
        if noisy:
            scale = torch.where(finite, eta, 1.0).to(work)[block_of]
            y = self._noise(summed * scale, variance, generator)
            if not bool(finite.all()):
                y = torch.where(finite[block_of], y, summed * scale)
            denominator = denominator * scale
        else:
            y = summed
        estimate = from_symbols(torch.where(heard, y / denominator, 0), 2 * sent.total)
        if noisy:
            per_symbol = torch.where(finite[block_of] & heard, variance / denominator.square(), 0.0)
            noise_var = torch.stack([per_symbol[span].mean() for span in spans])
        else:
            noise_var = torch.zeros(len(spans), dtype=work, device=blocks.device)
        estimates = [
            estimate[2 * a : 2 * a + d].to(dtype)
            for a, d, dtype in zip(blocks.starts, blocks.dims, blocks.block_dtypes)
        ]
        return estimates, noise_var
