"""How updates travel: the compressor, the uplink channel, the downlink and the transmit budget.

Each section is a frozen dataclass; every field has a comment (and a unit where it has one), and
``__post_init__`` refuses out-of-range values with a :class:`~federated.config.ConfigError` naming
the key (the loader prefixes the section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from federated.config.errors import check as _check

__all__ = [
    "CompressorConfig",
    "ChannelConfig",
    "DigitalConfig",
    "DownlinkConfig",
    "PowerConfig",
    "PrivacyConfig",
    "ANALOG_COMPRESSORS",
    "DIGITAL_COMPRESSORS",
]


ANALOG_COMPRESSORS = ("laser", "powersgd", "zsgd", "randomk", "sketch", "signum", "adsgd")
DIGITAL_COMPRESSORS = ("topk", "qsgd", "natural", "natural_dithering", "topk_dithering", "signsgd", "qsparse")


@dataclass(frozen=True)
class CompressorConfig:
    # analog (summed over the air): laser (rank-r factor, one per round, error feedback), powersgd
    # (both factors per round, two passes), zsgd (uncompressed), randomk (shared random support,
    # error feedback), sketch (one-row count-mean sketch), signum (signs, majority vote), adsgd
    # (top-k, shared Gaussian projection, MMSE or AMP decoding); digital (bits on orthogonal links at
    # the Shannon rate): topk (error feedback), qsgd, natural (compression), natural_dithering,
    # topk_dithering (top-k then natural dithering, error feedback), signsgd (majority vote), qsparse
    # (Qsparse-local-SGD's Q_s o Top_k or Sign o Top_k, see quantizer; error feedback)
    name: Literal[
        "laser",
        "powersgd",
        "zsgd",
        "randomk",
        "sketch",
        "signum",
        "adsgd",
        "topk",
        "qsgd",
        "natural",
        "natural_dithering",
        "topk_dithering",
        "signsgd",
        "qsparse",
    ] = "laser"
    rank: int = 4  # laser, powersgd: rank r of the transmitted factors
    min_compression_rate: float = 2.0  # laser, powersgd: compress a tensor only if it saves more than this
    factors_per_round: int = 1  # laser: 1 (alternating, the paper) or 2 (= powersgd)
    exponent: float | None = None  # laser, powersgd: split a factor's energy over its columns ~ norm^exponent
    # randomk, sketch, adsgd, topk, topk_dithering, qsparse: share of each tensor's entries sent
    fraction: float = 0.1
    # randomk, sketch, topk, topk_dithering, qsparse: null = the method's default
    error_feedback: bool | None = None
    # error feedback keeps what the channel did not hear: a client the power control silenced (or
    # whose budget was 0) in a block of the round's last pass gets it back into its memory
    keep_unheard: bool = False
    # the first rounds uncompressed (every client sends its whole gradient, no error feedback), then
    # the method: PyTorch PowerSGD's start_powerSGD_iter; analog methods only
    warmup_rounds: int = 0
    unbiased: bool = False  # randomk: scale the decoded values by d / K
    levels: int = 8  # qsgd, natural_dithering, topk_dithering, qsparse (qsgd): quantisation levels s
    # qsparse: qsgd (QSGD with s = levels on the kept values, scaled by 1 / (1 + beta_{k,s})) or sign
    # (signs of the kept values times their mean magnitude)
    quantizer: Literal["qsgd", "sign"] = "qsgd"
    momentum: float = 0.0  # signum, signsgd: client momentum beta before taking signs
    decoder: Literal["lmmse", "amp"] = "lmmse"  # adsgd: linear MMSE estimate or message passing
    amp_iterations: int = 30  # adsgd: AMP iterations

    def __post_init__(self) -> None:
        _check(self.rank >= 1, "rank", self.rank, "an integer >= 1")
        _check(
            self.min_compression_rate >= 0, "min_compression_rate", self.min_compression_rate, "a number >= 0"
        )
        _check(
            self.factors_per_round in (1, 2),
            "factors_per_round",
            self.factors_per_round,
            "1 (LASER) or 2 (PowerSGD)",
        )
        _check(
            self.exponent is None or math.isfinite(self.exponent),
            "exponent",
            self.exponent,
            "a finite number, or null (one energy share per factor)",
        )
        _check(0 < self.fraction <= 1, "fraction", self.fraction, "a number in (0, 1]")
        _check(self.levels >= 1, "levels", self.levels, "an integer >= 1")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        _check(self.amp_iterations >= 1, "amp_iterations", self.amp_iterations, "an integer >= 1")
        _check(
            self.warmup_rounds >= 0 and (self.warmup_rounds == 0 or self.analog),
            "warmup_rounds",
            self.warmup_rounds,
            "an integer >= 0, and 0 for a digital method (its warm-up would not be over the air)",
        )

    @property
    def analog(self) -> bool:
        """Whether the method's messages add up over the air (else: digital, orthogonal links)."""
        return self.name in ANALOG_COMPRESSORS


