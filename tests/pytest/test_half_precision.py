"""bf16 and fp16 models: quantized like float32 ones, run and compared in their own dtype."""

import json

import numpy as np
import pytest
import torch
from iree import runtime as rt

from conftest import EXAMPLES, run_mxc
from mxc.numerics import quantize

# The examples' MLP in a given dtype and activation (ReLU is exact in any dtype; GELU is
# rounded per step to the dtype by IREE and once by torch).
MLP_IN = """
import sys, torch
sys.path.insert(0, {examples!r})
from mlp import MLP

class Relu(MLP):
    def forward(self, x):
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

def get_model():
    torch.manual_seed(0)
    return {cls}().to(torch.{dtype})

def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(8, 256).to(torch.{dtype}),)
"""


def _mlp(write_model, dtype: str, cls: str = "MLP"):
    if (dtype, cls) == ("bfloat16", "MLP"):
        return EXAMPLES / "mlp_bf16.py"
    return write_model(MLP_IN.format(examples=str(EXAMPLES), cls=cls, dtype=dtype), f"mlp_{dtype}_{cls}.py")


def _irpa(path) -> dict:
    index = rt.ParameterIndex()
    index.load(str(path))
    return {key: np.frombuffer(bytes(entry.file_view), dtype=np.uint8) for key, entry in index.items()}


def _compile_and_compare(model, out, fmt, weights_only):
    rc, stdout, err = run_mxc("compile", model, "-o", out, "--format", fmt, "-q",
                              *(["--weights-only"] if weights_only else []))
    assert rc == 0, err
    assert "3 of 3 layers quantized" in stdout, stdout
    rc, stdout, err = run_mxc("run", out, "--compare", "--json")
    assert rc == 0, stdout + err
    return json.loads(stdout)


@pytest.mark.parametrize("dtype, fmt, weights_only", [
    ("bfloat16", "mxfp4", False), ("bfloat16", "mxfp4", True), ("bfloat16", "nvfp4", False),
    ("bfloat16", "mxfp8", True), ("float16", "nvfp4", False), ("float16", "mxfp4", True),
], ids=lambda v: {False: "w+a", True: "w-only"}.get(v, v) if isinstance(v, bool) else v)
def test_half_mlp_compiles_and_compares(dtype, fmt, weights_only, write_model, tmp_path, monkeypatch):
    """Every matmul quantized, `run --compare` passes, and the weights are the numerics' codes of the
    bf16/fp16 weights themselves."""
    monkeypatch.syspath_prepend(str(EXAMPLES))  # mlp_bf16.py imports mlp.py beside it, as mxc's loader allows
    model = _mlp(write_model, dtype)
    res = _compile_and_compare(model, tmp_path / "out", fmt, weights_only)
    assert res["vs_reference"]["within_tolerance"], res["vs_reference"]
    assert res["vs_torch"]["sqnr_db"] > 5.0, res["vs_torch"]
    params = _irpa(tmp_path / "out" / "model.irpa")
    import importlib.util

    spec = importlib.util.spec_from_file_location("m", model)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # each weight stored once, quantized (not also the bf16/fp16 original): codes, scales, biases only
    assert not [k for k in params if not k.endswith((".elements", ".scales", ".tensor_scale", ".bias"))], list(params)
    for layer in ("fc1", "fc2", "head"):
        w = getattr(mod.get_model(), layer).weight
        assert w.dtype == getattr(torch, dtype)
        q = quantize(w, fmt)  # numerics on the bf16/fp16 tensor (exactly its f32 extension's codes)
        assert np.array_equal(params[f"{layer}.{fmt}.elements"], q.packed_elements().numpy().ravel())
        assert np.array_equal(params[f"{layer}.{fmt}.scales"], q.scales.numpy().ravel())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_relu_mlp_is_bit_exact(dtype, write_model, tmp_path):
    """With only ReLU between the matmuls (exact in any dtype), compiled equals the fake-quant reference
    bit for bit, weights+activations: extension, quantization and the one rounding back all match."""
    res = _compile_and_compare(_mlp(write_model, dtype, "Relu"), tmp_path / "out", "nvfp4", False)
    assert res["vs_reference"]["max_abs_error"] == 0.0, res["vs_reference"]


def test_artifact_takes_and_returns_bf16(tmp_path):
    from mxc.runtime.artifact import load

    rc, _, err = run_mxc("compile", EXAMPLES / "mlp_bf16.py", "-o", tmp_path / "out", "--format", "mxfp4", "-q")
    assert rc == 0, err
    art = load(tmp_path / "out")
    (x,) = art.example_inputs()
    assert x.dtype == torch.bfloat16
    (y,) = art(x)
    assert y.dtype == torch.bfloat16 and y.shape == (8, 64) and torch.isfinite(y).all()


