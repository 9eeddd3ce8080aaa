"""Differential privacy from the channel's own noise: the Gaussian mechanism that a clipped
over-the-air pass is, and its client-level accounting over a run's rounds with Google's
``dp-accounting`` (docs/physics.md, section 14).

In a clipped pass (no data-dependent side information) client k sends each block b of its signal
clipped to norm C_b, with sum_b C_b^2 = C^2, and the common scale eta_b is fixed from C, the energy
and the channel. The server observes its N antennas' y = sum_k h_k x_k + z, z ~ CN(0, 2 noise_var I)
per symbol, with x_kj = eta_b u_kj / g_kj (g_kj = m^H h_kj, the gain the client inverts). One client's
whole contribution to everything the server receives in the pass has norm at most

    Delta_k = sqrt( sum_b eta_b^2 C_b^2 r_kb^2 ),        r_kb = max_{j in b} ||h_kj|| / |g_hat_kj|

(r = 1 with one antenna and perfect CSI; with N antennas the server could combine toward client k, so
the bound uses ||h_k||, not the effective gain; with channel-estimation errors the client inverts its
estimate g_hat_kj, and r_kj = ||h_kj|| / |g_hat_kj|), and every real dimension of the noise has
variance noise_var. So
the pass is a Gaussian mechanism with noise multiplier (noise standard deviation over the
sensitivity of adding or removing one client)

    nu = sqrt(noise_var) / max_k Delta_k                                   (:func:`noise_multiplier`).

The passes of one round compose into one Gaussian, nu_round = (sum_p nu_p^-2)^(-1/2) (exact), and
:class:`PrivacyAccountant` composes the rounds, with amplification by sampling where the
participating set is hidden from the server.

``dp-accounting`` is imported on first use (as Sionna is): importing ``channels`` stays light.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from channels._checks import check_probability

__all__ = [
    "ACCOUNTANTS",
    "SAMPLINGS",
    "PrivacyAccountant",
    "block_clips",
    "clip_blocks",
    "clipped_off",
    "flat_clip",
    "noise_multiplier",
    "round_noise_multiplier",
]

ACCOUNTANTS = ("rdp", "pld")  # Renyi DP (Mironov), privacy loss distributions (Koskela et al., Google)
SAMPLINGS = ("none", "poisson", "fixed")


def _positive(value: object, name: str) -> float:
    """``value`` as a float > 0 (``inf`` allowed), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} = {value!r} is out of range; expected a number > 0")
    return float(value)


