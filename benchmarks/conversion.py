"""What the normalised tables' energies are in a real cell: for E = 10, 100 and 1,000 (per client and
round, noise variance 1) and each method's real channel uses per round, the SNR per channel use
E / n and the transmit power (dBm) and energy (J) that give it in the physical-units results' cell
(``configs/mnist1d_laser_umi.yaml``, seed 0: one UMi sector, 16 clients, 20 MHz at 3.5 GHz, noise
figure 5 dB), for the cell's median client and its weakest (largest coupling loss). Computed, not
timed: ``channels.LinkBudget.power_dbm_for`` on the drop of ``federated.radio.units.PhysicalUnits``; each
method's channel uses are those of its first two rounds (LASER alternates between its factors).

    python benchmarks/conversion.py [--json PATH]
"""

from __future__ import annotations

import math
from pathlib import Path

from common import emit, machine_info, parse_args, print_table

REPO = Path(__file__).resolve().parent.parent
ENERGIES = (10.0, 100.0, 1000.0)
METHODS = ("laser", "zsgd")


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        extra=lambda p: p.add_argument("--data-root", default=str(REPO / "data"), help="MNIST-1D's cache"),
    )
    import torch

    from federated import load_config
    from federated.components import split_seed
    from federated.radio.units import PhysicalUnits
    from federated.simulation import Simulation

    config_path = str(REPO / "configs" / "mnist1d_laser_umi.yaml")
    base = load_config(config_path, [f"data.root={args.data_root}"])
    units = PhysicalUnits(base, split_seed(base.seed).topology)
    loss = units.drop.coupling_loss_db
    median = float(torch.quantile(loss, 0.5))
    weakest = float(loss.max())
    budget = units.budget
    results = []
    for method in METHODS:
        sim = Simulation(
            load_config(config_path, [f"data.root={args.data_root}", f"compressor.name={method}"])
        )
        uses = [int(sim.round(t)["channel_uses"]) for t in range(2)]
        mean_uses = sum(uses) / len(uses)
        n = round(mean_uses)
        for energy in ENERGIES:
            at_median = budget.power_dbm_for(energy, -median, n)
            results.append(
                {
                    "energy": energy,
                    "method": method,
                    "real_uses": mean_uses,
                    "snr_per_use_db": 10 * math.log10(energy / mean_uses),
                    "median_loss_db": median,
                    "power_dbm_median": at_median,
                    "energy_j_median": budget.energy_j(at_median, n),
                    "weakest_loss_db": weakest,
                    "power_dbm_weakest": budget.power_dbm_for(energy, -weakest, n),
                    "air_time_us": budget.air_time_s(n) * 1e6,
                }
            )
    shown = {  # header -> the result's key
        "E": "energy",
        "method": "method",
        "real uses": "real_uses",
        "SNR/use dB": "snr_per_use_db",
        "P median dBm": "power_dbm_median",
        "J median": "energy_j_median",
        "P weakest dBm": "power_dbm_weakest",
        "air µs": "air_time_us",
    }
    print_table(
        list(shown),
        [[r[key] for key in shown.values()] for r in results],
        title=f"Normalised energy in the UMi cell (coupling loss {median:.1f} dB median, {weakest:.1f} max)",
    )
    emit(
        {
            "benchmark": "conversion",
            "machine": machine_info("cpu"),
            "cell": units.summary(),
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
