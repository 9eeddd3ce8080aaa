"""A link-level check of our PUSCH BLER tables (``channels/nr_tables/PUSCH_table1.json``, made by
``benchmarks/nr_bler_tables.py``) against Sionna's own explicit transport-block chain.

For MCS 0, 9, 18 and 27 of PUSCH table 1 (TS 38.214 table 5.1.3.1-1) and two transport-block sizes,
one whose code block lies between the tables' CBS (a target TBS of about 800 bits: CBS about 824,
between the tabulated 500 and 1500, so ``PHYAbstraction`` interpolates) and one whose code block is
above the tables' largest CBS 1500 (a target TBS of about 1,800 bits: ``PHYAbstraction`` uses the
CBS 1500 curve), at each SNR of the MCS's table grid where the abstraction's TBLER lies in
[0.05, 0.9]: ``n`` transport blocks (2,000 by default) through ``sionna.phy.nr.TBEncoder`` (TB CRC,
segmentation, LDPC, rate matching, interleaving, scrambling) + ``Mapper`` + ``AWGN`` with
N0 = 10^(-SNR/10) (unit-energy QAM: the SNR is Es/N0, the tables' convention) + ``Demapper('app')``
+ ``TBDecoder`` (20 boxplus-phi BP iterations); a block fails when any of its bits is wrong. The
TBS and the number of coded bits G are those of ``calculate_tb_size(Qm, R, num_coded_bits=G)``,
as ``PHYAbstraction`` (``TransportBlockNR``) computes them, G = Qm x the resource elements; the
abstraction's TBLER is ``PHYAbstraction(load_bler_tables_from=[tables])(mcs, sinr_eff=,
num_allocated_re=G/Qm)``, its SNR interpolation grid at 0.01 dB from -12 dB (the default grid starts
at -5 dB, above MCS 0-2's waterfalls).

MCS 0 has R = 120/1024 < 1/5, which Sionna's LDPC5GEncoder rejects: there the TB is encoded by
``TBEncoder`` into G0 < G bits (rate 1/5, the largest multiple of Qm that allows) and repeated
cyclically up to G bits, the receiver adding the LLRs of the copies, as the tables do.

A point passes when the simulated BLER lies within 3 binomial standard errors,
3 sqrt(p (1 - p) / n), of the abstraction's TBLER p at some SNR within +-0.2 dB of the point's
(searched on a 0.01 dB grid); ``offset_db`` is the smallest such shift (else the shift with the
smallest standard score). ``shipped_bler`` / ``shipped_offset_db`` are Sionna's shipped
PUSCH table 1's TBLER at the point and the shift (within +-1.5 dB) that fits best (not part of the
verdict). Exit status 1 if any point fails.

    python benchmarks/nr_link_check.py [--quick] [--json PATH] [--blocks N] [--tables PATH]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import REPO, emit, machine_info, parse_args, print_table

TABLES = REPO / "channels" / "nr_tables" / "PUSCH_table1.json"


def _shipped() -> Path:
    import sionna.sys

    return Path(sionna.sys.__file__).parent / "bler_tables" / "PUSCH_table1.json"


SEED = 1234567  # not the tables' seed (38214)
MCS_LIST = (0, 9, 18, 27)
TARGET_TBS = {"between": 800, "above": 1800}
BLER_RANGE = (0.05, 0.9)
OFFSET_DB = 0.2
GRID_DB = 0.01
INTERP = (-12.0, 25.01, GRID_DB)


def link(mcs: int, target_tbs: int) -> dict:
    """The transport block of ``mcs`` with about ``target_tbs`` bits: G, TBS, CBS, number of CBs."""
    from sionna.phy.nr.utils import calculate_tb_size, decode_mcs_index

    qm, r = decode_mcs_index(mcs, table_index=1, is_pusch=True, transform_precoding=False)
    qm, r = int(qm), float(r)
    num_re = math.ceil(target_tbs / (qm * r))
    g = qm * num_re
    tbs, cbs, num_cb, *_ = calculate_tb_size(qm, r, num_coded_bits=g, return_cw_length=False)
    return {
        "mcs": mcs,
        "qm": qm,
        "r": r,
        "num_re": num_re,
        "num_coded_bits": g,
        "tbs": int(tbs),
        "cbs": int(cbs),
        "num_cb": int(num_cb),
    }


class Chain:
    """TBEncoder -> Mapper -> AWGN -> Demapper('app') -> TBDecoder, with cyclic repetition when R < 1/5."""

    def __init__(self, lk: dict) -> None:
        from sionna.phy.channel import AWGN
        from sionna.phy.mapping import BinarySource, Constellation, Demapper, Mapper
        from sionna.phy.nr import TBDecoder, TBEncoder

        qm, g, tbs = lk["qm"], lk["num_coded_bits"], lk["tbs"]
        g0 = g
        if lk["cbs"] * lk["num_cb"] / g < 0.2:  # LDPC5GEncoder needs r >= 1/5: encode to g0, repeat to g
            g0 = qm * ((5 * lk["cbs"] * lk["num_cb"]) // qm)
        self.encoder = TBEncoder(
            target_tb_size=tbs, num_coded_bits=g0, target_coderate=lk["r"], num_bits_per_symbol=qm
        )
        if self.encoder.tb_size != tbs or self.encoder.num_cbs != lk["num_cb"]:
            raise RuntimeError(f"TBEncoder made TBS {self.encoder.tb_size}, {self.encoder.num_cbs} CBs: {lk}")
        self.decoder = TBDecoder(self.encoder, num_bp_iter=20, cn_update="boxplus-phi")
        const = Constellation("qam", qm)
        self.mapper, self.demapper = Mapper(constellation=const), Demapper("app", constellation=const)
        self.source, self.awgn = BinarySource(), AWGN()
        self.tbs, self.g, self.g0 = tbs, g, g0
        self.idx = torch.arange(g) % g0

    def errors(self, batch: int, snr_db: float) -> int:
        no = 10 ** (-snr_db / 10)
        bits = self.source([batch, self.tbs])
        cw = self.encoder(bits)
        if self.g0 < self.g:
            cw = cw[:, self.idx]
        llr = self.demapper(self.awgn(self.mapper(cw), no), no)
        if self.g0 < self.g:
            llr = torch.zeros(batch, self.g0, dtype=llr.dtype).index_add_(1, self.idx, llr)
        bits_hat, _crc_ok = self.decoder(llr)
        return int((bits_hat != bits).any(dim=-1).sum())


def abstraction_curve(phy, lk: dict, snr_dbs: np.ndarray) -> np.ndarray:
    """The abstraction's TBLER for the link ``lk`` at ``snr_dbs``."""
    shape = (len(snr_dbs),)
    out = phy(
        torch.full(shape, lk["mcs"], dtype=torch.int32),
        sinr_eff=torch.tensor(10 ** (snr_dbs / 10), dtype=torch.float32),
        num_allocated_re=torch.full(shape, lk["num_re"], dtype=torch.int32),
        mcs_table_index=1,
        mcs_category=0,
    )
    return out[3].double().numpy()  # tbler


