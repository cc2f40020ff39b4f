"""The catalogue: every kernel variant a target can select for an architecture (what CI assembles)."""

from __future__ import annotations

from .kinds import (DEC_MT, DEC_R, DECS_CLUSTER_MAX, DECS_KT, DECS_KT3, DECS_SPLITS, DECS_WARPS, GEMV_MT, RDEC_NA,
                    RDEC_SPLITS, Amax, BsDec, BsMma, BsQ, Dec, DecSplit, DSum, Gemv, Kernel, RDec, TileA, TileQ,
                    dec1b_kernel, dec_max_rows)
from .operands import NV_ACT, TILEQ_FORMATS, WEIGHT_FORMATS, native_pairs, pair_kind, unit_elements


def native_pair_kernels(a: str, w: str, bias: bool, arch: str) -> list[Kernel]:
    """The block-scaled skeleton's kernels of a native pair: [amax,] bsq, bsmma."""
    ks: list[Kernel] = [Amax(a_format=a, arch=arch)] if a in NV_ACT else []
    ks.append(BsQ(a_format=a, unit=unit_elements(a, pair_kind(a, w)), arch=arch))
    return ks + [BsMma(w_format=w, a_format=a, bias=bias, arch=arch)]


def _bs_kernels(arch: str) -> list[Kernel]:
    """The block-scaled skeleton's variants for `arch`: every native pair, its quantizers."""
    return [k for a, w in native_pairs() for bias in (False, True) for k in native_pair_kernels(a, w, bias, arch)]


def every_kernel(arch: str = "sm_90a") -> list[Kernel]:
    """Every variant the targets can select for `arch`, deduplicated."""
    ks: list[Kernel] = []
    for f in WEIGHT_FORMATS:
        for bias in (False, True):
            if arch == "sm_100a":
                ks.append(BsDec(w_format=f, bias=bias, arch=arch))
                ks += [Gemv(w_format=f, bias=bias, mt=mt, arch=arch) for mt in GEMV_MT]
            else:
                ks += [RDec(w_format=f, na=na, s=s, bias=bias) for na in RDEC_NA for s in RDEC_SPLITS
                       if s == 1 or not bias]
                ks += [Dec(w_format=f, bias=bias, mt=mt, r=r) for mt in DEC_MT for r in DEC_R
                       if r == 1 or (mt > 1 and r <= dec_max_rows(f, mt))]
                ks.append(dec1b_kernel(f, bias))
                # (decs_splits gives 1 or 2 splits only with 48 K tiles held: no cluster holds 24)
                ks += [DecSplit(w_format=f, mt=mt, s=s, cluster=True, bias=bias) for mt in DEC_MT[1:]
                       for s in DECS_SPLITS if s <= DECS_CLUSTER_MAX]
                if not bias:  # decs + dsum (the bias is dsum's) past a cluster's size; within it, for comparisons
                    ks += [DecSplit(w_format=f, mt=mt, s=s, kt=kt) for mt in DEC_MT[1:] for s in DECS_SPLITS
                           for kt in (DECS_KT, DECS_KT3) if s > DECS_CLUSTER_MAX or kt == DECS_KT]
                    # the wide CTA (use_decs at M > 8)
                    ks += [DecSplit(w_format=f, mt=DEC_MT[-1], s=s, kt=DECS_KT3, warps=DECS_WARPS) for s in DECS_SPLITS
                           if s > DECS_CLUSTER_MAX]
    if arch == "sm_100a":
        ks.append(BsQ(a_format="bf16", arch=arch))
    else:
        ks += [TileA(rows=na, perm=True) for na in RDEC_NA]
        ks += [DSum(s=s, bias=bias) for s in DECS_SPLITS for bias in (False, True)]
        for a in TILEQ_FORMATS:
            ks += [TileQ(a_format=a, rows=na, perm=True) for na in RDEC_NA]
    return list(dict.fromkeys(ks + _bs_kernels(arch)))
