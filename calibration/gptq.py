"""GPTQ for block-scaled formats: one layer's weights, codes chosen with second-order information.

For a layer y = x W^T (W [N, K]) and calibration inputs X, GPTQ minimizes ||X W^T - X Q^T||^2
over the format's codes Q, column block by column block, with the optimal-brain-surgeon update
of the columns not yet quantized (Frantar et al. 2022). Here the unit the sweep quantizes is one
block of the format (16 or 32 columns of K): when the sweep reaches a block, the block's
*current*, error-compensated weights go through the format's own quantizer
(`mxc.numerics.quantize`), so the MX scale rule, NVFP4's two-level scales, Four Over Six's
map-4/map-6 choice and IF4's INT/FP choice all see the compensated weights; the block's
error is then spread over the remaining columns through the upper Cholesky factor U of the
inverse Hessian (errors E of the block's columns solve E U_bb = W_b - Q_b, the sequential
GPTQ recursion with the block's codes fixed at once; the remaining columns move by -E U_b,rest).

The result is the *calibrated weight* W~: each block as the sweep quantized it. Quantizing W~
with the format (and, for the NV family, the tensor scale fixed before the sweep) gives exactly
the sweep's codes, because the quantizer treats blocks independently; so the compiler's
`mxq-quantize-weights` stores codes that equal `mxc.numerics.quantize(W~, spec, s_enc=...)`.

Options: `damp` (added to H's diagonal, times its mean), `actorder` (static act-order: blocks
visited by decreasing Hessian diagonal mass, each block kept whole so block scales stay along K),
a Hadamard rotation (MR-GPTQ): with the spec's `hadamard`, W and H are rotated to the
basis the format quantizes in (W R, R^T H R), the sweep runs there, and W~ is rotated back;
and `scale_search` (MR-GPTQ's MSE scale search, MX formats): per row and block, besides the
scale rule's exponent e, the exponents e - 1 and e + 1 (the elements rounded by the format's own
`round_to_element`, saturating), keeping the one whose block error adds least to the GPTQ
objective ||(W_b - Q_b) U_bb^-1||^2. A block whose chosen scale is not the rule's gets W~_b = Q_b, its
decoded values times 1 + 2^-10: the format's rule applied to them gives Q_b back (checked per block; a
candidate that would not is not taken; the nudge keeps an amax that is a power of two from falling below
it through the float32 rounding of MR-GPTQ's rotation there and back), so `mxq-quantize-weights` still
stores the rule's codes of W~.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mxc.errors import MxcError
from mxc.numerics import FormatSpec, quantize
from mxc.numerics import hadamard as _hadamard
from mxc.numerics.elements import exp2i, round_to_element
from mxc.numerics.quantize import E8M0_NAN, nv_tensor_scale

LAZY = 128  # columns whose updates are applied lazily, as one matmul (GPTQ's lazy batch)


class CalibrationError(MxcError):
    """Calibration cannot run for a layer or a model; the message names which and the fix."""


class SingularHessian(CalibrationError):
    """A layer's Hessian is not positive definite even after dampening; `why` says so without the layer."""

    def __init__(self, layer: str, why: str):
        super().__init__(f"layer '{layer}': {why}")
        self.why = why


@dataclass(frozen=True)
class GptqResult:
    """W~ (the calibrated weight, in W's layout and float32), the NV encode-side tensor scale the
    codes were chosen with (None for MX formats), and the layer's output error before/after:
    tr((W - Q) H (W - Q)^T) / tr(W H W^T), the relative squared output error on the calibration set."""

    weight: torch.Tensor
    s_enc: torch.Tensor | None
    err_rtn: float
    err_gptq: float


def rel_output_error(w: torch.Tensor, q: torch.Tensor, h: torch.Tensor) -> float:
    """tr((W - Q) H (W - Q)^T) / tr(W H W^T): the output error of Q against W on inputs with Hessian H."""
    d, w64, h64 = (w - q).double().to(h.device), w.double().to(h.device), h.double()
    den = float(((w64 @ h64) * w64).sum())
    return float(((d @ h64) * d).sum()) / den if den > 0 else 0.0


def _rotation(k: int, n: int, device) -> torch.Tensor:
    """The block-diagonal Hadamard matrix R (float64) with rotate(x, n) == x @ R."""
    return _hadamard.rotate(torch.eye(k), n).double().to(device)