def test_summary_lists_layers_kept_in_high_precision(write_model, tmp_path):
    """A layer left unquantized for a reason other than a policy is named in compile's summary line."""
    model = write_model("""
import torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 64)
        self.fc2 = torch.nn.Linear(64, 64)
    def forward(self, x):
        return torch.addmm(self.fc2.bias, self.fc1(x), self.fc2.weight.t(), beta=2.0)
def get_model():
    torch.manual_seed(0)
    return M().to(torch.bfloat16)
def get_example_inputs():
    return (torch.randn(8, 64).to(torch.bfloat16),)
""")
    rc, stdout, err = run_mxc("compile", model, "-o", tmp_path / "out", "--format", "mxfp4")
    assert rc == 0, err
    assert "1 of 2 layers quantized; kept in high precision: torch.aten.addmm (addmm with beta or alpha" in stdout
    rc, stdout, err = run_mxc("compile", model, "-o", tmp_path / "none", "--format", "none")
    assert rc == 0, err
    assert "0 of 2 layers quantized; kept in high precision: torch.aten.addmm (addmm" in stdout, stdout
    assert "fc1" not in stdout, stdout  # kept in high precision by the policy ("none"): not listed


ONE_LINEAR = """
import torch

def get_model():
    torch.manual_seed(0)
    return torch.nn.Linear(256, 128)

def get_example_inputs():
    torch.manual_seed(1)
    return (torch.randn(8, 256),)
"""


def test_act_dtype_bf16_rounds_weight_only_activations(tmp_path, write_model):
    """--act-dtype bf16: the CPU program rounds a weight-only layer's activations to bf16 (RNE) before the
    GEMM, as cuda-sm90's dec and wgmma kernels do: the output equals x.bfloat16() @ fake_quant(W)^T up to
    float32 order, not the float32 product; the manifest records the option, and --compare's reference
    rounds alike (its rule allows the bf16 flips an ulp upstream can cause in deeper models)."""
    from mxc import load
    from mxc.numerics import fake_quantize
    from mxc.numerics.options import FormatSpec

    model = write_model(ONE_LINEAR, "one_linear.py")
    out = tmp_path / "a"
    rc, _, err = run_mxc("compile", model, "--format", "nvfp4", "--weights-only", "--act-dtype", "bf16", "-o", out, "-q")
    assert rc == 0, err
    art = load(out)
    assert art.manifest["options"]["act_dtype"] == "bf16"
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 128)
    x = art.example_inputs()[0]
    y = art(x)
    y = torch.as_tensor(np.asarray(y[0] if isinstance(y, (list, tuple)) else y))
    wq = fake_quantize(lin.weight.data, FormatSpec.parse("nvfp4"), axis=-1)
    ref = torch.nn.functional.linear(x.bfloat16().float(), wq, lin.bias.data)
    f32 = torch.nn.functional.linear(x, wq, lin.bias.data)
    scale = ref.abs().max().item()
    assert (y - ref).abs().max().item() <= 1e-5 * scale < (y - f32).abs().max().item()
    rc, stdout, err = run_mxc("run", out, "--compare", "--json")
    assert rc == 0, err
    report = json.loads(stdout)
    assert "bf16 activations" in json.dumps(report)

    # a layer whose kernels read bf16 activations (cuda-sm90's manifest says so in run_time_rounding) gets the
    # same rounding in the reference, with or without the option (the H200's MXINT8 MLP: 2.97e-3 -> 3.1e-8)
    from mxc.runtime.reference import fake_quant_forward

    rows = [{**r, "run_time_rounding": ["bf16 activations"]} for r in art.manifest["layers"]]
    manifest = {**art.manifest, "options": {**art.manifest["options"], "act_dtype": "f32"}, "layers": rows}
    ref_kernel = fake_quant_forward(lin, (x,), manifest)[0]
    assert torch.equal(ref_kernel, fake_quant_forward(lin, (x,), art.manifest)[0])
    plain = {**manifest, "layers": [{**r, "run_time_rounding": []} for r in rows]}
    assert not torch.equal(ref_kernel, fake_quant_forward(lin, (x,), plain)[0])


def test_act_dtype_is_validated():
    from mxc.options import Options, OptionsError

    with pytest.raises(OptionsError, match="act_dtype must be one of f32, bf16, got 'f16'"):
        Options(act_dtype="f16")
    assert Options.from_dict({**Options().to_dict(), "act_dtype": "bf16"}).act_dtype == "bf16"
    legacy = Options().to_dict()
    del legacy["act_dtype"]  # a manifest written before the option
    assert Options.from_dict(legacy).act_dtype == "f32"
