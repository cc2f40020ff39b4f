"""Do `--auto`'s scores rank layers as the true loss does? A rank correlation on held-out batches.

    python -m mxc.tools.auto_check MODEL.py [--layers 12] [--formats mxfp4 nvfp4] [--policy FILE]

For a sample of the layers `--auto` would search (evenly spaced), and each weight-only format of
`--formats`, compare the predicted score (`mxc.selection`: sum g^2 (Y_q - Y)^2 on the calibration
batches) with the true change of the loss when only that layer's weights are fake-quantized,
measured on model.py's `get_eval_inputs()` (batches the calibration did not see). Prints each
pair and Spearman's rank correlation over all of them. Needs get_loss(); without
get_calibration_inputs() the scores come from the example inputs.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from mxc.compiler.driver import compile_file
from mxc.compiler.frontend import load_model_file
from mxc.errors import MxcError
from mxc.numerics import FormatSpec, fake_quantize
from mxc.options import Options
from mxc.policy import Choice
from mxc.selection.scoring import LayerScores
from mxc.selection.search import calibration_batches
from mxc.selection.sensitivity import calibrate


def _loss(model, loss_fn, batches) -> float:
    with torch.no_grad():
        return sum(float(loss_fn(model(*b), *b)) for b in batches) / len(batches)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mxc.tools.auto_check", description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--layers", type=int, default=12, help="layers sampled (evenly spaced)")
    ap.add_argument("--formats", nargs="+", default=["mxfp4", "nvfp4"], help="weight-only formats to score")
    ap.add_argument("--policy", default="", help="a policy whose rules pin layers (left out, as --auto does)")
    a = ap.parse_args(argv)
    spec = load_model_file(a.model)
    if spec.loss is None:
        raise MxcError(f"{a.model}: the check compares with the true loss: define get_loss(output, *inputs)")
    if spec.eval_inputs is None:
        raise MxcError(f"{a.model}: define get_eval_inputs() returning held-out input tuples (not the "
                       "calibration batches)")
    rows = compile_file(a.model, None, Options(policy=a.policy, format="none"), compile_to="formats").manifest["layers"]
    names = [r["layer"] for r in rows if "input_shape" in r and r["decision"].endswith("precision (default)")]
    batches, _ = calibration_batches(spec)
    held_out = [tuple(b) if isinstance(b, tuple) else (b,) for b in spec.eval_inputs()]
    t = time.perf_counter()
    records = calibrate(spec.model, batches, set(names), spec.loss)
    weights = [n for n in names if records[n].param]  # layers whose right-hand side is a parameter
    sample = weights[::max(1, len(weights) // a.layers)][:a.layers]
    base = _loss(spec.model, spec.loss, held_out)
    pairs = []
    for layer in sample:
        choices = [Choice(FormatSpec.parse(f)) for f in a.formats]
        rec = records.pop(layer)
        layer_scores = LayerScores(rec, choices)
        layer_scores.refine(range(len(choices)))  # every candidate on every token
        scores = layer_scores.scored(cost_class=lambda c: c)
        weight = spec.model.get_parameter(rec.param)
        saved = weight.detach().clone()
        for s in scores:
            with torch.no_grad():
                weight.copy_(fake_quantize(saved, s.choice.weight, axis=-1))
            pairs.append((layer, str(s.choice.weight), s.score, _loss(spec.model, spec.loss, held_out) - base))
            with torch.no_grad():
                weight.copy_(saved)
    from scipy.stats import spearmanr

    rho = spearmanr([p[2] for p in pairs], [p[3] for p in pairs]).statistic
    print(f"{'layer':44s} {'format':10s} {'predicted':>12s} {'true dLoss':>12s}")
    for layer, fmt, pred, true in pairs:
        print(f"{layer[-44:]:44s} {fmt:10s} {pred:12.4g} {true:12.4g}")
    print(f"Spearman rank correlation over {len(pairs)} (layer, format) pairs: {rho:.3f}  "
          f"(base loss {base:.4f} on {len(held_out)} held-out batches; {time.perf_counter() - t:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