def block_order(diag: torch.Tensor, bs: int, actorder: bool) -> torch.Tensor:
    """The column order of the sweep: whole blocks of `bs` columns (so block scales stay along K), by
    decreasing Hessian diagonal mass with static act-order, in K order without."""
    blocks = torch.arange(diag.numel() // bs)
    if actorder:
        blocks = torch.argsort(diag.reshape(-1, bs).sum(-1), descending=True, stable=True)
    return (blocks[:, None] * bs + torch.arange(bs)).reshape(-1)


def gptq(w: torch.Tensor, h: torch.Tensor, spec: FormatSpec, *, damp: float = 0.01, actorder: bool = True,
         scale_search: bool = False, layer: str = "") -> GptqResult:
    """Calibrate W [N, K] (quantized along K in `spec`) for inputs whose Hessian (X^T X, any scale) is `h` [K, K].

    The linear algebra runs where `h` is (a GPU when the caller puts it there); the format's quantizer
    on the CPU, one block column at a time (the reference implementation, as everywhere)."""
    if spec.options.rounding == "stochastic":
        raise CalibrationError(f"layer '{layer}': GPTQ chooses the codes itself; rounding=stochastic does not "
                               "apply (drop it, or calibrate=rtn for this layer)")
    dev = h.device
    w = w.detach().to(torch.float32).cpu()
    n_out, k = w.shape
    bs = spec.block_size
    rot = spec.options.hadamard
    flat = spec.without_hadamard() if rot else spec
    h0 = h.detach().double()
    if rot:
        r = _rotation(k, rot, dev)
        w_sweep, h = _hadamard.rotate(w, rot), r.T @ h0 @ r
    else:
        w_sweep, h = w, h0
    s_enc = None if spec.format.family == "mx" else nv_tensor_scale(w_sweep, spec.format)
    kp = -(-k // bs) * bs  # K padded to whole blocks, as the quantizer pads
    wp = torch.zeros(n_out, kp, dtype=torch.float64, device=dev)
    wp[:, :k] = w_sweep.double().to(dev)
    hp = torch.eye(kp, dtype=torch.float64, device=dev)
    hp[:k, :k] = h
    dead = torch.diagonal(hp) <= 0
    hp[dead, dead] = 1.0
    wp[:, dead] = 0.0
    perm = block_order(torch.diagonal(hp).cpu(), bs, actorder).to(dev)
    hp = hp[perm][:, perm]
    wp = wp[:, perm]
    hp += damp * torch.diagonal(hp).mean() * torch.eye(kp, dtype=torch.float64, device=dev)
    try:
        u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hp)), upper=True)
    except torch.linalg.LinAlgError:
        raise SingularHessian(layer, f"its calibration Hessian is not positive definite even with damp={damp}; "
                                     "raise damp (e.g. gptq{damp=0.1}) or give more calibration data") from None

    def quant(block: torch.Tensor) -> torch.Tensor:
        return quantize(block.float().cpu(), flat, s_enc=s_enc).dequantize().double().to(dev)

    search = scale_search and spec.format.family == "mx"
    out = torch.empty_like(wp)
    for i1 in range(0, kp, LAZY):
        i2 = min(i1 + LAZY, kp)
        w1, u1 = wp[:, i1:i2].clone(), u[i1:i2, i1:i2]
        err = torch.zeros_like(w1)
        for g in range(0, i2 - i1, bs):
            cols = slice(g, g + bs)
            if search:
                q, stored = _searched(w1[:, cols], u1[cols, cols], flat)
            else:
                q, stored = quant(w1[:, cols]), w1[:, cols]
            out[:, i1 + g:i1 + g + bs] = stored
            d = w1[:, cols] - q
            e = torch.linalg.solve_triangular(u1[cols, cols], d, upper=True, left=False)  # E U_bb = W_b - Q_b
            err[:, cols] = e
            w1[:, g + bs:] -= e @ u1[cols, g + bs:]
        wp[:, i2:] -= err @ u[i1:i2, i2:]
    calibrated = torch.empty_like(out)
    calibrated[:, perm] = out
    calibrated = calibrated[:, :k].float().cpu()
    if rot:
        calibrated = _hadamard.rotate(calibrated, rot)  # its own inverse: back to W's basis
    q_rtn = quantize(w, spec, s_enc=_s_enc_of(w, spec)).dequantize()
    q_gptq = quantize(calibrated, spec, s_enc=s_enc).dequantize()
    return GptqResult(calibrated, s_enc, rel_output_error(w, q_rtn, h0), rel_output_error(w, q_gptq, h0))


def _searched(block: torch.Tensor, u_bb: torch.Tensor, spec: FormatSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """MX scale search for one block column [N, bs]: (the decoded block Q, the block W~ stores). Per row, the
    rule's exponent e and e +- 1, the one with the least ||(W_b - Q_b) U_bb^-1||^2 (ties: the rule's); a row
    whose choice is not the rule's stores Q_b itself, which the rule quantizes back to the same values."""
    dev = block.device
    b = block.float().cpu()
    qt = quantize(b, spec)
    best = qt.dequantize()
    code = qt.scales.to(torch.int32).reshape(-1)  # one block per row
    usable = (code != E8M0_NAN) & (code > 0)  # not a NaN/Inf block, not an all-zero one (e = -127)
    u = u_bb.cpu()

    def cost(q: torch.Tensor) -> torch.Tensor:
        d = torch.linalg.solve_triangular(u, (b - q).double(), upper=True, left=False)
        return (d * d).sum(-1)
    best_cost, stored = cost(best), torch.zeros(b.shape[0], dtype=torch.bool)
    for de in (-1, 1):
        e = (code - 127 + de).clamp(-127, 127)
        s = exp2i(e).unsqueeze(-1)
        q = round_to_element(b / s, spec.format.element) * s
        back = quantize(q * NUDGE, spec).dequantize()
        take = usable & (cost(q) < best_cost) & (back == q).all(-1) & torch.isfinite(q).all(-1)
        best = torch.where(take.unsqueeze(-1), q, best)
        best_cost = torch.where(take, cost(q), best_cost)
        stored |= take
    keep = torch.where(stored.unsqueeze(-1), best * NUDGE, b)
    return best.double().to(dev), keep.double().to(dev)


# W~ of a block with a searched scale is Q_b times this: the rule gives Q_b back from it, and keeps doing so
# after the float32 rounding of MR-GPTQ's rotation there and back (Q_b's amax may be a power of two, where
# the floor rule would drop an exponent for a value a hair below it); far below every element's half step.
NUDGE = 1 + 2.0**-10


def _s_enc_of(w: torch.Tensor, spec: FormatSpec) -> torch.Tensor | None:
    """The NV tensor scale `quantize(w, spec)` computes itself (in the rotated basis with a Hadamard)."""
    if spec.format.family == "mx":
        return None
    rot = spec.options.hadamard
    return nv_tensor_scale(_hadamard.rotate(w.float(), rot) if rot else w.float(), spec.format)
