"""Our 5G NR PUSCH BLER tables (MCS table 1 of TS 38.214, table 5.1.3.1-1: MCS 0..27, QPSK to 64QAM),
simulated with Sionna's own machinery, for ``sionna.sys.PHYAbstraction``.

    python benchmarks/nr_bler_tables.py [--quick] [--out PATH] [--mcs 0,9,...] [--append]
        [--fine-blocks N] [--coarse-blocks N]

Default output: ``channels/nr_tables/PUSCH_table1.json`` (Sionna's table format: category 0 = PUSCH,
index 1, per MCS its own ``SNR_db`` grid and per code-block size (CBS) a ``BLER`` list, rounded to 4
significant digits), plus ``PUSCH_table1_meta.json`` beside it (per MCS the blocks per point, the
simulated range per CBS, the seconds; the seed, the commands). Load with
``PHYAbstraction(load_bler_tables_from=[path], snr_db_interp_min_max_delta=(-12, 30.01, 0.1))``: the
default SNR interpolation grid starts at -5 dB, above the waterfalls of MCS 0-2 (at about -7 to -4
dB), and ``get_bler`` clamps SNRs below the grid to its first point.

The shipped table was made in two runs: MCS 0, 9, 18, 27 (the link check's) with 400 blocks a fine
point and 32 a coarse one (``python benchmarks/nr_bler_tables.py``, stopped after MCS 27), the others
with ``--append --fine-blocks 150 --coarse-blocks 24 --mcs 1,2,...`` (what one thread allowed in the
time); the plain command makes all 28 MCS with 400 blocks (about 1.5 h on one thread). Each curve is
then made non-increasing in SNR by isotonic regression (:func:`non_increasing`; the shipped file with
``--monotone``, which changed 23 curves, all but 4 at CBS 100, the ripples of 150-block points).

What is simulated: one LDPC code block of CBS bits (CBS includes the CRC bits, as
``calculate_tb_size``'s ``cb_size``), Gray QAM (unit energy), AWGN, APP demapper, 20 iterations of
boxplus-phi BP: ``sionna.phy.nr.utils.CodedAWGNChannelNR`` (what ``PHYAbstraction.new_bler_table``
uses by default), driven by ``PHYAbstraction.new_bler_table`` with a subclass of it that

* gives the block the real chain's code rate: Sionna's channel rate-matches CBS bits to CBS / R coded
  bits, but a transport block of TBS <= 3,824 bits is one code block of CBS = TBS + 16 (the TB CRC)
  carried in G ~ TBS / R = (CBS - 16) / R bits, a higher rate (by 16 % at CBS 100, about 0.6 dB);
  so here n = Qm round((CBS - 16) / (R Qm)), capped at rate 0.95 (Sionna's LDPC5GEncoder's limit:
  CBS 100 at MCS 25-27, TBs NR would not send);
* supports MCS 0, 1 and 2 (R = 120/1024, 157/1024, 193/1024), which Sionna's ``LDPC5GEncoder``
  rejects (``r < 1/5``: why Sionna's shipped table has no MCS 0-2): the block is encoded to
  n0 = the largest multiple of Qm <= 5 CBS bits and repeated cyclically up to n (as NR's circular
  buffer wraps round), the receiver adding the LLRs of the copies before decoding;
* builds the encoder, decoder, mapper and demapper once per configuration, not every batch.

The SNR is Es/N0 per QAM symbol (``new_bler_table`` converts it to Eb/N0 with Qm R for ``sim_ber``;
the channel turns it back into N0 = 1 / (Es/N0)).

Grids. CBS 100, 500 and 1500 for every MCS: the links carry transport blocks of about 100 to 3,000
bits (3 PRBs x 12 subcarriers x 13 data symbols at MCS 0..27), which NR sends as one code block of
TBS + 16 bits up to TBS 3,824. Larger CBS were not affordable: one thread decodes a block in about
7 us per coded bit (boxplus-phi, 20 iterations; about 50 ms for CBS 1500 at a low rate). The SNR
grid of each MCS is its own: a coarse search per CBS (32 blocks a point, 0.5 dB steps, from 1.5 dB
below the Shannon limit of Qm R bits per symbol, stepping down until all blocks fail, then up to the
first error-free point) locates each waterfall; then each CBS is simulated on a 0.25 dB lattice from
its last all-error coarse point (BLER > ~0.9) upward, 400 blocks a point, stopping after the first
error-free point (BLER below ~1/400; ``early_stop``). The MCS's grid is the union of its CBS's
ranges; below a CBS's simulated range its BLER is written as 1, above it 0 (BLER falls with SNR).

How ``PHYAbstraction`` uses CBS that are not tabulated (``SplineGriddataInterpolation.struct``, a
degree-1 ``RectBivariateSpline`` on log10 BLER over (CBS, SNR), evaluated on the grid
``cbs_interp_min_max_delta`` = 24..8448 in steps of 100 by default, the CBS rounded to that grid):
between two tabulated CBS, log BLER is linear in CBS; below 100 and above 1500 the spline clamps to
the edge, so a CBS above 1500 gets the CBS 1500 curve (larger blocks have steeper waterfalls: too
high a BLER above the curves' crossing, too low below it); outside an MCS's SNR grid it clamps too
(BLER 1 below, 0 above). A TB above 3,824 bits at R <= 0.25 or above 8,424 bits is segmented into
several code blocks (with 24-bit TB and CB CRCs, whose rate this table does not model exactly), and
``PHYAbstraction`` reports TBLER = 1 - (1 - BLER)^num_cb, BLER that of one block of ``cb_size``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "channels" / "nr_tables" / "PUSCH_table1.json"
SEED = 38214  # the tables' seed (the link check uses another one)
CATEGORY, TABLE = 0, 1  # PUSCH, TS 38.214 table 5.1.3.1-1
CRC_BITS = 16  # TB CRC of a TB of at most 3,824 bits (one code block)
MAX_RATE = 0.95  # the highest rate Sionna's LDPC5GEncoder accepts
CHECK_MCS_FIRST = (0, 9, 18, 27)  # the link check's MCS are simulated first
FULL: dict = {
    "mcs": list(CHECK_MCS_FIRST) + [m for m in range(28) if m not in CHECK_MCS_FIRST],
    "cbs": (100, 500, 1500),
    "step_db": 0.25,
    "coarse_step_db": 0.5,
    "coarse_blocks": 32,
    "fine_blocks": 400,
}
QUICK: dict = {
    "mcs": [27],
    "cbs": (100, 300),
    "step_db": 0.5,
    "coarse_step_db": 1.0,
    "coarse_blocks": 16,
    "fine_blocks": 48,
}


def mcs_params(mcs: int) -> tuple[int, float]:
    """(Qm, R) of PUSCH table 1."""
    from sionna.phy.nr.utils import decode_mcs_index

    qm, r = decode_mcs_index(mcs, table_index=TABLE, is_pusch=True, transform_precoding=False)
    return int(qm), float(r)


def make_channel():
    """A ``CodedAWGNChannelNR`` that caches its blocks and supports r < 1/5 by cyclic repetition."""
    from sionna.phy.channel import AWGN
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
    from sionna.phy.mapping import BinarySource, Constellation, Demapper, Mapper
    from sionna.phy.nr.utils import CodedAWGNChannelNR
    from sionna.phy.utils import ebnodb2no

    class RepetitionCodedAWGNChannelNR(CodedAWGNChannelNR):
        def __init__(self) -> None:
            super().__init__()
            self._cache: dict[tuple[int, int, int], tuple] = {}
            self._source = BinarySource()
            self._awgn = AWGN()

        def set_num_coded_bits(self) -> None:
            # the real chain's rate: a TB of TBS = CBS - 16 bits (one code block, TB CRC16) gets
            # G ~ TBS / R coded bits, so the block's CBS bits (CRC included) go in (CBS - 16) / R bits
            if None not in (self.num_info_bits, self.target_coderate, self.num_bits_per_symbol):
                qm, k = self.num_bits_per_symbol, self.num_info_bits
                n = qm * round((k - CRC_BITS) / self.target_coderate / qm)
                self._num_coded_bits = max(n, qm * math.ceil(k / MAX_RATE / qm))  # LDPC5GEncoder: r <= 0.95

        def blocks(self, k: int, n: int, qm: int) -> tuple:
            n0 = n if k / n >= 0.2 else qm * ((5 * k) // qm)
            key = (k, n, qm)
            if key not in self._cache:
                const = Constellation("qam", qm)
                enc = LDPC5GEncoder(k, n0, num_bits_per_symbol=qm)
                dec = LDPC5GDecoder(
                    enc, hard_out=True, num_iter=self._num_iter_decoder, cn_update=self._cn_update_decoder
                )
                idx = torch.arange(n) % n0
                self._cache[key] = (
                    enc,
                    dec,
                    Mapper(constellation=const),
                    Demapper("app", constellation=const),
                    idx,
                )
            return self._cache[key]

        def call(self, batch_size: int, ebno_db: float):
            qm, k, n = int(self.num_bits_per_symbol), int(self.num_info_bits), int(self.num_coded_bits)
            enc, dec, mapper, demapper, idx = self.blocks(k, n, qm)
            no = ebnodb2no(ebno_db, num_bits_per_symbol=qm, coderate=self.target_coderate)
            bits = self._source([batch_size, k])
            cw = enc(bits)
            if cw.shape[-1] < n:  # r < 1/5: repeat the rate-1/5 codeword cyclically
                cw = cw[:, idx]
            llr = demapper(self._awgn(mapper(cw), no), no)
            if llr.shape[-1] != enc.n:  # combine the copies
                llr = torch.zeros(batch_size, enc.n, dtype=llr.dtype).index_add_(1, idx, llr)
            return bits, dec(llr)

    return RepetitionCodedAWGNChannelNR()


def block_errors(channel, batch: int, snr_db: float, qm: int, r: float) -> int:
    bits, bits_hat = channel(batch, snr_db - 10 * math.log10(qm * r))
    return int((bits != bits_hat).any(dim=-1).sum())


def lattice(x: float, step: float) -> float:
    return round(round(x / step) * step, 4)


def coarse_search(channel, qm: int, r: float, cbs: int, cfg: dict) -> tuple[float, float]:
    """(last SNR where all coarse blocks failed, first SNR where none did), on the coarse step."""
    channel.num_bits_per_symbol, channel.num_info_bits, channel.target_coderate = qm, cbs, r
    step, n = cfg["coarse_step_db"], cfg["coarse_blocks"]
    shannon = 10 * math.log10(2 ** (qm * r) - 1)
    s = lattice(shannon - 1.5, step)
    while block_errors(channel, n, s, qm, r) < n:
        s = lattice(s - 1.0, step)
    s_all = s
    for _ in range(80):
        s = lattice(s + step, step)
        e = block_errors(channel, n, s, qm, r)
        if e == n:
            s_all = s
        if e == 0:
            return s_all, s
    raise RuntimeError(f"no error-free point found for Qm={qm} R={r} CBS={cbs}")


def fine_run(phy, channel, mcs: int, cbs: int, grid: list[float], cfg: dict) -> list[float]:
    """BLER on ``grid`` from ``PHYAbstraction.new_bler_table`` (early stop: zeros after the first
    error-free point)."""
    n = cfg["fine_blocks"]
    batch = n // 8 if cbs > 1000 else n // 4  # small batches decode faster for big blocks (cache)
    table = phy.new_bler_table(
        snr_dbs=grid,
        cb_sizes=[cbs],
        sim_set={"category": {CATEGORY: {"index": {TABLE: {"MCS": [mcs]}}}}},
        channel=channel,
        filename=None,
        batch_size=batch,
        max_mc_iter=n // batch,
        early_stop=True,
        verbose=False,
    )
    return [float(b) for b in table["category"][CATEGORY]["index"][TABLE]["MCS"][mcs]["CBS"][cbs]["BLER"]]


def sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def non_increasing(values: list[float]) -> list[float]:
    """The least-squares non-increasing fit of ``values`` (isotonic regression, pool adjacent
    violators): a BLER curve's Monte Carlo ripples (a point above the one before it) averaged out,
    the monotone points kept as they are.

    >>> non_increasing([1.0, 0.9, 0.95, 0.5, 0.0])
    [1.0, 0.925, 0.925, 0.5, 0.0]
    """
    blocks: list[list[float]] = []  # [sum, count] of pooled runs
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-1][0] / blocks[-1][1] > blocks[-2][0] / blocks[-2][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return [sig(total / count) for total, count in blocks for _ in range(int(count))]


def make_monotone(out: Path) -> int:
    """Every curve of the table at ``out`` made non-increasing in SNR (:func:`non_increasing`); the
    number of curves changed (the meta records it)."""
    table = json.loads(out.read_text(encoding="utf-8"))
    changed = 0
    for entry in table["category"][str(CATEGORY)]["index"][str(TABLE)]["MCS"].values():
        for curve in entry["CBS"].values():
            fitted = non_increasing(curve["BLER"])
            changed += fitted != curve["BLER"]
            curve["BLER"] = fitted
    out.write_text(json.dumps(table, separators=(",", ":")) + "\n", encoding="utf-8")
    meta_path = out.with_name(out.stem + "_meta.json")
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["monotone"] = (
            f"every BLER curve made non-increasing in SNR by isotonic regression ({changed} curves changed)"
        )
        meta_path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return changed


def generate(cfg: dict, out: Path, mcs_list: list[int], log=print, append: bool = False) -> dict:
    import sionna
    from sionna.sys import PHYAbstraction

    sionna.phy.config.seed = SEED
    torch.manual_seed(SEED)
    phy = PHYAbstraction(load_bler_tables_from=[])  # new_bler_table merges into it; nothing loaded
    channel = make_channel()
    table: dict = {"category": {CATEGORY: {"index": {TABLE: {"MCS": {}}}}}}
    meta: dict = {
        "seed": SEED,
        "config": {k: v for k, v in cfg.items() if k != "mcs"},
        "command": " ".join(["python", *[shlex.quote(a) for a in sys.argv]]),
        "torch_threads": torch.get_num_threads(),
        "mcs": {},
    }
    meta_path = out.with_name(out.stem + "_meta.json")
    if append and out.exists():  # keep the MCS already there (a run in parts)
        old = json.loads(out.read_text())["category"][str(CATEGORY)]["index"][str(TABLE)]["MCS"]
        table["category"][CATEGORY]["index"][TABLE]["MCS"].update({int(m): e for m, e in old.items()})
        if meta_path.exists():
            old_meta = json.loads(meta_path.read_text())
            meta["mcs"].update({int(m): e for m, e in old_meta["mcs"].items()})
            meta["earlier_runs"] = old_meta.get("earlier_runs", []) + [
                {k: old_meta.get(k) for k in ("command", "config", "seconds")}
            ]
    t_all = time.perf_counter()
    step = cfg["step_db"]
    for mcs in mcs_list:
        t0 = time.perf_counter()
        qm, r = mcs_params(mcs)
        ranges = {}
        for cbs in cfg["cbs"]:
            s_all, s_zero = coarse_search(channel, qm, r, cbs, cfg)
            ranges[cbs] = (lattice(s_all, step), lattice(s_zero + 2.5, step))
        t_coarse = time.perf_counter() - t0
        curves, firsts = {}, {}
        for cbs, (lo, hi) in ranges.items():
            grid = [lattice(lo + i * step, step) for i in range(int(round((hi - lo) / step)) + 1)]
            t1 = time.perf_counter()
            blers = fine_run(phy, channel, mcs, cbs, grid, cfg)
            log(
                f"  MCS {mcs} CBS {cbs}: n = {int(channel.num_coded_bits)}, {lo:.2f}..{hi:.2f} dB, "
                f"{time.perf_counter() - t1:.0f} s",
                flush=True,
            )
            last = next((i for i, b in enumerate(blers) if b == 0), len(blers) - 1)
            curves[cbs] = dict(zip(grid[: last + 1], blers[: last + 1]))
            firsts[cbs] = grid[last]
        lo = min(min(c) for c in curves.values())
        hi = max(firsts.values())
        grid = [lattice(lo + i * step, step) for i in range(int(round((hi - lo) / step)) + 1)]
        entry: dict = {"CBS": {}, "SNR_db": grid}
        for cbs, curve in curves.items():
            c_lo, c_hi = min(curve), max(curve)
            entry["CBS"][cbs] = {
                "BLER": non_increasing(
                    [sig(curve[s]) if s in curve else (1.0 if s < c_lo else 0.0) for s in grid]
                )
            }
            assert all(s in curve for s in grid if c_lo <= s <= c_hi)
        table["category"][CATEGORY]["index"][TABLE]["MCS"][mcs] = entry
        dt = time.perf_counter() - t0
        meta["mcs"][mcs] = {
            "qm": qm,
            "r": r,
            "simulated_db": {cbs: [min(c), max(c)] for cbs, c in curves.items()},
            "fine_blocks": cfg["fine_blocks"],
            "coarse_blocks": cfg["coarse_blocks"],
            "seconds": round(dt, 1),
            "coarse_seconds": round(t_coarse, 1),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(table, separators=(",", ":")) + "\n", encoding="utf-8")
        meta["seconds"] = round(time.perf_counter() - t_all, 1)
        table["category"][CATEGORY]["index"][TABLE]["MCS"] = dict(
            sorted(table["category"][CATEGORY]["index"][TABLE]["MCS"].items())
        )
        meta["mcs"] = dict(sorted(meta["mcs"].items()))
        meta_path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        log(
            f"MCS {mcs:2d} (Qm {qm}, R {r:.4f}): SNR {grid[0]:.2f}..{grid[-1]:.2f} dB ({len(grid)} points), "
            f"{dt:.0f} s (coarse {t_coarse:.0f} s), total {time.perf_counter() - t_all:.0f} s",
            flush=True,
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one MCS, two CBS, few points (a smoke test)")
    parser.add_argument("--out", default=None, help=f"output JSON (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--mcs", default=None, help="comma-separated MCS indices (default: all, 0..27)")
    parser.add_argument("--append", action="store_true", help="keep the other MCS already in --out")
    parser.add_argument(
        "--monotone",
        action="store_true",
        help="only make --out's curves non-increasing in SNR (no simulation)",
    )
    parser.add_argument("--fine-blocks", type=int, default=None, help="blocks per fine point (default 400)")
    parser.add_argument("--coarse-blocks", type=int, default=None, help="blocks a coarse point (default 32)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg: dict = dict(QUICK if args.quick else FULL)
    mcs_list = [int(m) for m in args.mcs.split(",")] if args.mcs else list(cfg["mcs"])
    out = Path(args.out) if args.out else DEFAULT_OUT
    if args.monotone:
        print(f"{make_monotone(out)} curves of {out} made non-increasing in SNR")
        return
    if args.fine_blocks:
        cfg["fine_blocks"] = args.fine_blocks
    if args.coarse_blocks:
        cfg["coarse_blocks"] = args.coarse_blocks
    generate(cfg, out, mcs_list, append=args.append)
    print(f"wrote {out}")


def bler_curve(path: Path, mcs: int, cbs: int, snr_dbs) -> np.ndarray:
    """The loaded ``PHYAbstraction``'s BLER for (PUSCH table 1, ``mcs``, ``cbs``) at ``snr_dbs``."""
    from sionna.sys import PHYAbstraction

    phy = PHYAbstraction(load_bler_tables_from=[str(path)])
    snr = torch.tensor(10 ** (np.asarray(snr_dbs, dtype=float) / 10), dtype=torch.float32)
    return phy.get_bler(mcs, TABLE, CATEGORY, cbs, snr).numpy()


if __name__ == "__main__":
    main()
