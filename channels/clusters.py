"""The small-scale channel of a 3GPP drop's own clusters (TR 38.901 section 7.5, through Sionna): each
client's response at the base station's N antennas, fixed clusters for the run, and the clients'
motion turning it from round to round.

A drop (:mod:`channels.scenarios`) fixes where the clients are and their large-scale parameters: delay
and angle spreads, Rician K-factor, shadow fading (drawn jointly, cross-correlated). Sionna's ray
generator turns those into each client's clusters and rays (steps 5-9: delays, powers, arrival and
departure angles, cross-polarisation ratios), and their initial phases are drawn once (step 10): all
of it fixed for the run, as TR 38.901's drop-based model keeps them while a client moves a few
metres. Step 11 then gives the channel coefficients at any time t: every ray's phase turns with the
Doppler shift of the client's velocity (``speed_mps``, a random planar direction per client, drawn
with the drop), exp(j 2 pi r_hat . v t / lambda), and the line-of-sight ray likewise. So a client's
response is correlated from one round to the next by its speed and the rounds' spacing, and across
the antennas by its rays' angles of arrival: a client in line of sight with a narrow angular spread
sees nearly rank-one antennas, an indoor one wide-spread.

What a pass sees: one flat gain per client, antenna and time step, the response at the carrier
(the sum of the rays' coefficients, sum_p a_p, the frequency response at the band's centre), with
the path loss and shadowing left out (they are the drop's large-scale gain, counted once, by the
channel's ``path_loss``): E|h|^2 is 1 on every antenna over the clusters' random phases, to within
2% (the panel's downtilt turns its elements' polarisation by up to about 10 degrees against a
client's upright element). A per-subcarrier response inverted subcarrier by subcarrier would let the
weakest subcarrier of the weakest client set the alignment scale; here the pass's symbols share the
client's gain, as in flat block fading. The base station's antennas are a Sionna ``PanelArray``: one
row of N vertically polarised omnidirectional elements half a wavelength apart, facing the sector's
centre (the drop's base-station orientation); each client has one such element. Sionna computes the
channel in the downlink view (the base station transmitting): the uplink channel is its transpose
(reciprocity: the same rays, angles and Doppler phases, the polarisation matrix transposed; tested
against the uplink view to 1e-12), and the same in distribution as Sionna's own uplink view, which
draws that matrix untransposed.

Cost: the rays' coefficients are evaluated for every client over a chunk of time steps at once (the
amortisation the issue asks for: one call per chunk, not per round), on the CPU in float64, and the
latest two chunks are kept; a chunk is sized so that Sionna's per-ray tensor stays near 32 MB, and
a drop whose one time step would need more than 256 MB (clients x antennas x rays) is refused.
Nothing is drawn after the drop: the same seed gives the same responses on any machine, and a
resumed run rebuilds them from the seed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from channels._checks import check_count
from channels._sionna import import_sionna, sionna_draws_from

__all__ = ["ClusterFading"]

PER_RAY_BUDGET = 2_000_000  # complex128 entries of Sionna's per-ray tensor in one chunk (32 MB)
MAX_CHUNK = 512  # time steps a chunk covers at most
PER_STEP_LIMIT = 16_000_000  # the per-ray entries of one time step (256 MB), clients x antennas x rays


def omni_panel(carrier_frequency_hz: float, columns: int = 1) -> Any:
    """A Sionna ``PanelArray`` of one row of ``columns`` vertically polarised omnidirectional elements
    half a wavelength apart (CPU, float64): the base station's antennas of the clusters' channel, and
    the single element at each end of a drop's link (so its coupling loss has no antenna gain)."""
    return import_sionna("sionna.phy.channel.tr38901").PanelArray(
        num_rows_per_panel=1,
        num_cols_per_panel=columns,
        polarization="single",
        polarization_type="V",
        antenna_pattern="omni",
        carrier_frequency=carrier_frequency_hz,
        precision="double",
        device="cpu",
    )