@dataclass(frozen=True)
class ChannelConfig:
    # awgn: the paper's channel (all gains 1); noiseless: exact mean; rayleigh / rician: flat block
    # fading per client and round; tdl: 3GPP TDL profile over OFDM subcarriers (broadband); scenario
    # (with channel.scenario): each client's own TR 38.901 clusters from the drop (Sionna), fixed for
    # the run, turning with the clients' motion (speed_mps) from round to round (round_duration_s)
    name: Literal["awgn", "noiseless", "rayleigh", "rician", "tdl", "scenario"] = "awgn"
    noise_var: float = 1.0  # noise variance per real channel use (sigma^2)
    power_control: Literal["inversion", "truncated", "imperfect_csi"] = (
        "inversion"  # see channels.power_control
    )
    threshold: float = 0.0  # truncated / imperfect_csi: silent where |h|^2 (as known) < threshold
    csi_error_var: float = 0.0  # imperfect_csi: variance of the complex channel-estimation error
    coherence_blocks: int = 1  # independent fading draws per round (1: block fading per round)
    # every round's channel (small-scale fading, CSI errors) from a generator of its own, seeded by
    # the run's channel stream and the round: runs of one seed that differ in the method (analog or
    # digital) or the link see the same channel every round, whatever else draws from the channel's
    # generator (noise, HARQ). false: one generator for everything, as the earlier runs
    shared_draws: bool = False
    k_factor: float = 3.0  # rician: power ratio of the line-of-sight to the scattered part
    tdl_profile: Literal["A", "B", "C", "D", "E"] = "A"  # tdl: 3GPP TR 38.901 profile
    delay_spread_s: float = 100e-9  # tdl: RMS delay spread in seconds
    num_subcarriers: int = 64  # tdl: OFDM subcarriers the blocks are spread over
    subcarrier_spacing_hz: float = 30e3  # tdl: subcarrier spacing
    carrier_frequency_hz: float = 3.5e9  # tdl and path loss: carrier frequency
    path_loss: Literal["none", "umi_los", "umi_nlos"] = "none"  # large-scale gain from client positions
    min_distance_m: float = 10.0  # path loss: clients uniform over the annulus [min, max]
    max_distance_m: float = 200.0
    reference_distance_m: float = 100.0  # path loss: mean gain 1 (SNR = energy / noise_var) here
    shadowing: bool = True  # path loss: log-normal shadowing (4 dB LOS, 7.82 dB NLOS)
    # receive antennas N at the base station; each client's gain is m^H h_k for the receive beamformer
    # m (||m|| = 1) designed from every client's channel vector h_k; 1: the single-antenna channel
    rx_antennas: int = 1
    # rx_antennas > 1: matched (normalised sum of the unit matched filters), eigen (principal
    # eigenvector of sum_k h_k h_k^H) or maxmin (maximises min_k |m^H h_k|^2); see channels.beamforming
    beamformer: Literal["matched", "eigen", "maxmin"] = "matched"
    correlation: float = 0.0  # rx_antennas > 1: exponential correlation rho of adjacent antennas, in [0, 1)
    # physical units (docs/physics.md, "Physical units"): none keeps the normalised mode (energy over a
    # noise variance of 1); umi, uma or rma drops the clients in one sector of that 3GPP TR 38.901
    # scenario (Sionna) and takes the link budget below, with power.max_dbm as each client's power;
    # the small-scale fading stays channel.name's
    scenario: Literal["none", "umi", "uma", "rma"] = "none"
    resource_blocks: int = 51  # scenario: resource blocks of 12 subcarriers (subcarrier_spacing_hz each)
    noise_figure_db: float = 5.0  # scenario: the base station's noise figure (thermal noise -174 dBm/Hz)
    pilot_symbols: int = 1  # scenario: OFDM symbols of a slot's 14 that carry pilots (DMRS), no data
    # scenario: the base station's element, counted in every coupling loss: omni (0 dBi) or sector
    # (TR 38.901's sector element: 65-degree beamwidth, 30 dB front-to-back ratio, 8 dBi)
    bs_pattern: Literal["omni", "sector"] = "omni"
    # scenario: 0 drops one sector; 1 the first sector of the centre cell of a hexagonal grid of 7 cells
    # (a ring of 6 around it; 3 sectors a site, as many clients in each), with bs_pattern sector
    num_rings: int = 0
    # num_rings > 0: none (the other sectors silent) or full (their clients transmit at their caps in
    # the same band at the same time: their power at this base station adds to the noise)
    inter_cell: Literal["none", "full"] = "none"
    speed_mps: float = 3 / 3.6  # name scenario: every client's speed (m/s; 3 km/h as TR 38.901's calibration)
    round_duration_s: float = 1.0  # name scenario: seconds from one round's channel to the next's

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.noise_var) and self.noise_var >= 0,
            "noise_var",
            self.noise_var,
            "a finite number >= 0",
        )
        _check(
            math.isfinite(self.threshold) and self.threshold >= 0,
            "threshold",
            self.threshold,
            "a finite number >= 0 (a channel power gain)",
        )
        _check(
            math.isfinite(self.csi_error_var) and self.csi_error_var >= 0,
            "csi_error_var",
            self.csi_error_var,
            "a finite number >= 0",
        )
        _check(self.coherence_blocks >= 1, "coherence_blocks", self.coherence_blocks, "an integer >= 1")
        _check(
            math.isfinite(self.k_factor) and self.k_factor >= 0,
            "k_factor",
            self.k_factor,
            "a finite number >= 0 (0 is Rayleigh)",
        )
        _check(self.delay_spread_s > 0, "delay_spread_s", self.delay_spread_s, "a number > 0 (seconds)")
        _check(self.num_subcarriers >= 1, "num_subcarriers", self.num_subcarriers, "an integer >= 1")
        _check(
            self.subcarrier_spacing_hz > 0,
            "subcarrier_spacing_hz",
            self.subcarrier_spacing_hz,
            "a number > 0",
        )
        _check(
            0.5e9 <= self.carrier_frequency_hz <= 100e9,
            "carrier_frequency_hz",
            self.carrier_frequency_hz,
            "a frequency in [0.5e9, 100e9] Hz (the 3GPP TR 38.901 models' range)",
        )
        _check(
            10 <= self.min_distance_m <= self.max_distance_m <= 5000,
            "max_distance_m",
            self.max_distance_m,
            "10 <= min_distance_m <= max_distance_m <= 5000 (metres)",
        )
        _check(
            self.reference_distance_m > 0, "reference_distance_m", self.reference_distance_m, "a number > 0"
        )
        _check(self.rx_antennas >= 1, "rx_antennas", self.rx_antennas, "an integer >= 1 (receive antennas)")
        _check(
            0 <= self.correlation < 1,
            "correlation",
            self.correlation,
            "a number in [0, 1) (exponential antenna correlation)",
        )
        _check(
            1 <= self.resource_blocks <= 275,
            "resource_blocks",
            self.resource_blocks,
            "an integer in 1..275 (an NR carrier's resource blocks)",
        )
        _check(
            math.isfinite(self.noise_figure_db) and 0 <= self.noise_figure_db <= 30,
            "noise_figure_db",
            self.noise_figure_db,
            "a number of dB in [0, 30]",
        )
        _check(0 <= self.pilot_symbols <= 13, "pilot_symbols", self.pilot_symbols, "an integer in 0..13")
        _check(
            0 <= self.num_rings <= 1,
            "num_rings",
            self.num_rings,
            "0 (one sector) or 1 (a ring of 6 cells around it; 2 rings, 912 clients for 16 a sector, take "
            "Sionna's large-scale draws 2 minutes and 15 GB)",
        )
        _check(
            self.num_rings == 0 or (self.scenario != "none" and self.bs_pattern == "sector"),
            "num_rings",
            self.num_rings,
            "0, unless channel.scenario is set and channel.bs_pattern is sector (with omnidirectional "
            "elements a site's three sectors would hear every client alike)",
        )
        _check(
            self.inter_cell == "none" or self.num_rings > 0,
            "inter_cell",
            self.inter_cell,
            "none without other cells (channel.num_rings 0)",
        )
        _check(
            math.isfinite(self.speed_mps) and 0 <= self.speed_mps <= 140,
            "speed_mps",
            self.speed_mps,
            "a number of m/s in [0, 140]",
        )
        _check(
            math.isfinite(self.round_duration_s) and self.round_duration_s > 0,
            "round_duration_s",
            self.round_duration_s,
            "a number of seconds > 0",
        )
        if self.name == "scenario":
            _check(
                self.scenario != "none",
                "name",
                self.name,
                "awgn, noiseless, rayleigh, rician or tdl without channel.scenario (scenario: the drop's own "
                "clusters, which need a 3GPP drop: channel.scenario umi, uma or rma)",
            )
            _check(
                self.num_rings == 0,
                "num_rings",
                self.num_rings,
                "0 with channel.name = scenario (the clusters are drawn for one sector's clients)",
            )
            _check(
                self.correlation == 0,
                "correlation",
                self.correlation,
                "0 with channel.name = scenario (the antennas' correlation comes from the clusters' angles)",
            )
            _check(
                self.coherence_blocks == 1,
                "coherence_blocks",
                self.coherence_blocks,
                "1 with channel.name = scenario (a round's air time, under a millisecond here, is far "
                "below the clients' coherence time; the clusters' channel changes from round to round)",
            )
        else:
            for key, default in (("speed_mps", 3 / 3.6), ("round_duration_s", 1.0)):
                _check(
                    getattr(self, key) == default,
                    key,
                    getattr(self, key),
                    f"its default ({default:g}) unless channel.name = scenario (only the clusters' channel "
                    "moves with the clients)",
                )
        if self.scenario != "none":
            _check(
                self.subcarrier_spacing_hz in (15e3, 30e3, 60e3, 120e3, 240e3),
                "subcarrier_spacing_hz",
                self.subcarrier_spacing_hz,
                "an NR subcarrier spacing with channel.scenario: 15e3, 30e3, 60e3, 120e3 or 240e3",
            )
            _check(
                self.path_loss == "none",
                "path_loss",
                self.path_loss,
                f"none with channel.scenario = {self.scenario} (the scenario's drop sets every client's "
                "path loss; channel.path_loss is the normalised mode's, relative to a reference distance)",
            )
            _check(
                self.name != "noiseless",
                "name",
                self.name,
                f"awgn, rayleigh, rician, tdl or scenario with channel.scenario = {self.scenario} (a link "
                "budget has thermal noise)",
            )
            _check(
                self.noise_var == 1.0,
                "noise_var",
                self.noise_var,
                f"1 (its default) with channel.scenario = {self.scenario}: the noise follows from the "
                "link budget (channel.noise_figure_db, channel.resource_blocks)",
            )