def noise_multiplier(
    noise_var: float,
    scales: Tensor | Sequence[float],
    clips: Tensor | Sequence[float],
    gain_ratio: Tensor | None = None,
) -> float:
    """The noise multiplier of one clipped pass (see the module docstring): the noise standard
    deviation per real dimension over the largest client's add/remove sensitivity,

        nu = sqrt(noise_var) / max_k sqrt(sum_b eta_b^2 C_b^2 r_kb^2).

    Args:
        noise_var: the noise variance per real channel use at the receiver (> 0).
        scales: ``[B]`` the blocks' common scales eta_b (>= 0; 0: a block nobody sends).
        clips: ``[B]`` the blocks' clips C_b (> 0).
        gain_ratio: ``[K, B]`` r_kb = max over the symbols of block b that client k sends on of
            ||h_kj|| / |g_hat_kj|, its channel vector's norm over the (estimated) gain it inverts (>= 1
            with perfect CSI; 0 where it is silent); ``None``: 1 for every client (one antenna, perfect
            CSI).

    Returns ``inf`` when nothing is sent (every scale 0).

    >>> round(noise_multiplier(1.0, [0.5, 0.25], [2.0, 4.0]), 6)   # sum eta^2 C^2 = 1 + 1
    0.707107
    >>> round(noise_multiplier(1.0, [0.5], [2.0], torch.tensor([[1.0], [3.0]])), 6)  # client 2: r = 3
    0.333333
    """
    variance = _positive(noise_var, "noise_var")
    eta = torch.as_tensor(scales, dtype=torch.float64).flatten().cpu()
    clip = torch.as_tensor(clips, dtype=torch.float64).flatten().cpu()
    if eta.shape != clip.shape:
        raise ValueError(
            f"scales and clips must have one entry per block, got {eta.numel()} and {clip.numel()}"
        )
    if not bool(torch.isfinite(eta).all() and (eta >= 0).all()):
        raise ValueError(f"scales must be finite numbers >= 0, got {eta.tolist()}")
    if not bool(torch.isfinite(clip).all() and (clip > 0).all()):
        raise ValueError(f"clips must be finite numbers > 0, got {clip.tolist()}")
    per_block = (eta * clip).square()  # [B]
    if gain_ratio is None:
        worst = per_block.sum()
    else:
        ratio = torch.as_tensor(gain_ratio, dtype=torch.float64).cpu()
        if ratio.dim() != 2 or ratio.shape[1] != eta.numel():
            raise ValueError(f"gain_ratio must have shape [K, {eta.numel()}], got {tuple(ratio.shape)}")
        if not bool(torch.isfinite(ratio).all() and (ratio >= 0).all()):
            raise ValueError(
                "gain_ratio must hold finite numbers >= 0 (||h_k|| / |g_hat_k| on the symbols it sends)"
            )
        if ratio.shape[0] == 0:
            return math.inf
        worst = (per_block * ratio.square()).sum(1).max()
    if float(worst) == 0:
        return math.inf
    return math.sqrt(variance) / math.sqrt(float(worst))


def block_clips(dims: Sequence[int], clip: float) -> Tensor:
    """``[B]`` float64 per-block clips C_b = C sqrt(d_b / sum d) for blocks of ``dims`` entries: sum_b
    C_b^2 = C^2, each block's share of the clip its share of the entries (fixed in advance, so the
    energy split E_b = E C_b^2 / C^2 depends on no client's data).

    >>> block_clips([3, 1], 2.0).tolist()
    [1.7320508075688772, 1.0]
    """
    c = _positive(clip, "clip")
    if math.isinf(c) or not dims or any(int(d) < 1 for d in dims):
        raise ValueError(
            f"clip = {clip!r} and dims = {list(dims)!r}: expected a finite clip and block sizes >= 1"
        )
    size = torch.tensor([float(d) for d in dims], dtype=torch.float64)
    return c * (size / size.sum()).sqrt()