def _timed_coefficients(carrier_frequency_hz: float, num_antennas: int) -> Any:
    """Sionna's ``ChannelCoefficientsGenerator`` (downlink view: the base station's N-element panel
    transmits, the client's omnidirectional element receives) that samples the channel from a start
    time ``start_s`` on, instead of from 0: the chunks of a run's time steps join without a seam."""
    tr38901 = import_sionna("sionna.phy.channel.tr38901")

    class TimedCoefficients(tr38901.ChannelCoefficientsGenerator):  # type: ignore[name-defined]
        start_s = 0.0

        def __call__(
            self,
            num_time_samples: int,
            sampling_frequency: float,
            k_factor: Tensor,
            rays: Any,
            topology: Any,
            c_ds: Tensor | None = None,
        ) -> tuple[Tensor, Tensor]:
            steps = torch.arange(num_time_samples, dtype=self.dtype, device=self.device)
            return self._step_11(
                rays.phases, topology, k_factor, rays, self.start_s + steps / sampling_frequency, c_ds
            )

    return TimedCoefficients(
        carrier_frequency_hz,
        omni_panel(carrier_frequency_hz, num_antennas),
        omni_panel(carrier_frequency_hz),
        subclustering=True,
        precision="double",
        device="cpu",
    )


class ClusterFading(nn.Module):
    """The clients' small-scale channel vectors from a drop's clusters (see the module docstring):
    built by :func:`channels.cluster_drop` with the drop, called with client indices and time steps.

    Args:
        scenario: the Sionna system-level scenario object the drop set (its topology and link states).
        lsp: the drop's large-scale parameters (Sionna's ``LSP``).
        generator: the drop's generator, which draws the rays and their phases here (after the drop).
        num_antennas: N, the base station's antennas.
        step_s: seconds between two time steps (a round's, over its coherence blocks).

    Call:
        ``fading(clients, steps, dtype=torch.complex64, device="cpu")`` -> ``[len(clients),
        len(steps), N]`` complex: client ``clients[i]``'s response at time ``steps[j] * step_s``.

    Example:
        >>> from channels.scenarios import cluster_drop
        >>> drop, fading = cluster_drop("umi", 4, torch.Generator().manual_seed(0), num_antennas=2)
        >>> h = fading(torch.tensor([3, 0]), torch.tensor([0, 1, 2]))
        >>> h.shape, h.dtype
        (torch.Size([2, 3, 2]), torch.complex64)
    """

    def __init__(
        self, scenario: Any, lsp: Any, generator: torch.Generator, *, num_antennas: int, step_s: float
    ) -> None:
        super().__init__()
        check_count(num_antennas, "num_antennas")
        if isinstance(step_s, bool) or not (
            isinstance(step_s, (int, float)) and math.isfinite(step_s) and step_s > 0
        ):
            raise ValueError(f"step_s = {step_s!r} is out of range; expected a number of seconds > 0")
        tr38901 = import_sionna("sionna.phy.channel.tr38901")
        self.num_antennas, self.step_s = int(num_antennas), float(step_s)
        self.carrier_frequency_hz = float(scenario.carrier_frequency)
        with sionna_draws_from(generator):  # steps 5-10, once for the run
            rays_generator = tr38901.RaysGenerator(scenario)
            rays_generator.topology_updated_callback()
            rays = rays_generator(lsp)
            two_pi = 2 * math.pi
            shape = (*rays.aoa.shape, 4)
            rays.phases = torch.rand(shape, generator=generator, dtype=torch.float64) * two_pi - math.pi
        self._rays = rays
        self._k_factor = lsp.k_factor
        self._c_ds = scenario.get_param("cDS") * 1e-9
        radians = math.pi / 180
        # each client's element upright (its bearing kept, no tilt or slant): see the module docstring
        upright = scenario.ut_orientations * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        self._topology = tr38901.Topology(
            velocities=scenario.ut_velocities,
            moving_end="rx",
            los_aoa=scenario.los_aoa * radians,
            los_aod=scenario.los_aod * radians,
            los_zoa=scenario.los_zoa * radians,
            los_zod=scenario.los_zod * radians,
            los=scenario.los,
            distance_3d=scenario.distance_3d,
            tx_orientations=scenario.bs_orientations,
            rx_orientations=upright,
        )
        self.num_clients = int(rays.aoa.shape[2])
        paths = int(rays.aoa.shape[3] * rays.aoa.shape[4])
        if self.num_clients * self.num_antennas * paths > PER_STEP_LIMIT:
            entries = self.num_clients * self.num_antennas * paths
            raise ValueError(
                f"num_clients x num_antennas = {self.num_clients} x {self.num_antennas} is too many for the "
                f"clusters' channel: Sionna's per-ray tensor of one time step would hold {entries:,} "
                f"complex entries (at most {PER_STEP_LIMIT:,})"
            )
        self.chunk = max(1, min(MAX_CHUNK, PER_RAY_BUDGET // (self.num_clients * self.num_antennas * paths)))
        # Sionna's generator, built on the first chunk (in a dict: not a submodule of this one)
        self._sionna: dict[str, Any] = {}
        self._chunks: dict[int, Tensor] = {}  # chunk index -> [K, chunk, N] complex128

    def extra_repr(self) -> str:
        return f"num_clients={self.num_clients}, num_antennas={self.num_antennas}, step_s={self.step_s}"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (or deep-copied) without Sionna's generator and the chunk, both rebuilt on use."""
        state = self.__dict__.copy()
        state["_sionna"], state["_chunks"] = {}, {}
        return state

    @property
    def speed_mps(self) -> Tensor:
        """``[K]`` each client's speed (m/s)."""
        return torch.linalg.vector_norm(self._topology.velocities[0], dim=-1)

    def _chunk(self, index: int) -> Tensor:
        """Every client's response over the time steps ``index * chunk ...`` (``[K, chunk, N]``)."""
        if index not in self._chunks:
            if "coefficients" not in self._sionna:
                self._sionna["coefficients"] = _timed_coefficients(
                    self.carrier_frequency_hz, self.num_antennas
                )
            coefficients = self._sionna["coefficients"]
            coefficients.start_s = index * self.chunk * self.step_s
            h, _ = coefficients(
                self.chunk, 1 / self.step_s, self._k_factor, self._rays, self._topology, self._c_ds
            )  # [1, tx = 1, rx = K, paths, rx antennas = 1, tx antennas = N, steps]
            response = h.sum(3)[0, 0, :, 0]  # [K, N, steps]: the rays' sum, the carrier's response
            self._chunks[index] = response.permute(0, 2, 1).contiguous()
            while len(self._chunks) > 2:  # the latest two: a round's steps may straddle two chunks
                self._chunks.pop(next(iter(self._chunks)))
        return self._chunks[index]

    def forward(
        self,
        clients: Tensor,
        steps: Tensor,
        dtype: torch.dtype = torch.complex64,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """``[len(clients), len(steps), N]``: the clients' responses at the time steps (non-negative
        integers, the run's time in units of ``step_s``)."""
        clients = torch.as_tensor(clients, dtype=torch.long).cpu()
        steps = torch.as_tensor(steps, dtype=torch.long).cpu()
        if bool((steps < 0).any()):
            raise ValueError(f"steps must be integers >= 0, got {steps.tolist()}")
        if clients.numel() and not bool(((clients >= 0) & (clients < self.num_clients)).all()):
            raise IndexError(f"clients must be in [0, {self.num_clients}), got {clients.tolist()}")
        out = torch.empty(len(clients), len(steps), self.num_antennas, dtype=torch.complex128)
        for index in torch.unique(steps // self.chunk).tolist():
            mine = (steps // self.chunk) == index
            out[:, mine] = self._chunk(int(index))[clients][:, steps[mine] - index * self.chunk]
        return out.to(device=device, dtype=dtype)