@dataclass(frozen=True)
class DownlinkConfig:
    snr_db: float | None = None  # per-entry SNR of the model broadcast; null: noiseless (the paper's)

    def __post_init__(self) -> None:
        if self.snr_db is not None:
            _check(
                -200 <= self.snr_db <= 200, "snr_db", self.snr_db, "a number of dB in [-200, 200], or null"
            )


@dataclass(frozen=True)
class DigitalConfig:
    # the digital methods' link (docs/physics.md, sections 8 and 15): shannon, the ideal bound
    # (error-free at the Shannon rate; in physical units over equal OFDMA resource-block shares); nr,
    # a 5G NR PUSCH link (physical units only, same shares): link adaptation picks the MCS, the
    # message goes in transport blocks that fail at the tables' BLER and are retransmitted (HARQ)
    link: Literal["shannon", "nr"] = "shannon"
    bler_target: float = 0.1  # nr: the link adaptation's transport-block error rate target
    harq_retx: int = 3  # nr: retransmissions of a failed transport block (each a slot of air time and energy)
    # nr: inner (the MCS from the SINR the base station knows), outer (less an offset that the HARQ
    # feedback of earlier rounds drives to the target), auto: outer where the CSI is imperfect
    # (channel.power_control imperfect_csi), inner otherwise
    adaptation: Literal["auto", "inner", "outer"] = "auto"
    olla_step_db: float = (
        0.5  # nr, outer loop: the offset's step up on a NACK (down T / (1 - T) of it on an ACK)
    )

    def __post_init__(self) -> None:
        _check(0 < self.bler_target < 1, "bler_target", self.bler_target, "a number in (0, 1)")
        _check(
            not isinstance(self.harq_retx, bool) and 0 <= self.harq_retx <= 32,
            "harq_retx",
            self.harq_retx,
            "an integer in [0, 32]",
        )
        _check(
            math.isfinite(self.olla_step_db) and 0 < self.olla_step_db <= 10,
            "olla_step_db",
            self.olla_step_db,
            "a number of dB in (0, 10]",
        )