def clip_blocks(blocks: Sequence[Sequence[Tensor]], clips: Tensor | Sequence[float]) -> list[list[Tensor]]:
    """Every client's block b scaled down to norm at most C_b (``u min(1, C_b / ||u||)``; a block within
    its clip is returned as it is), what a client transmits in a clipped pass.

    >>> clip_blocks([[torch.tensor([3.0, 4.0]), torch.tensor([0.5])]], [1.0, 1.0])[0][0].tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    limit = torch.as_tensor(clips, dtype=torch.float64).flatten().cpu()
    out = []
    for client in blocks:
        if len(client) != limit.numel():
            raise ValueError(f"clips must have one entry per block ({len(client)}), got {limit.numel()}")
        row = []
        for u, c in zip(client, limit.tolist()):
            norm = float(torch.linalg.vector_norm(u.double()))
            row.append(u if norm <= c else u * (c / norm))
        out.append(row)
    return out


def clipped_off(blocks: Sequence[Tensor], clips: Tensor | Sequence[float]) -> list[Tensor]:
    """The part of one client's ``blocks`` that the clip cuts off, block by block: ``u - u min(1, C_b /
    ||u||)`` (:func:`clip_blocks`' complement; zeros for a block within its clip), what a client's
    error feedback keeps of a clipped pass (:meth:`laser.compressor.CompressorClient.keep_clipped`).

    >>> [t.tolist() for t in clipped_off([torch.tensor([3.0, 4.0]), torch.tensor([0.5])], [1.0, 1.0])]
    [[2.4000000953674316, 3.200000047683716], [0.0]]
    """
    (sent,) = clip_blocks([blocks], clips)
    return [torch.zeros_like(u) if c is u else u - c for u, c in zip(blocks, sent)]


def flat_clip(blocks: Sequence[Tensor], clip: float) -> tuple[list[Tensor], list[Tensor]]:
    """One client's ``blocks`` clipped as one vector to norm at most ``clip`` (Flower's and DP-FedAvg's
    flat clip, ``u min(1, C / ||u||)`` over all blocks together), and the part cut off: what the
    client sends in a central-DP pass and what its error feedback keeps.

    >>> sent, off = flat_clip([torch.tensor([3.0]), torch.tensor([4.0])], 1.0)
    >>> [t.tolist() for t in sent], [t.tolist() for t in off]
    ([[0.6000000238418579], [0.800000011920929]], [[2.4000000953674316], [3.200000047683716]])
    """
    c = _positive(clip, "clip")
    if math.isinf(c):
        raise ValueError(f"clip = {clip!r}: expected a finite number > 0")
    norm = math.sqrt(sum(float(torch.linalg.vector_norm(u.double())) ** 2 for u in blocks))
    if norm <= c:
        return list(blocks), [torch.zeros_like(u) for u in blocks]
    sent = [u * (c / norm) for u in blocks]
    return sent, [u - v for u, v in zip(blocks, sent)]


def round_noise_multiplier(pass_multipliers: Sequence[float]) -> float:
    """The passes of one round composed into one Gaussian mechanism (exact for Gaussians):
    (sum_p nu_p^-2)^(-1/2); ``inf`` passes (nothing sent) add nothing.

    >>> round(round_noise_multiplier([1.0, 1.0]), 6)
    0.707107
    """
    total = 0.0
    for value in pass_multipliers:
        nu = _positive(value, "noise_multiplier")
        total += 0.0 if math.isinf(nu) else nu**-2
    return math.inf if total == 0 else total**-0.5


def _unconverged_order(record: logging.LogRecord) -> bool:
    """False for dp-accounting's note that the series of a fractional Renyi order did not converge
    (a small order of a Poisson-subsampled Gaussian at a low noise multiplier): it leaves that order
    out of the epsilon, which stays an upper bound, and says so once per order and round, hundreds of
    lines a run."""
    return not str(record.msg).startswith("_compute_log_a_frac failed to converge")


def _dp() -> Any:
    """``dp_accounting``, imported on first use (its notes of orders left out, silenced)."""
    import dp_accounting

    absl = logging.getLogger("absl")
    if _unconverged_order not in absl.filters:
        absl.addFilter(_unconverged_order)
    return dp_accounting


class PrivacyAccountant:
    """Client-level (epsilon, delta) of a run: every round a Gaussian mechanism of noise multiplier
    nu_t (the noise standard deviation over one client's add/remove sensitivity, from
    :func:`noise_multiplier`), composed over the rounds with Google's ``dp-accounting``.

    Args:
        delta: the delta of the (epsilon, delta) reported, in (0, 1).
        accountant: ``"rdp"`` (Renyi DP: cheap, a little loose: 8% above the exact epsilon for one
            Gaussian at nu = 1) or ``"pld"`` (privacy loss distributions: tight; without sampling the
            rounds' Gaussians compose exactly into one, nu = (sum_t nu_t^-2)^(-1/2), whose epsilon is
            dp-accounting's analytic Gaussian mechanism, in milliseconds; with Poisson sampling each
            round's composition on the PLD grid costs about 0.5 s).
        sampling: ``"none"`` (every client's participation is visible to the server: no amplification,
            q = 1), ``"poisson"`` (clients sample themselves with ``probability`` and the server cannot
            tell who did: add/remove neighbours, sensitivity C) or ``"fixed"`` (``per_round`` of
            ``population`` without replacement, hidden: replace-one neighbours, sensitivity 2C, so the
            event's noise multiplier is nu / 2; only ``"rdp"`` composes it in dp-accounting 0.6).
        probability: ``"poisson"``: each client's probability of taking part in a round, in (0, 1].
        population: ``"fixed"``: the clients sampled from.
        per_round: ``"fixed"``: the clients a round takes, 1 to ``population``.

    Example:
        >>> accountant = PrivacyAccountant(delta=1e-5, accountant="pld")
        >>> for t in range(4):
        ...     _ = accountant.step(2.0)
        >>> round(accountant.epsilon(), 3), accountant.rounds   # one Gaussian at nu = 2 / sqrt(4) = 1
        (4.377, 4)
    """

    def __init__(
        self,
        delta: float,
        accountant: str = "rdp",
        sampling: str = "none",
        *,
        probability: float | None = None,
        population: int | None = None,
        per_round: int | None = None,
    ) -> None:
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
            raise ValueError(f"delta = {delta!r} is out of range; expected a number in (0, 1)")
        if accountant not in ACCOUNTANTS:
            raise ValueError(f"accountant = {accountant!r} is not accepted; expected one of {ACCOUNTANTS}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling = {sampling!r} is not accepted; expected one of {SAMPLINGS}")
        if sampling == "poisson":
            check_probability(probability, "probability")
        if sampling == "fixed":
            if accountant == "pld":
                raise ValueError(
                    "accountant = 'pld' cannot compose fixed-size sampling without replacement "
                    "(dp-accounting 0.6 composes it only under 'rdp' with replace-one neighbours)"
                )
            if not (
                isinstance(population, int) and isinstance(per_round, int) and 1 <= per_round <= population
            ):
                raise ValueError(
                    f"per_round = {per_round!r} and population = {population!r}: expected integers with "
                    "1 <= per_round <= population"
                )
        self.delta, self.accountant, self.sampling = float(delta), accountant, sampling
        self.probability = None if probability is None else float(probability)
        self.population, self.per_round = population, per_round
        self.history: list[float] = []  # each round's noise multiplier
        self._ledger: Any = None  # the accountant composed so far (built on first use)
        self._inverse_square = 0.0  # pld without sampling: sum_t nu_t^-2
        self._exposed = False  # a round released without noise (nu = 0): epsilon is inf

    @property
    def rounds(self) -> int:
        """The rounds composed so far."""
        return len(self.history)

    def _fresh(self) -> Any:
        dp = _dp()
        if self.accountant == "pld":
            return dp.pld.PLDAccountant()
        if self.sampling == "fixed":
            return dp.rdp.RdpAccountant(neighboring_relation=dp.NeighboringRelation.REPLACE_ONE)
        return dp.rdp.RdpAccountant()

    def _event(self, nu: float) -> Any:
        """One round's DP event at noise multiplier ``nu`` (a Python float: dp-accounting's RDP
        collapses nested Gaussians wrongly for other number types)."""
        dp = _dp()
        if self.sampling == "poisson":
            return dp.PoissonSampledDpEvent(self.probability, dp.GaussianDpEvent(float(nu)))
        if self.sampling == "fixed":
            inner = dp.GaussianDpEvent(float(nu) / 2)  # replace-one: sensitivity 2C
            return dp.SampledWithoutReplacementDpEvent(self.population, self.per_round, inner)
        return dp.GaussianDpEvent(float(nu))

    def step(self, noise_multiplier: float | Sequence[float]) -> float:
        """Compose one round (its noise multiplier, or its passes' to compose first, see
        :func:`round_noise_multiplier`; 0: released without noise, epsilon inf from then on; inf:
        nothing sent); returns the cumulative epsilon."""
        if isinstance(noise_multiplier, (int, float)) and not isinstance(noise_multiplier, bool):
            nu = 0.0 if noise_multiplier == 0 else _positive(noise_multiplier, "noise_multiplier")
        else:
            values = list(noise_multiplier)  # type: ignore[arg-type]
            nu = 0.0 if any(v == 0 for v in values) else round_noise_multiplier(values)
        self.history.append(nu)
        if nu == 0:  # released without noise: no privacy, from this round on
            self._exposed = True
            return math.inf
        if math.isinf(nu):  # nothing sent this round: nothing released
            return self.epsilon()
        if self.accountant == "pld" and self.sampling == "none":
            self._inverse_square += nu**-2
        else:
            if self._ledger is None:
                self._ledger = self._fresh()
            self._ledger.compose(self._event(nu))
        return self.epsilon()

    def epsilon(self) -> float:
        """The cumulative epsilon at :attr:`delta` over the rounds composed (0 before any; inf after a
        round released without noise)."""
        if self._exposed:
            return math.inf
        if self.accountant == "pld" and self.sampling == "none":
            if self._inverse_square == 0:
                return 0.0
            # the rounds' Gaussians are one Gaussian, whose privacy loss distribution dp-accounting
            # gives in closed form (the analytic Gaussian mechanism, Balle and Wang 2018): what its
            # PLDAccountant approximates on a grid, without the grid (milliseconds, not 0.1 s a round)
            return float(_dp().get_epsilon_gaussian(self._inverse_square**-0.5, self.delta))
        if self._ledger is None:
            return 0.0
        return float(self._ledger.get_epsilon(self.delta))

    def round_epsilon(self, noise_multiplier: float) -> float:
        """The epsilon at :attr:`delta` of one round alone at ``noise_multiplier`` (this accountant's
        kind and sampling)."""
        nu = _positive(noise_multiplier, "noise_multiplier")
        if math.isinf(nu):
            return 0.0
        if self.accountant == "pld" and self.sampling == "none":
            return float(_dp().get_epsilon_gaussian(nu, self.delta))
        return float(self._fresh().compose(self._event(nu)).get_epsilon(self.delta))

    def noise_multiplier_for(self, epsilon: float, rounds: int) -> float:
        """The noise multiplier nu that ``rounds`` rounds at nu take to ``epsilon`` at :attr:`delta`
        (this accountant's kind and sampling): ``pld`` without sampling in closed form,
        dp-accounting's analytic Gaussian sigma(epsilon, delta) x sqrt(rounds); otherwise
        dp-accounting's ``calibrate_dp_mechanism`` (a bracketing search, to 1e-6).

        >>> accountant = PrivacyAccountant(1e-5, "pld")
        >>> nu = accountant.noise_multiplier_for(1.0, 100)
        >>> for _ in range(100):
        ...     _ = accountant.step(nu)
        >>> round(accountant.epsilon(), 6)
        1.0
        """
        target = _positive(epsilon, "epsilon")
        if math.isinf(target):
            raise ValueError("epsilon = inf is out of range; expected a finite number > 0")
        count = rounds
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"rounds = {rounds!r} is out of range; expected an integer >= 1")
        dp = _dp()
        if self.accountant == "pld" and self.sampling == "none":
            return float(dp.get_sigma_gaussian(target, self.delta)) * math.sqrt(count)
        from dp_accounting.mechanism_calibration import calibrate_dp_mechanism

        return float(
            calibrate_dp_mechanism(
                self._fresh,
                lambda nu: dp.SelfComposedDpEvent(self._event(float(nu)), count),
                target,
                self.delta,
                tol=1e-6,
            )
        )

    def state_dict(self) -> dict[str, list[float]]:
        """The rounds' noise multipliers (a checkpoint keeps them; :meth:`load_state_dict` recomposes)."""
        return {"noise_multipliers": list(self.history)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        """Start over and compose the saved rounds again."""
        self.history, self._ledger, self._inverse_square, self._exposed = [], None, 0.0, False
        for nu in state["noise_multipliers"]:
            self.step(float(nu))