def best_offset(
    p_sim: float, n: int, offsets: np.ndarray, curve: np.ndarray, tol: float
) -> tuple[float, bool]:
    """The smallest |offset| <= tol at which p_sim is within 3 standard errors of the curve, else the
    offset with the smallest standard score (and False)."""
    with np.errstate(invalid="ignore"):  # inf where a table has no entry (the shipped one: MCS 0-2)
        se = np.sqrt(curve * (1 - curve) / n)
        z = np.abs(p_sim - curve) / np.maximum(se, 1e-12)
    z[~np.isfinite(curve)] = np.inf
    inside = np.abs(offsets) <= tol + 1e-9
    ok = inside & (np.abs(p_sim - curve) <= 3 * se)
    if ok.any():
        i = np.flatnonzero(ok)[np.argmin(np.abs(offsets[ok]))]
        return float(offsets[i]), True
    i = int(np.argmin(np.where(inside, z, np.inf)))
    return float(offsets[i]), False


def _options(parser) -> None:
    parser.add_argument("--blocks", type=int, default=None, help="transport blocks per point (default 2000)")
    parser.add_argument("--tables", default=str(TABLES), help="our BLER table JSON")


def main() -> int:
    args = parse_args(__doc__.split("\n\n")[0], extra=_options)
    torch.set_num_threads(args.threads or 1)
    import sionna
    from sionna.sys import PHYAbstraction

    sionna.phy.config.seed = SEED
    torch.manual_seed(SEED)
    quick = args.quick
    blocks = args.blocks or (200 if quick else 2000)
    cases = [(27, "between")] if quick else [(m, c) for m in MCS_LIST for c in TARGET_TBS]
    phy = PHYAbstraction(load_bler_tables_from=[args.tables], snr_db_interp_min_max_delta=INTERP)
    shipped = PHYAbstraction(load_bler_tables_from=[str(_shipped())], snr_db_interp_min_max_delta=INTERP)
    ours = phy.bler_table["category"][0]["index"][1]["MCS"]
    offsets = np.round(np.arange(-OFFSET_DB, OFFSET_DB + GRID_DB / 2, GRID_DB), 2)
    wide = np.round(np.arange(-1.5, 1.5 + GRID_DB / 2, GRID_DB), 2)
    rows: list[dict] = []
    t_start = time.perf_counter()
    for mcs, size in cases:
        lk = link(mcs, TARGET_TBS[size])
        grid = np.asarray(ours[mcs]["SNR_db"], dtype=float)
        at_grid = abstraction_curve(phy, lk, grid)
        points = [s for s, p in zip(grid, at_grid) if BLER_RANGE[0] <= p <= BLER_RANGE[1]]
        if quick:
            points = points[:2]
        chain = Chain(lk)
        batch = 100 if quick or chain.g0 <= 2000 else 40  # big blocks decode faster in small batches
        for snr in points:
            t0 = time.perf_counter()
            err = sum(chain.errors(batch, float(snr)) for _ in range(math.ceil(blocks / batch)))
            n = batch * math.ceil(blocks / batch)
            p_sim = err / n
            curve = abstraction_curve(phy, lk, snr + offsets)
            off, ok = best_offset(p_sim, n, offsets, curve, OFFSET_DB)
            sh_curve = abstraction_curve(shipped, lk, snr + wide)
            sh_off, _ = best_offset(p_sim, n, wide, sh_curve, 1.5)
            sh_at = float(sh_curve[np.flatnonzero(wide == 0)[0]])
            rows.append(
                {
                    **{k: lk[k] for k in ("mcs", "qm", "r", "tbs", "cbs", "num_cb", "num_coded_bits")},
                    "size": size,
                    "snr_db": round(float(snr), 2),
                    "sim_bler": p_sim,
                    "n": n,
                    "table_bler": float(curve[np.flatnonzero(offsets == 0)[0]]),
                    "offset_db": off,
                    "pass": ok,
                    "shipped_bler": sh_at if math.isfinite(sh_at) else None,
                    "shipped_offset_db": sh_off if math.isfinite(sh_at) else None,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            r = rows[-1]
            print(
                f"MCS {mcs:2d} TBS {lk['tbs']:5d} SNR {snr:6.2f}: sim {p_sim:.4f} "
                f"table {r['table_bler']:.4f} offset {off:+.2f} {'ok' if ok else 'FAIL'} ({r['seconds']} s)",
                file=sys.stderr,
                flush=True,
            )
    failed = [r for r in rows if not r["pass"]]
    print_table(
        [
            "MCS",
            "Qm",
            "R",
            "TBS",
            "CBS",
            "CBs",
            "SNR dB",
            "sim BLER",
            "n",
            "table",
            "offset dB",
            "pass",
            "shipped",
        ],
        [
            [
                r["mcs"],
                r["qm"],
                round(r["r"], 4),
                r["tbs"],
                r["cbs"],
                r["num_cb"],
                f"{r['snr_db']:.2f}",
                f"{r['sim_bler']:.4f}",
                r["n"],
                f"{r['table_bler']:.4f}",
                f"{r['offset_db']:+.2f}",
                "yes" if r["pass"] else "NO",
                "-" if r["shipped_bler"] is None else f"{r['shipped_bler']:.4f}",
            ]
            for r in rows
        ],
        title="PUSCH table 1: TB chain (TBEncoder/TBDecoder, QAM, AWGN) against our BLER tables",
    )
    verdict = (
        f"{len(rows) - len(failed)} of {len(rows)} points pass (simulated BLER within 3 standard errors of "
        f"the tables' within +-{OFFSET_DB} dB)" + ("" if not failed else f"; {len(failed)} FAIL")
    )
    print(f"\nverdict: {verdict}")
    emit(
        {
            "benchmark": "nr_link_check",
            "quick": quick,
            "tables": str(Path(args.tables).resolve().relative_to(REPO))
            if Path(args.tables).resolve().is_relative_to(REPO)
            else args.tables,
            "seed": SEED,
            "blocks_per_point": blocks,
            "bler_range": list(BLER_RANGE),
            "offset_db": OFFSET_DB,
            "rows": rows,
            "all_pass": not failed,
            "verdict": verdict,
            "seconds": round(time.perf_counter() - t_start, 1),
            "machine": machine_info("cpu"),
        },
        args.json,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