MIN_ENERGY = 1e-30  # the smallest positive power.energy (see PowerConfig's check)


@dataclass(frozen=True)
class PowerConfig:
    energy: float | None = 100.0  # energy-limited regime: per-client energy per round (the paper's P)
    snr_db: float | None = None  # power-limited regime: per-channel-use SNR in dB (set energy: null)
    allocation: Literal["norm", "norm_sqrt_dim", "uniform"] = "norm"  # split of energy over blocks
    # heterogeneous budgets: client k gets 10^(u_k/10) times the budget, u_k uniform in
    # [-spread_db/2, spread_db/2], drawn once per run
    spread_db: float = 0.0
    # physical units (channel.scenario): each client's maximum transmit power in dBm (set energy: null)
    max_dbm: float | None = None
    # max_dbm: every client may transmit at max_dbm (max), or at 3GPP open-loop uplink power control's
    # P_k = min(p0_dbm + alpha PL_k + 10 log10(resource blocks), max_dbm) (open_loop)
    control: Literal["max", "open_loop"] = "max"
    p0_dbm: float = -80.0  # open_loop: the received power per resource block it aims at
    alpha: float = 0.8  # open_loop: the share of the path loss it compensates, in [0, 1]

    def __post_init__(self) -> None:
        given = [
            (k, v) for k, v in (("energy", self.energy), ("snr_db", self.snr_db), ("max_dbm", self.max_dbm))
        ]
        set_ = [(k, v) for k, v in given if v is not None]
        _check(
            len(set_) == 1,
            set_[-1][0] if set_ else "energy",
            set_[-1][1] if set_ else None,
            "exactly one of power.energy, power.snr_db and power.max_dbm to be set (the others null)",
        )
        if self.energy is not None:
            # a smaller budget, split over the blocks, underflows the signals' float32 arithmetic and
            # would act as none (no client heard): refused rather than silently trained on nothing
            _check(
                self.energy == 0 or self.energy >= MIN_ENERGY,
                "energy",
                self.energy,
                f"0 (no energy), a number >= {MIN_ENERGY:g}, or .inf (noiseless)",
            )
        if self.snr_db is not None:
            _check(-200 <= self.snr_db <= 200, "snr_db", self.snr_db, "a number of dB in [-200, 200]")
        _check(
            math.isfinite(self.spread_db) and self.spread_db >= 0,
            "spread_db",
            self.spread_db,
            "a finite number >= 0 (dB)",
        )
        if self.max_dbm is not None:
            _check(
                -60 <= self.max_dbm <= 50,
                "max_dbm",
                self.max_dbm,
                "a transmit power in dBm in [-60, 50] (a phone's is 23)",
            )
        _check(-200 <= self.p0_dbm <= 30, "p0_dbm", self.p0_dbm, "a power in dBm in [-200, 30]")
        _check(0 <= self.alpha <= 1, "alpha", self.alpha, "a number in [0, 1]")
        _check(
            self.control == "max" or self.max_dbm is not None,
            "control",
            self.control,
            "max unless power.max_dbm is set (open-loop power control caps a transmit power in dBm)",
        )


@dataclass(frozen=True)
class PrivacyConfig:
    # privacy from the channel's own noise (docs/physics.md, section 14): null keeps the usual pass;
    # C > 0: every client clips what it transmits to norm C (block b to C sqrt(d_b / sum d)), the energy
    # split and the alignment scale are fixed from the clips (no client's norm is sent), and each
    # round's client-level (epsilon, delta) is accounted from the round's own noise
    clip: float | None = None
    # clip: true gives each client's error feedback the part of its factor (or message) the clip cut
    # off, as it keeps an undelivered one; false (the default): that part is lost, as in DP-FedAvg. With
    # a fixed clip the memory then grows by what the clip holds back every round and LASER stops
    # learning (docs/results.md, privacy_keep_clipped)
    keep_clipped: bool = False
    delta: float = 1e-5  # clip: the delta of the (epsilon, delta) reported, in (0, 1)
    # clip: rdp (Renyi DP: cheap, a little loose) or pld (privacy loss distributions: exact for the
    # rounds' Gaussians; not with clients.sampling poisson, whose subsampled PLD takes seconds to a
    # minute a round) through Google's dp-accounting; amplification by sampling is counted only where
    # the server cannot tell who took part (clients.sampling poisson), else q = 1
    accountant: Literal["rdp", "pld"] = "rdp"
    # clip: the run's epsilon to keep to (at delta, over its rounds): where the channel's noise alone
    # falls short, the clients lower their energy until it meets it (Koda et al.); null: no target
    target_epsilon: float | None = None
    # clip: channel (the privacy is the channel's own noise, the server untrusted) or central
    # (Flower-style central DP for comparison: each client's update clipped as one vector to the clip,
    # an exact mean over channel.name noiseless, and the trusted server adds the Gaussian noise that
    # target_epsilon needs, as Flower's DifferentialPrivacyServerSideFixedClipping does)
    mechanism: Literal["channel", "central"] = "channel"
    # clip: the clip of a preconditioner's statistic pass (precond oasis, or adam with mean_of_squares:
    # its own release each round, composed with the update's); null: privacy.clip
    statistic_clip: float | None = None
    # target_epsilon: the lowest SNR per channel use (the clients' energy per real use over the noise,
    # power.snr_db's convention, in dB) the target may lower their budget to; a round below it says so
    # (a warning, and each round records privacy_snr_db); null: no floor
    snr_floor_db: float | None = None
    # snr_floor_db: true keeps the clients' signals at the floor and has them send the rest of the noise
    # the target needs (artificial noise, counted in their energy; where a budget cannot carry its share
    # the signal keeps less); one receive antenna, perfect CSI, clients.sampling uniform
    artificial_noise: bool = False

    def __post_init__(self) -> None:
        if self.mechanism == "central":
            _check(
                self.clip is not None and self.target_epsilon is not None,
                "mechanism",
                self.mechanism,
                "channel, or central with privacy.clip and privacy.target_epsilon set (the server's "
                "noise is the one the target needs)",
            )
        _check(
            not self.keep_clipped or self.clip is not None,
            "keep_clipped",
            self.keep_clipped,
            "false, or true with privacy.clip set (it keeps what the clip cut off)",
        )
        if self.statistic_clip is not None:
            _check(
                self.clip is not None and math.isfinite(self.statistic_clip) and self.statistic_clip > 0,
                "statistic_clip",
                self.statistic_clip,
                "a finite number > 0 with privacy.clip set, or null (privacy.clip)",
            )
        if self.snr_floor_db is not None:
            _check(
                self.target_epsilon is not None
                and self.mechanism == "channel"
                and math.isfinite(self.snr_floor_db)
                and -100 <= self.snr_floor_db <= 100,
                "snr_floor_db",
                self.snr_floor_db,
                "a number of dB in [-100, 100] with privacy.target_epsilon and mechanism channel, or null",
            )
        _check(
            not self.artificial_noise or self.snr_floor_db is not None,
            "artificial_noise",
            self.artificial_noise,
            "false, or true with privacy.snr_floor_db (the floor the clients' signals stay at)",
        )
        if self.target_epsilon is not None:
            _check(
                self.clip is not None and math.isfinite(self.target_epsilon) and self.target_epsilon > 0,
                "target_epsilon",
                self.target_epsilon,
                "a finite number > 0 with privacy.clip set, or null",
            )
        if self.clip is not None:
            _check(
                math.isfinite(self.clip) and self.clip > 0,
                "clip",
                self.clip,
                "a finite number > 0 (the norm each client's transmitted signal is clipped to), or null",
            )
        _check(0 < self.delta < 1, "delta", self.delta, "a number in (0, 1)")
